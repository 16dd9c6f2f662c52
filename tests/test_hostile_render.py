"""Hostile values in the files `render` writes (issue 17).

The PowerShell scripts are read the way Windows PowerShell 5.1 and PowerShell 7 read them (powershell_text: the
bytes as written, UTF-8 after the byte order mark, and the same bytes without it in cp1252, where the UTF-8 bytes of
a letter can become a typographic quote). Whatever text the configuration or the outputs carry (environment, display
name, scope and role assignment names, recipient filter, role and permission names), the code outside strings must
be the code of a script rendered with harmless values, and each value must read back exactly as it was.
"""

import dataclasses
import functools
import json
import re
from pathlib import Path

import pytest
from helpers import TODAY
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from outputs_fixtures import HR, OPS, WIDE, stack_outputs
from powershell_text import UTF8_BOM, decode_like_windows_powershell, evaluate, parse

from components.contract import MailboxScope
from intrexx_connector.cli import main
from intrexx_connector.render import (
    EWS_ALLOW_LIST_FILE,
    POWERSHELL_DOUBLE_QUOTES,
    POWERSHELL_SINGLE_QUOTES,
    RBAC_FILE,
    assignment_prefix,
    portal_files,
    ps_quote,
    scope_name,
)
from intrexx_connector.stack_outputs import parse_outputs

PORTALS = {p.name: p for p in parse_outputs(json.dumps(stack_outputs([HR, OPS, WIDE])))}
# A value PowerShell reads as a string: what ps_quote writes, with the strings' contents left out (Script.bare).
_QUOTED_VALUE = re.compile(r"\(''(?: \+ (?:''|\[char\]0x[0-9A-F]{4}))+\)")
HOSTILE = [
    "Ò; Start-Process calc #",
    "ESPAÑA",
    "x’; Start-Process calc; ‘",
    "x\u201c; Start-Process calc; \u201d",
    "a'b",
    "$(Start-Process calc)",
    "`n`r",
    "line\nbreak\r\nand\u0085next\u2028sep",
    "\u202eevil",
    "😀",
    "\x00\x1b[31m",
    "}; Remove-Item -Recurse C:\\ ; {",
    "<# block",
    "#> after",
]


def _script_files(portal) -> dict[str, bytes]:
    files = portal_files(portal, Path("/nonexistent") / portal.name, TODAY)
    return {name: text.encode("utf-8") for name, (text, _) in files.items() if name in (EWS_ALLOW_LIST_FILE, RBAC_FILE)}


def hostile_portal(name: str, value: str):
    """The portal with `value` in every free-text field the scripts carry."""
    portal = PORTALS[name]
    permissions = tuple(
        dataclasses.replace(p, name=f"{p.name}{value}", exchange_role=(p.exchange_role and f"{p.exchange_role}{value}"))
        for p in portal.permissions
    )
    scope = portal.mailbox_scope
    if scope is not None and scope.recipient_filter is not None:
        scope = MailboxScope(recipient_filter=f"{scope.recipient_filter}{value}")
    return dataclasses.replace(
        portal, environment=value, display_name=value, permissions=permissions, mailbox_scope=scope
    )


def structure(text: str) -> list[str]:
    """The code outside strings and comments, each quoted value as '' and blank lines left out."""
    return [_QUOTED_VALUE.sub("''", line) for line in parse(text).bare if line]


def readings(data: bytes, code_pages: tuple[str, ...] = ("cp1252",)) -> dict[str, str]:
    """How PowerShell 7 and 5.1 read the file as written, and how 5.1 reads it without its byte order mark in an
    ANSI code page (cp1252 on Western Windows)."""
    assert data.startswith(UTF8_BOM)
    found = {"with BOM": decode_like_windows_powershell(data)}
    for code_page in code_pages:
        found[f"5.1 without BOM ({code_page})"] = decode_like_windows_powershell(data[len(UTF8_BOM) :], code_page)
    return found


def assignments(text: str) -> dict[str, str]:
    """`$Name = <value>` lines at the top of a script: variable -> the value's text."""
    found = {}
    for line in parse(text).code:
        match = re.fullmatch(r"\$(\w+) = (\[guid\])?(.+)", line)
        if match and (match.group(3).startswith("'") or match.group(3).startswith("(")):
            found.setdefault(match.group(1), match.group(3))
    return found


@pytest.mark.parametrize("name", ["hr", "ops", "wide"])
@settings(max_examples=50, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(value=st.text(min_size=1, max_size=40))
def test_no_value_leaves_its_string_in_any_reading(name, value):
    _check_script_structure(name, value)


@pytest.mark.parametrize("name", ["hr", "ops", "wide"])
@pytest.mark.parametrize("value", HOSTILE)
def test_known_attacks_stay_inside_their_strings(name, value):
    # Central European, Cyrillic, Greek and Turkish Windows read a script without a BOM in these.
    _check_script_structure(name, value, ("cp1252", "cp1250", "cp1251", "cp1253", "cp1254"))


@functools.cache
def reference_structure(name: str) -> dict[str, list[str]]:
    """The structure of the portal's scripts with a harmless value."""
    return {
        file: structure(decode_like_windows_powershell(data))
        for file, data in _script_files(hostile_portal(name, "x")).items()
    }


def _check_script_structure(name: str, value: str, code_pages: tuple[str, ...] = ("cp1252",)) -> None:
    reference = reference_structure(name)
    hostile = _script_files(hostile_portal(name, value))
    assert hostile.keys() == reference.keys() and hostile
    for file, data in hostile.items():
        for reading, text in readings(data, code_pages).items():
            script = parse(text)
            # The code (not the comments) is printable ASCII: it reads the same in any code page.
            assert all(line.isascii() and line.isprintable() for line in script.code), (file, reading)
            assert [_QUOTED_VALUE.sub("''", line) for line in script.bare if line] == reference[file], (file, reading)


@example(value="Ò; Start-Process calc #")
@example(value="ESPAÑA\u2019\u201d")
@given(value=st.text(min_size=1, max_size=40))
@settings(max_examples=50, deadline=None)
def test_every_value_reads_back_exactly(value):
    ops = hostile_portal("ops", value)
    data = _script_files(ops)[RBAC_FILE]
    for text in readings(data).values():
        values = assignments(text)
        assert evaluate(values["DisplayName"]) == ops.display_name
        assert evaluate(values["ScopeName"]) == scope_name(ops)
        assert evaluate(values["AssignmentPrefix"]) == assignment_prefix(ops)
        assert evaluate(values["filter"]) == ops.mailbox_scope.recipient_filter


@given(value=st.text(max_size=40))
def test_ps_quote_writes_printable_ascii_that_evaluates_to_the_value(value):
    quoted = ps_quote(value)
    assert re.fullmatch(r"[\x20-\x7e]*", quoted)
    assert not set(quoted) & set(POWERSHELL_SINGLE_QUOTES[1:] + POWERSHELL_DOUBLE_QUOTES[1:])
    assert evaluate(quoted) == value


def test_scripts_start_with_a_byte_order_mark_and_sheets_do_not(tmp_path):
    for portal in PORTALS.values():
        for name, (text, _) in portal_files(portal, tmp_path / portal.name, TODAY).items():
            assert text.startswith("\ufeff") == name.endswith(".ps1"), name


def render_cli(capsys, tmp_path, document: dict, *extra: str):
    path = tmp_path / "outputs.json"
    # json.dumps writes a lone surrogate as \ud800, as a hostile outputs file would.
    path.write_text(json.dumps(document), encoding="utf-8")
    code = main(["render", "--outputs", str(path), "--out", str(tmp_path / "out"), *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize("field", ["environment", "displayName"])
def test_a_lone_surrogate_is_one_line_and_nothing_is_written(capsys, tmp_path, field):
    document = stack_outputs([HR, OPS, WIDE])
    document["portals"]["wide"][field] = "dev\ud800"  # the last portal: the others must not be written either
    code, out, err = render_cli(capsys, tmp_path, document)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and f"portals.wide.{field}" in err and "U+D800" in err
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("*.json"))


@pytest.mark.parametrize("character", ["\x01", "\x0b", "\x1b", "\u202e", "\udc80"])
def test_a_secret_with_control_characters_is_refused_before_om_cfg_is_written(capsys, tmp_path, character):
    document = stack_outputs([HR, OPS])
    secret = document["clientSecrets"]["hr"]
    document["clientSecrets"]["hr"] = f"abc{character}def"
    code, out, err = render_cli(capsys, tmp_path, document)
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and "clientSecrets.hr" in err and f"U+{ord(character):04X}" in err
    assert "abc" not in err and secret not in err
    assert not list((tmp_path / "out").rglob("om.cfg.xml")) if (tmp_path / "out").exists() else True


MARKDOWN_ATTACKS = [
    "<img src=x onerror=alert(1)>",
    "[click](https://evil.example)",
    "![x](https://evil.example/p.png)",
    "https://evil.example",
    "`code` | cell | ``",
    "*bold* _it_ ~~s~~ # heading",
    "<script>alert(1)</script>\n\n# injected",
    "&lt;b&gt; &amp;",
    "\u202eevil\x1b[2J",
]


def _inline_tokens(tokens):
    for token in tokens:
        yield token
        yield from _inline_tokens(token.children or [])


@pytest.mark.parametrize("name", ["hr", "ops", "wide"])
@pytest.mark.parametrize("value", MARKDOWN_ATTACKS)
def test_values_in_the_sheets_are_text_not_markdown_or_html(name, value, tmp_path):
    from markdown_it import MarkdownIt

    portal = hostile_portal(name, value)
    sheet = portal_files(portal, tmp_path / name, TODAY, "dev")["portal-manager.md"][0]
    reference = portal_files(hostile_portal(name, "x"), tmp_path / name, TODAY, "dev")["portal-manager.md"][0]
    parser = MarkdownIt("commonmark").enable("table").enable("strikethrough")
    tokens = list(_inline_tokens(parser.parse(sheet)))
    kinds = [t.type for t in tokens if t.type not in ("text", "softbreak")]
    expected = [t.type for t in _inline_tokens(parser.parse(reference)) if t.type not in ("text", "softbreak")]
    assert kinds == expected, "a value made Markdown structure (a link, HTML, emphasis, a heading, a cell)"
    assert not [t for t in tokens if t.type in ("html_inline", "html_block")]
    heading = next(t for t in parser.parse(sheet) if t.type == "inline")
    title = "".join(child.content for child in heading.children if child.type == "text")
    if value.isprintable():
        assert title.startswith(f"{value}: "), "the title shows the display name as it is"
    else:
        assert value not in title and title.isprintable(), "control characters are shown as escapes"


def test_values_reach_powershell_templates_only_through_the_quoting_finalize():
    """In a PowerShell template, `|text` (a value left unquoted for a comment) appears only in comments: a line
    starting with `#`, or a paragraph inside `{% filter comment %}`."""
    from importlib import resources

    folder = resources.files("intrexx_connector").joinpath("templates")
    for template in folder.iterdir():
        if not template.name.endswith(".ps1.j2"):
            continue
        in_comment = False
        # Template comments ({# ... #}) are not output; blank them, keeping the line numbers.
        text = re.sub(r"\{#.*?#\}", lambda m: "\n" * m.group().count("\n"), template.read_text("utf-8"), flags=re.S)
        for number, line in enumerate(text.splitlines(), 1):
            if line.startswith("{% filter comment %}"):
                in_comment = True
            elif line.startswith("{% endfilter %}"):
                in_comment = False
            elif "|text" in line:
                assert in_comment or line.startswith("#"), f"{template.name}:{number}: |text outside a comment"
