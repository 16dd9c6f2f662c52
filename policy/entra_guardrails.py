"""The rules of the Entra ID guardrails pack, as plain functions over a resource's properties.

Nothing here imports Pulumi: `__main__.py` wires these functions into `pulumi_policy`. A resource rule takes the
resource's properties (camelCase, as the engine marshals them) and returns its violation messages, empty when the
resource complies. Reading a value that is unknown during preview raises the SDK's UnknownValueError through the
SDK's proxy, which the SDK reports as "can't run policy ... during preview" (pulumi_policy/policy.py, Analyze);
the stack rules instead receive values already unwrapped, with UNKNOWN in place of unknowns.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

# Resource type tokens of pulumi-azuread 6.x (the `@pulumi.type_token(...)` of each class in pulumi_azuread/).
APPLICATION = "azuread:index/application:Application"
APPLICATION_REGISTRATION = "azuread:index/applicationRegistration:ApplicationRegistration"
APPLICATION_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
APPLICATION_REDIRECT_URIS = "azuread:index/applicationRedirectUris:ApplicationRedirectUris"
APPLICATION_OWNER = "azuread:index/applicationOwner:ApplicationOwner"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
APP_ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
APPLICATION_TYPES = (APPLICATION, APPLICATION_REGISTRATION)

GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
EXCHANGE_APP_ID = "00000002-0000-0ff1-ce00-000000000000"

# CISA ScubaGear, Microsoft Entra ID baseline MS.AAD.5.6v1: "Application password lifetime SHOULD be restricted to
# 180 days or less" (cisagov/ScubaGear PowerShell/ScubaGear/baselines/aad.md).
DEFAULT_MAX_SECRET_DAYS = 180
# pulumi_azuread/application.py, sign_in_audience: "Defaults to `AzureADMyOrg`".
DEFAULT_SIGN_IN_AUDIENCE = "AzureADMyOrg"
SIGN_IN_AUDIENCES = ("AzureADMyOrg", "AzureADMultipleOrgs", "AzureADandPersonalMicrosoftAccount",
                     "PersonalMicrosoftAccount")
# learn.microsoft.com/entra/identity-platform/reply-url: redirect URIs must use https, except http for the
# loopback address ("localhost", 127.0.0.1); wildcards are discouraged and not supported for most app types.
LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1"})

# The date the lifetime is measured from: today (UTC), or INTREXX_EXCHANGE_TODAY=YYYY-MM-DD, the variable with which
# the intrexx-exchange program pins the date it plans for, so that a pinned plan and its policy check agree.
TODAY_VARIABLE = "INTREXX_EXCHANGE_TODAY"

_DAY = timedelta(days=1)


class _Unknown:
    """A value the engine marks unknown during preview (an output not computed yet)."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN = _Unknown()


# Configuration ----------------------------------------------------------------------------------------------------

def days_setting(config: Mapping, key: str, default: float) -> float:
    """A positive number of days from the policy config. Numbers arrive as floats (`180.0`): the engine sends the
    config as a protobuf Struct, whose numbers are doubles (pulumi/pulumi pkg/resource/plugin/analyzer_plugin.go,
    Configure: structpb.NewStruct)."""
    value = config.get(key, default)
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value) or value <= 0:
        raise ValueError(f"policy config {key} must be a positive number of days, got {value!r}")
    return float(value)


def audiences_setting(config: Mapping, key: str) -> tuple:
    value = config.get(key, [DEFAULT_SIGN_IN_AUDIENCE])
    if isinstance(value, str) or not all(isinstance(item, str) for item in value or ()) or not value:
        raise ValueError(f"policy config {key} must be a non-empty list of signInAudience values, got {value!r}")
    return tuple(value)


def now() -> datetime:
    pinned = os.environ.get(TODAY_VARIABLE)
    if pinned:
        return datetime.combine(date.fromisoformat(pinned), time.min, tzinfo=UTC)
    return datetime.now(UTC)


def number(value: float) -> str:
    """180.0 -> '180', 52.5 -> '52.5'."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


# Secrets ----------------------------------------------------------------------------------------------------------

def parse_rfc3339(text) -> datetime | None:
    if not isinstance(text, str):
        return None
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_GO_DURATION_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNITS = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def parse_go_duration(text) -> timedelta | None:
    """Go's time.ParseDuration ("240h", "2400h30m"; units ns, us/µs, ms, s, m, h; pkg.go.dev/time#ParseDuration),
    which the azuread provider applies to end_date_relative (terraform-provider-azuread
    internal/helpers/credentials.go)."""
    if not isinstance(text, str):
        return None
    rest, sign = text.strip(), 1.0
    if rest[:1] in ("+", "-"):
        sign, rest = (-1.0 if rest[0] == "-" else 1.0), rest[1:]
    if rest == "0":
        return timedelta(0)
    seconds, position = 0.0, 0
    for part in _GO_DURATION_PART.finditer(rest):
        if part.start() != position:
            return None
        seconds += float(part.group(1)) * _GO_UNITS[part.group(2)]
        position = part.end()
    if position == 0 or position != len(rest):
        return None
    return timedelta(seconds=sign * seconds)


def password_lifetime(props: Mapping, max_days: float, today: datetime) -> list:
    """ApplicationPassword: an end date at most `max_days` ahead.

    The provider takes `endDate` first and only then `endDateRelative`, a Go duration counted from `startDate` or
    from the moment of creation; with neither it sends no end date and Entra picks one (terraform-provider-azuread
    internal/helpers/credentials.go, PasswordCredential). `endDateRelative` is deprecated in pulumi-azuread 6.x
    (pulumi_azuread/application_password.py) but still bounds the lifetime, so it is accepted within the limit.
    Measured from the earlier of today and `startDate`: a start date in the past lengthens the lifetime Entra's own
    app management policy sees (passwordLifetime counts from startDateTime).
    """
    limit = number(max_days)
    start = parse_rfc3339(props.get("startDate")) if props.get("startDate") else None
    if props.get("startDate") and start is None:
        return [f"startDate {props.get('startDate')!r} is not an RFC 3339 date. "
                "Fix: use the form 2026-12-31T00:00:00Z, or leave startDate out."]
    reference = min(today, start) if start else today
    reference_text = (f"its startDate {_rfc3339(start)}" if start and start < today
                      else f"today ({today.date().isoformat()})")
    latest = reference + timedelta(days=max_days)
    fix = (f"Fix: set endDate to {_rfc3339(latest)} or earlier (rotate the secret more often), or raise "
           "maxSecretLifetimeDays in the policy pack config.")
    end_text = props.get("endDate")
    if end_text:
        end = parse_rfc3339(end_text)
        if end is None:
            return [f"endDate {end_text!r} is not an RFC 3339 date. Fix: use the form 2026-12-31T00:00:00Z."]
        what = f"endDate {end_text}"
    elif props.get("endDateRelative"):
        relative = props.get("endDateRelative")
        duration = parse_go_duration(relative)
        if duration is None:
            return [f"endDateRelative {relative!r} is not a duration such as '4320h'. Fix: set endDate (RFC 3339) "
                    f"at most {limit} days ahead instead."]
        end = (start or today) + duration
        what = f"endDateRelative {relative} (ends {_rfc3339(end)})"
    else:
        return [f"no endDate: Entra then picks the secret's lifetime, not this stack. Fix: set endDate "
                f"(RFC 3339) at most {limit} days ahead, e.g. {_rfc3339(latest)}."]
    days = (end - reference) / _DAY
    if days > max_days + 1e-9:
        return [f"{what} lies {number(days)} days after {reference_text}: more than maxSecretLifetimeDays "
                f"({limit}). {fix}"]
    return []


# Applications -----------------------------------------------------------------------------------------------------

def redirect_uri_problem(uri) -> str | None:
    if not isinstance(uri, str):
        return f"{uri!r} is not a URI"
    if "*" in uri:
        return f"{uri} contains a wildcard"
    parts = urlsplit(uri)
    if parts.scheme == "https" and parts.hostname:
        return None
    if parts.scheme == "http" and parts.hostname in LOOPBACK_HOSTS:
        return None
    if parts.scheme == "http":
        return f"{uri} uses http for a host other than localhost/127.0.0.1"
    return f"{uri} is not an https URL"


def web_redirect_uris(resource_type: str, props: Mapping) -> list:
    if resource_type == APPLICATION:
        web = props.get("web") or {}
        return list(web.get("redirectUris") or [])
    if resource_type == APPLICATION_REDIRECT_URIS and props.get("type") == "Web":
        return list(props.get("redirectUris") or [])
    return []


def redirect_uris(resource_type: str, props: Mapping) -> list:
    problems = [p for p in map(redirect_uri_problem, web_redirect_uris(resource_type, props)) if p]
    if not problems:
        return []
    return [f"web redirect URIs: {'; '.join(problems)}. Fix: use https://<host>/<path> without '*' "
            "(http only for localhost or 127.0.0.1)."]


def sign_in_audience(props: Mapping, allowed: tuple) -> list:
    audience = props.get("signInAudience") or DEFAULT_SIGN_IN_AUDIENCE
    if audience in allowed:
        return []
    return [f"signInAudience is {audience}; allowed: {', '.join(allowed)}. Fix: set sign_in_audience="
            f"\"{DEFAULT_SIGN_IN_AUDIENCE}\" (this tenant only), or add {audience} to allowedSignInAudiences in "
            "the policy pack config."]


def requested_app_roles(props: Mapping) -> list:
    """(resourceAppId, role id) of every application permission (type Role) the application requests."""
    roles = []
    for access in props.get("requiredResourceAccesses") or []:
        for item in access.get("resourceAccesses") or []:
            if item.get("type") == "Role":
                roles.append((access.get("resourceAppId"), item.get("id")))
    return roles


def public_client_flows(props: Mapping, role_names: Mapping) -> list:
    if props.get("fallbackPublicClientEnabled") is not True:
        return []
    roles = requested_app_roles(props)
    if not roles:
        return []
    named = ", ".join(role_names[role].name if role in role_names else str(role) for _, role in roles)
    return [f"fallbackPublicClientEnabled is true and the application requests application permissions "
            f"({named}). Fix: set fallback_public_client_enabled=False, or move the application permissions to "
            "a separate confidential application."]


def ownership_notes(props: Mapping) -> list:
    if any(isinstance(props.get(key), str) and props.get(key).strip()
           for key in ("notes", "serviceManagementReference")):
        return []
    return ["neither notes nor serviceManagementReference names who owns this registration. Fix: set notes "
            "(or service_management_reference) to the owning team, service or ticket."]


# Mailbox roles ------------------------------------------------------------------------------------------------------

MAILBOX_PREFIXES = ("Mail.", "Calendars.", "Contacts.", "MailboxSettings.")


@dataclass(frozen=True)
class MailboxRole:
    id: str
    name: str
    resource: str  # display name of the resource API
    exchange_role: str  # the Exchange "RBAC for Applications" role that grants the same right to a scope


# Used only when the permission catalogue cannot be read: the same ids as components/catalogue.yaml (Microsoft
# Graph permissions reference; EWS OAuth how-to for full_access_as_app), kept small on purpose.
BUILT_IN_MAILBOX_ROLES = (
    MailboxRole("dc890d15-9560-4a4c-9b7f-a736ec74ec40", "full_access_as_app", "Office 365 Exchange Online",
                "Application EWS.AccessAsApp"),
    MailboxRole("810c84a8-4a9e-49e6-bf7d-12d183f40d01", "Mail.Read", "Microsoft Graph", "Application Mail.Read"),
    MailboxRole("e2a3a72e-5f79-4c64-b1b1-878b674786c9", "Mail.ReadWrite", "Microsoft Graph",
                "Application Mail.ReadWrite"),
    MailboxRole("b633e1c5-b582-4048-a93e-9f11b44c7e96", "Mail.Send", "Microsoft Graph", "Application Mail.Send"),
    MailboxRole("798ee544-9d2d-430c-a058-570e29e34338", "Calendars.Read", "Microsoft Graph",
                "Application Calendars.Read"),
    MailboxRole("ef54d2bf-783f-4e0f-bca1-3210c0444d99", "Calendars.ReadWrite", "Microsoft Graph",
                "Application Calendars.ReadWrite"),
    MailboxRole("089fe4d0-434a-44c5-8827-41ba8a0b17f5", "Contacts.Read", "Microsoft Graph",
                "Application Contacts.Read"),
    MailboxRole("6918b873-d17a-4dc1-b314-35f528134491", "Contacts.ReadWrite", "Microsoft Graph",
                "Application Contacts.ReadWrite"),
    MailboxRole("40f97065-369a-49f4-947c-6a255697ae91", "MailboxSettings.Read", "Microsoft Graph",
                "Application MailboxSettings.Read"),
    MailboxRole("6931bccd-447a-43d1-b442-00a195474933", "MailboxSettings.ReadWrite", "Microsoft Graph",
                "Application MailboxSettings.ReadWrite"),
)


@dataclass(frozen=True)
class RoleCatalogue:
    roles: Mapping  # role id -> MailboxRole
    source: str  # where the names came from, said in every message


def mailbox_roles_from(document) -> dict:
    """The mailbox application roles of a catalogue document (`resources.<key>.{appId, displayName, roles}`)."""
    roles = {}
    resources = document.get("resources") if isinstance(document, Mapping) else None
    for resource in (resources or {}).values():
        if not isinstance(resource, Mapping) or resource.get("appId") not in (GRAPH_APP_ID, EXCHANGE_APP_ID):
            continue
        for name, entry in (resource.get("roles") or {}).items():
            if not isinstance(entry, Mapping) or not isinstance(entry.get("id"), str):
                continue
            if name == "full_access_as_app" or str(name).startswith(MAILBOX_PREFIXES):
                roles[entry["id"]] = MailboxRole(entry["id"], str(name), str(resource.get("displayName", "")),
                                                 str(entry.get("exchangeRole") or f"Application {name}"))
    return roles


@lru_cache(maxsize=8)
def load_role_catalogue(path: str) -> RoleCatalogue:
    """The permission catalogue read as data; the built-in list when it is missing or unreadable."""
    built_in = {role.id: role for role in BUILT_IN_MAILBOX_ROLES}
    try:
        import yaml

        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return RoleCatalogue(built_in, f"the pack's built-in role list ({path} not found)")
    except Exception as error:  # noqa: BLE001 - any unreadable catalogue falls back, and says why
        return RoleCatalogue(built_in, f"the pack's built-in role list ({path} unreadable: "
                                       f"{type(error).__name__})")
    roles = mailbox_roles_from(document)
    if not roles:
        return RoleCatalogue(built_in, f"the pack's built-in role list ({path} lists no mailbox roles)")
    return RoleCatalogue(roles, f"the permission catalogue {path}")


def mailbox_role_assignment(props: Mapping, catalogue: RoleCatalogue) -> list:
    role = catalogue.roles.get(props.get("appRoleId"))
    if role is None:
        return []
    return [f"appRoleId {role.id} is {role.resource}'s application permission {role.name}: admin consent to it "
            f"reaches every mailbox in the tenant (names from {catalogue.source}). Fix: remove this "
            f"AppRoleAssignment and grant the role to a scope of mailboxes with Exchange RBAC for Applications: "
            f"New-ManagementRoleAssignment -App <client id> -Role \"{role.exchange_role}\" "
            f"-CustomResourceScope <management scope>."]


# Stack ------------------------------------------------------------------------------------------------------------

@dataclass
class StackResource:
    """One resource of AnalyzeStack, its properties unwrapped (UNKNOWN for unknowns)."""

    urn: str
    type: str
    name: str
    props: dict
    dependencies: set = field(default_factory=set)  # URNs
    property_dependencies: dict = field(default_factory=dict)  # property -> set of URNs


def _known_str(value) -> bool:
    return isinstance(value, str) and value != ""


def _from_resource(resource: StackResource, app: StackResource, keys: tuple, value_matches) -> bool:
    """Does `resource` take one of `keys` from `app`? Decided by the engine's property dependencies first (what a
    program passed from `app`'s outputs; the only evidence during preview, when a new application's ids are
    unknown), then by value (hard-coded ids; imported resources, whose ids are known in preview too), then, for an
    unknown value the engine gave no dependencies for, by the resource's plain dependencies."""
    for key in keys:
        if app.urn in resource.property_dependencies.get(key, set()):
            return True
    for key in keys:
        value = resource.props.get(key)
        if _known_str(value) and value_matches(value):
            return True
    unknown = any(resource.props.get(key) is UNKNOWN for key in keys)
    has_property_dependencies = any(resource.property_dependencies.get(key) for key in keys)
    return unknown and not has_property_dependencies and app.urn in resource.dependencies


def _could_be_from(resource: StackResource, keys: tuple) -> bool:
    """An unknown value without any dependency information: nothing can be decided, so nothing is reported."""
    return (any(resource.props.get(key) is UNKNOWN for key in keys)
            and not any(resource.property_dependencies.get(key) for key in keys)
            and not resource.dependencies)


def applications_without_owner(resources: list) -> list:
    """(urn, message) for every application with neither `owners` nor an ApplicationOwner pointing at it."""
    owner_links = [r for r in resources if r.type == APPLICATION_OWNER]
    found = []
    for app in (r for r in resources if r.type in APPLICATION_TYPES):
        owners = app.props.get("owners")
        if owners is UNKNOWN or (isinstance(owners, list) and owners):
            continue
        object_id = app.props.get("objectId")

        def same_application(value, object_id=object_id):
            return _known_str(object_id) and value.rstrip("/").split("/")[-1] == object_id

        if any(_from_resource(link, app, ("applicationId",), same_application)
               or _could_be_from(link, ("applicationId",)) for link in owner_links):
            continue
        found.append((app.urn, f"{app.name} has no owners. Fix: set owners=[<object id>, ...] to the users or "
                               "service principals (not groups) that answer for it, e.g. the deploying identity "
                               "and the owning team, or add an azuread.ApplicationOwner."))
    return found


def applications_without_service_principal(resources: list) -> list:
    """(urn, message) for every application no ServicePrincipal of the stack belongs to."""
    principals = [r for r in resources if r.type == SERVICE_PRINCIPAL]
    # clientId is the 6.x input; applicationId is what pulumi-azuread 5.x called it.
    keys = ("clientId", "applicationId")
    found = []
    for app in (r for r in resources if r.type in APPLICATION_TYPES):
        client_id = app.props.get("clientId")
        if any(_from_resource(sp, app, keys, lambda value, client_id=client_id: value == client_id)
               or _could_be_from(sp, keys) for sp in principals):
            continue
        shown = f" (clientId {client_id})" if _known_str(client_id) else ""
        found.append((app.urn, f"{app.name}{shown} has no ServicePrincipal in this stack: none has its clientId "
                               "or takes it from this application. Fix: add azuread.ServicePrincipal(client_id="
                               "<application>.client_id), or bring an existing one in with import_."))
    return found
