"""The Pulumi program as a function: settings in, registrations and exports out.

`__main__.py` reads the stack configuration and calls `build`; the tests and the offline `plan` call it the same
way after `pulumi.runtime.set_mocks`, the way pulumi/examples `testing-unit-py` tests a program.
"""

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import pulumi

from .config import NAMESPACE, STACK_KEYS, StackSettings, parse_stack_config, provider_environment
from .portal import PortalRegistration, PortalRegistrationArgs
from .rotation import secret_schedule
from .stack_file import StackFileError, key_problems, read_stack_file, stack_file_path
from .tenant import read_tenant
from .text import for_one_line
from .today import today


@dataclass(frozen=True)
class Exports:
    registrations: dict[str, PortalRegistration]

    @property
    def portals(self) -> dict[str, pulumi.Output[dict]]:
        """The `portals` stack output: portal name -> its `PortalOutput.to_output()`."""
        return {name: registration.summary for name, registration in self.registrations.items()}

    @property
    def client_secrets(self) -> dict[str, pulumi.Output[str]]:
        """The `clientSecrets` stack output: portal name -> the newer secret's value, a Pulumi secret."""
        return {name: registration.client_secret for name, registration in self.registrations.items()}


def build(settings: StackSettings) -> Exports:
    """Register every portal of `settings`. Reads the tenant once per stack: `getClientConfig`, and
    `getServicePrincipal` once per resource API the portals use."""
    tenant = read_tenant(p.resource for portal in settings.portals for p in portal.permissions)
    secrets = secret_schedule(settings.today, settings.secret_rotation_days)
    if settings.deployers is not None and tenant.deployer_object_id not in settings.deployers:
        pulumi.log.warn(
            f"the identity running this deployment ({tenant.deployer_object_id}) is not in `deployers`: it does "
            "not own the registrations and manages them through its directory role only (Application "
            "Administrator, or Application.ReadWrite.All); add it to `deployers` if it should own them"
        )
    for warning in settings.warnings:  # grouped by kind across portals (config.StackSettings.warnings)
        pulumi.log.warn(for_one_line(warning))  # Pulumi prints it to a terminal or CI log (components/text.py)
    registrations = {
        portal.name: PortalRegistration(
            portal.name,
            PortalRegistrationArgs(
                portal=portal,
                environment=settings.environment,
                cloud=settings.cloud,
                tenant=tenant,
                secrets=secrets,
                protect=settings.protect,
                stack=settings.stack,
                deployers=settings.deployers,
            ),
        )
        for portal in settings.portals
    }
    return Exports(registrations)


def read_settings() -> StackSettings:
    """The stack configuration, checked. Every value comes from `pulumi.Config`, that is from whatever Pulumi read
    (the stack file, `--config-file`, Pulumi ESC). Misspelt keys show only among the keys themselves, which
    `pulumi.Config` cannot list: see `handed_over_key_problems`. Raises ConfigError, or StackFileError."""
    stack = pulumi.get_stack()
    config = pulumi.Config(NAMESPACE)
    raw: dict[str, object] = {key: value for key in STACK_KEYS if (value := config.get(key)) is not None}
    azuread = pulumi.Config("azuread")
    cloud = provider_environment(azuread.get("environment"), azuread.get("metadataHost"))
    return parse_stack_config(raw, stack, today(), cloud, handed_over_key_problems(stack, raw))


def handed_over_key_problems(stack: str, raw: Mapping[str, object]) -> list[str]:
    """Misspelt keys of the configuration Pulumi handed over.

    The Python language host puts every key and value of the run's configuration into the program's environment
    as PULUMI_CONFIG (pulumi/pulumi sdk/python/cmd/pulumi-language-python/main.go, `constructConfig`), which the
    SDK exposes as `pulumi.runtime.get_config_env()`: its keys are exactly the source Pulumi read. Without it
    (another host, the tests' `set_all_config`), the stack file beside the program stands in, and only when it
    is the source Pulumi read: each of the program's keys is in it exactly when Pulumi handed it over, with the
    same text (`StackFile.is_source_of`). Under `--config-file` or ESC it differs, and its keys are not judged.
    """
    try:
        handed_over = pulumi.runtime.get_config_env()
    except ValueError:
        handed_over = {}
    if isinstance(handed_over, dict) and handed_over:
        return key_problems(list(handed_over))
    try:
        stack_file = read_stack_file(stack_file_path(stack, Path.cwd()))
    except (FileNotFoundError, StackFileError):
        return []  # not the file Pulumi read: Pulumi refuses a stack file it cannot read
    return stack_file.key_problems() if stack_file.is_source_of({k: str(v) for k, v in raw.items()}) else []
