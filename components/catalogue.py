"""The permission catalogue (catalogue.yaml): resource APIs, their permission ids and the default profiles."""

import difflib
import functools
from dataclasses import dataclass
from pathlib import Path

import yaml

from .contract import Access, Connector, PermissionType
from .facts import CATALOGUE_FILE, catalogue_document, is_guid


@dataclass(frozen=True)
class Permission:
    resource: str  # key of the resource API in the catalogue: "graph" or "exchange"
    name: str
    kind: PermissionType
    id: str
    exchange_role: str | None = None


@dataclass(frozen=True)
class ResourceApp:
    key: str
    display_name: str
    app_id: str
    endpoint: str  # attribute of components.clouds.Cloud serving this API
    permissions: dict[tuple[PermissionType, str], "Permission"]


@dataclass(frozen=True)
class Catalogue:
    resources: dict[str, ResourceApp]  # by key
    connectors: dict[Connector, str]  # connector -> the key of the resource it talks to
    openid_scopes: frozenset[str]
    profiles: dict[tuple[Connector, Access], tuple[str, ...]]
    sign_in: tuple[str, ...]

    def resource_of(self, connector: Connector) -> ResourceApp:
        return self.resources[self.connectors[connector]]

    def _search_order(self, connector: Connector) -> tuple[str, ...]:
        return tuple(dict.fromkeys((self.connectors[connector], "graph")))

    def lookup(self, connector: Connector, name: str, kind: PermissionType) -> Permission | None:
        """The permission `name` of `kind`, from the connector's resource first, then from Microsoft Graph."""
        for key in self._search_order(connector):
            permission = self.resources[key].permissions.get((kind, name))
            if permission:
                return permission
        return None

    def kinds_of(self, connector: Connector, name: str) -> list[PermissionType]:
        return [kind for kind in PermissionType if self.lookup(connector, name, kind)]

    def close_matches(self, connector: Connector, name: str, kind: PermissionType) -> list[str]:
        candidates = sorted(
            {
                p.name
                for key in self._search_order(connector)
                for p in self.resources[key].permissions.values()
                if p.kind == kind
            }
        )
        lowered = {c.lower(): c for c in candidates}
        matches = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
        return [lowered[m] for m in matches]


@functools.cache
def load_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    raw = catalogue_document() if path == CATALOGUE_FILE else yaml.safe_load(path.read_text(encoding="utf-8"))
    resources = {}
    for key, entry in raw["resources"].items():
        permissions = {}
        for name, scope_id in entry.get("scopes", {}).items():
            permissions[(PermissionType.SCOPE, name)] = Permission(key, name, PermissionType.SCOPE, scope_id)
        for name, role in entry.get("roles", {}).items():
            permissions[(PermissionType.ROLE, name)] = Permission(
                key, name, PermissionType.ROLE, role["id"], role.get("exchangeRole")
            )
        resources[key] = ResourceApp(key, entry["displayName"], entry["appId"], entry["endpoint"], permissions)
        ids = [entry["appId"], *(permission.id for permission in permissions.values())]
        assert all(is_guid(item) for item in ids), f"{path.name}: resources.{key}: every id is a GUID"
    profiles = {
        (Connector(connector), Access(access)): tuple(names)
        for connector, by_access in raw["profiles"].items()
        for access, names in by_access.items()
    }
    connectors = {Connector(connector): key for connector, key in raw["connectors"].items()}
    return Catalogue(resources, connectors, frozenset(raw["openIdScopes"]), profiles, tuple(raw["signIn"]))
