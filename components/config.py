"""Stack configuration: read, checked and turned into settings in one place, before any resource exists.

`parse_stack_config` takes the raw values of the `intrexx-exchange` namespace (strings, as Pulumi stores them;
structured values as JSON) and returns `StackSettings`, or raises one `ConfigError` listing every problem with
its key path and what is expected.
"""

import difflib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import date
from urllib.parse import urlsplit

from .catalogue import (
    ACCESS_MODES,
    APIS,
    EWS_BLOCKED_FROM,
    EWS_SHUTDOWN,
    KIND_OF_ACCESS,
    Permission,
    load_catalogue,
)
from .clouds import CLOUDS, Cloud
from .names import ROLE, SCOPE, MailboxScopeField
from .rotation import MAX_ROTATION_DAYS, MIN_ROTATION_DAYS

NAMESPACE = "intrexx-exchange"
NAME_PATTERN = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
DEFAULT_REDIRECT_PATHS = ("service/oauth2/token/msexchange",)
SIGN_IN_PATH = "login/oic/authenticate"
LOOPBACK_HOSTS = ("localhost", "127.0.0.1")
# Entra: a redirect URI is at most 256 characters (learn.microsoft.com/entra/identity-platform/reply-url).
MAX_REDIRECT_URI_LENGTH = 256
MAX_ENVIRONMENT_LENGTH = 64

# The azuread provider's names for its clouds (pulumi_azuread.config.environment), aliases included.
PROVIDER_ENVIRONMENTS = {"global": "global", "public": "global", "usgovernment": "usgovernment",
                         "usgovernmentl4": "usgovernment", "dod": "dod", "usgovernmentl5": "dod", "china": "china"}

STACK_KEYS = ("portals", "environment", "cloud", "secretRotationDays", "protect", "allowRetiredEws")
PORTAL_KEYS = ("name", "baseUrl", "api", "access", "permissions", "redirectPaths", "signIn", "owners",
               "mailboxScope")


class ConfigError(ValueError):
    """The stack configuration is invalid; `problems` holds one line per problem, each naming its key path."""

    def __init__(self, problems: list[str]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        noun = "problem" if len(self.problems) == 1 else "problems"
        super().__init__(f"invalid stack configuration ({len(self.problems)} {noun}):\n{lines}")


@dataclass(frozen=True)
class MailboxScope:
    group_id: str | None = None
    recipient_filter: str | None = None

    def as_output(self) -> dict:
        if self.group_id:
            return {MailboxScopeField.GROUP_ID: self.group_id}
        return {MailboxScopeField.RECIPIENT_FILTER: self.recipient_filter}


@dataclass(frozen=True)
class PortalSettings:
    name: str
    base_url: str  # without trailing slash
    api: str
    access: str
    permissions: tuple  # of catalogue.Permission: the profile or `permissions`, plus sign-in scopes
    redirect_uris: tuple
    sign_in: bool
    owners: tuple
    mailbox_scope: MailboxScope | None
    warnings: tuple = ()

    @property
    def delegated(self) -> bool:
        return self.access == "delegated"

    @property
    def sign_in_redirect_uri(self) -> str | None:
        return join_url(self.base_url, SIGN_IN_PATH) if self.sign_in else None

    def exchange_rbac(self, permission: Permission) -> bool:
        """Whether Exchange RBAC for Applications, not tenant-wide consent, grants this permission."""
        return bool(self.mailbox_scope and permission.kind == ROLE and permission.exchange_role)


@dataclass(frozen=True)
class StackSettings:
    portals: tuple
    environment: str
    cloud: Cloud
    secret_rotation_days: int
    protect: bool
    allow_retired_ews: bool
    today: date


def join_url(base_url: str, path: str) -> str:
    return f"{base_url.rstrip('/')}/{path}"


def is_guid(value: object) -> bool:
    if not isinstance(value, str) or len(value) != 36:
        return False
    try:
        uuid.UUID(value)
    except ValueError:
        return False
    return True


@dataclass
class _Problems:
    lines: list = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.lines.append(f"{path}: {message}")


def parse_stack_config(raw: dict, stack: str, today: date, provider_environment: str | None = None) -> StackSettings:
    """Check every key of the namespace at once; raise ConfigError listing all problems.

    `provider_environment` is the azuread provider's cloud (azuread:environment or ARM_ENVIRONMENT), when known:
    the registrations must be created in the cloud whose endpoints the outputs describe.
    """
    problems = _Problems()
    for key in sorted(set(raw) - set(STACK_KEYS)):
        problems.add(key, f"unknown key{_did_you_mean(key, STACK_KEYS)}; known keys: {', '.join(STACK_KEYS)}")

    environment = _string(raw.get("environment"), "environment", problems, default=stack)
    if environment is not None and len(environment) > MAX_ENVIRONMENT_LENGTH:
        problems.add("environment", f"must be at most {MAX_ENVIRONMENT_LENGTH} characters")
    cloud_name = _choice(raw.get("cloud"), "cloud", tuple(CLOUDS), problems, default="global")
    if cloud_name and provider_environment is not None:
        provider_cloud = PROVIDER_ENVIRONMENTS.get(provider_environment.lower())
        if provider_cloud != cloud_name:
            problems.add("cloud", f"is '{cloud_name}' but the azuread provider signs in to '{provider_environment}' "
                                  f"(azuread:environment or ARM_ENVIRONMENT); run `pulumi config set "
                                  f"azuread:environment {CLOUDS[cloud_name].azuread_environment}` so that the "
                                  "registrations are made in the cloud the outputs describe")
    rotation_days = _integer(raw.get("secretRotationDays"), "secretRotationDays", problems, default=90,
                             low=MIN_ROTATION_DAYS, high=MAX_ROTATION_DAYS)
    protect = _boolean(raw.get("protect"), "protect", problems, default=False)
    allow_retired_ews = _boolean(raw.get("allowRetiredEws"), "allowRetiredEws", problems, default=False)

    portals = _portals(raw.get("portals"), problems, today, bool(allow_retired_ews))
    if problems.lines:
        raise ConfigError(problems.lines)
    return StackSettings(tuple(portals), environment, CLOUDS[cloud_name], rotation_days, protect,
                         allow_retired_ews, today)


def _portals(value, problems: _Problems, today: date, allow_retired_ews: bool) -> list[PortalSettings]:
    entries = _json(value, "portals", problems)
    if entries is _INVALID:
        return []
    if entries is _MISSING:
        problems.add("portals", "required: a list with one entry per Intrexx portal, e.g. "
                                "[{name: hr, baseUrl: https://intrexx.example.com/hr}]")
        return []
    if not isinstance(entries, list) or not entries:
        problems.add("portals", f"must be a non-empty list of portal objects, got {_describe(entries)}")
        return []
    portals, seen = [], {}
    for index, entry in enumerate(entries):
        path = f"portals[{index}]"
        if not isinstance(entry, dict):
            problems.add(path, f"must be an object with at least name and baseUrl, got {_describe(entry)}")
            continue
        portal = _portal(entry, path, problems, today, allow_retired_ews)
        if portal is None:
            continue
        if portal.name in seen:
            problems.add(f"{path}.name", f"'{portal.name}' is already used by portals[{seen[portal.name]}]; "
                                         "names must be unique")
        seen.setdefault(portal.name, index)
        portals.append(portal)
    return portals


def _portal(entry: dict, path: str, problems: _Problems, today: date,
            allow_retired_ews: bool) -> PortalSettings | None:
    before = len(problems.lines)
    for key in sorted(set(entry) - set(PORTAL_KEYS), key=str):
        problems.add(f"{path}.{key}",
                     f"unknown key{_did_you_mean(str(key), PORTAL_KEYS)}; known keys: {', '.join(PORTAL_KEYS)}")

    name = entry.get("name")
    if name is None:
        problems.add(f"{path}.name", "required: a short id matching ^[a-z][a-z0-9-]{0,39}$")
    elif not isinstance(name, str) or not NAME_PATTERN.match(name):
        problems.add(f"{path}.name", f"must match ^[a-z][a-z0-9-]{{0,39}}$ (lower-case letter first, then "
                                     f"letters, digits or '-', at most 40), got {_describe(name)}")
    base_url = _base_url(entry.get("baseUrl"), f"{path}.baseUrl", problems)
    api = _choice(entry.get("api"), f"{path}.api", APIS, problems, default="graph")
    access = _choice(entry.get("access"), f"{path}.access", ACCESS_MODES, problems, default="delegated")
    sign_in = _boolean(entry.get("signIn"), f"{path}.signIn", problems, default=False)
    owners = _owners(entry.get("owners"), f"{path}.owners", problems)
    mailbox_scope = _mailbox_scope(entry.get("mailboxScope"), f"{path}.mailboxScope", problems, access)
    redirect_paths = _redirect_paths(entry.get("redirectPaths"), f"{path}.redirectPaths", problems)

    warnings = []
    if api == "ews":
        if today >= EWS_SHUTDOWN and not allow_retired_ews:
            problems.add(f"{path}.api", f"'ews' is switched off in Exchange Online since {EWS_SHUTDOWN}; "
                                        "use 'graph' (or set allowRetiredEws: true to keep a retired registration)")
        warnings.append(_ews_warning(name, today))
    permissions = ()
    if api in APIS and access in ACCESS_MODES:
        permissions = _permissions(entry.get("permissions"), f"{path}.permissions", problems, api, access,
                                   bool(sign_in))
        if access == "application" and not mailbox_scope:
            warnings.append(f"portal '{name}': application access without mailboxScope can read and write every "
                            "mailbox in the tenant; set mailboxScope to limit it with Exchange RBAC for "
                            "Applications")

    if len(problems.lines) > before:
        return None
    redirect_uris = tuple(join_url(base_url, p) for p in redirect_paths)
    if sign_in:
        redirect_uris += (join_url(base_url, SIGN_IN_PATH),)
    for uri in redirect_uris:
        if len(uri) > MAX_REDIRECT_URI_LENGTH:
            problems.add(f"{path}.redirectPaths", f"redirect URI {uri} is longer than Entra's limit of "
                                                  f"{MAX_REDIRECT_URI_LENGTH} characters")
            return None
    return PortalSettings(name, base_url, api, access, permissions, tuple(dict.fromkeys(redirect_uris)),
                          sign_in, owners, mailbox_scope, tuple(warnings))


def _ews_warning(name: str, today: date) -> str:
    if today >= EWS_SHUTDOWN:
        state = f"EWS in Exchange Online was switched off on {EWS_SHUTDOWN}"
    elif today >= EWS_BLOCKED_FROM:
        state = (f"EWS in Exchange Online is blocked since {EWS_BLOCKED_FROM} unless the tenant enables it and lists "
                 "this app in its EWS allow list (Set-OrganizationConfig -EwsAllowedAppIDs), and is switched off "
                 f"for good on {EWS_SHUTDOWN}")
    else:
        state = (f"EWS in Exchange Online is blocked from {EWS_BLOCKED_FROM} unless the tenant's EWS allow list "
                 f"names this app, and is switched off for good on {EWS_SHUTDOWN}")
    return f"portal '{name}' uses api 'ews': {state}; Microsoft Graph replaces it (api: graph)"


def _base_url(value, path: str, problems: _Problems) -> str | None:
    example = "an absolute https URL such as https://intrexx.example.com/portal"
    if value is None:
        problems.add(path, f"required: {example}")
        return None
    if not isinstance(value, str) or not value.strip():
        problems.add(path, f"must be {example}, got {_describe(value)}")
        return None
    reasons = []
    if any(ch.isspace() for ch in value) or "\\" in value:
        reasons.append("must not contain white space or backslashes")
    try:
        parts = urlsplit(value)
        host = parts.hostname
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError as error:
        problems.add(path, f"must be {example}, got {value!r} ({error})")
        return None
    if parts.scheme not in ("https", "http") or not parts.netloc:
        problems.add(path, f"must be {example}, got {value!r}")
        return None
    if parts.scheme == "http" and host not in LOOPBACK_HOSTS:
        reasons.append("must use https (http is allowed only for localhost and 127.0.0.1); Entra refuses http "
                       "redirect URIs for other hosts")
    if parts.username is not None or parts.password is not None or "@" in parts.netloc:
        reasons.append("must not carry credentials (user:password@)")
    if not host:
        reasons.append("must name a host")
    if "*" in value:
        reasons.append("must not contain a wildcard '*'")
    if parts.query or "?" in value:
        reasons.append("must not have a query ('?...')")
    if parts.fragment or "#" in value:
        reasons.append("must not have a fragment ('#...')")
    if any(segment in (".", "..") for segment in parts.path.split("/")):
        reasons.append("must not contain '.' or '..' path segments")
    for reason in reasons:
        problems.add(path, f"{reason}, got {value!r}")
    return None if reasons else value.rstrip("/")


def _redirect_paths(value, path: str, problems: _Problems) -> tuple:
    if value is None:
        return DEFAULT_REDIRECT_PATHS
    if not isinstance(value, list) or not value:
        problems.add(path, f"must be a non-empty list of relative paths such as {DEFAULT_REDIRECT_PATHS[0]}, "
                           f"got {_describe(value)}")
        return ()
    result = []
    for index, item in enumerate(value):
        item_path = f"{path}[{index}]"
        if not isinstance(item, str) or not item.strip():
            problems.add(item_path, f"must be a relative path such as {DEFAULT_REDIRECT_PATHS[0]}, "
                                    f"got {_describe(item)}")
            continue
        reasons = []
        if "://" in item or re.match(r"^[A-Za-z][A-Za-z0-9+.-]*:", item):
            reasons.append("must be relative to baseUrl, not an absolute URL with a scheme")
        elif item.startswith("/"):
            reasons.append("must be relative to baseUrl: drop the leading '/'")
        if any(segment in (".", "..") for segment in item.split("/")):
            reasons.append("must not contain '.' or '..' segments (it may not escape baseUrl)")
        if any(ch in item for ch in "?#*\\") or any(ch.isspace() for ch in item):
            reasons.append("must not contain '?', '#', '*', backslashes or white space")
        for reason in reasons:
            problems.add(item_path, f"{reason}, got {item!r}")
        if not reasons:
            if item in result:
                problems.add(item_path, f"{item!r} is listed twice")
            result.append(item)
    return tuple(result)


def _permissions(value, path: str, problems: _Problems, api: str, access: str, sign_in: bool) -> tuple:
    catalogue = load_catalogue()
    kind = KIND_OF_ACCESS[access]
    if value is None:
        names = list(catalogue.profiles[(api, access)])
    elif not isinstance(value, list) or not value:
        problems.add(path, f"must be a non-empty list of permission names (default for {api} + {access}: "
                           f"{', '.join(catalogue.profiles[(api, access)])}), got {_describe(value)}")
        return ()
    else:
        names = value
    permissions = []
    for index, name in enumerate(names):
        item_path = f"{path}[{index}]"
        if not isinstance(name, str):
            problems.add(item_path, f"must be a permission name, got {_describe(name)}")
            continue
        permission = catalogue.lookup(api, name, kind)
        if permission is None:
            other_kinds = catalogue.kinds_of(api, name)
            if other_kinds:
                wanted = "delegated" if kind == SCOPE else "application"
                problems.add(item_path, f"'{name}' is not {'a' if kind == SCOPE else 'an'} {wanted} permission "
                                        f"of api '{api}', and access '{access}' needs {wanted} permissions")
            else:
                matches = catalogue.close_matches(api, name, kind)
                hint = f"; did you mean {', '.join(matches)}?" if matches else ""
                problems.add(item_path, f"unknown permission '{name}' for api '{api}' with {access} access{hint}")
            continue
        if permission in permissions:
            problems.add(item_path, f"'{name}' is listed twice")
            continue
        permissions.append(permission)
    if sign_in:
        for name in catalogue.sign_in:
            scope = catalogue.lookup(api, name, SCOPE)
            if scope not in permissions:
                permissions.append(scope)
    return tuple(permissions)


def _owners(value, path: str, problems: _Problems) -> tuple:
    if value is None:
        return ()
    if not isinstance(value, list):
        problems.add(path, f"must be a list of object ids (GUIDs), got {_describe(value)}")
        return ()
    owners = []
    for index, owner in enumerate(value):
        if not is_guid(owner):
            problems.add(f"{path}[{index}]", f"must be an object id (GUID such as "
                                             f"00000000-0000-0000-0000-000000000000), got {_describe(owner)}")
        elif owner.lower() not in owners:
            owners.append(owner.lower())
    return tuple(owners)


def _mailbox_scope(value, path: str, problems: _Problems, access) -> MailboxScope | None:
    if value is None:
        return None
    expected = "an object with exactly one of groupId (a GUID) or recipientFilter (an OPATH filter)"
    if not isinstance(value, dict) or len(value) != 1 or not set(value) <= {"groupId", "recipientFilter"}:
        problems.add(path, f"must be {expected}, got {_describe(value)}")
        return None
    if access != "application":
        problems.add(path, "applies to application access only (delegated access already acts for one signed-in "
                           "user); remove it or set access: application")
    if "groupId" in value:
        if not is_guid(value["groupId"]):
            problems.add(f"{path}.groupId", f"must be the object id (GUID) of a mail-enabled security group, "
                                            f"got {_describe(value['groupId'])}")
            return None
        return MailboxScope(group_id=value["groupId"].lower())
    recipient_filter = value["recipientFilter"]
    if not isinstance(recipient_filter, str) or not recipient_filter.strip() or "\n" in recipient_filter:
        problems.add(f"{path}.recipientFilter", "must be a one-line OPATH filter such as "
                                                f"\"Department -eq 'HR'\", got {_describe(recipient_filter)}")
        return None
    return MailboxScope(recipient_filter=recipient_filter.strip())


_MISSING = object()
_INVALID = object()


def _json(value, path: str, problems: _Problems):
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


def _string(value, path: str, problems: _Problems, default: str) -> str | None:
    if value is None:
        return default
    if not isinstance(value, str) or not value.strip() or any(ch in value for ch in "\r\n\t"):
        problems.add(path, f"must be a non-empty one-line string, got {_describe(value)}")
        return None
    return value


def _choice(value, path: str, choices: tuple, problems: _Problems, default: str) -> str | None:
    if value is None:
        return default
    if value not in choices:
        problems.add(path, f"must be one of {' | '.join(choices)}, got {_describe(value)}")
        return None
    return value


def _boolean(value, path: str, problems: _Problems, default: bool) -> bool | None:
    if value is None:
        return default
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    problems.add(path, f"must be true or false, got {_describe(value)}")
    return None


def _integer(value, path: str, problems: _Problems, default: int, low: int, high: int) -> int | None:
    if value is None:
        return default
    number = None
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[+-]?\d{1,9}", value.strip()):
        number = int(value)
    if number is None or not low <= number <= high:
        problems.add(path, f"must be an integer from {low} to {high} (days), got {_describe(value)}")
        return None
    return number


def _did_you_mean(key: str, known: tuple) -> str:
    matches = difflib.get_close_matches(key, known, n=1, cutoff=0.6)
    return f" (did you mean '{matches[0]}'?)" if matches else ""


def _describe(value) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
