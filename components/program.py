"""The Pulumi program as a function: settings in, registrations and exports out.

`__main__.py` reads the stack configuration and calls `build`; the tests and the offline `plan` call it the same
way after `pulumi.runtime.set_mocks`, the way pulumi/examples `testing-unit-py` tests a program.
"""

from dataclasses import dataclass
from pathlib import Path

import pulumi

from .config import NAMESPACE, STACK_KEYS, StackSettings, parse_stack_config, provider_environment
from .portal import PortalRegistration, PortalRegistrationArgs
from .rotation import secret_schedule
from .stack_file import read_stack_file, stack_file_path
from .tenant import read_tenant
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
    """The stack configuration, checked. Known keys come from `pulumi.Config`; unknown or misspelt ones can only
    be seen in the stack file, which is read when it lies in the working directory (the project directory under
    `pulumi up`). Raises ConfigError, or StackFileError for an unreadable stack file."""
    stack = pulumi.get_stack()
    config = pulumi.Config(NAMESPACE)
    raw: dict[str, object] = {key: value for key in STACK_KEYS if (value := config.get(key)) is not None}
    key_problems: list[str] = []
    try:
        stack_file = read_stack_file(stack_file_path(stack, Path.cwd()))
    except FileNotFoundError:
        stack_file = None  # config from elsewhere (`--config-file`, Pulumi ESC): known keys only
    if stack_file is not None:
        for key, value in stack_file.values(NAMESPACE).items():
            raw.setdefault(key, value)
        key_problems = stack_file.key_problems()
    azuread = pulumi.Config("azuread")
    cloud = provider_environment(azuread.get("environment"), azuread.get("metadataHost"))
    return parse_stack_config(raw, stack, today(), cloud, key_problems)
