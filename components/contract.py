"""The output contract: what the program exports and what the post-deploy step reads, as typed records.

One `PortalOutput` per portal is the `portals` stack output's entry (`to_output()` writes it, camelCase, JSON
types only); `StackOutputs.from_output()` reads `pulumi stack output --json --show-secrets` back, checking every
field's presence, type and meaning and naming the first bad one (`portals.hr.clientId: ...`). Each field declares
what it holds (`Annotated[str, Kind.GUID]`, aliases below); components/output_checks.py checks each kind, and a
field without a kind stops this module's import. The program, the command
line and the tests all go through these records; derived facts (delegated, scoped, ...) are properties here, not
worked out again at each use.

Closed vocabularies are StrEnums whose values are the words that appear in the outputs. `OUTPUT_SCHEMA_VERSION`
changes whenever an entry's shape changes (CHANGELOG.md records each version).
"""

from __future__ import annotations

import dataclasses
import types
import typing
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from enum import StrEnum
from typing import Annotated, Any, ClassVar

from .clouds import CLOUDS, Cloud, CloudName, TenantEndpoints
from .facts import ENTRA_MAX_SECRET_DAYS, MIN_ROTATION_DAYS
from .output_checks import (
    KIND_TYPES,
    PORTAL_NAME_RULE,
    TEXT_KINDS,
    ContractError,
    Kind,
    check_secret,
    check_text,
    describe_value,
    is_portal_name,
    json_type,
    read_date,
)
from .output_checks import PORTAL_NAME_PATTERN as PORTAL_NAME_PATTERN  # the rule's home is output_checks.py

OUTPUT_SCHEMA_VERSION = 2

PORTALS = "portals"
CLIENT_SECRETS = "clientSecrets"

# What each field of the records below holds (components/output_checks.py checks each kind). A field's type is
# one of these, a list of them (tuple[..., ...]), or either of those or None.
HttpsUrl = Annotated[str, Kind.HTTPS_URL]
HttpsOrigin = Annotated[str, Kind.HTTPS_ORIGIN]
PortalUrl = Annotated[str, Kind.PORTAL_URL]  # a web URL of the portal itself: https, or http on loopback
Guid = Annotated[str, Kind.GUID]
PortalName = Annotated[str, Kind.PORTAL_NAME]
Text = Annotated[str, Kind.TEXT]
Day = Annotated[date, Kind.DATE]  # written as an RFC 3339 timestamp at midnight UTC; a date or timestamp read
Flag = Annotated[bool, Kind.FLAG]
Count = Annotated[int, Kind.COUNT]


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


def camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


def timestamp(day: date) -> str:
    """RFC 3339 at midnight UTC: how the outputs (and ApplicationPassword.end_date) write a date."""
    return f"{day.isoformat()}T00:00:00Z"


@dataclass(frozen=True)
class FieldShape:
    """How a record's field is written: its key, whether it may be missing, whether it is a list, and what each
    value is (its Python type and declared kind)."""

    name: str
    key: str
    optional: bool
    many: bool
    base: Any
    kind: Kind


class _Record:
    """to_output / from_output for frozen dataclasses whose fields each declare a kind (`Annotated[type, Kind]`):
    str, int, bool, StrEnums, dates (as RFC 3339 timestamps), nested records, tuples of those, and optional ones
    (left out when None)."""

    OMIT: ClassVar[frozenset[str]] = frozenset()  # fields that are not part of the output

    def to_output(self) -> dict[str, Any]:
        document = {}
        for shape in field_shapes(type(self)):
            value = getattr(self, shape.name)
            if value is not None:
                document[shape.key] = _dump(value)
        return document

    @classmethod
    def from_output(cls, value: object, path: str) -> Any:
        if not isinstance(value, Mapping):
            raise ContractError(path, f"must be an object, got {json_type(value)}")
        values: dict[str, object] = {}
        for shape in field_shapes(cls):
            if shape.key not in value or value[shape.key] is None:
                if not shape.optional:
                    raise ContractError(f"{path}.{shape.key}", "missing")
                values[shape.name] = None
                continue
            values[shape.name] = _load(shape, value[shape.key], f"{path}.{shape.key}")
        return cls(**values)


_SHAPES: dict[type, tuple[FieldShape, ...]] = {}


def field_shapes(record: type) -> tuple[FieldShape, ...]:
    """The output fields of a record of the contract; TypeError for a field that declares no kind, or a kind its
    type cannot hold (a mistake in this module, found when it is imported: see the check after the records)."""
    if record not in _SHAPES:
        hints = typing.get_type_hints(record, include_extras=True)
        omit: frozenset[str] = getattr(record, "OMIT", frozenset())
        _SHAPES[record] = tuple(
            _shape(record, item.name, hints[item.name]) for item in dataclasses.fields(record) if item.name not in omit
        )
    return _SHAPES[record]


def _shape(record: type, name: str, hint: Any) -> FieldShape:
    where = f"{record.__name__}.{name}"
    optional, hint = _unwrap_optional(hint)
    many = typing.get_origin(hint) is tuple
    if many:
        item_hint, ellipsis = typing.get_args(hint)
        if ellipsis is not Ellipsis:
            raise TypeError(f"{where}: a list is written tuple[<kind>, ...]")
        hint = item_hint
    kinds = [item for item in getattr(hint, "__metadata__", ()) if isinstance(item, Kind)]
    if len(kinds) != 1:
        raise TypeError(
            f"{where}: declares no kind; write Annotated[<type>, Kind.<what it holds>] (components/output_checks.py)"
        )
    base, kind = typing.get_args(hint)[0], kinds[0]
    if not _fits(kind, base):
        raise TypeError(f"{where}: a {kind.name} field cannot be held in {base!r}")
    return FieldShape(name, camel(name), optional, many, base, kind)


def _fits(kind: Kind, base: Any) -> bool:
    if kind is Kind.ENUM:
        return isinstance(base, type) and issubclass(base, StrEnum)
    if kind is Kind.RECORD:
        return isinstance(base, type) and issubclass(base, _Record)
    if kind in TEXT_KINDS:
        return base is str
    return base is KIND_TYPES[kind]


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


def _load(shape: FieldShape, value: object, path: str) -> object:
    if not shape.many:
        return _load_one(shape, value, path)
    if not isinstance(value, list):
        raise ContractError(path, f"must be a list, got {json_type(value)}")
    return tuple(_load_one(shape, item, f"{path}[{index}]") for index, item in enumerate(value))


def _load_one(shape: FieldShape, value: object, path: str) -> object:
    kind, base = shape.kind, shape.base
    if kind is Kind.RECORD:
        return base.from_output(value, path)
    if kind is Kind.ENUM:
        if not isinstance(value, str) or value not in {member.value for member in base}:
            choices = " | ".join(member.value for member in base)
            raise ContractError(path, f"must be one of {choices}, got {describe_value(value)}")
        return base(value)
    if kind is Kind.DATE:
        return read_date(value, path)
    if kind is Kind.FLAG:
        if not isinstance(value, bool):
            raise ContractError(path, f"must be true or false, got {describe_value(value)}")
        return value
    if kind is Kind.COUNT:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ContractError(path, f"must be a whole number, got {describe_value(value)}")
        return value
    if not isinstance(value, str):
        raise ContractError(path, f"must be a string, got {describe_value(value)}")
    return check_text(kind, value, path)


@dataclass(frozen=True)
class MailboxScope(_Record):
    """Exchange RBAC for Applications: the mailboxes an app-only portal may reach. Exactly one field is set."""

    group_id: Guid | None = None
    recipient_filter: Text | None = None  # an OPATH filter

    @classmethod
    def from_output(cls, value: object, path: str) -> MailboxScope:
        scope: MailboxScope = super().from_output(value, path)
        if (scope.group_id is None) == (scope.recipient_filter is None):
            raise ContractError(path, "must hold exactly one of groupId or recipientFilter")
        return scope


@dataclass(frozen=True)
class GrantedPermission(_Record):
    """One permission of a portal, and how it is granted."""

    resource: Text  # key of the resource API in the catalogue: "graph" or "exchange"
    resource_app_id: Guid
    name: Text
    type: Annotated[PermissionType, Kind.ENUM]
    id: Guid
    granted_by: Annotated[GrantedBy, Kind.ENUM]
    exchange_role: Text | None = None  # the RBAC for Applications role, when granted by exchange-rbac

    @property
    def delegated(self) -> bool:
        return self.type is PermissionType.SCOPE


@dataclass(frozen=True)
class PortalOutput(_Record):
    """One entry of the `portals` stack output (not secret). `client_secret` is not part of it: the command line
    attaches it from the `clientSecrets` output, and it is never shown by repr."""

    portal: PortalName
    schema_version: Count
    tenant_id: Guid
    client_id: Guid
    application_object_id: Guid
    service_principal_object_id: Guid
    display_name: Text
    environment: Text
    cloud: Annotated[CloudName, Kind.ENUM]
    connector: Annotated[Connector, Kind.ENUM]
    api: Annotated[Api, Kind.ENUM]  # the connector's API, written for readers of the outputs
    access: Annotated[Access, Kind.ENUM]
    base_url: PortalUrl
    sign_in: Flag
    public_client: Flag
    authority_host: HttpsOrigin
    authority: HttpsUrl
    token_endpoint: HttpsUrl
    authorize_endpoint: HttpsUrl
    device_code_endpoint: HttpsUrl
    jwks_uri: HttpsUrl
    issuer: HttpsUrl
    user_info_endpoint: HttpsUrl
    resource: HttpsUrl
    graph_endpoint: HttpsUrl
    scopes: tuple[Text, ...]
    permissions: tuple[Annotated[GrantedPermission, Kind.RECORD], ...]
    redirect_uris: tuple[PortalUrl, ...]
    secret_key_id: Guid  # the published (newer) secret
    secret_expires_at: Day
    secret_rotates_at: Day
    secret_rotation_days: Count
    previous_secret_key_id: Guid  # the other slot: the secret published before, which Intrexx may still hold
    previous_secret_expires_at: Day  # it stops working then (the next rotation replaces it)
    sign_in_redirect_uri: PortalUrl | None = None
    ews_url: HttpsUrl | None = None
    mailbox_scope: Annotated[MailboxScope, Kind.RECORD] | None = None
    hand_made_secret_key_ids: tuple[Guid, ...] | None = None  # adopted registrations: secrets to remove by hand
    refresh_tokens_requested_on: Day | None = None  # exchange portals: Intrexx's refresh tokens last requested
    client_secret: str | None = field(default=None, repr=False, compare=False)  # not an output field: OMIT

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
        _check_cloud_endpoints(portal, path)
        # Each secret lives 2 x secretRotationDays, within Entra's two years; earlier versions of the program allowed
        # up to that (components/facts.py), so older outputs stay readable.
        if not MIN_ROTATION_DAYS <= portal.secret_rotation_days <= ENTRA_MAX_SECRET_DAYS // 2:
            raise ContractError(
                f"{path}.secretRotationDays",
                f"must be a number of days from {MIN_ROTATION_DAYS} to {ENTRA_MAX_SECRET_DAYS // 2}, "
                f"got {portal.secret_rotation_days}",
            )
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


def _check_cloud_endpoints(portal: PortalOutput, path: str) -> None:
    """The sign-in and Graph endpoints are the cloud's (the program writes nothing else, components/portal.py): an
    edited outputs file must not send the client secret to another host (verify posts it to the authority, Intrexx
    to the token endpoint that render writes into om.cfg and the connector file)."""
    cloud = portal.cloud_record
    tenant = TenantEndpoints(cloud.login, portal.tenant_id)
    expected = {
        "authorityHost": (portal.authority_host, cloud.login),
        "authority": (portal.authority, tenant.authority),
        "tokenEndpoint": (portal.token_endpoint, tenant.token),
        "authorizeEndpoint": (portal.authorize_endpoint, tenant.authorize),
        "deviceCodeEndpoint": (portal.device_code_endpoint, tenant.device_code),
        "jwksUri": (portal.jwks_uri, tenant.jwks),
        "issuer": (portal.issuer, tenant.issuer),
        "graphEndpoint": (portal.graph_endpoint, cloud.graph),
        "userInfoEndpoint": (portal.user_info_endpoint, cloud.user_info_endpoint),
    }
    # Exchange Online's origin may be the stack's own (`exchangeEndpoint`); EWS lives under it, and Graph's resource
    # is the cloud's. Intrexx sends users' Exchange tokens to ewsUrl.
    if portal.connector is Connector.EXCHANGE and portal.ews_url is not None:
        expected["ewsUrl"] = (portal.ews_url, f"{portal.resource}/EWS/Exchange.asmx")
    elif portal.connector is not Connector.EXCHANGE:
        expected["resource"] = (portal.resource, cloud.graph)
    for field_name, (value, wanted) in expected.items():
        if value.lower() != wanted.lower():
            raise ContractError(
                f"{path}.{field_name}",
                f"must be {wanted}, the endpoint of cloud '{portal.cloud.value}' and tenant {portal.tenant_id}, "
                f"got {describe_value(value, 80)}",
            )


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
            path, f"must be {OUTPUT_SCHEMA_VERSION}, got {describe_value(value)}; run `pulumi up` with this version"
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
                "(top level)", f"must be an object with '{PORTALS}' and '{CLIENT_SECRETS}', got {json_type(document)}"
            )
        entries = document.get(PORTALS)
        if not isinstance(entries, Mapping):
            raise ContractError(PORTALS, "missing or not an object: is this the intrexx-exchange stack?")
        secrets = document.get(CLIENT_SECRETS)
        if need_secrets:
            if secrets == cls.HIDDEN_SECRET or (isinstance(secrets, Mapping) and cls.HIDDEN_SECRET in secrets.values()):
                raise ContractError(
                    CLIENT_SECRETS,
                    f"reads {cls.HIDDEN_SECRET}: save the outputs with `intrexx-connector outputs --stack <stack> "
                    "--out outputs.json` (mode 0600), or give --stack alone",
                )
            if not isinstance(secrets, Mapping):
                raise ContractError(CLIENT_SECRETS, "missing or not an object")
        portals = {}
        for name in sorted(entries, key=str):
            path = f"{PORTALS}.{name}"
            if not is_portal_name(name):
                raise ContractError(PORTALS, f"{describe_value(name)} is not a portal name ({PORTAL_NAME_RULE})")
            portal = PortalOutput.from_output(entries[name], path)
            if portal.portal != name:
                raise ContractError(f"{path}.portal", f"must be {name!r}, got {describe_value(portal.portal)}")
            if need_secrets:
                secret = secrets.get(name) if isinstance(secrets, Mapping) else None
                if not isinstance(secret, str) or not secret:
                    raise ContractError(f"{CLIENT_SECRETS}.{name}", "missing")
                portal = portal.with_secret(check_secret(secret, f"{CLIENT_SECRETS}.{name}"))
            portals[name] = portal
        return cls(portals)

    def to_output(self) -> dict[str, Any]:
        return {
            PORTALS: {name: portal.to_output() for name, portal in self.portals.items()},
            CLIENT_SECRETS: {name: portal.client_secret for name, portal in self.portals.items()},
        }


# Every record's fields declare their kinds: a field without one stops the import here, not a user's command later.
for _record in (MailboxScope, GrantedPermission, PortalOutput):
    field_shapes(_record)
