"""The files an Intrexx administrator works from, rendered per portal from the stack outputs.

`portal_files()` decides which files a portal gets and their text; `render_portal()` writes them under
`<out_dir>/<portal>/` and removes the files of ours that no longer apply. This module decides (which files, which
values); the jinja2 templates in `templates/` word the sheets, the scripts, the om.cfg block and handover's rotation
notice (`_render`), and each kind of file has one finalize through which every `{{ value }}` passes (PowerShell:
`ps_quote`; Markdown: `components.text.for_markdown`; XML: a quoted, escaped attribute value). The connector JSON is
`json.dumps`: a serializer, not a template.

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
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path
from xml.sax.saxutils import escape

import filelock
import jinja2
from markupsafe import Markup

from components.clouds import CloudName
from components.contract import PORTAL_NAME_PATTERN, Connector, GrantedPermission, PortalOutput, timestamp
from components.ews import ews_phase, ews_state
from components.facts import is_guid
from components.text import describe_characters, for_markdown, for_terminal, markdown_code, unsafe_characters
from components.today import today

from .errors import FileError, OutputsError
from .files import make_private_directory, remove_stale_temporaries, write_set_atomic
from .status import stack_label

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
OFFICE365_SERVER = "Office365"
MEDIA_GATEWAY_HOST = "localhost"
MEDIA_GATEWAY_PORT = 8087
MEDIA_GATEWAY_SSL_PORT = 9087
MEDIA_GATEWAY_PROTOCOL = "gRPC"
# Exchange limits the names of management scopes and role assignments to 64 characters
# (New-ManagementRoleAssignment -Name: "The maximum length of the name is 64 characters").
MAX_EXCHANGE_NAME = 64
DIGEST_LENGTH = 8
# Scripts start with a UTF-8 byte order mark: "If you need to use non-Ascii characters in your scripts, save them as
# UTF-8 with BOM. Without the BOM, Windows PowerShell misinterprets your script as being encoded in the legacy
# "ANSI" codepage" (learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_character_encoding).
# ps_quote keeps every value ASCII as well, so the code reads the same either way.
POWERSHELL_BOM = "\ufeff"

# The Microsoft 365 registration's naming rule (registration_name); the sources of the sheets and scripts are named
# in their templates.
INTREXX_M365_REGISTER_DOC = "help.intrexx.com connectors/ms-365/ms365-and-teams-connector-register"


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


def render_all(
    portals: list[PortalOutput], out_dir: Path, day: date | None = None, stack: str | None = None
) -> dict[str, list[Path]]:
    """Render every portal; every portal's files are worked out before the first is written, so a value no file
    can hold stops the run with nothing written."""
    day = day or today()
    planned = {
        portal.name: (portal, portal_files(portal, Path(out_dir) / portal.name, day, stack)) for portal in portals
    }
    return {name: _write_portal(portal, out_dir, files) for name, (portal, files) in planned.items()}


def render_portal(portal: PortalOutput, out_dir: Path, day: date | None = None, stack: str | None = None) -> list[Path]:
    """Write the portal's files under `out_dir/<portal>/`, all or none (files.write_set_atomic), in a 0700
    directory; files of ours that no longer apply, and temporary files a killed run left, are removed."""
    return _write_portal(portal, out_dir, portal_files(portal, Path(out_dir) / portal.name, day or today(), stack))


def _write_portal(portal: PortalOutput, out_dir: Path, files: dict[str, tuple[str, int]]) -> list[Path]:
    directory = Path(out_dir) / portal.name
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


def left_behind(portals: list[PortalOutput], out_dir: Path) -> list[Path]:
    """Folders in `out_dir` that hold files of ours but belong to no portal of `portals`: a portal removed from
    the stack (or renamed) keeps its folder, and with it a copy of its secret, until someone deletes it. Render
    does not delete them (the folder may be the only copy an administrator still needs); it names them."""
    names = {portal.name for portal in portals}
    try:
        entries = sorted(Path(out_dir).iterdir())
    except OSError:
        return []
    return [
        entry
        for entry in entries
        if entry.name not in names
        and entry.is_dir()
        and not entry.is_symlink()
        and any((entry / name).exists() for name in OUR_FILES)
    ]


def portal_files(
    portal: PortalOutput, directory: Path, day: date, stack: str | None = None
) -> dict[str, tuple[str, int]]:
    """Which files the portal gets, by name: (text, mode). `directory` is where they will be written (the sheet
    names the secret's file by its path); `day` is the render date (the EWS phase of the scripts and sheets);
    `stack` the stack the sheets' commands name (default: the outputs' environment, which is the stack's name
    unless the stack sets another)."""
    if not PORTAL_NAME_PATTERN.match(portal.name):
        # The output contract refuses such names already; a name is a path here, so check again where it is used.
        raise OutputsError(f"{portal.name!r} is not a portal name ({PORTAL_NAME_PATTERN.pattern})")
    _check_writable(portal)
    # The environment is free text: only a Pulumi stack name goes into the commands a sheet prints.
    stack = stack or stack_label(portal.environment)
    connector_file = connector_file_name(portal)
    files = {connector_file: (connector_json(portal), SECRET_MODE)}
    if portal.connector is Connector.EXCHANGE:
        files[SHEET_FILE] = (exchange_sheet(portal, directory / connector_file, day, stack), PUBLIC_MODE)
        files[EWS_ALLOW_LIST_FILE] = (POWERSHELL_BOM + ews_allow_list_script(portal, day), PUBLIC_MODE)
    else:
        files[SHEET_FILE] = (m365_sheet(portal, directory / connector_file, stack), PUBLIC_MODE)
        if not portal.delegated:
            files[RBAC_FILE] = (POWERSHELL_BOM + exchange_rbac_script(portal), PUBLIC_MODE)
    if portal.sign_in:
        files[SIGN_IN_FILE] = (oauth2_element(portal) + "\n", SECRET_MODE)
    return files


_SURROGATE = re.compile("[\ud800-\udfff]")


def _check_writable(portal: PortalOutput) -> None:
    """Refuse, naming the field, a value that no file can hold: a lone surrogate (JSON's "\\ud800" reads as one;
    UTF-8 cannot encode it), or a control character in the secret (om.cfg would not be well-formed XML, which
    apply refuses too). The secret itself is never shown."""
    for path, text in _strings(portal.to_output(), f"portals.{portal.name}"):
        found = _SURROGATE.search(text)
        if found:
            raise OutputsError(
                f"{path}: holds a lone surrogate (U+{ord(found.group()):04X}), which no file can hold; "
                "nothing was written"
            )
    secret = portal.client_secret or ""
    bad = unsafe_characters(secret) + list(dict.fromkeys(_SURROGATE.findall(secret)))
    if bad:
        raise OutputsError(
            f"clientSecrets.{portal.name}: must not contain control characters ({describe_characters(bad)}); "
            "nothing was written"
        )


def _strings(value: object, path: str) -> Iterator[tuple[str, str]]:
    if isinstance(value, str):
        yield path, value
    elif isinstance(value, dict):
        for key, item in value.items():
            yield from _strings(item, f"{path}.{key}")
    elif isinstance(value, (list, tuple)):
        for index, item in enumerate(value):
            yield from _strings(item, f"{path}[{index}]")


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
            f"{portal.name}: rendering needs the client secret; save the outputs with "
            "`intrexx-connector outputs --stack <stack> --out outputs.json` (mode 0600), or give --stack alone"
        )
    return portal.client_secret


# om.cfg.xml ---------------------------------------------------------------------------------------------------


def oauth2_element(portal: PortalOutput, indent: str = "", newline: str = "\n") -> str:
    """The `<oauth2 name="entra-<portal>">` element for om.cfg (templates/om-cfg-oauth2.xml.j2); lines after the
    first start with `indent`, and end with `newline` (apply follows the file it merges into)."""
    text = _render(
        "om-cfg-oauth2.xml.j2", portal=portal, provider=sign_in_provider_name(portal), secret=_secret(portal)
    )
    return text.rstrip("\n").replace("\n", newline + indent)


def _xml_attribute(value: object) -> object:
    """What `{{ value }}` becomes in an XML template: a quoted attribute value, with `"`, `&`, `<`, `>` and the
    white space an attribute value would otherwise lose (XML 1.0, 3.3.3 attribute-value normalization) escaped."""
    if isinstance(value, Markup):
        return value
    escaped = escape(str(value), {'"': "&quot;", "\n": "&#10;", "\r": "&#13;", "\t": "&#9;"})
    return _written(f'"{escaped}"')


# PowerShell helpers -------------------------------------------------------------------------------------------


# PowerShell's tokenizer takes each of these as a single quote, and U+201C..U+201E as double quotes
# (PowerShell/PowerShell src/System.Management.Automation/engine/parser/CharTraits.cs, SpecialChars: QuoteSingleLeft
# 0x2018, QuoteSingleRight 0x2019, QuoteSingleBase 0x201a, QuoteReversed 0x201b, QuoteDoubleLeft 0x201c,
# QuoteDoubleRight 0x201d, QuoteLowDoubleLeft 0x201E); it also ends a line at NextLine U+0085.
POWERSHELL_SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
POWERSHELL_DOUBLE_QUOTES = '"\u201c\u201d\u201e'
# What may stand inside a quoted literal as it is: printable ASCII. Every other character is written as its UTF-16
# code unit ([char]0x00D1), so the script reads the same in any code page: Windows PowerShell 5.1 reads a script
# without a byte order mark in the ANSI code page, where the UTF-8 bytes of a letter can become a typographic quote
# (C3 92 for U+00D2 reads as U+00C3 U+2019 in cp1252).
_LITERAL_RUN = re.compile(r"[\x20-\x7e]+")


def ps_quote(value: str) -> str:
    """`value` as one PowerShell expression of pure printable ASCII that evaluates to exactly `value`, whichever
    encoding PowerShell reads the file in: `'text'` (a single quote doubled) when `value` is printable ASCII,
    otherwise `('text' + [char]0x00D1 + ...)`. No quote character of PowerShell's (single: ' U+2018..U+201B,
    double: " U+201C..U+201E) can appear unescaped: the ASCII ones are doubled or stay inside single quotes, the
    typographic ones and every other non-ASCII or control character become [char] code units. Every value a
    rendered script carries goes through here (the PowerShell templates' finalize)."""
    text = str(value)
    if _LITERAL_RUN.fullmatch(text) or not text:
        return _single_quoted(text)
    parts: list[str] = []
    position = 0
    for run in _LITERAL_RUN.finditer(text):
        parts += _code_units(text[position : run.start()])
        parts.append(_single_quoted(run.group()))
        position = run.end()
    parts += _code_units(text[position:])
    if not parts[0].startswith("'"):
        parts.insert(0, "''")  # a string first, so that + concatenates instead of adding numbers
    return "(" + " + ".join(parts) + ")"


def _single_quoted(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def _code_units(text: str) -> list[str]:
    """`[char]0xNNNN` for each UTF-16 code unit of `text` (a character beyond U+FFFF takes two)."""
    data = text.encode("utf-16-le", "surrogatepass")
    return [f"[char]0x{int.from_bytes(data[i : i + 2], 'little'):04X}" for i in range(0, len(data), 2)]


# Templates autoescape the way jinja2 does it for HTML, with the escaping of each file's format: every `{{ value }}`
# passes through the environment's finalize, which writes it in that format (PowerShell: ps_quote; Markdown:
# components.text.for_markdown) and marks it Markup, so that nothing quotes it twice. Template text, macro output and
# what the filters below return are Markup already: what the templates word is theirs, what they are given is not.


def _written(text: str) -> Markup:
    """Mark `text` as already in the file's format (quoted, neutralised, or our own wording): the one place."""
    return Markup(text)  # noqa: S704 - not HTML: the callers quote or neutralise for PowerShell and Markdown


def _comment(text: str, width: int = 110) -> Markup:
    """`text` as PowerShell comment lines, each ending in a line break; a line break inside a value (a display
    name, a filter) cannot end the comment, because textwrap turns every whitespace character into a space."""
    lines = textwrap.wrap(str(text), width=width, initial_indent="# ", subsequent_indent="# ", break_on_hyphens=False)
    return _written("".join(f"{line}\n" for line in lines))


def _comment_text(value: object) -> Markup:
    """A value inside a PowerShell comment (the `comment` filter block wraps the paragraph): control, line
    separator and bidirectional characters written as escapes (components.text.for_terminal); textwrap turns the
    line breaks and tabs that for_terminal keeps into spaces."""
    return _written(for_terminal(str(value)))


def _powershell_value(value: object) -> object:
    """What `{{ value }}` becomes in a PowerShell template: a quoted string (ps_quote)."""
    if isinstance(value, Markup):
        return value
    if not isinstance(value, str):
        raise TypeError(f"a PowerShell template got {type(value).__name__}, not text")
    return _written(ps_quote(value))


def _markdown_value(value: object) -> object:
    """What `{{ value }}` becomes in a Markdown template: literal text (components.text.for_markdown)."""
    if isinstance(value, Markup):
        return value
    return _written(for_markdown(str(value)))


def _code_span(value: object, table: bool = False) -> Markup:
    """A value as Markdown inline code (components.text.markdown_code); `table=True` inside a table cell."""
    return _written(markdown_code(str(value), in_table=table))


def _iso_date(value: date) -> Markup:
    """A date, written as ISO 8601 (`2026-12-24`): digits and hyphens, nothing Markdown reads."""
    if not isinstance(value, date):
        raise TypeError(f"|date got {type(value).__name__}, not a date")
    return _written(value.isoformat())


def _environment(finalize: Callable[[object], object], filters: dict[str, Callable[..., object]]) -> jinja2.Environment:
    """Templates shipped in `intrexx_connector/templates/` (package data); `undefined` refuses a name the template
    is not given."""
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("intrexx_connector", "templates"),
        undefined=jinja2.StrictUndefined,
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        finalize=finalize,
    )
    environment.filters.update(filters)
    return environment


@functools.cache
def _templates(kind: str) -> jinja2.Environment:
    """One environment per kind of file, by the template's name: `ps1` (PowerShell), `xml`, `md` (Markdown)."""
    if kind == "ps1":
        return _environment(_powershell_value, {"comment": _comment, "text": _comment_text})
    if kind == "xml":
        return _environment(_xml_attribute, {})
    if kind == "md":
        return _environment(_markdown_value, {"code": _code_span, "date": _iso_date})
    raise ValueError(f"no template environment for .{kind} files")


def render_template(name: str, **context: object) -> str:
    """A Markdown or PowerShell template of `templates/`, every value written through the file's one quoting
    function (also for handover's rotation notice)."""
    return _render(name, **context)


def _render(name: str, **context: object) -> str:
    kind = name.removesuffix(".j2").rsplit(".", 1)[-1]
    return _templates(kind).get_template(name).render(**context)


# ews-allow-list.ps1 -------------------------------------------------------------------------------------------


def ews_allow_list_script(portal: PortalOutput, day: date) -> str:
    """`ews-allow-list.ps1`: puts this app on the tenant's EWS allow list (or takes it off with -Remove) without
    touching any other application on it (templates/ews-allow-list.ps1.j2 says how and on which facts)."""
    return _render(
        "ews-allow-list.ps1.j2",
        portal=portal,
        day=day.isoformat(),
        ews_state=ews_state(day),
        ews_phase=ews_phase(day),
        exchange_environment=portal.cloud_record.exchange_powershell_environment,
    )


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
    """`exchange-rbac.ps1` for an `m365` service account (application access): templates/exchange-rbac.ps1.j2
    says what it does and on which facts."""
    if portal.delegated:
        raise ValueError(f"{portal.name}: only service accounts (access: application) get {RBAC_FILE}")
    scope = portal.mailbox_scope
    if scope is not None and scope.group_id and not is_guid(scope.group_id):
        raise OutputsError(f"{portal.name}: mailboxScope.groupId must be a GUID, got {scope.group_id!r}")
    return _render(
        "exchange-rbac.ps1.j2",
        portal=portal,
        scope=scope,
        scope_name=scope_name(portal),
        assignment_prefix=assignment_prefix(portal),
        wanted=[(role_assignment_name(portal, p), p.exchange_role or "") for p in portal.rbac_permissions],
        exchange_environment=portal.cloud_record.exchange_powershell_environment,
    )


# portal-manager.md --------------------------------------------------------------------------------------------


def _sheet_context(portal: PortalOutput, connector_file: Path, stack: str) -> dict[str, object]:
    """What both sheets are told (templates/_sheet.md.j2)."""
    return {
        "portal": portal,
        "connector_file": connector_file,
        "stack": stack,
        "expires_at": timestamp(portal.secret_expires_at),
        "rotates_at": timestamp(portal.secret_rotates_at),
        "provider": sign_in_provider_name(portal),
        "sign_in_file": SIGN_IN_FILE,
    }


def exchange_sheet(portal: PortalOutput, connector_file: Path, day: date, stack: str | None = None) -> str:
    """The Exchange data source fill-in sheet (templates/exchange-sheet.md.j2); it names the secret's file, not the
    secret."""
    return _render(
        "exchange-sheet.md.j2",
        **_sheet_context(portal, connector_file, stack or stack_label(portal.environment)),
        gateway={
            "host": MEDIA_GATEWAY_HOST,
            "port": MEDIA_GATEWAY_PORT,
            "ssl_port": MEDIA_GATEWAY_SSL_PORT,
            "protocol": MEDIA_GATEWAY_PROTOCOL,
        },
        national_cloud=portal.cloud is not CloudName.GLOBAL,
        server=exchange_server(portal),
        device_login_page=_written(portal.cloud_record.device_login_page),  # the clouds table's, a bare link
        # Our own wording, not a value from outside.
        ews_state=_written(ews_state(day)),
        ews_phase=ews_phase(day),
        ews_allow_list_file=EWS_ALLOW_LIST_FILE,
    )


def registration_name(portal: PortalOutput) -> str:
    """A name for Intrexx's Microsoft 365 registration: "The name may only contain the letters [a-zA-Z] and the
    numbers [0-9]" (INTREXX_M365_REGISTER_DOC)."""
    parts = re.split(r"[^A-Za-z0-9]+", f"intrexx {portal.name} {portal.environment}")
    return "".join(part[:1].upper() + part[1:] for part in parts if part)


def m365_sheet(portal: PortalOutput, connector_file: Path, stack: str | None = None) -> str:
    """The Connector for Microsoft 365 and Teams sheet (templates/m365-sheet.md.j2): delegated permissions for user
    accounts, application permissions and the mailbox scope for service accounts."""
    delegated = portal.delegated
    return _render(
        "m365-sheet.md.j2",
        **_sheet_context(portal, connector_file, stack or stack_label(portal.environment)),
        registration_name=registration_name(portal),
        permissions=[p.name for p in portal.permissions if p.delegated == delegated],
        scope=portal.mailbox_scope,
        scope_name=scope_name(portal),
        rbac_file=RBAC_FILE,
    )
