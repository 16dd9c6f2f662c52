"""Merging a portal's Entra sign-in provider into Intrexx's `internal/cfg/om.cfg`.

The file is changed by a textual splice: the parser only locates our `<oauth2 name="entra-<portal>">` element
(or the place for it), so every other byte (declaration, comments, other providers, attribute order, indentation)
stays as the administrator left it. The result is parsed again before anything is written.

Others may change om.cfg too. Two applies (for two portals) take turns through an exclusive lock on
`om.cfg.lock` beside it (`filelock`: flock on POSIX, LockFileEx on Windows), held from the read to the replace.
Someone who does not take the lock (an editor, the Portal Manager) is noticed by reading om.cfg once more just
before the replace: if it changed, the merge starts again from the new content (at most `APPLY_ATTEMPTS` times),
so their edit is kept. What remains is the moment between that last read and the rename itself. A read-only
om.cfg is refused rather than replaced (a rename would ignore its mode).
"""

import codecs
import os
import stat
import xml.etree.ElementTree as ElementTree
import xml.parsers.expat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import filelock

from components.contract import PortalOutput
from components.facts import is_placeholder_secret
from components.text import TextFileError, read_file_bytes

from .errors import FileError, OutputsError, UsageError
from .files import backup_path, give_owner, write_atomic
from .render import oauth2_element, sign_in_provider_name

OM_CFG = Path("internal") / "cfg" / "om.cfg"
LUCY_AUTH_CFG = Path("internal") / "cfg" / "LucyAuth.cfg"
ROOT_ELEMENT = "configuration"
OAUTH2_ELEMENT = "oauth2"
AUTHENTICATION_ELEMENT = "authentication"
LOGIN_MODULE = "de.uplanet.lucy.server.auth.module.intrexx.IntrexxOAuth2LoginModule"
WEB_AUTH_TYPE = "IntrexxOAuth2"
DEFAULT_INDENT = "   "
LOCK_SUFFIX = ".lock"
LOCK_TIMEOUT = 60.0
LOCK_MODE = 0o660  # the lock holds nothing; om.cfg's group (the portal server's) may take it too
APPLY_ATTEMPTS = 3


@dataclass(frozen=True)
class ApplyResult:
    changed: bool
    path: Path
    backup: Path | None
    manual_steps: list[str] = field(default_factory=list)


@dataclass
class _Layout:
    """Byte offsets in om.cfg, found by expat."""

    encoding: str = "utf-8"
    root_start: int | None = None
    root_end: int | None = None  # start of `</configuration>`
    ours: list[tuple[int, int]] = field(default_factory=list)
    anchor: tuple[int, int] | None = None  # the last root-level <oauth2>, else <authentication>
    anchor_is_oauth2: bool = False
    first_child: int | None = None


def apply_sign_in(portal: PortalOutput, portal_dir: Path, now: datetime | None = None) -> ApplyResult:
    """Put the portal's sign-in provider into `portal_dir/internal/cfg/om.cfg`: backup, atomic, idempotent."""
    if not portal.sign_in:
        raise UsageError(
            f"portal {portal.name} does not use Entra sign-in: set signIn: true for it in the stack "
            "configuration and run `pulumi up` first"
        )
    if is_placeholder_secret(portal.client_secret):
        raise OutputsError(
            f"{portal.name}: the outputs hold the offline plan's placeholder secret, which Entra ID would refuse; "
            "apply needs the outputs of `pulumi up` (intrexx-connector outputs --stack <stack> --out outputs.json); "
            "nothing was written"
        )
    path = Path(portal_dir) / OM_CFG
    _read(path, portal_dir)  # a missing or unreadable om.cfg is reported before a lock file is made beside it
    lock = path.with_name(path.name + LOCK_SUFFIX)
    try:
        with filelock.FileLock(lock, timeout=LOCK_TIMEOUT, mode=LOCK_MODE):
            _own_like(lock, path)
            for _ in range(APPLY_ATTEMPTS):
                result = _apply_once(portal, path, Path(portal_dir), now)
                if result is not None:
                    return result
    except filelock.Timeout:
        raise FileError(
            f"another apply has held {lock} for {LOCK_TIMEOUT:g} s; nothing was changed: run again when it has finished"
        ) from None
    except OSError as error:
        raise FileError(f"cannot lock {lock}: {error.strerror}; nothing was changed") from None
    raise FileError(
        f"{path} changed {APPLY_ATTEMPTS} times while this command merged into it (someone else is editing it); "
        "nothing was changed: run again when it is quiet"
    )


def _apply_once(portal: PortalOutput, path: Path, portal_dir: Path, now: datetime | None) -> ApplyResult | None:
    """One read, merge and replace under the lock; None when om.cfg changed under us (then nothing was written)."""
    original, original_mode = _read(path, portal_dir)
    updated = merged(original, portal, path)
    steps = manual_steps(portal, portal_dir, updated)
    if updated == original:
        return ApplyResult(False, path, None, steps)
    if not original_mode & stat.S_IWUSR or not os.access(path, os.W_OK):
        raise FileError(
            f"{path} is read-only (mode {original_mode:04o}); nothing was changed: make it writable if this "
            "portal's configuration may change, or merge the provider by hand"
        )
    # om.cfg keeps its mode and owner: the portal server reads it as its owner or through its group (Intrexx installs
    # it 0640 for the service's group). It now holds a client secret, so others lose any access they had.
    mode = original_mode & ~stat.S_IRWXO
    backup = backup_path(path, now or datetime.now(UTC))
    write_atomic(backup, original, mode, owner_of=path)  # the backup holds the old secret: om.cfg's owner, mode
    if _read(path, portal_dir)[0] != original:
        backup.unlink(missing_ok=True)  # nothing of ours was replaced; the other change is in om.cfg itself
        return None
    write_atomic(path, updated, mode)
    return ApplyResult(True, path, backup, steps)


def _own_like(lock: Path, path: Path) -> None:
    """The lock file stays beside om.cfg (flock-style locks must): it belongs to om.cfg's owner and group, not to
    whoever ran apply (root), so that the portal's own user can run apply later."""
    try:
        status = path.stat()
        descriptor = os.open(lock, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError:
        return
    try:
        give_owner(descriptor, status.st_uid, status.st_gid)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def _read(path: Path, portal_dir: Path) -> tuple[bytes, int]:
    try:
        return read_file_bytes(path, str(path)), stat.S_IMODE(path.stat().st_mode)
    except FileNotFoundError:
        raise FileError(f"{path} does not exist: is {portal_dir} the directory of an Intrexx portal?") from None
    except TextFileError as error:
        raise FileError(str(error)) from None
    except OSError as error:
        raise FileError(f"cannot read {path}: {error.strerror}") from None


def merged(original: bytes, portal: PortalOutput, path: Path) -> bytes:
    """om.cfg's bytes with our `<oauth2>` element replaced or added; everything else unchanged."""
    name = sign_in_provider_name(portal)
    layout = _scan(original, path, name)
    newline = "\r\n" if b"\r\n" in original else "\n"
    if layout.ours:
        start, end = layout.ours[0]
        indent = _indent_before(original, start)
        element = oauth2_element(portal, indent=indent, newline=newline)
        result = original[:start] + _encode(element, layout.encoding) + original[end:]
    elif layout.anchor is not None:
        start, end = layout.anchor
        indent = _indent_before(original, start)
        element = oauth2_element(portal, indent=indent, newline=newline)
        separator = newline if layout.anchor_is_oauth2 else newline * 2
        result = original[:end] + _encode(separator + indent + element, layout.encoding) + original[end:]
    else:
        indent = DEFAULT_INDENT if layout.first_child is None else _indent_before(original, layout.first_child)
        element = oauth2_element(portal, indent=indent, newline=newline)
        assert layout.root_start is not None and layout.root_end is not None, "_scan found the root element"
        position = layout.root_end
        line_start = original.rfind(b"\n", 0, position) + 1
        if line_start > layout.root_start and not original[line_start:position].strip():
            text = indent + element + newline
            position = line_start
        else:
            text = element
        result = original[:position] + _encode(text, layout.encoding) + original[position:]
    _check(result, path, portal)
    return result


def manual_steps(portal: PortalOutput, portal_dir: Path, om_cfg: bytes) -> list[str]:
    """What the administrator does by hand; this command never switches the login binding itself."""
    provider = sign_in_provider_name(portal)
    steps = []
    lucy_auth = portal_dir / LUCY_AUTH_CFG
    try:
        declared = LOGIN_MODULE in read_file_bytes(lucy_auth, str(lucy_auth)).decode("utf-8", "replace")
    except (OSError, TextFileError):
        declared = False
    if not declared:
        steps.append(
            f"Declare the login module in {lucy_auth}: a configuration named {WEB_AUTH_TYPE} that lists "
            f"`{LOGIN_MODULE} sufficient` before the IntrexxLoginModule (see the Intrexx OAuth2/OpenID "
            "Connect login module README)."
        )
    if _web_binding(om_cfg) != WEB_AUTH_TYPE:
        steps.append(
            f"Switch web login to it yourself: in <{AUTHENTICATION_ELEMENT}> of {portal_dir / OM_CFG} set "
            f'<binding scope="web" auth-type="{WEB_AUTH_TYPE}"/> (this command leaves the bindings alone).'
        )
    steps.append("Restart the portal server after om.cfg or LucyAuth.cfg changed: it reads them at start.")
    steps.append(
        "Give users a login button that opens "
        f"?urn:schemas-unitedplanet-de:ixservlet:name=oAuth2LoginIxServlet&oauthProvider={provider}."
    )
    steps.append(
        f"Entra ID: the redirect URI {portal.sign_in_redirect_uri} is registered already; nothing to do there."
    )
    return steps


def _scan(data: bytes, path: Path, name: str) -> _Layout:
    layout = _Layout()
    parser = xml.parsers.expat.ParserCreate()
    depth = 0
    starts: list[tuple[str, int, bool]] = []  # (element, start offset, is ours)

    def declaration(version: str, encoding: str | None, standalone: int) -> None:
        if encoding:
            layout.encoding = encoding

    def start_element(element: str, attributes: dict[str, str]) -> None:
        nonlocal depth
        offset = parser.CurrentByteIndex
        if depth == 0:
            if element != ROOT_ELEMENT:
                raise FileError(f"{path}: the root element is <{element}>, not <{ROOT_ELEMENT}>: is this om.cfg?")
            layout.root_start = offset
        elif depth == 1 and layout.first_child is None:
            layout.first_child = offset
        ours = depth == 1 and element == OAUTH2_ELEMENT and attributes.get("name") == name
        starts.append((element, offset, ours))
        depth += 1

    def end_element(element: str) -> None:
        nonlocal depth
        depth -= 1
        _, start, ours = starts.pop()
        tag_end = _tag_end(data, start)
        end = tag_end if data[tag_end - 2 : tag_end] == b"/>" else data.index(b">", parser.CurrentByteIndex) + 1
        if depth == 0:
            if data[tag_end - 2 : tag_end] == b"/>":
                raise FileError(f"{path}: <{ROOT_ELEMENT}/> is empty: is this a complete om.cfg?")
            layout.root_end = parser.CurrentByteIndex
        elif depth == 1:
            if ours:
                layout.ours.append((start, end))
            elif element == OAUTH2_ELEMENT:
                layout.anchor, layout.anchor_is_oauth2 = (start, end), True
            elif element == AUTHENTICATION_ELEMENT and not layout.anchor_is_oauth2:
                layout.anchor = (start, end)

    parser.XmlDeclHandler = declaration
    parser.StartElementHandler = start_element
    parser.EndElementHandler = end_element
    _parse(parser, data, path, layout)
    _check_layout(layout, path, name)
    return layout


def _parse(parser: xml.parsers.expat.XMLParserType, data: bytes, path: Path, layout: _Layout) -> None:
    """Run the parser over the whole file; what expat refuses is one FileError naming the file."""
    try:
        parser.Parse(data, True)
    except LookupError:  # expat asks Python's codecs for an encoding it does not know itself
        raise FileError(
            f"{path} declares the encoding {layout.encoding!r}, which is unknown; nothing was changed"
        ) from None
    except xml.parsers.expat.ExpatError as error:
        raise FileError(
            f"{path} is not well-formed XML ({xml.parsers.expat.errors.messages[error.code]} at line "
            f"{error.lineno}, column {error.offset + 1}); nothing was changed"
        ) from None


def _check_layout(layout: _Layout, path: Path, name: str) -> None:
    """What a well-formed om.cfg must also be for a byte-exact merge: ASCII-compatible, at most one provider of ours."""
    try:
        codec = codecs.lookup(layout.encoding).name
    except LookupError:
        raise FileError(f"{path} declares the unknown encoding {layout.encoding!r}") from None
    if codec.startswith(("utf-16", "utf-32")):
        raise FileError(
            f"{path} is encoded in {layout.encoding}; only ASCII-compatible encodings such as UTF-8 are supported"
        )
    if len(layout.ours) > 1:
        raise FileError(
            f'{path} holds {len(layout.ours)} <{OAUTH2_ELEMENT} name="{name}"> elements; remove all '
            "but one and run again"
        )


def _tag_end(data: bytes, start: int) -> int:
    """The offset just after the `>` that closes the tag starting at `start`, skipping quoted attribute values."""
    quote = None
    for index in range(start + 1, len(data)):
        char = data[index : index + 1]
        if quote:
            if char == quote:
                quote = None
        elif char in (b'"', b"'"):
            quote = char
        elif char == b">":
            return index + 1
    return len(data)


def _indent_before(data: bytes, offset: int) -> str:
    """The white space that starts the line up to `offset`; DEFAULT_INDENT when other text precedes it there (as
    in `<configuration><oauth2 ...`), so that a second run computes the indent the first one used."""
    line_start = data.rfind(b"\n", 0, offset) + 1
    prefix = data[line_start:offset]
    if prefix.strip():
        return DEFAULT_INDENT
    return prefix.decode("ascii")


def _encode(text: str, encoding: str) -> bytes:
    return text.encode(encoding, errors="xmlcharrefreplace")


def _check(result: bytes, path: Path, portal: PortalOutput) -> None:
    """The merged file parses, and holds exactly one provider of ours with the expected client id."""
    try:
        root = ElementTree.fromstring(result)
    except ElementTree.ParseError:
        raise FileError(f"merging into {path} would not give well-formed XML; nothing was changed") from None
    ours = [e for e in root.findall(OAUTH2_ELEMENT) if e.get("name") == sign_in_provider_name(portal)]
    provider = ours[0].find("provider") if len(ours) == 1 else None
    if provider is None or provider.get("auth-client-id") != portal.client_id:
        raise FileError(
            f"merging into {path} did not give one complete provider {sign_in_provider_name(portal)}; "
            "nothing was changed"
        )


def _web_binding(om_cfg: bytes) -> str | None:
    try:
        root = ElementTree.fromstring(om_cfg)
    except ElementTree.ParseError:
        return None
    for binding in root.iterfind(f"{AUTHENTICATION_ELEMENT}/binding"):
        if binding.get("scope") == "web":
            return binding.get("auth-type")
    return None
