"""The output contract: what the program exports and what the post-deploy step reads, as typed records.

One `PortalOutput` per portal is the `portals` stack output's entry (`to_output()` writes it, camelCase, JSON
types only); `StackOutputs.from_output()` reads `pulumi stack output --json --show-secrets` back, checking every
field's presence and type and naming the first bad one (`portals.hr.clientId: ...`). The program, the command
line and the tests all go through these records; derived facts (delegated, scoped, ...) are properties here, not
worked out again at each use.

Closed vocabularies are StrEnums whose values are the words that appear in the outputs. `OUTPUT_SCHEMA_VERSION`
changes whenever an entry's shape changes (CHANGELOG.md records each version).
"""

from __future__ import annotations

import dataclasses
import re
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Any, ClassVar

from .clouds import CLOUDS, Cloud, CloudName

OUTPUT_SCHEMA_VERSION = 2

PORTALS = "portals"
CLIENT_SECRETS = "clientSecrets"

# The configuration's rule for portal names; names also become resource names, output keys and folder names. The
# whole text must match (\Z, not $: `$` also matches before a final line break, and "hr\n" is no name).
PORTAL_NAME_PATTERN = re.compile(r"\A[a-z][a-z0-9-]{0,39}\Z")
PORTAL_NAME_RULE = "a lower-case letter, then at most 39 lower-case letters, digits or '-'"


def is_portal_name(value: object) -> bool:
    return isinstance(value, str) and PORTAL_NAME_PATTERN.fullmatch(value) is not None


class Access(StrEnum):
    DELEGATED = "delegated"  # per-user tokens (Entra: delegated permissions, "Scope")
    APPLICATION = "application"  # app-only tokens (Entra: application permissions, "Role")


class Api(StrEnum):
    GRAPH = "graph"
    EWS = "ews"


class Connector(StrEnum):
    """Which Intrexx connector uses a registration (help.intrexx.com, see README "Intrexx's two connectors")."""

    EXCHANGE = "exchange"  # Connector for Microsoft Exchange: MediaGateway, EWS, per-user refresh tokens
    M365 = "m365"  # Connector for Microsoft 365 and Teams: Microsoft Graph, user accounts or service accounts

    @property
    def api(self) -> Api:
        return Api.EWS if self is Connector.EXCHANGE else Api.GRAPH


class PermissionType(StrEnum):
    """Entra's own words for delegated and application permissions (requiredResourceAccess.type)."""

    SCOPE = "Scope"
    ROLE = "Role"


class GrantedBy(StrEnum):
    ADMIN_CONSENT = "admin-consent"  # tenant-wide: a delegated grant for all users, or an app role assignment
    EXCHANGE_RBAC = "exchange-rbac"  # Exchange Online RBAC for Applications, limited to a management scope


KIND_OF_ACCESS = {Access.DELEGATED: PermissionType.SCOPE, Access.APPLICATION: PermissionType.ROLE}


class ContractError(ValueError):
    """An outputs document does not have the contract's shape; `path` names the field (`portals.hr.clientId`)."""

    def __init__(self, path: str, problem: str):
        self.path = path
        super().__init__(f"{path}: {problem}")


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def timestamp(day: date) -> str:
    """RFC 3339 at midnight UTC: how the outputs (and ApplicationPassword.end_date) write a date."""
    return f"{day.isoformat()}T00:00:00Z"


class _Record:
    """to_output / from_output for frozen dataclasses whose fields are JSON-shaped: str, int, bool, StrEnums,
    dates (as RFC 3339 timestamps), nested records, tuples of those, and optional ones (left out when None)."""

    OMIT: ClassVar[frozenset[str]] = frozenset()  # fields that are not part of the output

    def to_output(self) -> dict[str, Any]:
        document = {}
        for item in dataclasses.fields(self):  # type: ignore[arg-type]
            value = getattr(self, item.name)
            if item.name not in self.OMIT and value is not None:
                document[camel(item.name)] = _dump(value)
        return document

    @classmethod
    def from_output(cls, value: object, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise ContractError(path, f"must be an object, got {_kind(value)}")
        hints = typing.get_type_hints(cls)
        values: dict[str, object] = {}
        for item in dataclasses.fields(cls):  # type: ignore[arg-type]
            if item.name in cls.OMIT:
                continue
            key = camel(item.name)
            optional, hint = _unwrap_optional(hints[item.name])
            if key not in value or value[key] is None:
                if not optional:
                    raise ContractError(f"{path}.{key}", "missing")
                values[item.name] = None
                continue
            values[item.name] = _load(hint, value[key], f"{path}.{key}")
        return cls(**values)


def _dump(value: object) -> object:
    if isinstance(value, _Record):
        return value.to_output()
    if isinstance(value, StrEnum):
        return value.value
    if isinstance(value, date):
        return timestamp(value)
    if isinstance(value, tuple):
        return [_dump(item) for item in value]
    return value


def _unwrap_optional(hint: Any) -> tuple[bool, Any]:
    if isinstance(hint, types.UnionType) or typing.get_origin(hint) is typing.Union:
        members = [member for member in typing.get_args(hint) if member is not type(None)]
        return True, members[0]
    return False, hint


def _load(hint: Any, value: object, path: str) -> object:
    if typing.get_origin(hint) is tuple:
        if not isinstance(value, list):
            raise ContractError(path, f"must be a list, got {_kind(value)}")
        (item_hint, _) = typing.get_args(hint)
        return tuple(_load(item_hint, item, f"{path}[{index}]") for index, item in enumerate(value))
    if isinstance(hint, type) and issubclass(hint, _Record):
        return hint.from_output(value, path)
    if isinstance(hint, type) and issubclass(hint, StrEnum):
        if not isinstance(value, str) or value not in {member.value for member in hint}:
            choices = " | ".join(member.value for member in hint)
            raise ContractError(path, f"must be one of {choices}, got {_describe(value)}")
        return hint(value)
    if hint is date:
        if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}(T[0-9:.]+(Z|[+-]\d{2}:\d{2})?)?", value):
            raise ContractError(path, f"must be an ISO 8601 date or timestamp, got {_describe(value)}")
        try:
            return date.fromisoformat(value[:10])
        except ValueError:
            raise ContractError(path, f"is not a calendar date: {_describe(value)}") from None
    if hint is bool:
        if not isinstance(value, bool):
            raise ContractError(path, f"must be true or false, got {_describe(value)}")
        return value
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ContractError(path, f"must be a whole number, got {_describe(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ContractError(path, f"must be a string, got {_describe(value)}")
        return value
    raise TypeError(f"no reader for {hint!r} at {path}")  # a contract field of a type this module does not know


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", bool: "a boolean", type(None): "null"}.get(
        type(value), "a number" if isinstance(value, (int, float)) else type(value).__name__
    )


def _describe(value: object) -> str:
    if isinstance(value, (dict, list)):
        return _kind(value)
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


@dataclass(frozen=True)
class MailboxScope(_Record):
    """Exchange RBAC for Applications: the mailboxes an app-only portal may reach. Exactly one field is set."""

    group_id: str | None = None
    recipient_filter: str | None = None

    @classmethod
    def from_output(cls, value: object, path: str) -> MailboxScope:
        scope: MailboxScope = super().from_output(value, path)
        if (scope.group_id is None) == (scope.recipient_filter is None):
            raise ContractError(path, "must hold exactly one of groupId or recipientFilter")
        return scope


@dataclass(frozen=True)
class GrantedPermission(_Record):
    """One permission of a portal, and how it is granted."""

    resource: str  # key of the resource API in the catalogue: "graph" or "exchange"
    resource_app_id: str
    name: str
    type: PermissionType
    id: str
    granted_by: GrantedBy
    exchange_role: str | None = None  # the RBAC for Applications role, when granted by exchange-rbac

    @property
    def delegated(self) -> bool:
        return self.type is PermissionType.SCOPE


@dataclass(frozen=True)
class PortalOutput(_Record):
    """One entry of the `portals` stack output (not secret). `client_secret` is not part of it: the command line
    attaches it from the `clientSecrets` output, and it is never shown by repr."""

    portal: str
    schema_version: int
    tenant_id: str
    client_id: str
    application_object_id: str
    service_principal_object_id: str
    display_name: str
    environment: str
    cloud: CloudName
    connector: Connector
    api: Api  # the connector's API, written for readers of the outputs
    access: Access
    base_url: str
    sign_in: bool
    public_client: bool
    authority_host: str
    authority: str
    token_endpoint: str
    authorize_endpoint: str
    device_code_endpoint: str
    jwks_uri: str
    issuer: str
    user_info_endpoint: str
    resource: str
    graph_endpoint: str
    scopes: tuple[str, ...]
    permissions: tuple[GrantedPermission, ...]
    redirect_uris: tuple[str, ...]
    secret_key_id: str  # the published (newer) secret
    secret_expires_at: date
    secret_rotates_at: date
    secret_rotation_days: int
    previous_secret_key_id: str  # the other slot: the secret published before, which Intrexx may still hold
    previous_secret_expires_at: date  # it stops working then (the next rotation replaces it)
    sign_in_redirect_uri: str | None = None
    ews_url: str | None = None
    mailbox_scope: MailboxScope | None = None
    hand_made_secret_key_ids: tuple[str, ...] | None = None  # adopted registrations: secrets to remove by hand
    refresh_tokens_requested_on: date | None = None  # exchange portals: Intrexx's refresh tokens last requested
    client_secret: str | None = field(default=None, repr=False, compare=False)

    OMIT: ClassVar[frozenset[str]] = frozenset({"client_secret"})

    @classmethod
    def from_output(cls, value: object, path: str) -> PortalOutput:
        if isinstance(value, Mapping):
            _check_schema_version(value.get(camel("schema_version")), f"{path}.schemaVersion")
        portal: PortalOutput = super().from_output(value, path)
        if portal.api is not portal.connector.api:
            raise ContractError(
                f"{path}.api",
                f"must be {portal.connector.api.value!r} for connector "
                f"{portal.connector.value!r}, got {portal.api.value!r}",
            )
        from .output_checks import check_portal_document  # it imports this module

        check_portal_document(value, path)
        if portal.sign_in and portal.sign_in_redirect_uri is None:
            raise ContractError(f"{path}.signInRedirectUri", "missing (required when signIn is true)")
        if portal.uses_ews and portal.ews_url is None:
            raise ContractError(f"{path}.ewsUrl", "missing (required for connector exchange)")
        return portal

    @property
    def name(self) -> str:
        return self.portal

    @property
    def delegated(self) -> bool:
        return self.access is Access.DELEGATED

    @property
    def cloud_record(self) -> Cloud:
        return CLOUDS[self.cloud]

    @property
    def scoped(self) -> bool:
        """App-only access limited to a management scope by Exchange RBAC for Applications."""
        return self.access is Access.APPLICATION and self.mailbox_scope is not None

    @property
    def uses_ews(self) -> bool:
        return self.connector is Connector.EXCHANGE

    @property
    def rbac_permissions(self) -> tuple[GrantedPermission, ...]:
        return tuple(p for p in self.permissions if p.granted_by is GrantedBy.EXCHANGE_RBAC)

    @property
    def consented_roles(self) -> tuple[GrantedPermission, ...]:
        """Application permissions granted tenant-wide by an app role assignment."""
        return tuple(
            p for p in self.permissions if p.type is PermissionType.ROLE and p.granted_by is GrantedBy.ADMIN_CONSENT
        )

    def with_secret(self, client_secret: str | None) -> PortalOutput:
        return dataclasses.replace(self, client_secret=client_secret)


def _check_schema_version(value: object, path: str) -> None:
    if value is None:
        raise ContractError(
            path,
            f"missing: these outputs come from an older version of intrexx-exchange (before "
            f"output schema {OUTPUT_SCHEMA_VERSION}); run `pulumi up` with this version",
        )
    if isinstance(value, int) and not isinstance(value, bool) and value > OUTPUT_SCHEMA_VERSION:
        raise ContractError(
            path,
            f"{value} is newer than this tool reads ({OUTPUT_SCHEMA_VERSION}); upgrade "
            "intrexx-connector to the version that deployed the stack",
        )
    if value != OUTPUT_SCHEMA_VERSION:
        raise ContractError(
            path, f"must be {OUTPUT_SCHEMA_VERSION}, got {_describe(value)}; run `pulumi up` with this version"
        )


@dataclass(frozen=True)
class StackOutputs:
    """The program's stack outputs: `portals` (not secret) and `clientSecrets` (a Pulumi secret)."""

    portals: Mapping[str, PortalOutput]

    HIDDEN_SECRET: ClassVar[str] = "[secret]"  # what `pulumi stack output --json` prints without --show-secrets

    @classmethod
    def from_output(cls, document: object, need_secrets: bool = True) -> StackOutputs:
        if not isinstance(document, Mapping):
            raise ContractError(
                "(top level)", f"must be an object with '{PORTALS}' and '{CLIENT_SECRETS}', got {_kind(document)}"
            )
        entries = document.get(PORTALS)
        if not isinstance(entries, Mapping):
            raise ContractError(PORTALS, "missing or not an object: is this the intrexx-exchange stack?")
        secrets = document.get(CLIENT_SECRETS)
        if need_secrets:
            if secrets == cls.HIDDEN_SECRET or (isinstance(secrets, Mapping) and cls.HIDDEN_SECRET in secrets.values()):
                raise ContractError(
                    CLIENT_SECRETS, f"reads {cls.HIDDEN_SECRET}: run `pulumi stack output --json --show-secrets`"
                )
            if not isinstance(secrets, Mapping):
                raise ContractError(CLIENT_SECRETS, "missing or not an object")
        portals = {}
        for name in sorted(entries, key=str):
            path = f"{PORTALS}.{name}"
            if not is_portal_name(name):
                raise ContractError(PORTALS, f"{_describe(name)} is not a portal name ({PORTAL_NAME_RULE})")
            portal = PortalOutput.from_output(entries[name], path)
            if portal.portal != name:
                raise ContractError(f"{path}.portal", f"must be {name!r}, got {_describe(portal.portal)}")
            if need_secrets:
                secret = secrets.get(name) if isinstance(secrets, Mapping) else None
                if not isinstance(secret, str) or not secret:
                    raise ContractError(f"{CLIENT_SECRETS}.{name}", "missing")
                portal = portal.with_secret(secret)
            portals[name] = portal
        return cls(portals)

    def to_output(self) -> dict[str, Any]:
        return {
            PORTALS: {name: portal.to_output() for name, portal in self.portals.items()},
            CLIENT_SECRETS: {name: portal.client_secret for name, portal in self.portals.items()},
        }
