"""The rules of the Entra ID guardrails pack, as plain functions over a resource's properties.

Nothing here imports Pulumi: `__main__.py` wires these functions into `pulumi_policy`. A resource rule takes the
resource's properties (camelCase, as the engine marshals them) and returns its violation messages, empty when the
resource complies. Reading a value that is unknown during preview raises the SDK's UnknownValueError through the
SDK's proxy, which the SDK reports as "can't run policy ... during preview" (pulumi_policy/policy.py, Analyze);
the stack rules instead receive values already unwrapped, with UNKNOWN in place of unknowns.

Every rule is total: the engine hands over whatever a program wrote (a provider refuses a wrong shape only later,
or never during preview), so any value of any property ends in a violation or in nothing, never in an exception
that would fail the whole preview with a gRPC error. A value the rule must read but cannot (a list where an object
belongs, a number where a date belongs) is a violation; a value the rule does not need is left to the provider.
Values from the properties appear in messages only through `shown`, one line, control characters escaped.
"""

from __future__ import annotations

import importlib.util
import math
import os
import re
import sys
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from fractions import Fraction
from functools import lru_cache
from pathlib import Path
from types import ModuleType
from typing import Any, TypeGuard
from urllib.parse import urlsplit

from ada_url import check_url, parse_url

# The facts the pack shares with intrexx-exchange -----------------------------------------------------------------
#
# The canonical GUID rule, the loopback hosts, the resource application ids and the one rule for secret lifetimes
# have a single home, components/facts.py of the intrexx-exchange checkout this pack ships in. The pack must not
# import the project's packages (it runs in its own venv, without them on its path), so it loads that one file by
# its path: FACTS_FILE, `../components/facts.py` seen from this folder. facts.py needs only the standard library
# and PyYAML (requirements.txt) and reads `catalogue.yaml` beside it. Without it the pack does not start, and says
# why in one line (__main__.py).
PACK_DIR = Path(__file__).resolve().parent
FACTS_FILE = PACK_DIR.parent / "components" / "facts.py"
FACTS_MODULE = "entra_guardrails_facts"


class FactsNotFound(ImportError):
    """components/facts.py is missing or cannot be loaded."""


def load_facts(path: Path = FACTS_FILE) -> ModuleType:
    """components/facts.py loaded by its path (importlib.util.spec_from_file_location), as module FACTS_MODULE."""
    hint = (
        "the pack takes the rules it shares with intrexx-exchange (GUIDs, loopback hosts, secret lifetimes) from "
        "components/facts.py beside its folder: run it from an intrexx-exchange checkout, or copy "
        "components/facts.py and components/catalogue.yaml along with the policy folder"
    )
    if not path.is_file():
        raise FactsNotFound(f"{path} not found: {hint}")
    spec = importlib.util.spec_from_file_location(FACTS_MODULE, path)
    if spec is None or spec.loader is None:
        raise FactsNotFound(f"{path} is not a Python module: {hint}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[FACTS_MODULE] = module
    try:
        spec.loader.exec_module(module)
    except Exception as error:  # noqa: BLE001 - whatever stops it, the pack cannot run without it, and says so
        del sys.modules[FACTS_MODULE]
        raise FactsNotFound(f"{path} could not be loaded ({type(error).__name__}: {error}): {hint}") from None
    return module


facts = load_facts()

# Resource type tokens of pulumi-azuread 6.x (the `@pulumi.type_token(...)` of each class in pulumi_azuread/).
APPLICATION = "azuread:index/application:Application"
APPLICATION_REGISTRATION = "azuread:index/applicationRegistration:ApplicationRegistration"
APPLICATION_PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
APPLICATION_REDIRECT_URIS = "azuread:index/applicationRedirectUris:ApplicationRedirectUris"
APPLICATION_OWNER = "azuread:index/applicationOwner:ApplicationOwner"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
APP_ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
APPLICATION_TYPES = (APPLICATION, APPLICATION_REGISTRATION)

GRAPH_APP_ID: str = facts.GRAPH_APP_ID
EXCHANGE_APP_ID: str = facts.EXCHANGE_ONLINE_APP_ID
# CISA ScubaGear MS.AAD.5.6v1 (180 days); the source and the rule that keeps intrexx-exchange within it are in facts.
DEFAULT_MAX_SECRET_DAYS: int = facts.DEFAULT_MAX_SECRET_DAYS
ENTRA_MAX_SECRET_DAYS: int = facts.ENTRA_MAX_SECRET_DAYS
# pulumi_azuread/application.py, sign_in_audience: "Defaults to `AzureADMyOrg`".
DEFAULT_SIGN_IN_AUDIENCE = "AzureADMyOrg"
SIGN_IN_AUDIENCES = (
    "AzureADMyOrg",
    "AzureADMultipleOrgs",
    "AzureADandPersonalMicrosoftAccount",
    "PersonalMicrosoftAccount",
)
# learn.microsoft.com/entra/identity-platform/reply-url: redirect URIs must use https, except http for the
# loopback address; wildcards are discouraged and not supported for most app types. The hosts: facts.LOOPBACK_HOSTS.
LOOPBACK_HOSTS = frozenset(facts.LOOPBACK_HOSTS)

# The date the lifetime is measured from: today (UTC), or INTREXX_EXCHANGE_TODAY=YYYY-MM-DD, the variable with which
# the intrexx-exchange program pins the date it plans for, so that a pinned plan and its policy check agree.
TODAY_VARIABLE = "INTREXX_EXCHANGE_TODAY"

_DAY = timedelta(days=1)


class _Unknown:
    """A value the engine marks unknown during preview (an output not computed yet)."""

    _instance: _Unknown | None = None

    def __new__(cls) -> _Unknown:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "<unknown during preview>"


UNKNOWN = _Unknown()


# Reading values of any shape ------------------------------------------------------------------------------------


def is_list(value: object) -> TypeGuard[Sequence[Any]]:
    """A JSON array: a list, or the SDK's proxy of one (a Sequence); not a string."""
    return isinstance(value, Sequence) and not isinstance(value, (str, bytes, bytearray))


def kind(value: object) -> str:
    """What a value is, in JSON's words, for a message."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if is_list(value):
        return "a list"
    return f"a {type(value).__name__}"


def shown(value: object, limit: int = 100) -> str:
    """A value from the properties as a message shows it: a string as Python writes it (quoted, one line, control
    and bidirectional characters escaped), cut to `limit` characters, '#' escaped so that no CI logging command
    (Azure Pipelines' ##vso[...]) can form; any other value by its kind."""
    if isinstance(value, str):
        cut = value[:limit]
        text = repr(cut).replace("#", "\\x23")
        return text + ("..." if len(value) > limit else "")
    if value is None or isinstance(value, bool):
        return "null" if value is None else str(value).lower()
    if isinstance(value, float) and math.isfinite(value):
        return number(value) if abs(value) < 1e15 else f"{value:.3g}"
    if isinstance(value, int) and abs(value) < 10**15:
        return str(value)
    return kind(value)


def _present(value: object) -> bool:
    """Set: neither absent (None) nor the empty string, which the provider reads as unset."""
    return value is not None and value != ""


# Configuration ----------------------------------------------------------------------------------------------------


def days_setting(config: Mapping, key: str, default: float) -> float:
    """A positive number of days from the policy config, at most Entra's ceiling. Numbers arrive as floats (`180.0`):
    the engine sends the config as a protobuf Struct, whose numbers are doubles (pulumi/pulumi
    pkg/resource/plugin/analyzer_plugin.go, Configure: structpb.NewStruct). The engine validates the config against
    the schema first, so a wrong value here is a client that skipped that: refused loudly, by name."""
    value = config.get(key, default)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or not 0 < value <= ENTRA_MAX_SECRET_DAYS
    ):
        raise ValueError(
            f"policy config {key} must be a positive number of days up to {ENTRA_MAX_SECRET_DAYS}, got {shown(value)}"
        )
    return float(value)


def audiences_setting(config: Mapping, key: str) -> tuple:
    value = config.get(key, [DEFAULT_SIGN_IN_AUDIENCE])
    if not is_list(value) or not value or not all(isinstance(item, str) for item in value):
        raise ValueError(f"policy config {key} must be a non-empty list of signInAudience values, got {shown(value)}")
    return tuple(value)


def now() -> datetime:
    pinned = os.environ.get(TODAY_VARIABLE)
    if pinned:
        try:
            return datetime.combine(date.fromisoformat(pinned), time.min, tzinfo=UTC)
        except ValueError:
            raise ValueError(f"{TODAY_VARIABLE} must be a date YYYY-MM-DD, got {shown(pinned, 40)}") from None
    return datetime.now(UTC)


def number(value: float) -> str:
    """180.0 -> '180', 52.5 -> '52.5'."""
    return f"{value:.1f}".rstrip("0").rstrip(".")


def _rfc3339(moment: datetime) -> str:
    """A moment as RFC 3339 in UTC; for the years UTC cannot hold (0001-01-01 with a positive offset), as given."""
    try:
        utc = moment.astimezone(UTC)
    except OverflowError:
        return moment.isoformat()
    return f"{utc.replace(tzinfo=None, microsecond=0).isoformat()}Z"


# Secrets ----------------------------------------------------------------------------------------------------------

# RFC 3339 section 5.6 date-time, which the provider requires of startDate and endDate (terraform-provider-azuread:
# ValidateFunc validation.IsRFC3339Time, then time.Parse(time.RFC3339, ...)); ASCII digits only.
_RFC3339_TEXT = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt][0-9]{2}:[0-9]{2}:[0-9]{2}(?:\.[0-9]+)?(?:[Zz]|[+-][0-9]{2}:[0-9]{2})"
)


def parse_rfc3339(text: object) -> datetime | None:
    """An RFC 3339 date-time, timezone-aware; None for anything else (any type, any year or offset Python cannot
    hold)."""
    if not isinstance(text, str) or len(text) > 64 or _RFC3339_TEXT.fullmatch(text) is None:
        return None
    try:
        return datetime.fromisoformat(text.upper().replace("Z", "+00:00"))
    except ValueError:
        return None


_GO_DURATION_PART = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)(ns|us|µs|μs|ms|s|m|h)")
_GO_UNIT_NS = {
    "ns": 1,
    "us": 10**3,
    "µs": 10**3,
    "μs": 10**3,
    "ms": 10**6,
    "s": 10**9,
    "m": 60 * 10**9,
    "h": 3600 * 10**9,
}
_GO_MAX_NS = 2**63 - 1  # a Go time.Duration is an int64 of nanoseconds: ParseDuration refuses more ("invalid duration")


def parse_go_duration(text: object) -> timedelta | None:
    """Go's time.ParseDuration ("240h", "2400h30m"; units ns, us/µs, ms, s, m, h; at most 2^63-1 ns, about 292
    years; pkg.go.dev/time#ParseDuration), which the azuread provider applies to end_date_relative
    (terraform-provider-azuread internal/helpers/credentials.go). None for anything Go refuses."""
    if not isinstance(text, str) or len(text) > 200:
        return None
    rest, sign = text, 1
    if rest[:1] in ("+", "-"):
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return timedelta(0)
    nanoseconds, position = Fraction(0), 0
    for part in _GO_DURATION_PART.finditer(rest):
        if part.start() != position:
            return None
        try:
            nanoseconds += Fraction(part.group(1)) * _GO_UNIT_NS[part.group(2)]
        except ValueError:  # more digits than Python converts: far beyond Go's limit anyway
            return None
        position = part.end()
    if position == 0 or position != len(rest) or nanoseconds > _GO_MAX_NS + (sign < 0):
        return None
    return sign * timedelta(microseconds=int(nanoseconds) // 1000)


def _lifetime_fix(max_days: float, latest: datetime) -> str:
    """The remedy, first for intrexx-exchange (whose users set secretRotationDays, not endDate), then for any other
    program."""
    advice = facts.rotation_days_advice(timedelta(days=max_days))
    return (
        f"Fix: in an intrexx-exchange stack, {advice}; in another program, set endDate to {_rfc3339(latest)} or "
        "earlier (rotate the secret more often); or raise maxSecretLifetimeDays in the policy pack config."
    )


def _end_of(props: Mapping, start: datetime | None, today: datetime) -> tuple[timedelta, str] | str:
    """How long the secret lives (facts.secret_lifetime) and how to name its end; or the violation when the end
    cannot be read or is not set."""
    end_value, relative_value = props.get("endDate"), props.get("endDateRelative")
    if _present(end_value):
        end = parse_rfc3339(end_value)
        if end is None:
            return f"endDate {shown(end_value)} is not an RFC 3339 date. Fix: use the form 2026-12-31T00:00:00Z."
        return facts.secret_lifetime(end, today, start), f"endDate {_rfc3339(end)}"
    if _present(relative_value):
        duration = parse_go_duration(relative_value)
        if duration is None:
            return (
                f"endDateRelative {shown(relative_value)} is not a duration such as '4320h' (Go's "
                "time.ParseDuration, at most 2562047h). Fix: set endDate (RFC 3339) instead."
            )
        begins = today if start is None else start  # the provider counts from startDate, else from creation
        lifetime = facts.secret_lifetime(begins, today, start) + duration
        try:
            ends = _rfc3339(begins + duration)
        except OverflowError:
            ends = "after the year 9999"
        return lifetime, f"endDateRelative {relative_value} (ends {ends})"
    return "no endDate: Entra then picks the secret's lifetime, not this stack."


def password_lifetime(props: Mapping, max_days: float, today: datetime) -> list[str]:
    """ApplicationPassword: an end date at most `max_days` ahead, by the one rule facts.py keeps (secret_lifetime,
    lifetime_allowed), which intrexx-exchange's secretRotationDays is bounded by too.

    The provider takes `endDate` first and only then `endDateRelative`, a Go duration counted from `startDate` or
    from the moment of creation; with neither it sends no end date and Entra picks one (terraform-provider-azuread
    internal/helpers/credentials.go, PasswordCredential). `endDateRelative` is deprecated in pulumi-azuread 6.x
    (pulumi_azuread/application_password.py) but still bounds the lifetime, so it is accepted within the limit.
    Measured from the earlier of today and `startDate`: a start date in the past lengthens the lifetime Entra's own
    app management policy sees (passwordLifetime counts from startDateTime).
    """
    limit = number(max_days)
    start_value = props.get("startDate")
    start = parse_rfc3339(start_value) if _present(start_value) else None
    if _present(start_value) and start is None:
        return [
            f"startDate {shown(start_value)} is not an RFC 3339 date. "
            "Fix: use the form 2026-12-31T00:00:00Z, or leave startDate out."
        ]
    reference = today if start is None else min(today, start)
    latest = reference + timedelta(days=max_days)
    found = _end_of(props, start, today)
    if isinstance(found, str):
        if found.startswith("no endDate"):
            return [f"{found} Fix: set endDate (RFC 3339) at most {limit} days ahead, e.g. {_rfc3339(latest)}."]
        return [found]
    lifetime, what = found
    if facts.lifetime_allowed(lifetime, max_days):
        return []
    since = f"its startDate {_rfc3339(reference)}" if reference < today else f"today ({today.date().isoformat()})"
    return [
        f"{what} lies {number(lifetime / _DAY)} days after {since}: more than maxSecretLifetimeDays ({limit}). "
        + _lifetime_fix(max_days, latest)
    ]


# Applications -----------------------------------------------------------------------------------------------------


def _same_host(uri: str, host: str) -> bool:
    """Does urllib.parse read the host a browser reads? Where two parsers differ, the URI means one thing to Entra
    or a proxy and another to the browser it sends people to."""
    try:
        other = urlsplit(uri).hostname or ""
    except ValueError:
        return False
    if not other.isascii():
        try:
            other = other.encode("idna").decode("ascii")
        except UnicodeError:
            return False
    return other.lower().strip("[]") == host.strip("[]")


def redirect_uri_problem(uri: object) -> str | None:
    """Why a web redirect URI is refused, judged as a browser reads it: the WHATWG URL Standard (ada, the parser
    intrexx-exchange's components/urls.py uses), with the same host for urllib.parse. https only; http only for the
    loopback hosts; no '*'."""
    if not isinstance(uri, str):
        return f"{shown(uri)} is not a URL but {kind(uri)}"
    if "*" in uri:
        return f"{shown(uri)} contains a wildcard"
    try:
        parts = parse_url(uri) if check_url(uri) else None
    except (ValueError, UnicodeError):
        parts = None
    if parts is None:
        return f"{shown(uri)} is not a URL (WHATWG URL Standard)"
    scheme, host = parts["protocol"].rstrip(":"), parts["hostname"]
    if scheme not in ("https", "http"):
        return f"{shown(uri)} is not an https URL"
    if scheme == "http" and host not in LOOPBACK_HOSTS:
        return f"{shown(uri)} uses http for {shown(host)}, not for localhost/127.0.0.1"
    if not _same_host(uri, host):
        return f"{shown(uri)} reaches host {shown(host)} in a browser but reads differently elsewhere"
    return None


def web_redirect_uris(resource_type: str, props: Mapping) -> tuple[list, list[str]]:
    """The web redirect URIs of an Application (`web.redirectUris`) or an ApplicationRedirectUris of type Web, and
    the problems of a shape that cannot hold them."""
    if resource_type == APPLICATION:
        web = props.get("web")
        if web is None:
            return [], []
        if not isinstance(web, Mapping):
            return [], [f"web is {kind(web)}, not an object"]
        uris, where = web.get("redirectUris"), "web.redirectUris"
    elif resource_type == APPLICATION_REDIRECT_URIS and props.get("type") == "Web":
        uris, where = props.get("redirectUris"), "redirectUris"
    else:
        return [], []
    if uris is None:
        return [], []
    if not is_list(uris):
        return [], [f"{where} is {kind(uris)}, not a list of URLs"]
    return list(uris), []


def redirect_uris(resource_type: str, props: Mapping) -> list[str]:
    uris, problems = web_redirect_uris(resource_type, props)
    problems += [p for p in map(redirect_uri_problem, uris) if p]
    if not problems:
        return []
    return [
        f"web redirect URIs: {'; '.join(problems)}. Fix: use https://<host>/<path> without '*' "
        "(http only for localhost or 127.0.0.1)."
    ]


def sign_in_audience(props: Mapping, allowed: tuple) -> list[str]:
    audience = props.get("signInAudience")
    if not _present(audience):
        audience = DEFAULT_SIGN_IN_AUDIENCE
    if isinstance(audience, str) and audience in allowed:
        return []
    named = audience if audience in SIGN_IN_AUDIENCES else shown(audience)
    return [
        f"signInAudience is {named}; allowed: {', '.join(allowed)}. Fix: set sign_in_audience="
        f'"{DEFAULT_SIGN_IN_AUDIENCE}" (this tenant only), or add it to allowedSignInAudiences in the policy pack '
        "config."
    ]


def requested_app_roles(props: Mapping) -> tuple[list[tuple[object, object]], list[str]]:
    """(resourceAppId, role id) of every application permission (type Role) the application requests, and the
    problems of a shape that cannot be read."""
    roles: list[tuple[object, object]] = []
    problems: list[str] = []
    accesses = props.get("requiredResourceAccesses")
    if accesses is None:
        return roles, problems
    if not is_list(accesses):
        return roles, [f"requiredResourceAccesses is {kind(accesses)}, not a list"]
    for access in accesses:
        if not isinstance(access, Mapping):
            problems.append(f"an entry of requiredResourceAccesses is {kind(access)}, not an object")
            continue
        items = access.get("resourceAccesses")
        if items is not None and not is_list(items):
            problems.append(f"resourceAccesses is {kind(items)}, not a list")
            continue
        for item in items or ():
            if not isinstance(item, Mapping):
                problems.append(f"an entry of resourceAccesses is {kind(item)}, not an object")
            elif item.get("type") == "Role":
                roles.append((access.get("resourceAppId"), item.get("id")))
    return roles, problems


def public_client_flows(props: Mapping, role_names: Mapping) -> list[str]:
    if props.get("fallbackPublicClientEnabled") is not True:
        return []
    roles, problems = requested_app_roles(props)
    fix = (
        "Fix: set fallback_public_client_enabled=False, or move the application permissions to a separate "
        "confidential application."
    )
    if problems:
        return [
            f"fallbackPublicClientEnabled is true and the requested permissions cannot be read "
            f"({'; '.join(problems[:3])}), so application permissions cannot be ruled out. {fix}"
        ]
    if not roles:
        return []
    named = ", ".join(_role_name(role_names, role) for _, role in roles)
    return [
        f"fallbackPublicClientEnabled is true and the application requests application permissions ({named}). {fix}"
    ]


def _role_name(roles: Mapping, role_id: object) -> str:
    role = find_role(roles, role_id)
    return role.name if role else shown(role_id)


def ownership_notes(props: Mapping) -> list[str]:
    if any(
        isinstance(value, str) and value.strip() for value in map(props.get, ("notes", "serviceManagementReference"))
    ):
        return []
    return [
        "neither notes nor serviceManagementReference names who owns this registration. Fix: set notes "
        "(or service_management_reference) to the owning team, service or ticket."
    ]


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
    MailboxRole(
        "dc890d15-9560-4a4c-9b7f-a736ec74ec40",
        "full_access_as_app",
        "Office 365 Exchange Online",
        "Application EWS.AccessAsApp",
    ),
    MailboxRole("810c84a8-4a9e-49e6-bf7d-12d183f40d01", "Mail.Read", "Microsoft Graph", "Application Mail.Read"),
    MailboxRole(
        "e2a3a72e-5f79-4c64-b1b1-878b674786c9", "Mail.ReadWrite", "Microsoft Graph", "Application Mail.ReadWrite"
    ),
    MailboxRole("b633e1c5-b582-4048-a93e-9f11b44c7e96", "Mail.Send", "Microsoft Graph", "Application Mail.Send"),
    MailboxRole(
        "798ee544-9d2d-430c-a058-570e29e34338", "Calendars.Read", "Microsoft Graph", "Application Calendars.Read"
    ),
    MailboxRole(
        "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
        "Calendars.ReadWrite",
        "Microsoft Graph",
        "Application Calendars.ReadWrite",
    ),
    MailboxRole(
        "089fe4d0-434a-44c5-8827-41ba8a0b17f5", "Contacts.Read", "Microsoft Graph", "Application Contacts.Read"
    ),
    MailboxRole(
        "6918b873-d17a-4dc1-b314-35f528134491",
        "Contacts.ReadWrite",
        "Microsoft Graph",
        "Application Contacts.ReadWrite",
    ),
    MailboxRole(
        "40f97065-369a-49f4-947c-6a255697ae91",
        "MailboxSettings.Read",
        "Microsoft Graph",
        "Application MailboxSettings.Read",
    ),
    MailboxRole(
        "6931bccd-447a-43d1-b442-00a195474933",
        "MailboxSettings.ReadWrite",
        "Microsoft Graph",
        "Application MailboxSettings.ReadWrite",
    ),
)


@dataclass(frozen=True)
class RoleCatalogue:
    roles: Mapping  # canonical role id (lower case) -> MailboxRole
    source: str  # where the names came from, said in every message


def guid_text(value: object) -> str | None:
    """The canonical text of an id written as a GUID: the canonical form itself (facts.is_guid), or one of the forms
    uuid.UUID also reads (braces, `urn:uuid:`, no hyphens), which are not ids as Entra writes them but still name
    the same id, so that a mailbox role is not missed for its spelling; None for anything else."""
    if facts.is_guid(value):
        return str(value)
    if not isinstance(value, str) or len(value) > 64:
        return None
    try:
        return str(uuid.UUID(value))
    except ValueError:
        return None


def find_role(roles: Mapping, role_id: object) -> MailboxRole | None:
    """The role `role_id` names, compared as GUIDs (facts.same_guid: any letter case; other GUID forms read too)."""
    text = guid_text(role_id)
    if text is None:
        return None
    return next((role for role in roles.values() if facts.same_guid(role.id, text)), None)


def mailbox_roles_from(document: object) -> dict:
    """The mailbox application roles of a catalogue document (`resources.<key>.{appId, displayName, roles}`)."""
    roles = {}
    resources = document.get("resources") if isinstance(document, Mapping) else None
    for resource in resources.values() if isinstance(resources, Mapping) else ():
        if not isinstance(resource, Mapping) or not any(
            facts.same_guid(resource.get("appId"), app) for app in (GRAPH_APP_ID, EXCHANGE_APP_ID)
        ):
            continue
        listed = resource.get("roles")
        for name, entry in listed.items() if isinstance(listed, Mapping) else ():
            if not isinstance(entry, Mapping) or not facts.is_guid(entry.get("id")):
                continue
            if name == "full_access_as_app" or str(name).startswith(MAILBOX_PREFIXES):
                role_id = entry["id"].lower()
                roles[role_id] = MailboxRole(
                    role_id,
                    str(name),
                    str(resource.get("displayName", "")),
                    str(entry.get("exchangeRole") or f"Application {name}"),
                )
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
        return RoleCatalogue(built_in, f"the pack's built-in role list ({path} unreadable: {type(error).__name__})")
    roles = mailbox_roles_from(document)
    if not roles:
        return RoleCatalogue(built_in, f"the pack's built-in role list ({path} lists no mailbox roles)")
    return RoleCatalogue(roles, f"the permission catalogue {path}")


def mailbox_role_assignment(props: Mapping, catalogue: RoleCatalogue) -> list[str]:
    value = props.get("appRoleId")
    role = find_role(catalogue.roles, value)
    if role is None:
        return []
    written = "" if facts.is_guid(value) else f" (written {shown(value)}, not in the canonical 8-4-4-4-12 form)"
    return [
        f"appRoleId {role.id}{written} is {role.resource}'s application permission {role.name}: admin consent to it "
        f"reaches every mailbox in the tenant (names from {catalogue.source}). Fix: remove this "
        f"AppRoleAssignment and grant the role to a scope of mailboxes with Exchange RBAC for Applications: "
        f'New-ManagementRoleAssignment -App <client id> -Role "{role.exchange_role}" '
        f"-CustomResourceScope <management scope>."
    ]


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


def _known_str(value: object) -> bool:
    return isinstance(value, str) and value != ""


def same_id(left: object, right: object) -> bool:
    """Two ids naming the same object: GUIDs compared as GUIDs (facts.same_guid), anything else as equal text."""
    return facts.same_guid(left, right) or (_known_str(left) and left == right)


def _from_resource(resource: StackResource, app: StackResource, keys: tuple, value_matches: Callable) -> bool:
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
    return (
        any(resource.props.get(key) is UNKNOWN for key in keys)
        and not any(resource.property_dependencies.get(key) for key in keys)
        and not resource.dependencies
    )


def _has_owners(owners: object) -> bool:
    """`owners` names at least one owner: an object id (a GUID), or a value still unknown during preview."""
    if owners is UNKNOWN:
        return True
    return is_list(owners) and any(item is UNKNOWN or facts.is_guid(item) for item in owners)


def applications_without_owner(resources: Iterable[StackResource]) -> list[tuple[str, str]]:
    """(urn, message) for every application with neither `owners` nor an ApplicationOwner pointing at it."""
    resources = list(resources)
    owner_links = [r for r in resources if r.type == APPLICATION_OWNER]
    found = []
    for app in (r for r in resources if r.type in APPLICATION_TYPES):
        if _has_owners(app.props.get("owners")):
            continue
        object_id = app.props.get("objectId")

        def same_application(value: str, object_id: object = object_id) -> bool:
            return same_id(value.rstrip("/").split("/")[-1], object_id)

        if any(
            _from_resource(link, app, ("applicationId",), same_application) or _could_be_from(link, ("applicationId",))
            for link in owner_links
        ):
            continue
        found.append(
            (
                app.urn,
                f"{app.name} has no owners. Fix: set owners=[<object id>, ...] to the users or "
                "service principals (not groups) that answer for it, e.g. the deploying identity "
                "and the owning team, or add an azuread.ApplicationOwner.",
            )
        )
    return found


def applications_without_service_principal(resources: Iterable[StackResource]) -> list[tuple[str, str]]:
    """(urn, message) for every application no ServicePrincipal of the stack belongs to."""
    resources = list(resources)
    principals = [r for r in resources if r.type == SERVICE_PRINCIPAL]
    # clientId is the 6.x input; applicationId is what pulumi-azuread 5.x called it.
    keys = ("clientId", "applicationId")
    found = []
    for app in (r for r in resources if r.type in APPLICATION_TYPES):
        client_id = app.props.get("clientId")
        if any(
            _from_resource(sp, app, keys, lambda value, client_id=client_id: same_id(value, client_id))
            or _could_be_from(sp, keys)
            for sp in principals
        ):
            continue
        shown_id = f" (clientId {client_id})" if facts.is_guid(client_id) else ""
        found.append(
            (
                app.urn,
                f"{app.name}{shown_id} has no ServicePrincipal in this stack: none has its clientId "
                "or takes it from this application. Fix: add azuread.ServicePrincipal(client_id="
                "<application>.client_id), or bring an existing one in with import_.",
            )
        )
    return found
