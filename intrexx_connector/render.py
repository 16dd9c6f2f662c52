"""The files an Intrexx administrator works from, rendered per portal from the stack outputs.

`portal_files()` decides which files a portal gets and their text; `render_portal()` writes them under
`<out_dir>/<portal>/` and removes the files of ours that no longer apply.

| file | which portals | mode |
| --- | --- | --- |
| `exchange-connector.json` / `m365-connector.json` | every portal, named after its connector | 0600 (the secret) |
| `portal-manager.md` | every portal: the Exchange data source sheet, or the Microsoft 365 connector sheet | 0644 |
| `om.cfg.xml` | sign-in portals: the `<oauth2>` provider block | 0600 (the secret) |
| `ews-allow-list.ps1` | `exchange` portals: puts the app on the tenant's EWS allow list, or takes it off | 0644 |
| `exchange-rbac.ps1` | `m365` service accounts: Exchange RBAC for Applications (unscoped: cleanup only) | 0644 |
"""

import functools
import hashlib
import json
import re
import textwrap
from datetime import date
from importlib import resources
from pathlib import Path
from xml.sax.saxutils import escape

import filelock

from components.clouds import CloudName
from components.contract import PORTAL_NAME_PATTERN, Connector, GrantedPermission, PortalOutput, timestamp
from components.ews import EwsPhase, ews_phase, ews_state
from components.today import today

from .errors import FileError, OutputsError
from .files import make_private_directory, remove_stale_temporaries, write_set_atomic

CONNECTOR_FILES = {Connector.EXCHANGE: "exchange-connector.json", Connector.M365: "m365-connector.json"}
CONNECTOR_FILE = CONNECTOR_FILES[Connector.EXCHANGE]
M365_CONNECTOR_FILE = CONNECTOR_FILES[Connector.M365]
SHEET_FILE = "portal-manager.md"
SIGN_IN_FILE = "om.cfg.xml"
EWS_ALLOW_LIST_FILE = "ews-allow-list.ps1"
RBAC_FILE = "exchange-rbac.ps1"
# Every file render may write: one that a portal no longer gets is removed.
OUR_FILES = (*CONNECTOR_FILES.values(), SHEET_FILE, SIGN_IN_FILE, EWS_ALLOW_LIST_FILE, RBAC_FILE)
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644

SCHEMA_VERSION = 1
NO_USER_SIGN_IN = "app-only, no user sign-in, no refresh token"
OFFICE365_SERVER = "Office365"
MEDIA_GATEWAY_HOST = "localhost"
MEDIA_GATEWAY_PORT = 8087
MEDIA_GATEWAY_SSL_PORT = 9087
MEDIA_GATEWAY_PROTOCOL = "gRPC"
# Exchange limits the names of management scopes and role assignments to 64 characters
# (New-ManagementRoleAssignment -Name: "The maximum length of the name is 64 characters").
MAX_EXCHANGE_NAME = 64
DIGEST_LENGTH = 8
GUID = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
STACK_PLACEHOLDER = "<stack>"

# Sources the scripts and sheets rest on; each is named where it is used.
EWS_CONTROL_DOC = (
    "learn.microsoft.com/exchange/client-developer/exchange-web-services/how-to-control-access-to-ews-in-exchange"
)
SET_ORGANIZATION_CONFIG_DOC = "learn.microsoft.com/powershell/module/exchangepowershell/set-organizationconfig"
APPLICATION_RBAC_DOC = "learn.microsoft.com/exchange/permissions-exo/application-rbac"
GET_RECIPIENT_DOC = "learn.microsoft.com/powershell/module/exchangepowershell/get-recipient"
RECIPIENT_FILTER_DOC = "learn.microsoft.com/powershell/exchange/recipientfilter-properties"
INTREXX_EXCHANGE_CONNECTION_DOC = "help.intrexx.com integration-connector-exchange-connection"
INTREXX_EXCHANGE_OAUTH2_DOC = "help.intrexx.com integration-connector-exchange-authentication-via-oauth2"
INTREXX_M365_REGISTER_DOC = "help.intrexx.com connectors/ms-365/ms365-and-teams-connector-register"
INTREXX_M365_OVERVIEW_DOC = "help.intrexx.com connectors/ms-365/ms365-and-teams-connector-overview-configuration"


class ConnectorKey:
    """Keys of the connector files that are not stack output fields."""

    SCHEMA_VERSION = "schemaVersion"
    CLIENT_SECRET = "clientSecret"
    EXCHANGE_SERVER = "exchangeServer"
    MEDIA_GATEWAY = "mediaGateway"
    HOST = "host"
    PORT = "port"
    SSL_PORT = "sslPort"
    PROTOCOL = "protocol"


# Renders into one output directory take turns (render_portal removes temporary files a killed run left, which
# must not be those of a render running beside it); the lock file stays, as flock-style locks must.
RENDER_LOCK = ".intrexx-connector.lock"
RENDER_LOCK_TIMEOUT = 60.0


def render_all(portals: list[PortalOutput], out_dir: Path, day: date | None = None) -> dict[str, list[Path]]:
    day = day or today()
    return {portal.name: render_portal(portal, out_dir, day) for portal in portals}


def render_portal(portal: PortalOutput, out_dir: Path, day: date | None = None) -> list[Path]:
    """Write the portal's files under `out_dir/<portal>/`, all or none (files.write_set_atomic), in a 0700
    directory; files of ours that no longer apply, and temporary files a killed run left, are removed."""
    if not PORTAL_NAME_PATTERN.match(portal.name):
        # The output contract refuses such names already; a name is a path here, so check again where it is used.
        raise OutputsError(f"{portal.name!r} is not a portal name ({PORTAL_NAME_PATTERN.pattern})")
    directory = Path(out_dir) / portal.name
    files = portal_files(portal, directory, day or today())
    make_private_directory(directory)
    try:
        with filelock.FileLock(Path(out_dir) / RENDER_LOCK, timeout=RENDER_LOCK_TIMEOUT):
            remove_stale_temporaries(directory)
            write_set_atomic({directory / name: content for name, content in files.items()})
            for stale in OUR_FILES:
                if stale not in files:
                    try:
                        (directory / stale).unlink(missing_ok=True)
                    except OSError as error:
                        raise FileError(f"cannot remove the outdated {directory / stale}: {error.strerror}") from None
    except filelock.Timeout:
        raise FileError(
            f"another render is writing into {out_dir} (it holds {RENDER_LOCK}); run again when it has finished"
        ) from None
    except OSError as error:
        raise FileError(f"cannot lock {Path(out_dir) / RENDER_LOCK}: {error.strerror}") from None
    return [directory / name for name in files]


def portal_files(portal: PortalOutput, directory: Path, day: date) -> dict[str, tuple[str, int]]:
    """Which files the portal gets, by name: (text, mode). `directory` is where they will be written (the sheet
    names the secret's file by its path); `day` is the render date (the EWS phase of the scripts and sheets)."""
    connector_file = connector_file_name(portal)
    files = {connector_file: (connector_json(portal), SECRET_MODE)}
    if portal.connector is Connector.EXCHANGE:
        files[SHEET_FILE] = (exchange_sheet(portal, directory / connector_file, day), PUBLIC_MODE)
        files[EWS_ALLOW_LIST_FILE] = (ews_allow_list_script(portal, day), PUBLIC_MODE)
    else:
        files[SHEET_FILE] = (m365_sheet(portal, directory / connector_file), PUBLIC_MODE)
        if not portal.delegated:
            files[RBAC_FILE] = (exchange_rbac_script(portal), PUBLIC_MODE)
    if portal.sign_in:
        files[SIGN_IN_FILE] = (oauth2_element(portal) + "\n", SECRET_MODE)
    return files


def connector_file_name(portal: PortalOutput) -> str:
    return CONNECTOR_FILES[portal.connector]


def exchange_server(portal: PortalOutput) -> str:
    """What goes into the Exchange data source's server field: `Office365` for Microsoft 365 in the global cloud
    ("Wenn Sie Microsoft Office 365 verwenden, tragen Sie hier einfach Office365 ein", help.intrexx.com
    integration-connector-exchange-connection), else the cloud's EWS endpoint."""
    if portal.cloud is CloudName.GLOBAL or not portal.ews_url:
        return OFFICE365_SERVER
    return portal.ews_url


def sign_in_provider_name(portal: PortalOutput) -> str:
    return f"entra-{portal.name}"


# exchange-connector.json, m365-connector.json -----------------------------------------------------------------

# Connector file schema 1 (CHANGELOG.md): fields of the stack output copied into the file, in this order around
# the file's own keys. `exchangeServer` and `mediaGateway` (the MediaGateway is the Exchange connector's) and
# `ewsUrl` appear for connector exchange only; `signInRedirectUri` and `mailboxScope` where the portal has them.
CONNECTOR_IDENTITY = ("portal", "environment", "cloud", "connector", "tenantId", "clientId")
CONNECTOR_ENDPOINTS = (
    "authority",
    "authorityHost",
    "tokenEndpoint",
    "authorizeEndpoint",
    "deviceCodeEndpoint",
    "resource",
    "scopes",
    "api",
    "access",
    "redirectUris",
)
CONNECTOR_OPTIONAL = ("ewsUrl", "signInRedirectUri", "mailboxScope")
CONNECTOR_LIFETIME = ("secretExpiresAt", "secretRotatesAt", "permissions")


def connector_json(portal: PortalOutput) -> str:
    output = portal.to_output()
    document: dict[str, object] = {ConnectorKey.SCHEMA_VERSION: SCHEMA_VERSION}
    document.update({key: output[key] for key in CONNECTOR_IDENTITY})
    document[ConnectorKey.CLIENT_SECRET] = _secret(portal)
    document.update({key: output[key] for key in CONNECTOR_ENDPOINTS})
    if portal.connector is Connector.EXCHANGE:
        document[ConnectorKey.EXCHANGE_SERVER] = exchange_server(portal)
    document.update({key: output[key] for key in CONNECTOR_OPTIONAL if key in output})
    if portal.connector is Connector.EXCHANGE:
        document[ConnectorKey.MEDIA_GATEWAY] = {
            ConnectorKey.HOST: MEDIA_GATEWAY_HOST,
            ConnectorKey.PORT: MEDIA_GATEWAY_PORT,
            ConnectorKey.SSL_PORT: MEDIA_GATEWAY_SSL_PORT,
            ConnectorKey.PROTOCOL: MEDIA_GATEWAY_PROTOCOL,
        }
    document.update({key: output[key] for key in CONNECTOR_LIFETIME})
    return json.dumps(document, indent=2) + "\n"


def _secret(portal: PortalOutput) -> str:
    if not portal.client_secret:
        raise OutputsError(
            f"{portal.name}: rendering needs the client secret; read the outputs with "
            "`pulumi stack output --json --show-secrets`"
        )
    return portal.client_secret


# om.cfg.xml ---------------------------------------------------------------------------------------------------


def oauth2_element(portal: PortalOutput, indent: str = "", step: str = "   ", newline: str = "\n") -> str:
    """The `<oauth2 name="entra-<portal>">` element for om.cfg; lines after the first start with `indent`.

    With `auth-protocol="id_token"` the user comes back with an ID token posted to the portal (form_post), whose
    claims carry the e-mail address: United Planet's OpenID Connect sample leaves `auth-user-info-url` empty for
    exactly this protocol (github.com/UnitedPlanet/intrexx-sample-oauth2-oidc-login-module README:
    `auth-protocol="id_token"` ... `auth-user-info-url=""`)."""
    provider = {
        "auth-grant-type": "authorization_code",
        "auth-scheme": "header",
        "auth-protocol": "id_token",
        "auth-requires-nonce": "true",
        "auth-access-token-url": portal.token_endpoint,
        "auth-user-auth-url": portal.authorize_endpoint,
        "auth-pub-keys-src": portal.jwks_uri,
        "auth-user-info-url": "",
        "auth-scope": "openid email",
        "auth-client-id": portal.client_id,
        "auth-client-secret": _secret(portal),
        "auth-redirect-url": portal.sign_in_redirect_uri or "",
        "auth-provider-prompt": "select_account",
        "auth-provider-login-hint": "",
    }
    lines = [f"<oauth2 name={_xml_attr(sign_in_provider_name(portal))}>", f"{step}<provider"]
    lines += [f"{step * 2}{name}={_xml_attr(value)}" for name, value in provider.items()]
    lines += [
        f"{step}/>",
        f'{step}<mapping db-field-name="emailBiz" provider-claim-fieldname="email"/>',
        f"{step}<additional-redirect-params>",
        f'{step * 2}<redirect-param key="response_type" value="id_token"/>',
        f'{step * 2}<redirect-param key="response_mode" value="form_post"/>',
        f"{step}</additional-redirect-params>",
        "</oauth2>",
    ]
    return lines[0] + "".join(f"{newline}{indent}{line}" for line in lines[1:])


def _xml_attr(value: str) -> str:
    return '"' + escape(str(value), {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"}) + '"'


# PowerShell helpers -------------------------------------------------------------------------------------------


def ps_quote(value: str) -> str:
    """A PowerShell single-quoted string; PowerShell also ends such strings at the typographic quotes."""
    return "'" + re.sub("(['\u2018\u2019\u201a\u201b])", r"\1\1", str(value)) + "'"


def _comment(text: str, width: int = 110) -> list[str]:
    """`text` as PowerShell comment lines; a line break inside a value (a display name, a filter) cannot end the
    comment, because textwrap turns every whitespace character into a space."""
    return textwrap.wrap(text, width=width, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)


def _fill(template: str, **values: str) -> str:
    """`template` with every `@NAME@` replaced in one pass (a value is never scanned again); PowerShell's braces
    stay as they are, which str.format would not allow."""
    placeholders = set(re.findall(r"@([A-Z_]+)@", template))
    assert placeholders == set(values), f"placeholders {sorted(placeholders)} != values {sorted(values)}"
    return re.sub(r"@([A-Z_]+)@", lambda match: values[match.group(1)], template)


@functools.cache
def _template(name: str) -> str:
    """A PowerShell template shipped in `intrexx_connector/templates/` (package data), with `@NAME@` placeholders."""
    return resources.files("intrexx_connector").joinpath("templates", name).read_text(encoding="utf-8")


def _connect_line(portal: PortalOutput) -> str:
    return (
        "Connect-ExchangeOnline -UserPrincipalName <admin UPN> -ExchangeEnvironmentName "
        f"{portal.cloud_record.exchange_powershell_environment}"
    )


# ews-allow-list.ps1 -------------------------------------------------------------------------------------------

# What the allow list means for an exchange portal in each EWS phase; the dates themselves are worded by
# components.ews.ews_state only.
EWS_ALLOW_LIST_ADVICE = {
    EwsPhase.OPEN: (
        "Until EWS is blocked, the allow list is optional for this portal: the connector works without it. Run the "
        "script before that day so that it keeps working."
    ),
    EwsPhase.ALLOW_LIST_REQUIRED: (
        "The Connector for Microsoft Exchange will not work for this portal without it: this app must be on the "
        "tenant's EWS allow list, with EwsEnabled $true."
    ),
    EwsPhase.RETIRED: (
        "EWS is off for good, and the allow list no longer lets anything through: this portal only exists because "
        "the stack sets allowRetiredEws: true. Take the app off the list with -Remove and move the portal to "
        "connector: m365."
    ),
}


def ews_allow_list_script(portal: PortalOutput, day: date) -> str:
    """`ews-allow-list.ps1`: puts this app on the tenant's EWS allow list (or takes it off with -Remove) without
    touching any other application on it.

    Facts it rests on: `-EwsAllowedAppIDs` is a string, "To specify multiple values, use a comma-separated list of
    GUIDs", "When EwsEnabled is $true, only applications specified by this parameter can access EWS", "To remove all
    allowed app IDs and stop restricting access by app ID, use the value $null", "To retrieve the list of configured
    apps, use the RetrieveEwsOperationAccessPolicy switch on the Get-OrganizationConfig cmdlet"
    (Set-OrganizationConfig, office-docs-powershell PR 13643); changes "can take up to 24 hours to take effect"
    (EWS_CONTROL_DOC). Setting the parameter replaces the list: there is no `@{Add=...}` form for it.
    """
    phase = ews_phase(day)
    header = [
        *_comment(
            f"EWS allow list: {portal.display_name}, portal {portal.name}, application (client) id {portal.client_id}."
        ),
        f"# Written by `python -m intrexx_connector render` on {day.isoformat()}.",
        "#",
        *_comment(f"{ews_state(day)}. {EWS_ALLOW_LIST_ADVICE[phase]}"),
        "#",
        "# Run it in Exchange Online PowerShell as an Exchange Administrator:",
        f"#   {_connect_line(portal)}",
        f"#   ./{EWS_ALLOW_LIST_FILE}              # puts this app on the tenant's EWS allow list",
        f"#   ./{EWS_ALLOW_LIST_FILE} -EnableEws   # the same, and sets EwsEnabled $true if it is not (see below)",
        f"#   ./{EWS_ALLOW_LIST_FILE} -Remove      # takes this app off the list (portal decommissioned)",
        "#",
        *_comment(
            "EwsAllowedAppIDs is one string of comma-separated GUIDs, and Set-OrganizationConfig -EwsAllowedAppIDs "
            "REPLACES the whole list; with EwsEnabled $true only the applications on it may use EWS. Writing just "
            "this app's id would cut off every other application on the list. So the script reads the list "
            "(Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy: the list is only returned with that "
            "switch), adds or drops this app's id alone (GUIDs compared case-insensitively), keeps each other id "
            "once, and writes the whole list back only when it changed. It prints the list before and after; a "
            "second run changes nothing."
        ),
        *_comment(
            "EwsEnabled: when it is not $true yet, the script writes the list but leaves EwsEnabled alone, because "
            "$true restricts EWS for the whole tenant to the listed applications; -EnableEws sets it once every "
            "application the tenant needs is on the list. -Remove never writes an empty list (it explains the "
            "choices instead) and never changes EwsEnabled."
        ),
        *_comment(
            "A tenant that also uses EwsApplicationAccessPolicy EnforceAllowList must keep the portal's user agent "
            "in EwsAllowList too: both checks must pass (Microsoft: Control access to EWS in Exchange)."
        ),
        "# Sources:",
        f"#   {SET_ORGANIZATION_CONFIG_DOC} (-EwsAllowedAppIDs, -EwsEnabled)",
        f"#   {EWS_CONTROL_DOC}",
        "",
    ]
    return "\n".join(header) + "\n" + _fill(_template("ews-allow-list.ps1"), APP_ID=ps_quote(portal.client_id))


# exchange-rbac.ps1 --------------------------------------------------------------------------------------------


def exchange_name(*parts: str) -> str:
    """`parts` joined by `-`, shortened with a hash suffix to fit Exchange's 64 characters."""
    name = "-".join(parts)
    if len(name) <= MAX_EXCHANGE_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:DIGEST_LENGTH]
    return f"{name[: MAX_EXCHANGE_NAME - DIGEST_LENGTH - 1]}-{digest}"


def scope_name(portal: PortalOutput) -> str:
    return exchange_name("intrexx", portal.name, portal.environment)


def role_assignment_name(portal: PortalOutput, permission: GrantedPermission) -> str:
    return exchange_name("intrexx", portal.name, portal.environment, permission.name)


def assignment_prefix(portal: PortalOutput) -> str:
    """What every role assignment name of this portal starts with, however exchange_name shortened it."""
    prefix = "-".join(("intrexx", portal.name, portal.environment)) + "-"
    return prefix[: MAX_EXCHANGE_NAME - DIGEST_LENGTH - 1]


def exchange_rbac_script(portal: PortalOutput) -> str:
    """`exchange-rbac.ps1` for an `m365` service account (application access).

    Scoped portals: the script creates what is missing (service principal pointer, management scope, role
    assignments), reconciles the portal's role assignments and tests the result; `-Remove` removes the portal's
    assignments and its scope. Unscoped portals get only that cleanup: a dropped mailboxScope leaves a scope and
    assignments behind in Exchange. Facts: APPLICATION_RBAC_DOC (New-ServicePrincipal, New-ManagementScope,
    New-ManagementRoleAssignment -App <ObjectId>, MemberOfGroup with the distinguished name, nested groups out of
    scope, AutoDiscover, the 30 minutes to 2 hours cache, Exchange Administrator or Organization Management),
    GET_RECIPIENT_DOC (GroupMailbox) and RECIPIENT_FILTER_DOC (ExternalDirectoryObjectId, MemberOfGroup).
    """
    if portal.delegated:
        raise ValueError(f"{portal.name}: only service accounts (access: application) get {RBAC_FILE}")
    scope = portal.mailbox_scope
    wanted = [(role_assignment_name(portal, p), p.exchange_role or "") for p in portal.rbac_permissions]
    usage = [
        f"#   {_connect_line(portal)}",
        f"#   ./{RBAC_FILE} [-Mailbox user@example.com]   # apply, then test (for one mailbox)",
        f"#   ./{RBAC_FILE} -Remove                       # cleanup: the portal's role assignments and its scope",
    ]
    if scope is None:
        what = [
            *_comment(
                "This portal is a service account WITHOUT mailboxScope: Entra admin consent lets the app reach every "
                "mailbox of the tenant, and Exchange RBAC for Applications is not used. So this script only offers "
                "the cleanup: if the portal had a mailboxScope before, its management scope and role assignments "
                "are still in Exchange (they widen nothing, grants add up, but they are stale). Without -Remove it "
                "only lists what -Remove would remove."
            ),
        ]
        usage = [usage[0], f"#   ./{RBAC_FILE}{' ' * 39}# lists what -Remove would remove", usage[2]]
    else:
        target = (
            f"the members of the group {scope.group_id}"
            if scope.group_id
            else f"the mailboxes matching {scope.recipient_filter}"
        )
        what = [
            *_comment(
                f"Lets the app reach only {target}, through Exchange RBAC for Applications: a service principal "
                f"pointer, the management scope {scope_name(portal)} and one role assignment per permission. The app "
                "holds no tenant-wide Entra consent for these permissions: such consent would make the scope "
                "pointless, because grants add up."
            ),
            *_comment(
                "Reconciles: role assignments of this portal (named "
                f"{assignment_prefix(portal)}... and assigned to this app) that the configuration no longer wants are "
                "removed; any other assignment is left alone. Running it again changes nothing."
            ),
        ]
    header = [
        *_comment(f"Exchange Online RBAC for Applications: {portal.display_name}, portal {portal.name}."),
        "# Written by `python -m intrexx_connector render`. Run it after `pulumi up` in Exchange Online PowerShell",
        "# as an Exchange Administrator (or a member of Organization Management):",
        *usage,
        "#",
        *what,
        *_comment(
            "Limits (Microsoft): members of nested groups are out of scope, only direct members count; AutoDiscover "
            "cannot be used by apps with RBAC application roles; "
            "Exchange caches app permissions for 30 minutes to 2 hours, so a change can take that long to apply "
            "(Test-ServicePrincipalAuthorization bypasses the cache)."
        ),
        "# Sources:",
        *[f"#   {source}" for source in (APPLICATION_RBAC_DOC, GET_RECIPIENT_DOC, RECIPIENT_FILTER_DOC)],
        "",
        "[CmdletBinding()]",
        "param(",
        "    [string]$Mailbox = '',",
        "    [switch]$Remove",
        ")",
        "",
    ]
    functions = _fill(
        _template("exchange-rbac.ps1"),
        APP_ID=ps_quote(portal.client_id),
        OBJECT_ID=ps_quote(portal.service_principal_object_id),
        DISPLAY_NAME=ps_quote(portal.display_name),
        SCOPE_NAME=ps_quote(scope_name(portal)),
        ASSIGNMENT_PREFIX=ps_quote(assignment_prefix(portal)),
        WANTED="\n".join(f"    {ps_quote(name)} = {ps_quote(role)}" for name, role in wanted),
    )
    if scope is None:
        return "\n".join(header) + "\n" + functions + "\n" + _template("exchange-rbac-unscoped.ps1")
    if scope.group_id:
        if not GUID.match(scope.group_id):
            raise OutputsError(f"{portal.name}: mailboxScope.groupId must be a GUID, got {scope.group_id!r}")
        group_filter = _fill(_template("exchange-rbac-group.ps1"), GROUP_ID=scope.group_id).rstrip("\n")
    else:
        group_filter = f"$filter = {ps_quote(scope.recipient_filter or '')}"
    return (
        "\n".join(header) + "\n" + functions + "\n" + _fill(_template("exchange-rbac-scoped.ps1"), FILTER=group_filter)
    )


# portal-manager.md --------------------------------------------------------------------------------------------


def _cell(value) -> str:
    return str(value).replace("|", "\\|")


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| field | value |", "| --- | --- |"] + [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]


def _document(title: str, intro: str, sections: list[tuple[str, list[str]]]) -> str:
    lines = [f"# {title}", "", intro]
    for number, (heading, body) in enumerate(sections, start=1):
        lines += ["", f"## {number}. {heading}", "", *body]
    return "\n".join(lines) + "\n"


def _redirect_section(portal: PortalOutput, lead: str) -> tuple[str, list[str]]:
    return (
        "Redirect URIs",
        [
            lead,
            "",
            *[f"- `{uri}`" for uri in portal.redirect_uris],
            "",
            "If Intrexx shows or sends another one (`http` behind a TLS proxy, a trailing slash, another path), Entra "
            "answers AADSTS50011: add the path to `redirectPaths` in the stack configuration and run `pulumi up`.",
        ],
    )


def _rotation_section(portal: PortalOutput, connector_file: Path, where: str) -> tuple[str, list[str]]:
    """The secret's lifetime and the exact steps when it rotates. om.cfg holds the secret too: sign-in portals
    also need `apply` and a restart of the portal server ("the portal server must be restarted after a change",
    github.com/UnitedPlanet/intrexx-sample-oauth2-oidc-login-module README)."""
    stack = STACK_PLACEHOLDER
    steps = [
        f"1. `python -m intrexx_connector render --stack {stack}` writes the new secret into "
        f"`build/{stack}/{portal.name}/{connector_file.name}`, field `{ConnectorKey.CLIENT_SECRET}` (this sheet's "
        f"copy is `{connector_file}`), and renders this sheet again.",
        f"2. {where}",
    ]
    if portal.sign_in:
        steps.append(
            f"3. `python -m intrexx_connector apply --stack {stack} --portal {portal.name} --portal-dir <portal "
            "directory>` puts the new secret into `internal/cfg/om.cfg` (it holds the secret for the portal "
            "sign-in); then restart the portal server."
        )
    return (
        "Client secret expiry and rotation",
        [
            f"- The client secret expires at `{timestamp(portal.secret_expires_at)}`.",
            f"- Next rotation: `{timestamp(portal.secret_rotates_at)}`. The first `pulumi up --stack {stack}` on or "
            "after that date adds a new secret (the weekly rotation pipeline runs it). Then:",
            "",
            *[f"   {step}" for step in steps],
            "",
            f"- The secret this one replaces stays valid until the next rotation (`{portal.secret_rotates_at}`): "
            'switch Intrexx before then (README, "Secret rotation").',
        ],
    )


def _sign_in_section(portal: PortalOutput) -> tuple[str, list[str]]:
    provider = sign_in_provider_name(portal)
    return (
        "Portal sign-in with Entra ID",
        [
            f'`{SIGN_IN_FILE}` beside this sheet holds the `<oauth2 name="{provider}">` provider for '
            "`internal/cfg/om.cfg` (with the secret, readable by its owner only). Merge it with",
            "",
            f"    python -m intrexx_connector apply --stack {STACK_PLACEHOLDER} --portal {portal.name} "
            "--portal-dir <portal directory>",
            "",
            "then declare the IntrexxOAuth2 login module in `internal/cfg/LucyAuth.cfg`, set "
            '`<binding scope="web" auth-type="IntrexxOAuth2"/>` in om.cfg\'s `<authentication>` and restart the '
            "portal server. A login button opens "
            f"`?urn:schemas-unitedplanet-de:ixservlet:name=oAuth2LoginIxServlet&oauthProvider={provider}`.",
        ],
    )


def _oauth2_rows(portal: PortalOutput, connector_file: Path) -> list[tuple[str, str]]:
    return [
        ("Tenant (directory) ID", f"`{portal.tenant_id}`"),
        ("Client ID", f"`{portal.client_id}`"),
        (
            "Client secret",
            f"in `{connector_file}`, field `{ConnectorKey.CLIENT_SECRET}` (readable by its owner only)",
        ),
        ("Authority", f"`{portal.authority}`"),
        ("Token endpoint", f"`{portal.token_endpoint}`"),
        ("Scopes", " ".join(f"`{scope}`" for scope in portal.scopes)),
    ]


def exchange_sheet(portal: PortalOutput, connector_file: Path, day: date) -> str:
    """The Exchange data source fill-in sheet, in the order of the Portal Manager's dialogs; it names the
    secret's file, not the secret. The connection tab's fields are Intrexx's ("Connection name", "Host, Port, Time
    zone", "use gRPC instead of CORBA (classic)", "Use SSL", "SSL port", "Password / Change password",
    INTREXX_EXCHANGE_CONNECTION_DOC)."""
    sections: list[tuple[str, list[str]]] = []
    sections.append(
        (
            "Before you start",
            [
                "- The Connector for Microsoft Exchange talks to Exchange Online through the **Intrexx "
                "MediaGateway**, a separate service that must be installed and running first: it listens on port "
                f"`{MEDIA_GATEWAY_PORT}`, or `{MEDIA_GATEWAY_SSL_PORT}` with SSL, and has its own password, set at "
                "its installation. The connector must be licensed.",
                "- Each mailbox user's rights come from Microsoft 365: \"Which specific permissions the portal user "
                'has on Microsoft Exchange Online is controlled via the Microsoft 365 permissions management" '
                "(Intrexx). This registration only lets Intrexx act for a user who signed in (delegated, per user).",
                f'- {ews_state(day)}: see section "EWS allow list" below.',
            ],
        )
    )
    sections.append(
        (
            "General (connection to the MediaGateway)",
            _table(
                [
                    (
                        "Connection name",
                        f"your choice, e.g. `Exchange Online {portal.name} ({portal.environment})`: applications "
                        "select the data source by this name",
                    ),
                    ("Host", f"the host the MediaGateway runs on (`{MEDIA_GATEWAY_HOST}` when on the portal server)"),
                    ("Port", f"`{MEDIA_GATEWAY_PORT}`"),
                    ("Time zone", "the MediaGateway server's time zone"),
                    ("use gRPC instead of CORBA (classic)", f"on ({MEDIA_GATEWAY_PROTOCOL}, recommended by Intrexx)"),
                    (
                        "Use SSL",
                        'on: "encrypts the communication between the Media Gateway Server and the Exchange Server" '
                        "(Intrexx)",
                    ),
                    (
                        "SSL port",
                        f'`{MEDIA_GATEWAY_SSL_PORT}`: "the port on the Media Gateway server via which the encrypted '
                        'connection should take place" (Intrexx)',
                    ),
                    (
                        "Password / Change password",
                        "the MediaGateway password set at its installation; change the default password once the "
                        "data source exists",
                    ),
                ]
            ),
        )
    )
    server_note = f"`{exchange_server(portal)}`"
    if portal.cloud is not CloudName.GLOBAL:
        server_note += f" (the EWS endpoint of Exchange Online in the {portal.cloud} cloud)"
    else:
        server_note += " (Intrexx's name for Exchange Online in Microsoft 365)"
    sections.append(
        (
            "Exchange account",
            _table(
                [
                    ("Server URL", server_note),
                    ("Mailbox user", "the mailbox user whose mailbox this data source reads (user principal name)"),
                    ("E-mail", "that mailbox's primary e-mail address"),
                ]
            ),
        )
    )
    sections.append(
        (
            "OAuth2",
            [
                *_table(_oauth2_rows(portal, connector_file)),
                "",
                "Access: delegated (each mailbox user signs in once, below).",
            ],
        )
    )
    sections.append(_redirect_section(portal, "Entra ID accepts these redirect URIs for this app:"))
    page = portal.cloud_record.device_login_page
    sections.append(
        (
            "Request MS365 Refresh Token",
            [
                "For each mailbox user, in the data source:",
                "",
                "1. Click **Request MS365 Refresh Token**.",
                "2. Copy the code Intrexx shows.",
                f"3. Open {page} (or the verification page Intrexx shows, if it names another) and enter the code.",
                "4. Sign in as the mailbox user and accept.",
                "5. Back in the Portal Manager, finish the dialog: Intrexx keeps the refresh token in the "
                "MediaGateway.",
                "",
                "The app allows public client flows for this device code sign-in (otherwise Entra answers "
                "AADSTS7000218); a Conditional Access policy that blocks the device code flow stops it.",
                "",
                "Reminder: an Intrexx refresh token lasts about three months. Request each user's token again about "
                "every three months (`python -m intrexx_connector status` reminds you).",
            ],
        )
    )
    sections.append(
        (
            "EWS allow list",
            [
                f"{ews_state(day)}. {EWS_ALLOW_LIST_ADVICE[ews_phase(day)]}",
                "",
                f"`{EWS_ALLOW_LIST_FILE}` beside this sheet puts this app (`{portal.client_id}`) on the tenant's EWS "
                "allow list and leaves every other application on it alone: an Exchange Administrator runs it in "
                "Exchange Online PowerShell (its header has the commands; `-Remove` when the portal is "
                "decommissioned). Do not set `Set-OrganizationConfig -EwsAllowedAppIDs` to this id by hand: the "
                "parameter replaces the whole list and would cut off every other application on it.",
                "",
                "Move this portal to Microsoft Graph: the Microsoft 365 connector (`connector: m365`, README "
                '"Migrating from EWS to Microsoft Graph").',
            ],
        )
    )
    sections.append(
        _rotation_section(
            portal,
            connector_file,
            "Portal Manager: open this data source and enter the new client secret in its OAuth2 settings.",
        )
    )
    if portal.sign_in:
        sections.append(_sign_in_section(portal))
    return _document(
        f"{portal.display_name}: Connector for Microsoft Exchange",
        "Fill-in sheet for the Intrexx Portal Manager: Integration → consume data → Connector for Microsoft "
        f"Exchange → New data source. Cloud `{portal.cloud}`, api `{portal.api}`, access `{portal.access}`. The "
        "client secret is not in this sheet.",
        sections,
    )


def registration_name(portal: PortalOutput) -> str:
    """A name for Intrexx's Microsoft 365 registration: "The name may only contain the letters [a-zA-Z] and the
    numbers [0-9]" (INTREXX_M365_REGISTER_DOC)."""
    parts = re.split(r"[^A-Za-z0-9]+", f"intrexx {portal.name} {portal.environment}")
    return "".join(part[:1].upper() + part[1:] for part in parts if part)


def m365_sheet(portal: PortalOutput, connector_file: Path) -> str:
    """The Connector for Microsoft 365 and Teams sheet: the registration's values and, for user accounts, the
    redirect URI and how users sign in; for service accounts, what the app reaches. Intrexx's words from
    INTREXX_M365_REGISTER_DOC and INTREXX_M365_OVERVIEW_DOC; the stored copies of those pages end early, so where
    Intrexx asks for the client secret is our assumption (the registration's next dialog)."""
    delegated = portal.delegated
    sections: list[tuple[str, list[str]]] = []
    redirect = (
        'Intrexx shows it here; it must be one of the URIs in section "Redirect URIs"'
        if delegated
        else "not used: a service account signs in with client credentials, no redirect"
    )
    sections.append(
        (
            "New registration - General",
            _table(
                [
                    ("Name", f"`{registration_name(portal)}` (letters and digits only, unique per registration)"),
                    ("Redirect URI", redirect),
                    (
                        "User schema field for MS365 User Principal Name",
                        "the Intrexx user field holding the user's Microsoft 365 sign-in name, usually the business "
                        "e-mail address",
                    ),
                ]
            ),
        )
    )
    sections.append(
        (
            "Values from Microsoft Entra ID",
            [
                *_table([*_oauth2_rows(portal, connector_file), ("Microsoft Graph", f"`{portal.graph_endpoint}`")]),
                "",
                "Intrexx asks for the client ID and the tenant ID; enter the client secret where the registration "
                "asks for it.",
            ],
        )
    )
    if delegated:
        scopes = ", ".join(f"`{p.name}`" for p in portal.permissions if p.delegated) or "none"
        public = (
            "Public client flows are on (the device code sign-in that `verify --device-code` uses)."
            if portal.public_client
            else "Public client flows are off: the users sign in through the browser."
        )
        sections.append(
            (
                "How users sign in (user accounts)",
                [
                    "Choose the login in the connector (Intrexx's options for user accounts):",
                    "",
                    "- **Login to Microsoft 365 via the browser**: a browser window opens when a portal user's action "
                    "needs Microsoft 365 data, and the user signs in there; the portal's pop-ups must not be blocked.",
                    "- **Login via a static user account**: an Intrexx user is assigned one (impersonal) Microsoft 365 "
                    "user, and every access runs as that user.",
                    "",
                    f"Delegated permissions, consented for all users: {scopes}. Each user reaches only what their own "
                    f"Microsoft 365 permissions allow. {public}",
                ],
            )
        )
        sections.append(
            _redirect_section(
                portal,
                "The redirect URI Intrexx's registration dialog shows must be one of these, which Entra ID accepts "
                "for this app:",
            )
        )
    else:
        roles = [p for p in portal.permissions if not p.delegated]
        names = ", ".join(f"`{p.name}`" for p in roles) or "none"
        if portal.mailbox_scope is not None:
            scope = portal.mailbox_scope
            target = (
                f"members of the group `{scope.group_id}` (direct members only)"
                if scope.group_id
                else f"mailboxes matching `{scope.recipient_filter}`"
            )
            reach = [
                f"Scoped: only the {target}, through Exchange RBAC for Applications (management scope "
                f"`{scope_name(portal)}`), with {names}.",
                "",
                f"Until `{RBAC_FILE}` (beside this sheet) has run in Exchange Online PowerShell, the app reaches no "
                "mailbox; Exchange then takes 30 minutes to 2 hours to apply it.",
            ]
        else:
            reach = [
                f"Tenant-wide: every mailbox of the tenant, by admin consent for {names}. Set `mailboxScope` in the "
                "stack configuration to limit it.",
                "",
                f"`{RBAC_FILE}` beside this sheet only cleans up: run it with `-Remove` if this portal had a "
                "mailboxScope before.",
            ]
        sections.append(
            (
                "What the app can reach (service account)",
                [
                    "Login in the connector: **Login via a service account** (application permissions, no user signs "
                    "in).",
                    "",
                    *reach,
                ],
            )
        )
    sections.append(
        _rotation_section(
            portal,
            connector_file,
            "Portal Manager: open this registration of the Connector for Microsoft 365 and Teams and enter the new "
            "client secret.",
        )
    )
    if portal.sign_in:
        sections.append(_sign_in_section(portal))
    kind = "user accounts" if delegated else "service account"
    return _document(
        f"{portal.display_name}: Connector for Microsoft 365 and Teams",
        "Fill-in sheet for the Intrexx Portal Manager: Integration → Collaboration → Connector for Microsoft 365 and "
        f"Teams → New application registration. Cloud `{portal.cloud}`, api `{portal.api}`, access "
        f"`{portal.access}` ({kind}). The client secret is not in this sheet.",
        sections,
    )
