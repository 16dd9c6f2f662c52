"""What the program reads from the tenant: once per stack, not once per portal."""

from collections.abc import Iterable
from dataclasses import dataclass

import pulumi_azuread as azuread

from .catalogue import Permission, load_catalogue
from .contract import PermissionType


class TenantError(RuntimeError):
    """The tenant does not offer what the configuration needs."""


@dataclass(frozen=True)
class ResourceApi:
    """A resource API's service principal in the tenant: the target of consent grants and role assignments."""

    key: str
    display_name: str
    object_id: str
    scope_ids: dict[str, str]  # delegated permission name -> id, as the tenant publishes them
    role_ids: dict[str, str]  # application permission name -> id

    def permission_id(self, permission: Permission) -> str:
        delegated = permission.kind is PermissionType.SCOPE
        ids = self.scope_ids if delegated else self.role_ids
        if permission.name not in ids:
            kind = "delegated permission" if delegated else "application permission"
            raise TenantError(f"the tenant's {self.display_name} service principal publishes no {kind} "
                              f"'{permission.name}'")
        return ids[permission.name]


@dataclass(frozen=True)
class Tenant:
    tenant_id: str
    deployer_object_id: str
    resource_apis: dict[str, ResourceApi]  # by catalogue resource key


def read_tenant(resource_keys: Iterable[str]) -> Tenant:
    """Invokes `getClientConfig` once and `getServicePrincipal` once per resource API the stack uses.

    Permission ids come from the resource's service principal, as Microsoft recommends, not from our catalogue.
    """
    catalogue = load_catalogue()
    client = azuread.get_client_config()
    resource_apis = {}
    for key in sorted(set(resource_keys)):
        app = catalogue.resources[key]
        principal = azuread.get_service_principal(client_id=app.app_id)
        resource_apis[key] = ResourceApi(key, app.display_name, principal.object_id,
                                         dict(principal.oauth2_permission_scope_ids or {}),
                                         dict(principal.app_role_ids or {}))
    return Tenant(client.tenant_id, client.object_id, resource_apis)
