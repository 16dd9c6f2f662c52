"""Attack cases against the neutralisers of components/text.py (issue 17, class 5): text from outside reaching a
terminal, a CI log (Azure Pipelines, GitHub Actions) or Markdown (job summaries, work items, fill-in sheets)."""

import html
import re

import pytest
from markdown_it import MarkdownIt

from components.text import CiLog, for_ci_log, for_markdown, for_terminal, markdown_code

MARKDOWN = MarkdownIt("commonmark").enable("table").enable("strikethrough")

HOSTILE = [
    "<img src=x onerror=alert(1)>",
    "<script>alert(1)</script>",
    "<!-- hidden -->",
    "<details open>",
    "[click](https://evil.example)",
    "[click][1]\n\n[1]: https://evil.example",
    "![pixel](https://evil.example/p.png)",
    "<https://evil.example>",
    "<mail@evil.example>",
    "a|b|c",
    "# heading",
    "## Second",
    "1. ordered",
    "1) ordered",
    "- bullet",
    "+ bullet",
    "* bullet",
    "> quote",
    "***",
    "---",
    "===",
    "`code`",
    "``two``",
    "```fence",
    "~~~fence",
    "**bold** __bold__ *em* _em_",
    "~~struck~~",
    "&amp; &#x41; &lt;b&gt;",
    "back\\slash \\*",
    "line one\nline two",
    "para\n\n# heading",
    "row\n| x | y |",
    "cr\rlf",
    "\x1b[31mred\x1b[0m",
    "\x1b]0;title\x07",
    "rtl \u202eevil\u202c",
    "zero\u200bwidth\ufeffbom\u00adsoft",
    "tag \U000e0041\U000e0042",
    "$x^2$",
    "@everyone #123",
    "[^1]",
    "{{ template }}",
    "Ò; Start-Process calc #",
    "ESPAÑA",
    "日本語の環境",
    "",
    " ",
]


def _ids(values: list[str]) -> list[str]:
    return [f"{index}-{ascii(value)[1:21]}" for index, value in enumerate(values)]


def _visible(text: str) -> str:
    """What a reader should see for `text`: the value, with unsafe characters as the same escapes."""
    return for_markdown(text).replace("\\\\", "\x00").replace("\\", "").replace("\x00", "\\")


def _text_of(rendered: str) -> str:
    return html.unescape(re.sub(r"<[^>]*>", "", rendered)).strip()


def _tags(rendered: str) -> set[str]:
    return set(re.findall(r"<\s*([a-zA-Z0-9]+)", rendered))


@pytest.mark.parametrize("value", HOSTILE, ids=_ids(HOSTILE))
def test_a_value_in_a_markdown_paragraph_stays_text(value):
    rendered = MARKDOWN.render(f"The environment is {for_markdown(value)}.\n")
    assert _tags(rendered) == {"p"}
    assert _text_of(rendered) == f"The environment is {_visible(value)}.".strip()


@pytest.mark.parametrize("value", HOSTILE, ids=_ids(HOSTILE))
def test_a_value_at_the_start_of_a_list_item_or_heading_stays_text(value):
    rendered = MARKDOWN.render(f"- {for_markdown(value)}\n\n## {for_markdown(value)}\n")
    assert _tags(rendered) <= {"ul", "li", "h2"}
    assert rendered.count("<li>") == 1 and rendered.count("<h2>") == 1


@pytest.mark.parametrize("value", HOSTILE, ids=_ids(HOSTILE))
def test_a_value_in_a_table_cell_keeps_the_table_whole(value):
    table = f"| portal | environment |\n| --- | --- |\n| hr | {for_markdown(value)} |\n| ops | x |\n"
    rendered = MARKDOWN.render(table)
    assert _tags(rendered) == {"table", "thead", "tbody", "tr", "th", "td"}
    assert rendered.count("<tr>") == 3 and rendered.count("<td>") == 4
    cells = re.findall(r"<td>(.*?)</td>", rendered, re.DOTALL)
    assert html.unescape(cells[1]) == _visible(value).strip()


@pytest.mark.parametrize("value", HOSTILE, ids=_ids(HOSTILE))
def test_markdown_text_has_no_line_break_and_no_unsafe_character(value):
    text = for_markdown(value)
    assert "\n" not in text and "\r" not in text
    assert for_terminal(text) == text


@pytest.mark.parametrize("value", [*HOSTILE, "a`b", "`", "``x``", " a ", "x` ", "a|b"], ids=str)
def test_a_code_span_shows_the_value_verbatim(value):
    rendered = MARKDOWN.render(f"Run {markdown_code(value)} now.\n")
    code = re.findall(r"<code>(.*?)</code>", rendered, re.DOTALL)
    assert len(code) == 1 and _tags(rendered) == {"p", "code"}
    shown = html.unescape(code[0])
    expected = for_terminal(value).replace("\n", "\\x0a").replace("\t", "\\x09") or " "
    assert shown == expected


@pytest.mark.parametrize("value", ["a|b", "|", "`|`"], ids=str)
def test_a_code_span_in_a_table_cell_keeps_the_table_whole(value):
    rendered = MARKDOWN.render(f"| a | b |\n| --- | --- |\n| {markdown_code(value, in_table=True)} | x |\n")
    assert rendered.count("<td>") == 2
    assert html.unescape(re.findall(r"<code>(.*?)</code>", rendered)[0]) == value


# CI logs -----------------------------------------------------------------------------------------------------------

COMMANDS = [
    "##vso[task.setvariable variable=PATH]/tmp/evil",
    "##vso[task.complete result=Succeeded;]done",
    "##vso[task.uploadfile]/etc/passwd",
    "prefix text ##vso[task.setsecret]x",
    "##VSO[task.logissue type=error]x",
    "##[group]hidden",
    "##[error]fake",
    "## [not a command]",
    "::warning::fake",
    "::error file=a,line=1::fake",
    "::stop-commands::token",
    "::add-mask::x",
    "::set-output name=a::b",
    "   ::debug::indented",
    "\t::notice::tab",
    "\u00a0::notice::no-break space",
    "\u3000::notice::ideographic space",
    "\u2003::notice::em space",
    "x\n::warning::second line",
    "x\r::warning::after a carriage return",
    "x\x0b::warning::after a vertical tab",
    "x\x0c::warning::after a form feed",
    "x\x85::warning::after NEL",
    "x\u2028::warning::after a line separator",
    "x\u2029::warning::after a paragraph separator",
    "##\u200bvso[task.setvariable variable=a]b",
    "#\u00ad#vso[x.y]z",
    ":\ufeff:warning::bom",
    "::",
    ":",
    "##",
    "##vso",
    "##vso[",
]


def _is_command(line: str) -> bool:
    """Whether an Azure Pipelines agent or a GitHub Actions runner could read `line` as a command."""
    trimmed = line.lstrip()
    return "##vso[" in line.lower() or "##[" in line or trimmed.startswith("::")


def _lines(text: str) -> list[str]:
    return text.split("\n")


@pytest.mark.parametrize("value", COMMANDS, ids=_ids(COMMANDS))
def test_no_line_of_a_ci_log_is_a_command(value):
    assert not any(_is_command(line) for line in _lines(for_ci_log(value)))


@pytest.mark.parametrize("value", COMMANDS, ids=_ids(COMMANDS))
def test_a_command_written_in_pieces_is_broken_too(value):
    for cut in range(len(value) + 1):
        for second in range(cut, len(value) + 1):
            log = CiLog()
            pieces = [value[:cut], value[cut:second], value[second:]]
            written = "".join(log(for_terminal(piece)) for piece in pieces)
            assert not any(_is_command(line) for line in _lines(written)), (pieces, written)


def test_a_command_split_over_print_calls_is_broken():
    log = CiLog()
    written = "".join(log(piece) for piece in ["#", "#", "v", "s", "o", "[task.x]y", "\n", " ", ":", ":warning::z"])
    assert written == "##vso\\u005btask.x]y\n :\\u003awarning::z"


def test_a_command_is_broken_on_every_line_not_only_the_first():
    written = for_ci_log("ok\n::error::a\n##vso[task.complete result=Failed]b\n  ::c::d\n")
    assert written == "ok\n:\\u003aerror::a\n##vso\\u005btask.complete result=Failed]b\n  :\\u003ac::d\n"


@pytest.mark.parametrize(
    "value", ["portal hr: 3 redirect URIs", "a: b :: c", "C:\\path\\x", "# comment", "[x] done"], ids=str
)
def test_ordinary_lines_are_left_alone(value):
    assert for_ci_log(value) == value


def test_the_neutralisers_change_nothing_in_their_own_output():
    for value in COMMANDS + HOSTILE:
        once = for_ci_log(value)
        assert for_ci_log(once) == once
        assert for_terminal(for_terminal(value)) == for_terminal(value)


def test_the_terminal_shows_invisible_characters_as_escapes():
    assert for_terminal("a\u200bb\ufeffc\u00add\U000e0041") == "a\\u200bb\\ufeffc\\xadd\\U000e0041"
    assert for_terminal("ZWJ \u200d and ZWNJ \u200c stay: Persian and emoji need them") == (
        "ZWJ \u200d and ZWNJ \u200c stay: Persian and emoji need them"
    )


@pytest.mark.parametrize("environment", HOSTILE[:20], ids=_ids(HOSTILE[:20]))
def test_the_rotation_notice_shows_a_hostile_environment_as_text(environment):
    from datetime import date

    from intrexx_connector.handover import HandedOver, RotationNotice

    def notice(value: str) -> str:
        handed = HandedOver("hr", value, date(2026, 12, 24), True, "exchange-connector.json")
        return MARKDOWN.render(RotationNotice("prod", [handed]).markdown())

    rendered = notice(environment)
    assert _tags(rendered) == _tags(notice("dev")) and rendered.count("<") == notice("dev").count("<")
    cells = re.findall(r"<td>(.*?)</td>", rendered, re.DOTALL)
    assert len(cells) == 3 and html.unescape(cells[1]) == _visible(environment).strip()
