"""The permission catalogue (catalogue.yaml) and the Exchange Online facts that go with it."""

import difflib
import functools
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import yaml

from .names import ROLE, SCOPE

CATALOGUE_FILE = Path(__file__).with_name("catalogue.yaml")

# EWS in Exchange Online: blocked by default from this date unless the tenant's EWS allow list names the app,
# switched off for good on the second (Microsoft 365 message center MC1176266 / MC1227454).
EWS_BLOCKED_FROM = date(2026, 10, 1)
EWS_SHUTDOWN = date(2027, 4, 1)

APIS = ("graph", "ews")
ACCESS_MODES = ("delegated", "application")
KIND_OF_ACCESS = {"delegated": SCOPE, "application": ROLE}


@dataclass(frozen=True)
class Permission:
    resource: str  # key of the resource API in the catalogue: "graph" or "exchange"
    name: str
    kind: str  # SCOPE (delegated) or ROLE (application)
    id: str
    exchange_role: str | None = None


@dataclass(frozen=True)
class ResourceApp:
    key: str
    display_name: str
    app_id: str
    endpoint: str  # attribute of components.clouds.Cloud serving this API
    permissions: dict  # (kind, name) -> Permission


@dataclass(frozen=True)
class Catalogue:
    resources: dict  # key -> ResourceApp
    apis: dict  # api -> resource key
    openid_scopes: frozenset
    profiles: dict  # (api, access) -> tuple of names
    sign_in: tuple

    def lookup(self, api: str, name: str, kind: str) -> Permission | None:
        """The permission `name` of `kind`, from the api's own resource first, then from Microsoft Graph."""
        for key in dict.fromkeys((self.apis[api], "graph")):
            permission = self.resources[key].permissions.get((kind, name))
            if permission:
                return permission
        return None

    def kinds_of(self, api: str, name: str) -> list[str]:
        return [kind for kind in (SCOPE, ROLE) if self.lookup(api, name, kind)]

    def close_matches(self, api: str, name: str, kind: str) -> list[str]:
        candidates = sorted(
            {p.name for key in dict.fromkeys((self.apis[api], "graph"))
             for p in self.resources[key].permissions.values() if p.kind == kind}
        )
        lowered = {c.lower(): c for c in candidates}
        matches = difflib.get_close_matches(name.lower(), list(lowered), n=3, cutoff=0.6)
        return [lowered[m] for m in matches]


@functools.cache
def load_catalogue(path: Path = CATALOGUE_FILE) -> Catalogue:
    raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    resources = {}
    for key, entry in raw["resources"].items():
        permissions = {}
        for name, scope_id in entry.get("scopes", {}).items():
            permissions[(SCOPE, name)] = Permission(key, name, SCOPE, scope_id)
        for name, role in entry.get("roles", {}).items():
            permissions[(ROLE, name)] = Permission(key, name, ROLE, role["id"], role.get("exchangeRole"))
        resources[key] = ResourceApp(key, entry["displayName"], entry["appId"], entry["endpoint"], permissions)
    profiles = {
        (api, access): tuple(names)
        for api, by_access in raw["profiles"].items()
        for access, names in by_access.items()
    }
    return Catalogue(resources, dict(raw["apis"]), frozenset(raw["openIdScopes"]), profiles, tuple(raw["signIn"]))
