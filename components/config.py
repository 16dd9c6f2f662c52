"""Stack configuration: read, checked and turned into settings in one place, before any resource exists.

`parse_stack_config` takes the raw values of the `intrexx-exchange` namespace (strings, as Pulumi stores them;
structured values as JSON) and returns `StackSettings`, or raises one `ConfigError` listing every problem with
its key path and what is expected.
"""

import difflib
import json
import os
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import date
from enum import StrEnum
from typing import Any, TypeVar

from .catalogue import Permission, load_catalogue
from .clouds import CLOUDS, Cloud, CloudName, cloud_of_provider
from .contract import (
    KIND_OF_ACCESS,
    PORTAL_NAME_RULE,
    Access,
    Api,
    Connector,
    MailboxScope,
    PermissionType,
    is_portal_name,
)
from .ews import EWS_SHUTDOWN, EwsPhase, ews_phase, ews_state
from .facts import GUID_EXAMPLE, LOOPBACK_HOSTS, is_object_id
from .output_checks import describe_value, lone_surrogates
from .rotation import MAX_ROTATION_DAYS, MIN_ROTATION_DAYS
from .text import describe_characters, for_one_line, unsafe_characters
from .urls import parse_web_url, relative_path_problems, url_problems

Choice = TypeVar("Choice", bound=StrEnum)

NAMESPACE = "intrexx-exchange"
# The Connector for Microsoft Exchange's redirect URI: Intrexx's app-registration page shows
# `<base URL>/oauth2/token/msexchange` in its "Redirect URI" box, while Intrexx serves its OAuth2 endpoints under
# `/service/` (help.intrexx.com integration-connector-exchange-connection; its Connector API and SharePoint
# examples). Both are registered: an extra redirect URI costs nothing, a missing one costs AADSTS50011.
EXCHANGE_REDIRECT_PATHS = ("oauth2/token/msexchange", "service/oauth2/token/msexchange")
DEFAULT_REDIRECT_PATHS = EXCHANGE_REDIRECT_PATHS  # also the example in messages about redirectPaths
SIGN_IN_PATH = "login/oic/authenticate"
# Entra: a redirect URI is at most 256 characters (learn.microsoft.com/entra/identity-platform/reply-url).
MAX_REDIRECT_URI_LENGTH = 256
MAX_REDIRECT_URI_COUNT = 256  # Entra, per app that signs in work or school accounts (AzureADMyOrg)
MAX_ENVIRONMENT_LENGTH = 64

STACK_KEYS = (
    "portals",
    "deployers",
    "environment",
    "cloud",
    "exchangeEndpoint",
    "secretRotationDays",
    "protect",
    "allowRetiredEws",
)
PORTAL_KEYS = (
    "name",
    "baseUrl",
    "connector",
    "access",
    "permissions",
    "redirectPaths",
    "signIn",
    "publicClientFlows",
    "owners",
    "mailboxScope",
    "adopt",
    "renamedFrom",
    "refreshTokensRequestedOn",
)
ADOPT_KEYS = ("applicationObjectId", "servicePrincipalObjectId", "grants", "roleAssignments", "handMadeSecretKeyIds")
# Ids of oauth2PermissionGrants and appRoleAssignments: base64url strings, e.g. "aaBBcDDeFG6h5JKLMN2PQrrssTTUUvW".
GRAPH_OBJECT_ID = re.compile(r"\A[A-Za-z0-9_-]{16,128}\Z")
# Keys of earlier versions, and what to write instead.
REPLACED_PORTAL_KEYS = {
    "api": "replaced by `connector`: write `connector: exchange` for the Connector for Microsoft Exchange (EWS, "
    "api: ews) or `connector: m365` for the Connector for Microsoft 365 and Teams (Microsoft Graph, "
    "api: graph)",
}


MAX_PROBLEMS_SHOWN = 50
MAX_PROBLEM_LENGTH = 600


def _shorten(line: str) -> str:
    return line if len(line) <= MAX_PROBLEM_LENGTH else line[: MAX_PROBLEM_LENGTH - 3] + "..."


class ConfigError(ValueError):
    """The stack configuration is invalid; `problems` holds one line per problem, each naming its key path."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        # Pulumi prints this message to a terminal or CI log: each problem stays one line, nothing in it a command.
        # A stack file of a thousand bad entries is answered with the first ones: a message of megabytes helps no one.
        shown = [f"  - {_shorten(for_one_line(problem))}" for problem in self.problems[:MAX_PROBLEMS_SHOWN]]
        if len(self.problems) > MAX_PROBLEMS_SHOWN:
            shown.append(f"  - and {len(self.problems) - MAX_PROBLEMS_SHOWN} more problems (fix these first)")
        lines = "\n".join(shown)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"invalid stack configuration ({len(self.problems)} {noun}):\n{lines}")


@dataclass(frozen=True)
class Adoption:
    """A registration made by hand, imported instead of created (`portals[].adopt`): its object ids, and the ids of
    the consent objects Entra would refuse to create twice (a delegated grant per resource API for all users, an
    app role assignment per role)."""

    application_object_id: str
    service_principal_object_id: str
    grants: Mapping[str, str] = field(default_factory=dict)  # catalogue resource key -> oauth2PermissionGrant id
    role_assignments: Mapping[str, str] = field(default_factory=dict)  # role name -> appRoleAssignment id
    hand_made_secret_key_ids: tuple[str, ...] = ()  # the secrets made by hand: to remove once Intrexx has ours


@dataclass(frozen=True)
class PortalSettings:
    name: str
    base_url: str  # without trailing slash
    connector: Connector
    access: Access
    permissions: tuple[Permission, ...]  # the profile or `permissions`, plus sign-in scopes
    redirect_uris: tuple[str, ...]
    sign_in: bool
    public_client_flows: bool
    owners: tuple[str, ...]
    mailbox_scope: MailboxScope | None
    notes: tuple[str, ...] = ()  # warnings about this portal, its name left to fill in (PORTALS_PLACE)
    adopt: Adoption | None = None
    renamed_from: str | None = None
    refresh_tokens_requested_on: date | None = None  # exchange portals: last "Request MS365 Refresh Token"

    @property
    def api(self) -> Api:
        return self.connector.api

    @property
    def warnings(self) -> tuple[str, ...]:
        return tuple(note.replace(PORTALS_PLACE, _portals_phrase([self.name])) for note in self.notes)

    @property
    def delegated(self) -> bool:
        return self.access is Access.DELEGATED

    @property
    def sign_in_redirect_uri(self) -> str | None:
        return join_url(self.base_url, SIGN_IN_PATH) if self.sign_in else None

    def exchange_rbac(self, permission: Permission) -> bool:
        """Whether Exchange RBAC for Applications, not tenant-wide consent, grants this permission."""
        return bool(self.mailbox_scope and permission.kind is PermissionType.ROLE and permission.exchange_role)


@dataclass(frozen=True)
class StackSettings:
    stack: str
    portals: tuple[PortalSettings, ...]
    environment: str
    deployers: tuple[str, ...] | None  # None: the identity that runs the program owns what it creates
    cloud: Cloud
    secret_rotation_days: int
    protect: bool
    allow_retired_ews: bool
    today: date

    @property
    def warnings(self) -> tuple[str, ...]:
        """The portals' warnings, one per kind: 300 portals on the Exchange connector give one line naming a few
        of them and how many more, not 300 lines."""
        grouped: dict[str, list[str]] = {}
        for portal in self.portals:
            for note in portal.notes:
                grouped.setdefault(note, []).append(portal.name)
        return tuple(note.replace(PORTALS_PLACE, _portals_phrase(names)) for note, names in grouped.items())


# Where a warning names the portals it concerns: "portal 'hr'", "portals 'a' and 'b'", "portals 'a', 'b', 'c',
# 'd', 'e' and 295 more".
PORTALS_PLACE = "{portals}"
PORTALS_NAMED_IN_A_WARNING = 5


def _portals_phrase(names: list[str]) -> str:
    quoted = [f"'{name}'" for name in names]
    if len(quoted) == 1:
        return f"portal {quoted[0]}"
    if len(quoted) <= PORTALS_NAMED_IN_A_WARNING:
        return f"portals {', '.join(quoted[:-1])} and {quoted[-1]}"
    shown = quoted[:PORTALS_NAMED_IN_A_WARNING]
    return f"portals {', '.join(shown)} and {len(quoted) - len(shown)} more"


def provider_environment(
    environment: str | None, metadata_host: str | None, environ: Mapping[str, str] = os.environ
) -> str | None:
    """The azuread provider's cloud as the provider reads its settings (pulumi_azuread.config: `environment`, else
    ARM_ENVIRONMENT, else "public"); None for a custom cloud given by `metadataHost`, which cannot be checked."""
    if metadata_host:
        return None
    return environment or environ.get("ARM_ENVIRONMENT") or "public"


def join_url(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/{path}"


@dataclass
class _Problems:
    lines: list[str] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")


def parse_stack_config(
    raw: Mapping[str, object],
    stack: str,
    today: date,
    provider_environment: str | None = None,
    key_problems: Iterable[str] = (),
) -> StackSettings:
    """Check every key of the namespace at once; raise ConfigError listing all problems.

    `raw` holds the namespace's keys without their prefix: strings as Pulumi hands them over (structured values
    as JSON), or the values parsed from the stack file. `provider_environment` is the azuread provider's cloud
    (azuread:environment or ARM_ENVIRONMENT), when known: the registrations must be created in the cloud whose
    endpoints the outputs describe. `key_problems` are problems found in the stack file's keys themselves
    (components/stack_file.py), reported first.
    """
    problems = _Problems(list(key_problems))
    for key in sorted(set(raw) - set(STACK_KEYS)):
        problems.add(
            _key_path("", key), f"unknown key{_did_you_mean(key, STACK_KEYS)}; known keys: {', '.join(STACK_KEYS)}"
        )

    environment = _string(raw.get("environment"), "environment", problems, default=stack)
    if environment is not None and len(environment) > MAX_ENVIRONMENT_LENGTH:
        problems.add("environment", f"must be at most {MAX_ENVIRONMENT_LENGTH} characters")
    cloud = _choice(raw.get("cloud"), "cloud", CloudName, problems, default=CloudName.GLOBAL)
    if cloud and provider_environment is not None:
        provider_cloud = cloud_of_provider(provider_environment)
        if provider_cloud is None or provider_cloud.name is not cloud:
            problems.add(
                "cloud",
                f"is '{cloud}' but the azuread provider signs in to {describe_value(provider_environment)} "
                f"(azuread:environment or ARM_ENVIRONMENT); run `pulumi config set "
                f"azuread:environment {CLOUDS[cloud].azuread_environment}` so that the "
                "registrations are made in the cloud the outputs describe",
            )
    exchange_endpoint = _endpoint(raw.get("exchangeEndpoint"), "exchangeEndpoint", problems)
    rotation_days = _integer(
        raw.get("secretRotationDays"),
        "secretRotationDays",
        problems,
        default=90,
        low=MIN_ROTATION_DAYS,
        high=MAX_ROTATION_DAYS,
    )
    protect = _boolean(raw.get("protect"), "protect", problems, default=False)
    allow_retired_ews = _boolean(raw.get("allowRetiredEws"), "allowRetiredEws", problems, default=False)
    deployers = None
    listed = _json(raw.get("deployers"), "deployers", problems)
    if listed is not _MISSING and listed is not _INVALID:
        deployers = _owners(listed, "deployers", problems)
        if not deployers:
            problems.add(
                "deployers",
                "must list at least one object id: the users and service principals that "
                "must own every registration (or leave it out)",
            )

    portals = _portals(raw.get("portals"), problems, today, bool(allow_retired_ews))
    if problems.lines:
        raise ConfigError(problems.lines)
    assert environment is not None and cloud is not None and rotation_days is not None
    cloud_record = CLOUDS[cloud] if exchange_endpoint is None else replace(CLOUDS[cloud], exchange=exchange_endpoint)
    return StackSettings(
        stack,
        tuple(portals),
        environment,
        deployers,
        cloud_record,
        rotation_days,
        bool(protect),
        bool(allow_retired_ews),
        today,
    )


def _portals(value: object, problems: _Problems, today: date, allow_retired_ews: bool) -> list[PortalSettings]:
    entries = _json(value, "portals", problems)
    if entries is _INVALID:
        return []
    if entries is _MISSING:
        problems.add(
            "portals",
            "required: a list with one entry per Intrexx portal, e.g. "
            "[{name: hr, baseUrl: https://intrexx.example.com/hr}]",
        )
        return []
    if not isinstance(entries, list) or not entries:
        problems.add("portals", f"must be a non-empty list of portal objects, got {describe_value(entries)}")
        return []
    parsed: dict[int, PortalSettings] = {}  # index in the list -> the portal, for those without problems
    for index, entry in enumerate(entries):
        path = f"portals[{index}]"
        if not isinstance(entry, dict):
            problems.add(path, f"must be an object with at least name and baseUrl, got {describe_value(entry)}")
            continue
        portal = _portal(entry, path, problems, today, allow_retired_ews)
        if portal is not None:
            parsed[index] = portal
    _unique_names(parsed, problems)
    _unique_adoptions(parsed, problems)
    _shared_redirect_uris(parsed, problems)
    _renames(parsed, problems)
    return list(parsed.values())


def _unique_names(parsed: Mapping[int, PortalSettings], problems: _Problems) -> None:
    seen: dict[str, int] = {}
    for index, portal in parsed.items():
        if portal.name in seen:
            problems.add(
                f"portals[{index}].name",
                f"'{portal.name}' is already used by portals[{seen[portal.name]}]; names must be unique",
            )
        seen.setdefault(portal.name, index)


def _unique_adoptions(parsed: Mapping[int, PortalSettings], problems: _Problems) -> None:
    adopted: dict[str, int] = {}
    for index, portal in parsed.items():
        if portal.adopt is None:
            continue
        object_id = portal.adopt.application_object_id
        if object_id in adopted:
            problems.add(
                f"portals[{index}].adopt.applicationObjectId",
                f"{object_id} is adopted by portals[{adopted[object_id]}] already",
            )
        adopted.setdefault(object_id, index)


def _renames(parsed: Mapping[int, PortalSettings], problems: _Problems) -> None:
    names = {portal.name for portal in parsed.values()}
    renamed: dict[str, str] = {}
    for index, portal in parsed.items():
        old = portal.renamed_from
        if old is None:
            continue
        if old in names:
            problems.add(
                f"portals[{index}].renamedFrom",
                f"'{old}' is still a portal of this stack: a renamed portal's old name must be gone",
            )
        elif old in renamed:
            problems.add(f"portals[{index}].renamedFrom", f"'{old}' is renamed to '{renamed[old]}' already")
        renamed.setdefault(old, portal.name)


def _shared_redirect_uris(parsed: Mapping[int, PortalSettings], problems: _Problems) -> None:
    """Two portals must not register the same redirect URI: the same baseUrl with the same connector is one Intrexx
    portal registered twice (a copied entry). One portal on both connectors (hr and hr-graph during the move to
    Microsoft Graph) shares its baseUrl, not its redirect URIs."""
    owner: dict[str, int] = {}
    for index, portal in parsed.items():
        for uri in portal.redirect_uris:
            if uri not in owner:
                owner[uri] = index
                continue
            other = parsed[owner[uri]]
            same_base = other.base_url == portal.base_url
            problems.add(
                f"portals[{index}].{'baseUrl' if same_base else 'redirectPaths'}",
                f"gives the redirect URI {uri!r} of portals[{owner[uri]}] ('{other.name}') again"
                + (f" (the same baseUrl {portal.base_url!r})" if same_base else "")
                + ": every portal needs its own; is this entry a copy?",
            )
            break


def _redirect_uri_limits(redirect_uris: tuple[str, ...]) -> str | None:
    """Entra's limits on an app's redirect URIs (learn.microsoft.com/entra/identity-platform/reply-url)."""
    if len(set(redirect_uris)) > MAX_REDIRECT_URI_COUNT:
        return (
            f"gives {len(set(redirect_uris))} redirect URIs; Entra allows at most {MAX_REDIRECT_URI_COUNT} for an app "
            "that signs in work or school accounts"
        )
    for uri in redirect_uris:
        if len(uri) > MAX_REDIRECT_URI_LENGTH:
            return f"redirect URI {uri} is longer than Entra's limit of {MAX_REDIRECT_URI_LENGTH} characters"
    return None


def _portal(
    entry: dict[Any, Any], path: str, problems: _Problems, today: date, allow_retired_ews: bool
) -> PortalSettings | None:
    before = len(problems.lines)
    for key in sorted(set(entry) - set(PORTAL_KEYS), key=str):
        if key in REPLACED_PORTAL_KEYS:
            problems.add(_key_path(path, key), REPLACED_PORTAL_KEYS[key])
            continue
        problems.add(
            _key_path(path, key),
            f"unknown key{_did_you_mean(str(key), PORTAL_KEYS)}; known keys: {', '.join(PORTAL_KEYS)}",
        )

    name = entry.get("name")
    if name is None:
        problems.add(f"{path}.name", f"required: a short id, {PORTAL_NAME_RULE}")
    elif not is_portal_name(name):
        problems.add(f"{path}.name", f"must be {PORTAL_NAME_RULE}, got {describe_value(name)}")
    base_url = _base_url(entry.get("baseUrl"), f"{path}.baseUrl", problems)
    connector = _choice(entry.get("connector"), f"{path}.connector", Connector, problems, default=Connector.EXCHANGE)
    access = _choice(entry.get("access"), f"{path}.access", Access, problems, default=Access.DELEGATED)
    if connector is Connector.EXCHANGE and access is Access.APPLICATION:
        problems.add(
            f"{path}.access",
            'the Connector for Microsoft Exchange signs each mailbox user in (delegated access, "Request MS365 '
            "Refresh Token\"); app-only access is the Microsoft 365 connector's service account: write "
            "`connector: m365` with `access: application`",
        )
        access = None
    sign_in = _boolean(entry.get("signIn"), f"{path}.signIn", problems, default=False)
    owners = _owners(entry.get("owners"), f"{path}.owners", problems)
    mailbox_scope = _mailbox_scope(entry.get("mailboxScope"), f"{path}.mailboxScope", problems, connector, access)
    redirect_paths = _portal_redirect_paths(
        entry.get("redirectPaths"), f"{path}.redirectPaths", problems, connector, access
    )
    public_client_flows = _public_client_flows(
        entry.get("publicClientFlows"), f"{path}.publicClientFlows", problems, connector, access
    )
    renamed_from = entry.get("renamedFrom")
    if renamed_from is not None and (not is_portal_name(renamed_from) or renamed_from == name):
        problems.add(
            f"{path}.renamedFrom",
            f"must be the portal's previous name (a name other than its own: {PORTAL_NAME_RULE}), "
            f"got {describe_value(renamed_from)}",
        )

    notes: list[str] = []
    if connector is Connector.EXCHANGE:
        if ews_phase(today) is EwsPhase.RETIRED and not allow_retired_ews:
            problems.add(
                f"{path}.connector",
                f"'exchange' reaches Exchange Online through EWS, switched off since {EWS_SHUTDOWN}: move the portal "
                "to `connector: m365` (or set allowRetiredEws: true to keep a retired registration)",
            )
        notes.append(
            f"the Connector for Microsoft Exchange ({PORTALS_PLACE}): {ews_state(today)}; move to the "
            'Microsoft 365 connector (connector: m365, README "Migrating from EWS to Microsoft Graph")'
        )
    permissions: tuple[Permission, ...] = ()
    if connector is not None and access is not None:
        permissions = _permissions(
            entry.get("permissions"), f"{path}.permissions", problems, connector, access, bool(sign_in)
        )
        if access is Access.APPLICATION and not mailbox_scope:
            notes.append(
                f"application access without mailboxScope ({PORTALS_PLACE}) can read and write every mailbox in "
                "the tenant; set mailboxScope to limit it with Exchange RBAC for Applications"
            )

    adopt = _adopt(entry.get("adopt"), f"{path}.adopt", problems, permissions, mailbox_scope)
    requested_on = _refresh_tokens_requested_on(
        entry.get("refreshTokensRequestedOn"), f"{path}.refreshTokensRequestedOn", problems, connector, today
    )
    if len(problems.lines) > before:
        return None
    # Every check above passed, so none of these is missing.
    assert name is not None and base_url is not None and connector is not None and access is not None
    assert public_client_flows is not None
    redirect_uris = tuple(join_url(base_url, p) for p in redirect_paths)
    if sign_in:
        redirect_uris += (join_url(base_url, SIGN_IN_PATH),)
    limit_problem = _redirect_uri_limits(redirect_uris)
    if limit_problem:
        problems.add(f"{path}.redirectPaths", limit_problem)
        return None
    return PortalSettings(
        name,
        base_url,
        connector,
        access,
        permissions,
        tuple(dict.fromkeys(redirect_uris)),
        bool(sign_in),
        public_client_flows,
        owners,
        mailbox_scope,
        tuple(notes),
        adopt,
        renamed_from,
        requested_on,
    )


def _refresh_tokens_requested_on(
    value: object, path: str, problems: _Problems, connector: Connector | None, today: date
) -> date | None:
    """The day the Exchange connector's MS365 refresh tokens were last requested in Intrexx (components/
    refresh_tokens.py: valid three months). A YAML date (plan reads the stack file with PyYAML) counts as its text."""
    if value is None:
        return None
    if connector is None:
        return None  # the connector's own problem is reported
    if connector is not Connector.EXCHANGE:
        problems.add(
            path,
            "only for `connector: exchange` portals (the Connector for Microsoft Exchange keeps per-user refresh "
            "tokens in the MediaGateway); remove it from this portal",
        )
        return None
    text = value.isoformat() if type(value) is date else value
    day = None
    if isinstance(text, str) and re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}", text):
        try:
            day = date.fromisoformat(text)
        except ValueError:
            day = None
    timestamp = (
        re.fullmatch(r"([0-9]{4}-[0-9]{2}-[0-9]{2}) 00:00:00 \+0000 UTC", text) if isinstance(text, str) else None
    )
    if day is None and timestamp:
        # YAML reads an unquoted 2026-11-02 as a timestamp, and Pulumi hands it over as Go prints one
        # (components/stack_file.py): the fix is the quotes, not another format.
        problems.add(
            path,
            f"write the date in quotes ('{timestamp.group(1)}'): unquoted, YAML reads a timestamp and Pulumi hands "
            f"the program {text!r}",
        )
        return None
    if day is None:
        problems.add(
            path,
            "must be the date the MS365 refresh tokens were last requested in Intrexx, as YYYY-MM-DD "
            f"(e.g. 2026-11-02), got {describe_value(value)}",
        )
        return None
    if day > today:
        problems.add(path, f"{day.isoformat()} is in the future (today is {today.isoformat()})")
        return None
    return day


def _base_url(value: object, path: str, problems: _Problems) -> str | None:
    """The portal's base URL as a browser writes it (WHATWG serialisation: host in lower case, no default port,
    ada-url's reading), without a trailing slash. What differs only in those ways reaches the same portal, and two
    spellings of one URL must not give two sets of redirect URIs; anything a browser would read otherwise is
    refused (components/urls.py)."""
    example = "an absolute https URL such as https://intrexx.example.com/portal"
    if value is None:
        problems.add(path, f"required: {example}")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(path, f"must be {example}, got {describe_value(value)}")
        return None
    reasons = url_problems(value, http_hosts=LOOPBACK_HOSTS, example=example)
    if not reasons:
        reasons = _redirect_uri_problems(value)
    for reason in reasons:
        problems.add(path, f"{reason}, got {describe_value(value, 200)}")
    if reasons:
        return None
    base_url = parse_web_url(value, http_hosts=LOOPBACK_HOSTS).href.rstrip("/")
    page = base_url.rsplit("/", 1)[-1] if base_url.count("/") > 2 else ""
    if _PAGE.fullmatch(page):
        # Refused, not trimmed: the redirect URIs must be what Intrexx builds from the base URL it is given, so the
        # user corrects both; trimming here would register URIs that a portal configured with the page never sends.
        problems.add(
            path,
            f"names a page ({page!r}), which would end up inside every redirect URI: write the portal's base "
            f"URL {base_url[: -len(page) - 1]!r} (as in Intrexx's portal properties)",
        )
        return None
    return base_url


# The last segment of a base URL that names a page rather than the portal's folder: Intrexx's own pages end in
# `.ixsp` (e.g. `default.ixsp`), and the common web server pages in these.
_PAGE = re.compile(r"[^/]+\.(?i:ixsp|html?|xhtml|jspx?|php|aspx?|do|action|cgi)")
# learn.microsoft.com/entra/identity-platform/reply-url: "Redirect URIs don't support special characters:
# ! $ ' ( ) , ;" (';' is refused by components/urls.py already, as a servlet path parameter).
_ENTRA_REFUSED_CHARACTERS = "!$'(),"


def _redirect_uri_problems(text: str) -> list[str]:
    found = sorted({character for character in text if character in _ENTRA_REFUSED_CHARACTERS})
    if not found:
        return []
    shown = " ".join(repr(character) for character in found)
    return [f"must not contain {shown}: Entra refuses these characters in redirect URIs"]


def _portal_redirect_paths(
    value: object, path: str, problems: _Problems, connector: Connector | None, access: Access | None
) -> tuple[str, ...]:
    """The connector's redirect paths, or the ones configured. The Microsoft 365 connector's redirect URI is not a
    fixed path in Intrexx's documentation: its registration wizard shows it ("The redirect URI is shown here ...
    You must store the redirect URI in Microsoft Azure", help.intrexx.com connectors/ms-365), so a user-account
    registration needs it given; service accounts (client credentials) need none."""
    if value is not None:
        return _redirect_paths(value, path, problems)
    if connector is Connector.EXCHANGE:
        return EXCHANGE_REDIRECT_PATHS
    if connector is Connector.M365 and access is Access.DELEGATED:
        problems.add(
            path,
            "required for `connector: m365` with delegated access (Intrexx user accounts): copy the "
            "redirect URI that Intrexx's Microsoft 365 registration wizard shows and give its path "
            "relative to baseUrl, e.g. [<path shown by Intrexx>]",
        )
    return ()


def _public_client_flows(
    value: object, path: str, problems: _Problems, connector: Connector | None, access: Access | None
) -> bool | None:
    """Entra's "Allow public client flows". The Exchange connector needs it: "Request MS365 Refresh Token" is a
    device code sign-in, refused with AADSTS7000218 without it. The Microsoft 365 connector signs users in through
    the browser (authorization code) or as a service account, so it is off unless asked for (e.g. to test user
    accounts with `verify --device-code`); app-only registrations never sign users in."""
    default = connector is Connector.EXCHANGE
    enabled = _boolean(value, path, problems, default=default)
    if enabled is False and connector is Connector.EXCHANGE:
        problems.add(
            path,
            'must stay true for `connector: exchange`: Intrexx\'s "Request MS365 Refresh Token" is a '
            "device code sign-in, which Entra refuses without public client flows (AADSTS7000218)",
        )
    if enabled and access is Access.APPLICATION:
        problems.add(path, "must be false for `access: application`: a service account never signs a user in")
    return enabled


def _endpoint(value: object, path: str, problems: _Problems) -> str | None:
    """An https origin (scheme and host, no path), e.g. the Exchange Online endpoint of a national cloud."""
    if value is None:
        return None
    example = "an https origin such as https://outlook.office365.us"
    if not isinstance(value, str):
        problems.add(path, f"must be {example}, got {describe_value(value)}")
        return None
    reasons = url_problems(value, allow_path=False, example=example)
    if reasons:
        problems.add(path, f"{'; '.join(reasons)}, got {describe_value(value)}")
        return None
    return parse_web_url(value, allow_path=False).origin_text


def _redirect_paths(value: object, path: str, problems: _Problems) -> tuple[str, ...]:
    if value is None:
        return DEFAULT_REDIRECT_PATHS
    if not isinstance(value, list) or not value:
        problems.add(
            path,
            f"must be a non-empty list of relative paths such as {DEFAULT_REDIRECT_PATHS[0]}, "
            f"got {describe_value(value)}",
        )
        return ()
    result = []
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, str) or not item.strip():
            problems.add(
                item_path, f"must be a relative path such as {DEFAULT_REDIRECT_PATHS[0]}, got {describe_value(item)}"
            )
            continue
        reasons = []
        if "://" in item or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", item):
            reasons.append("must be relative to baseUrl, not an absolute URL with a scheme")
        elif item.startswith("/"):
            reasons.append("must be relative to baseUrl: drop the leading '/'")
        if any(ch in item for ch in "?#*\\") or any(ch.isspace() for ch in item):
            reasons.append("must not contain '?', '#', '*', backslashes or white space")
        if not reasons:
            reasons = _redirect_uri_problems(item)
        if not reasons:
            # Checked as a server reads it, percent-decoded: '%2e%2e/', '.%2e/' and '..;/' would leave baseUrl.
            reasons += [f"{reason} (it may not escape baseUrl)" for reason in relative_path_problems(item)]
        for reason in reasons:
            problems.add(item_path, f"{reason}, got {describe_value(item, 200)}")
        if not reasons:
            if item in result:
                problems.add(item_path, f"{item!r} is listed twice")
            result.append(item)
    return tuple(result)


def _permissions(
    value: object, path: str, problems: _Problems, connector: Connector, access: Access, sign_in: bool
) -> tuple[Permission, ...]:
    catalogue = load_catalogue()
    kind = KIND_OF_ACCESS[access]
    profile = catalogue.profiles.get((connector, access), ())
    if value is None:
        names = list(profile)
    elif not isinstance(value, list) or not value:
        problems.add(
            path,
            f"must be a non-empty list of permission names (default for connector {connector} with {access} "
            f"access: {', '.join(profile)}), got {describe_value(value)}",
        )
        return ()
    else:
        names = value
    permissions: list[Permission] = []
    for index, name in enumerate(names):
        item_path = f"{path}[{index}]"
        if not isinstance(name, str):
            problems.add(item_path, f"must be a permission name, got {describe_value(name)}")
            continue
        permission = catalogue.lookup(connector, name, kind)
        if permission is None:
            if catalogue.kinds_of(connector, name):
                problems.add(item_path, _wrong_kind(name, kind, connector))
            else:
                matches = catalogue.close_matches(connector, name, kind)
                hint = f"; did you mean {', '.join(matches)}?" if matches else ""
                problems.add(
                    item_path,
                    f"unknown permission {describe_value(name)} for connector {connector} with {access} access{hint}",
                )
            continue
        if permission in permissions:
            problems.add(item_path, f"'{name}' is listed twice")
            continue
        permissions.append(permission)
    if sign_in:
        for name in catalogue.sign_in:
            scope = catalogue.lookup(connector, name, PermissionType.SCOPE)
            if scope is not None and scope not in permissions:
                permissions.append(scope)
    return tuple(permissions)


def _wrong_kind(name: str, wanted: PermissionType, connector: Connector) -> str:
    if wanted is PermissionType.ROLE:
        return (
            f"'{name}' is a delegated permission (for signed-in users), but `access: application` (a service "
            "account) needs application permissions"
        )
    if connector is Connector.M365:
        return (
            f"'{name}' is an application permission (for service accounts), but `access: delegated` (Intrexx "
            "user accounts) needs delegated permissions"
        )
    return f"'{name}' is an application permission, but the Connector for Microsoft Exchange signs users in (delegated)"


def _owners(value: object, path: str, problems: _Problems) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(path, f"must be a list of object ids (GUIDs), got {describe_value(value)}")
        return ()
    owners = []
    for index, owner in enumerate(value):
        if not is_object_id(owner):
            problems.add(
                f"{path}[{index}]",
                f"must be an object id (GUID such as {GUID_EXAMPLE}), got {describe_value(owner)}",
            )
        elif owner.lower() not in owners:
            owners.append(owner.lower())
    return tuple(owners)


def _adopt(
    value: object, path: str, problems: _Problems, permissions: tuple[Permission, ...], scoped: object
) -> Adoption | None:
    """`adopt`: object ids of a registration made by hand (Entra admin center: App registrations -> the app ->
    Overview shows "Object ID"; Enterprise applications -> the app shows the service principal's "Object ID"; or
    `az ad app show --id <client id> --query id` and `az ad sp show --id <client id> --query id`)."""
    if value is None:
        return None
    example = "{applicationObjectId: <GUID>, servicePrincipalObjectId: <GUID>}"
    if not isinstance(value, dict):
        problems.add(path, f"must be an object such as {example}, got {describe_value(value)}")
        return None
    for key in sorted(set(value) - set(ADOPT_KEYS), key=str):
        problems.add(
            _key_path(path, key),
            f"unknown key{_did_you_mean(str(key), ADOPT_KEYS)}; known keys: {', '.join(ADOPT_KEYS)}",
        )
    ids = {}
    for key in ("applicationObjectId", "servicePrincipalObjectId"):
        if not is_object_id(value.get(key)):
            problems.add(
                f"{path}.{key}",
                "required: the object id (GUID) of the registration made by hand, "
                f"got {describe_value(value.get(key))}",
            )
        else:
            ids[key] = str(value[key]).lower()
    consented_resources = {p.resource for p in permissions if p.kind is PermissionType.SCOPE}
    consented_roles = {p.name for p in permissions if p.kind is PermissionType.ROLE} if not scoped else set()
    grants = _id_map(
        value.get("grants"),
        f"{path}.grants",
        problems,
        consented_resources,
        "the resource APIs this portal gets delegated consent for",
    )
    role_assignments = _id_map(
        value.get("roleAssignments"),
        f"{path}.roleAssignments",
        problems,
        consented_roles,
        "the application permissions this portal gets tenant-wide consent for",
    )
    hand_made = value.get("handMadeSecretKeyIds", [])
    if not isinstance(hand_made, list) or not all(is_object_id(key_id) for key_id in hand_made):
        problems.add(
            f"{path}.handMadeSecretKeyIds",
            "must be a list of secret ids (GUIDs, Entra admin center: "
            f"Certificates & secrets -> Secret ID), got {describe_value(hand_made)}",
        )
        hand_made = []
    if len(ids) < 2:
        return None
    return Adoption(
        ids["applicationObjectId"],
        ids["servicePrincipalObjectId"],
        grants,
        role_assignments,
        tuple(str(key_id).lower() for key_id in hand_made),
    )


def _id_map(value: object, path: str, problems: _Problems, allowed: set[str], what: str) -> dict[str, str]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        problems.add(path, f"must map {what} to the ids of the existing objects, got {describe_value(value)}")
        return {}
    result = {}
    for key, object_id in value.items():
        if key not in allowed:
            choices = ", ".join(sorted(allowed)) or "none"
            problems.add(_key_path(path, key), f"is not one of {what} ({choices})")
        elif not isinstance(object_id, str) or not GRAPH_OBJECT_ID.fullmatch(object_id):
            problems.add(
                _key_path(path, key),
                f"must be the existing object's id (letters, digits, '-' and '_'), got {describe_value(object_id)}",
            )
        else:
            result[str(key)] = object_id
    return result


def _mailbox_scope(
    value: object, path: str, problems: _Problems, connector: Connector | None, access: Access | None
) -> MailboxScope | None:
    if value is None:
        return None
    expected = "an object with exactly one of groupId (a GUID) or recipientFilter (an OPATH filter)"
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"groupId", "recipientFilter"}:
        problems.add(path, f"must be {expected}, got {describe_value(value)}")
        return None
    if connector is not Connector.M365 or access is not Access.APPLICATION:
        problems.add(
            path,
            "applies to the Microsoft 365 connector's service accounts only (`connector: m365`, `access: "
            "application`): delegated access already acts for one signed-in user; remove it",
        )
    if "groupId" in value:
        if not is_object_id(value["groupId"]):
            problems.add(
                f"{path}.groupId",
                "must be the object id (GUID) of a mail-enabled security group, "
                f"got {describe_value(value['groupId'])}",
            )
            return None
        return MailboxScope(group_id=value["groupId"].lower())
    recipient_filter = value["recipientFilter"]
    if (
        not isinstance(recipient_filter, str)
        or not recipient_filter.strip()
        or unsafe_characters(recipient_filter)
        or lone_surrogates(recipient_filter)
    ):
        problems.add(
            f"{path}.recipientFilter",
            f"must be a one-line OPATH filter such as \"Department -eq 'HR'\", got {describe_value(recipient_filter)}",
        )
        return None
    return MailboxScope(recipient_filter=recipient_filter.strip())


_MISSING = object()
_INVALID = object()


def _json(value: object, path: str, problems: _Problems) -> object:
    """Structured config arrives as JSON text from Pulumi; tests may pass the parsed value."""
    if value is None:
        return _MISSING
    if not isinstance(value, str):
        return value
    try:
        return json.loads(value)
    except ValueError:
        problems.add(path, "must be a YAML/JSON list, got text that does not parse")
        return _INVALID
    except RecursionError:
        problems.add(path, "must be a YAML/JSON list of portal objects, got text nested too deeply to read")
        return _INVALID


def _string(value: object, path: str, problems: _Problems, default: str) -> str | None:
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip():
        problems.add(path, f"must be a non-empty one-line string, got {describe_value(value)}")
        return None
    bad = unsafe_characters(value)
    if bad:
        # It reaches display names, files and the terminal: no escape sequences, no line breaks.
        problems.add(
            path,
            f"must be a one-line string without control characters ({describe_characters(bad)}), "
            f"got {describe_value(value, 200)}",
        )
        return None
    surrogates = lone_surrogates(value)
    if surrogates:
        problems.add(path, f"must be Unicode text, not lone surrogates ({describe_characters(surrogates)})")
        return None
    if value != value.strip():
        # Display names and file names would carry it, and Entra's display name search would miss it.
        problems.add(path, f"must not start or end with white space, got {describe_value(value)}")
        return None
    return value


def _choice(value: object, path: str, choices: type[Choice], problems: _Problems, default: Choice) -> Choice | None:
    if value is None:
        return default
    words = [member.value for member in choices]
    if not isinstance(value, str) or value not in words:
        hint = _did_you_mean(value, tuple(words)) if isinstance(value, str) else ""
        problems.add(path, f"must be one of {' | '.join(words)}, got {describe_value(value)}{hint}")
        return None
    return choices(value)


def _boolean(value: object, path: str, problems: _Problems, default: bool) -> bool | None:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.add(path, f"must be true or false, got {describe_value(value)}")
    return None


def _integer(value: object, path: str, problems: _Problems, default: int, low: int, high: int) -> int | None:
    if value is None:
        return default
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]{1,9}", value):
        number = int(value)
    if number is None or not low <= number <= high:
        problems.add(path, f"must be an integer from {low} to {high} (days), got {describe_value(value)}")
        return None
    return number


def _key_path(path: str, key: object) -> str:
    """The path of a key from the stack file: `path.key` for a plain key, `path[<key shown escaped>]` for any other
    (a key may hold line breaks or escape sequences, and a problem is one line)."""
    if isinstance(key, str) and _PLAIN_KEY.fullmatch(key):
        return f"{path}.{key}" if path else key
    return f"{path}[{describe_value(key)}]"


_PLAIN_KEY = re.compile(r"[A-Za-z0-9_.:-]{1,80}")


def _did_you_mean(key: str, known: tuple[str, ...]) -> str:
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""
