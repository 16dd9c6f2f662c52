"""intrexx-exchange: Entra ID registrations that connect Intrexx portals to Exchange Online.

Reads the stack configuration, builds one PortalRegistration per portal, exports `portals` and `clientSecrets`.
"""

import pulumi
import pulumi_azuread as azuread

from components import names
from components.config import NAMESPACE, STACK_KEYS, parse_stack_config
from components.portal import PortalRegistration, PortalRegistrationArgs
from components.rotation import secret_schedule
from components.tenant import read_tenant
from components.today import today


def stack_config() -> dict:
    """Every key set in the namespace, known or not, so that a misspelt key is reported instead of ignored."""
    # The language host hands config over through PULUMI_CONFIG or set_all_config, depending on the version.
    every_key = {**pulumi.runtime.get_config_env(), **pulumi.runtime.config.CONFIG.get()}
    prefix = f"{NAMESPACE}:"
    raw = {key[len(prefix):]: value for key, value in every_key.items() if key.startswith(prefix)}
    config = pulumi.Config(NAMESPACE)
    raw.update({key: config.get(key) for key in STACK_KEYS if config.get(key) is not None})
    return raw


def provider_environment() -> str | None:
    """The azuread provider's cloud; None for a custom cloud given by azuread:metadataHost."""
    return None if azuread.config.metadata_host else azuread.config.environment


stack = pulumi.get_stack()
settings = parse_stack_config(stack_config(), stack, today(), provider_environment())
tenant = read_tenant(p.resource for portal in settings.portals for p in portal.permissions)
secrets = secret_schedule(settings.today, settings.secret_rotation_days)

registrations = {
    portal.name: PortalRegistration(portal.name, PortalRegistrationArgs(
        portal=portal,
        environment=settings.environment,
        cloud=settings.cloud,
        tenant=tenant,
        secrets=secrets,
        protect=settings.protect,
        stack=stack,
    ))
    for portal in settings.portals
}

pulumi.export(names.PORTALS, {name: r.summary for name, r in registrations.items()})
pulumi.export(names.CLIENT_SECRETS, {name: r.client_secret for name, r in registrations.items()})
