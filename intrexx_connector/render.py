"""The files an Intrexx administrator works from, rendered per portal from the stack outputs.

Under `<out_dir>/<portal>/`: `exchange-connector.json` (everything, with the secret, 0600), `portal-manager.md`
(the Portal Manager fill-in sheet, no secret), `om.cfg.xml` (sign-in portals: the `<oauth2>` provider block,
with the secret, 0600) and `exchange-rbac.ps1` (application portals with a mailbox scope, no secret).
"""

import hashlib
import json
import re
from pathlib import Path
from xml.sax.saxutils import escape

import filelock

from components.contract import PORTAL_NAME_PATTERN, GrantedPermission, PortalOutput, timestamp
from components.ews import EWS_BLOCKED_FROM, EWS_SHUTDOWN

from .errors import FileError, OutputsError
from .files import make_private_directory, remove_stale_temporaries, write_set_atomic

CONNECTOR_FILE = "exchange-connector.json"
SHEET_FILE = "portal-manager.md"
SIGN_IN_FILE = "om.cfg.xml"
RBAC_FILE = "exchange-rbac.ps1"
SECRET_MODE = 0o600
PUBLIC_MODE = 0o644

SCHEMA_VERSION = 1
NO_USER_SIGN_IN = "app-only, no user sign-in, no refresh token"
OFFICE365_SERVER = "Office365"
MEDIA_GATEWAY_HOST = "localhost"
MEDIA_GATEWAY_PORT = 8087
MEDIA_GATEWAY_SSL_PORT = 9087
MEDIA_GATEWAY_PROTOCOL = "gRPC"
# Exchange limits the names of management scopes and role assignments to 64 characters.
MAX_EXCHANGE_NAME = 64


class ConnectorKey:
    """Keys of exchange-connector.json that are not stack output fields."""

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


def render_all(portals: list[PortalOutput], out_dir: Path) -> dict[str, list[Path]]:
    return {portal.name: render_portal(portal, out_dir) for portal in portals}


def render_portal(portal: PortalOutput, out_dir: Path) -> list[Path]:
    """Write the portal's files under `out_dir/<portal>/`, all or none (files.write_set_atomic), in a 0700
    directory; files of ours that no longer apply, and temporary files a killed run left, are removed."""
    if not PORTAL_NAME_PATTERN.match(portal.name):
        # The output contract refuses such names already; a name is a path here, so check again where it is used.
        raise OutputsError(f"{portal.name!r} is not a portal name ({PORTAL_NAME_PATTERN.pattern})")
    directory = Path(out_dir) / portal.name
    files = {
        CONNECTOR_FILE: (connector_json(portal), SECRET_MODE),
        SHEET_FILE: (portal_manager_sheet(portal, directory / CONNECTOR_FILE), PUBLIC_MODE),
    }
    if portal.sign_in:
        files[SIGN_IN_FILE] = (oauth2_element(portal) + "\n", SECRET_MODE)
    if portal.scoped:
        files[RBAC_FILE] = (exchange_rbac_script(portal), PUBLIC_MODE)
    make_private_directory(directory)
    try:
        with filelock.FileLock(Path(out_dir) / RENDER_LOCK, timeout=RENDER_LOCK_TIMEOUT):
            remove_stale_temporaries(directory)
            write_set_atomic({directory / name: content for name, content in files.items()})
            for stale in (SIGN_IN_FILE, RBAC_FILE):
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


def exchange_server(portal: PortalOutput) -> str:
    """What goes into the data source's server URL: `Office365`, or the cloud's EWS endpoint for ews portals."""
    return portal.ews_url if portal.uses_ews and portal.ews_url else OFFICE365_SERVER


def sign_in_provider_name(portal: PortalOutput) -> str:
    return f"entra-{portal.name}"


# exchange-connector.json --------------------------------------------------------------------------------------

# Fields of the stack output copied into exchange-connector.json, in this order around the file's own keys.
CONNECTOR_IDENTITY = ("portal", "environment", "cloud", "tenantId", "clientId")
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
    document[ConnectorKey.EXCHANGE_SERVER] = exchange_server(portal)
    document.update({key: output[key] for key in CONNECTOR_OPTIONAL if key in output})
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
    """The `<oauth2 name="entra-<portal>">` element for om.cfg; lines after the first start with `indent`."""
    provider = {
        "auth-grant-type": "authorization_code",
        "auth-scheme": "header",
        "auth-protocol": "id_token",
        "auth-requires-nonce": "true",
        "auth-access-token-url": portal.token_endpoint,
        "auth-user-auth-url": portal.authorize_endpoint,
        "auth-pub-keys-src": portal.jwks_uri,
        "auth-user-info-url": portal.user_info_endpoint,
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


# exchange-rbac.ps1 --------------------------------------------------------------------------------------------


def exchange_name(*parts: str) -> str:
    """`parts` joined by `-`, shortened with a hash suffix to fit Exchange's 64 characters."""
    name = "-".join(parts)
    if len(name) <= MAX_EXCHANGE_NAME:
        return name
    digest = hashlib.sha256(name.encode("utf-8")).hexdigest()[:8]
    return f"{name[: MAX_EXCHANGE_NAME - len(digest) - 1]}-{digest}"


def scope_name(portal: PortalOutput) -> str:
    return exchange_name("intrexx", portal.name, portal.environment)


def role_assignment_name(portal: PortalOutput, permission: GrantedPermission) -> str:
    return exchange_name("intrexx", portal.name, portal.environment, permission.name)


def ps_quote(value: str) -> str:
    """A PowerShell single-quoted string; PowerShell also ends such strings at the typographic quotes."""
    return "'" + re.sub("(['\u2018\u2019\u201a\u201b])", r"\1\1", str(value)) + "'"


def exchange_rbac_script(portal: PortalOutput) -> str:
    app_id = ps_quote(portal.client_id)
    object_id = ps_quote(portal.service_principal_object_id)
    scope = ps_quote(scope_name(portal))
    mailbox_scope = portal.mailbox_scope
    assert mailbox_scope is not None, "only scoped portals get an RBAC script"
    connect = (
        "Connect-ExchangeOnline -UserPrincipalName <admin UPN> -ExchangeEnvironmentName "
        f"{portal.cloud_record.exchange_powershell_environment}"
    )
    lines = [
        f"# Exchange Online RBAC for Applications: {portal.display_name}, portal {portal.name}.",
        "# Written by `python -m intrexx_connector render`. Lets the app reach only the mailboxes of its",
        "# management scope. Run it after `pulumi up` in Exchange Online PowerShell as Exchange Administrator",
        "# or Organization Management; running it again changes nothing:",
        f"#   {connect}",
        f"#   ./{RBAC_FILE} [-Mailbox user@example.com]",
        "# The app holds no tenant-wide Entra consent for these permissions: such consent would widen the scope.",
        "# Exchange caches app permissions: a new grant can take a while to apply.",
        "param([string]$Mailbox = '')",
        "",
        "$ErrorActionPreference = 'Stop'",
        "",
        f"if (-not (Get-ServicePrincipal -Identity {object_id} -ErrorAction SilentlyContinue)) {{",
        f"    New-ServicePrincipal -AppId {app_id} -ObjectId {object_id} "
        f"-DisplayName {ps_quote(portal.display_name)} | Out-Null",
        "}",
        "",
    ]
    if mailbox_scope.group_id:
        lines += [
            f"$group = Get-Group -Identity {ps_quote(mailbox_scope.group_id)}",
            '$filter = "MemberOfGroup -eq \'{0}\'" -f ($group.DistinguishedName -replace "\'", "\'\'")',
        ]
    else:
        lines.append(f"$filter = {ps_quote(mailbox_scope.recipient_filter or '')}")
    lines += [
        f"$scope = Get-ManagementScope -Identity {scope} -ErrorAction SilentlyContinue",
        "if (-not $scope) {",
        f"    New-ManagementScope -Name {scope} -RecipientRestrictionFilter $filter | Out-Null",
        "} elseif ($scope.RecipientFilter -ne $filter) {",
        f"    Set-ManagementScope -Identity {scope} -RecipientRestrictionFilter $filter",
        "}",
        "",
    ]
    for permission in portal.rbac_permissions:
        name = ps_quote(role_assignment_name(portal, permission))
        lines += [
            f"if (-not (Get-ManagementRoleAssignment -Identity {name} -ErrorAction SilentlyContinue)) {{",
            f"    New-ManagementRoleAssignment -Name {name} -App {object_id} "
            f"-Role {ps_quote(permission.exchange_role or '')} -CustomResourceScope {scope} | Out-Null",
            "}",
        ]
    lines += [
        "",
        "if ($Mailbox) {",
        f"    Test-ServicePrincipalAuthorization -Identity {object_id} -Resource $Mailbox | Format-Table",
        "} else {",
        f"    Test-ServicePrincipalAuthorization -Identity {object_id} | Format-Table",
        "}",
    ]
    return "\n".join(lines) + "\n"


# portal-manager.md --------------------------------------------------------------------------------------------


def _cell(value) -> str:
    return str(value).replace("|", "\\|")


def _table(rows: list[tuple[str, str]]) -> list[str]:
    return ["| field | value |", "| --- | --- |"] + [f"| {_cell(k)} | {_cell(v)} |" for k, v in rows]


def portal_manager_sheet(portal: PortalOutput, connector_file: Path) -> str:
    """The fill-in sheet in the order of the Portal Manager's dialogs; it names the secret's file, not the secret."""
    delegated = portal.delegated
    ews = portal.uses_ews
    sections: list[tuple[str, list[str]]] = []

    sections.append(
        (
            "MediaGateway connection",
            [
                "The Exchange connector talks to Exchange Online through the Intrexx MediaGateway.",
                "",
                *_table(
                    [
                        ("Host", f"`{MEDIA_GATEWAY_HOST}` (or the host the MediaGateway runs on)"),
                        ("Port", f"`{MEDIA_GATEWAY_PORT}`, or `{MEDIA_GATEWAY_SSL_PORT}` with SSL"),
                        ("Protocol", f"{MEDIA_GATEWAY_PROTOCOL} (recommended over classic CORBA)"),
                        ("Password", "the MediaGateway password set when the MediaGateway was installed"),
                    ]
                ),
            ],
        )
    )

    server_note = f"`{exchange_server(portal)}`"
    if ews:
        server_note += f" (the EWS endpoint of Exchange Online in the {portal.cloud} cloud)"
    else:
        server_note += " (Intrexx's name for Microsoft 365)"
    user = (
        "the mailbox user whose mailbox this data source reads (user principal name)"
        if delegated
        else "a mailbox the app may reach (see below), by user principal name"
    )
    sections.append(
        (
            "Exchange account",
            _table(
                [
                    ("Server URL", server_note),
                    ("Mailbox user", user),
                    ("E-mail", "that mailbox's primary e-mail address"),
                ]
            ),
        )
    )

    sections.append(
        (
            "OAuth2",
            [
                *_table(
                    [
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
                ),
                "",
                f"Access: {portal.access} ({'each mailbox user signs in once' if delegated else NO_USER_SIGN_IN}).",
            ],
        )
    )

    uris = [f"- `{uri}`" for uri in portal.redirect_uris]
    sections.append(
        (
            "Redirect URIs",
            [
                "Entra ID accepts these redirect URIs for this app:",
                "",
                *uris,
                "",
                "If Intrexx shows or sends another one (`http` behind a TLS proxy, a trailing slash, "
                "another path), Entra "
                "answers AADSTS50011: add the path to `redirectPaths` in the stack configuration and run `pulumi up`.",
            ],
        )
    )

    if delegated:
        page = portal.cloud_record.device_login_page
        where = f"Open {page} (or the verification page Intrexx shows, if it names another)"
        sections.append(
            (
                "Request MS365 Refresh Token",
                [
                    "For each mailbox user, in the data source:",
                    "",
                    "1. Click **Request MS365 Refresh Token**.",
                    "2. Copy the code Intrexx shows.",
                    f"3. {where} and enter the code.",
                    "4. Sign in as the mailbox user and accept.",
                    "5. Back in the Portal Manager, finish the dialog: Intrexx keeps the refresh token "
                    "in the MediaGateway.",
                    "",
                    "The app allows public client flows for this (otherwise Entra answers AADSTS7000218).",
                    "",
                    "Reminder: an Intrexx refresh token lasts about three months. Request each user's "
                    "token again about "
                    "every three months (`python -m intrexx_connector status` reminds you).",
                ],
            )
        )

    sections.append(
        (
            "Client secret expiry and rotation",
            [
                f"- The client secret expires at `{timestamp(portal.secret_expires_at)}`.",
                f"- Next rotation: `{timestamp(portal.secret_rotates_at)}`. The first `pulumi up` on or "
                f"after that date adds a "
                "new secret; then run `python -m intrexx_connector render` and enter the new secret in the OAuth2 "
                "dialog. The previous secret keeps working until it expires.",
            ],
        )
    )

    if ews:
        sections.append(
            (
                "EWS retirement",
                [
                    f"- Since {EWS_BLOCKED_FROM.isoformat()} Exchange Online blocks EWS unless the "
                    f"tenant enables it and "
                    "lists this app in its EWS allow list (Exchange Online PowerShell):",
                    "",
                    "  ```powershell",
                    "  Set-OrganizationConfig -EWSEnabled $true",
                    f'  Set-OrganizationConfig -EwsAllowedAppIDs @{{Add="{portal.client_id}"}}',
                    "  ```",
                    "",
                    f"- On {EWS_SHUTDOWN.isoformat()} EWS is switched off for good.",
                    "- Move this portal to Microsoft Graph: set `api: graph` for it in the stack configuration.",
                ],
            )
        )

    if not delegated:
        roles = [p for p in portal.permissions if not p.delegated]
        names = ", ".join(f"`{p.name}`" for p in roles) or "none"
        if portal.mailbox_scope is not None:
            scope = portal.mailbox_scope
            target = (
                f"members of the group `{scope.group_id}`"
                if scope.group_id
                else f"mailboxes matching `{scope.recipient_filter}`"
            )
            reach = [
                f"Only the {target}, through Exchange RBAC for Applications (management scope "
                f"`{scope_name(portal)}`), with {names}.",
                "",
                f"Until `{RBAC_FILE}` (beside this sheet) has run in Exchange Online PowerShell, the app reaches no "
                "mailbox.",
            ]
        else:
            reach = [f"Every mailbox of the tenant: admin consent for {names}."]
        sections.append(("What the app can reach", reach))

    if portal.sign_in:
        provider = sign_in_provider_name(portal)
        sections.append(
            (
                "Portal sign-in with Entra ID",
                [
                    f'`{SIGN_IN_FILE}` beside this sheet holds the `<oauth2 name="{provider}">` provider for '
                    "`internal/cfg/om.cfg` (with the secret, readable by its owner only). Merge it with",
                    "",
                    f"    python -m intrexx_connector apply --portal {portal.name} --portal-dir <portal directory>",
                    "",
                    "then declare the IntrexxOAuth2 login module in `internal/cfg/LucyAuth.cfg`, set "
                    '`<binding scope="web" auth-type="IntrexxOAuth2"/>` in om.cfg\'s `<authentication>` '
                    "and restart the "
                    "portal server. A login button opens "
                    f"`?urn:schemas-unitedplanet-de:ixservlet:name=oAuth2LoginIxServlet&oauthProvider={provider}`.",
                ],
            )
        )

    lines = [
        f"# {portal.display_name}: Connector for Microsoft Exchange",
        "",
        "Fill-in sheet for the Intrexx Portal Manager: Integration → consume data → Connector for Microsoft "
        f"Exchange → data source. Cloud `{portal.cloud}`, api `{portal.api}`, access "
        f"`{portal.access}`. The client secret is not in this sheet.",
    ]
    for number, (title, body) in enumerate(sections, start=1):
        lines += ["", f"## {number}. {title}", "", *body]
    return "\n".join(lines) + "\n"
