"""Text that reaches a file, a terminal, a CI log or Markdown: which characters are refused where text comes in, and
the one neutraliser for each place text goes out.

A value from a stack file, an outputs file or an answer of Microsoft Graph ends up in XML, JSON, PowerShell,
Markdown, on the terminal and in CI logs. Control characters there break files (a NUL or a vertical tab makes om.cfg
not well-formed: XML 1.0 section 2.2 allows no C0 character but tab, line feed and carriage return), and on a
terminal an escape sequence can rewrite the screen, set the window title or, on some terminals, answer back as typed
input. Bidirectional formatting characters make text read differently from what it is ("Trojan Source",
CVE-2021-42574). So every such string is refused where it comes in (`unsafe_characters`), and everything written
out goes through the neutraliser of its destination:

- `for_terminal(text)`: control, bidirectional and invisible formatting characters written as escapes (`\\x1b`);
- `for_ci_log(text)`: the same, and no line can be read as a CI logging command (see `CiLog`); `for_one_line(text)`
  also escapes new lines and tabs, for one line of a message that another program prints;
- `for_markdown(text)`: literal text in a Markdown paragraph, list item, heading or table cell; nothing in it can
  become markup, a link, an image or HTML. `markdown_code(text)` is a code span holding `text`.

The neutralisers insert only ASCII text that cannot start what they neutralise.

Every file the tool reads comes in through `read_text_file` (or `decode_text` for bytes from stdin or a command):
one size limit, one set of encodings, one kind of error (`TextFileError`, one line naming the file).
"""

from __future__ import annotations

import codecs
import os
import re
from typing import BinaryIO

# U+061C, U+200E/U+200F, U+202A..U+202E and U+2066..U+2069: the bidirectional formatting characters that
# Unicode UAX #9 lists (the ones CVE-2021-42574 abuses).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Unicode category Cc is exactly U+0000..U+001F and U+007F..U+009F (C0, DEL, C1); U+2028 and U+2029 are the
# line and paragraph separators, which some editors and terminals treat as line breaks. U+FFFE and U+FFFF are no
# characters at all (Unicode noncharacters) and the only ones of the Basic Multilingual Plane beyond the surrogates
# that XML 1.0 does not allow (section 2.2, Char: "[#xE000-#xFFFD]"): in a secret or a name they would make om.cfg
# not well-formed.
NONCHARACTERS = "\ufffe\uffff"
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}{NONCHARACTERS}]")
# Characters that show nothing (Unicode category Cf without the joiners U+200C/U+200D, which Persian, Indic
# scripts and emoji sequences need): the soft hyphen, U+180E, the zero width space, the word joiner and invisible
# operators U+2060..U+2064, the deprecated formatting characters U+206A..U+206F, the byte order mark, the
# interlinear annotation characters U+FFF9..U+FFFB and the tag characters U+E0000..U+E007F ("ASCII smuggling").
# They are not refused where text comes in, but printed they would hide what a line holds.
INVISIBLE = "\u00ad\u180e\u200b\u2060-\u2064\u206a-\u206f\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
# On the terminal, new lines and tabs are ours to print; everything else unsafe is shown escaped.
_UNSAFE_ON_TERMINAL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}{NONCHARACTERS}{INVISIBLE}]")
# In Markdown nothing unsafe is kept: a new line would end a table row, a heading or a list item.
_UNSAFE_IN_MARKDOWN = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}{NONCHARACTERS}{INVISIBLE}]")


def unsafe_characters(text: str) -> list[str]:
    """The distinct characters of `text` that must not reach a file or a terminal, in order of appearance."""
    return list(dict.fromkeys(_UNSAFE.findall(text)))


def describe_characters(characters: list[str]) -> str:
    """`U+001B, U+202E`: how an error message names characters that cannot be shown."""
    return ", ".join(f"U+{ord(character):04X}" for character in characters)


def for_terminal(text: str) -> str:
    """`text` with every unsafe or invisible character except new line and tab written as an escape (`\\x1b`,
    `\\u202e`)."""
    return _UNSAFE_ON_TERMINAL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


# CI logs ------------------------------------------------------------------------------------------------------------
#
# Azure Pipelines: "When the agent detects a line that matches the ##vso[...] or ##[...] pattern in stdout, it
# interprets the command and takes the requested action" (learn.microsoft.com/azure/devops/pipelines/scripts/
# logging-commands), such as setting a variable, uploading a file or failing the step. The agent finds the prefix
# anywhere in a line, not only at its start (microsoft/azure-pipelines-agent, src/Microsoft.VisualStudio.Services.
# Agent/Command.cs: `message.IndexOf("##vso[")`).
# GitHub Actions: a workflow command is a line `::name parameters::value` (docs.github.com/actions/reference/
# workflow-commands-for-github-actions), read "after trim leading space" (actions/runner, src/Runner.Common/
# ActionCommand.cs, TryParseV2: `message.TrimStart()` then `StartsWith("::")`); that includes `::stop-commands::`,
# which would switch off the commands of the workflow's own later lines, and `::add-mask::`. The runner also still
# parses the older `##[name]` form anywhere in a line (ActionCommand.TryParse: `message.IndexOf("##[")`).
# A command is broken by writing its bracket or its second colon as an escape (`##vso\u005b`, `:\u003a`): the line
# still reads the same to a person, and no agent matches it. The escape is JSON's, so that `--json` output stays
# JSON: there the text can only sit inside a string (`#` and a line-starting `:` are no JSON syntax), where `\u005b`
# reads back as the `[` it stands for. Lines are split at line feeds by the agents; every
# other line break (CR, VT, FF, NEL, U+2028/U+2029) is escaped first, so it cannot start a line either.
_CI_COMMAND = re.compile(r"##(?:vso)?(\[)|^\s*:(:)", re.IGNORECASE | re.MULTILINE)
_CI_ESCAPES = {"[": "\\u005b", ":": "\\u003a"}
_CI_CONTEXT = 6  # characters of the current line kept between pieces: enough to hold `##vso` before a `[`


def _break_command(match: re.Match[str]) -> str:
    mark = match.lastindex or 0
    start = match.start(mark) - match.start()
    return match.group()[:start] + _CI_ESCAPES[match.group(mark)]


class CiLog:
    """The CI log neutraliser for text written in pieces (a stream's `write` calls, which need not end at a line
    break): it remembers the end of the current line, so a command split over two writes is broken too.
    `CiLog()(piece)` returns the piece ready to be written; the text must already be `for_terminal` text."""

    def __init__(self) -> None:
        self._context = ""  # what the current line holds so far, as far as matching a command needs it

    def __call__(self, piece: str) -> str:
        combined = self._context + piece
        neutral = _CI_COMMAND.sub(_break_command, combined)
        # The context is neutral already (it has no `[` after `##`, and no second colon at its start), and a command
        # is matched from its own start to its escaped character, so the context comes back unchanged.
        written = neutral[len(self._context) :]
        line = neutral.rpartition("\n")[2]
        if line.isspace() or line.lstrip() in ("", ":"):
            self._context = line.lstrip()  # still the start of a line: the colon rule applies to what comes next
        else:
            self._context = "\x00" + line[-_CI_CONTEXT:]  # not the start of a line: only `##vso[` can still form
        return written


def for_ci_log(text: str) -> str:
    """`text` as `for_terminal` writes it, with no line an Azure Pipelines agent or a GitHub Actions runner would
    take for a logging command."""
    return CiLog()(for_terminal(text))


def for_one_line(text: str) -> str:
    """`text` as one line of a terminal or CI log, for a value inside a message that other programs print (an
    exception that `pulumi up` shows): new lines and tabs escaped too, and no logging command."""
    return CiLog()(_UNSAFE_IN_MARKDOWN.sub(_escape, text))


# Markdown -----------------------------------------------------------------------------------------------------------
#
# CommonMark 0.31.2, section 2.4: "Any ASCII punctuation character may be backslash-escaped"; an escaped character
# is literal text, never the start of emphasis, a link or image (`[`, `!`), raw HTML or an autolink (`<`), an entity
# (`&`), a code span (`` ` ``), a heading (`#`), a list item (`-`, `+`, `*`, `1.`, `1)`), a block quote (`>`) or a
# thematic break. GitHub's extensions read escaped characters as text too: table cells (`\|`, GFM spec 4.10, "It is
# possible to include a pipe in a cell's content by escaping it"), strikethrough (`~`), math (`$`), and the `@` of
# mentions and `#` of issue references. `:` and `.` (the scheme of a bare link, `www.`, emoji shortcodes) are escaped
# so that no address in a value is turned into a link by the GFM autolink extension. Quotes, `%`, `=`, `?`, `,`,
# `;` and `/` mean nothing outside those constructs and stay as they are, for a readable source.
_MARKDOWN_SPECIAL = re.compile(r"[!#$&()*+\-.:<>@\[\\\]^_`{|}~]")


def for_markdown(text: str) -> str:
    """`text` as literal Markdown inline text: unsafe and invisible characters (new lines too) written as visible
    escapes, and every ASCII punctuation character that Markdown or HTML could read backslash-escaped. Safe in a
    paragraph, a heading, a list item and a table cell; not inside a code span (use `markdown_code`)."""
    visible = _UNSAFE_IN_MARKDOWN.sub(_escape, text)
    return _MARKDOWN_SPECIAL.sub(lambda match: "\\" + match.group(), visible)


def markdown_code(text: str, *, in_table: bool = False) -> str:
    """A code span showing `text` verbatim (unsafe characters as escapes): fenced with one backtick more than the
    longest run of backticks in it, and padded with a space where CommonMark (6.1) would otherwise take a backtick
    for the fence or strip a space of the text. `in_table`: `|` escaped, since a GFM table splits its cells before it
    reads code spans (GFM spec 4.10); outside a table the backslash would show."""
    visible = _UNSAFE_IN_MARKDOWN.sub(_escape, text) or " "
    if in_table:
        visible = visible.replace("|", "\\|")
    longest = max((len(run) for run in re.findall("`+", visible)), default=0)
    fence = "`" * (longest + 1)
    spaced = visible.startswith(" ") and visible.endswith(" ") and not visible.isspace()
    pad = " " if spaced or visible.startswith("`") or visible.endswith("`") else ""
    return f"{fence}{pad}{visible}{pad}{fence}"


# Reading files ------------------------------------------------------------------------------------------------------
#
# The files the tool reads (outputs documents, the earlier outputs of `rotation-notice --before` and
# `plan --compare`, om.cfg) are small: the outputs of 300 portals are about 1 MB. A limit well above that stops a wrong
# path (a log, a disk image, /dev/zero) from being read whole into memory. Encodings: UTF-8, with or without a byte
# order mark, and UTF-16 with one, which is what Windows PowerShell 5.1's `>` and `Out-File` write ("UTF-16LE" by
# default: learn.microsoft.com/powershell/module/microsoft.powershell.core/about/about_character_encoding). UTF-32
# starts with the UTF-16 little-endian mark, so it is named and refused rather than misread.
MAX_FILE_BYTES = 16_000_000
_UTF32_MARKS = (codecs.BOM_UTF32_LE, codecs.BOM_UTF32_BE)
_UTF16_MARKS = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)


class TextFileError(ValueError):
    """A file (or stream) that cannot be read as text: the message is one line naming it."""


def read_file_bytes(path: str | os.PathLike[str], what: str, limit: int = MAX_FILE_BYTES) -> bytes:
    """At most `limit` bytes of a file. FileNotFoundError passes through (the caller knows whether a missing file
    is an error); any other failure, and a larger file, is a TextFileError."""
    try:
        with _open_for_reading(path) as stream:
            data = stream.read(limit + 1)
    except FileNotFoundError:
        raise
    except OSError as error:
        raise TextFileError(f"cannot read {what}: {error.strerror or type(error).__name__}") from None
    if len(data) > limit:
        raise TextFileError(f"{what}: larger than {limit} bytes; not read")
    return data


def _open_for_reading(path: str | os.PathLike[str]) -> BinaryIO:
    """The file opened for reading without waiting: opening a FIFO (a named pipe put where a file was expected)
    blocks until something writes to it, possibly forever. Opened non-blocking, then read blocking: a pipe with a
    writer (`--outputs <(pulumi stack output ...)`) is read to its end, one without reads as empty (POSIX read():
    end-of-file when no process has the pipe open for writing)."""
    nonblocking = getattr(os, "O_NONBLOCK", 0)  # POSIX; Windows has no FIFOs in the file system
    descriptor = os.open(path, os.O_RDONLY | nonblocking | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0))
    try:
        if nonblocking:
            os.set_blocking(descriptor, True)
        return os.fdopen(descriptor, "rb")
    except BaseException:
        os.close(descriptor)
        raise


def decode_text(data: bytes, what: str, limit: int = MAX_FILE_BYTES) -> str:
    """`data` as text by the one rule for every file: UTF-8 (a byte order mark is dropped) or UTF-16 with a byte
    order mark; nothing larger than `limit`."""
    if len(data) > limit:
        raise TextFileError(f"{what}: larger than {limit} bytes; not read")
    if data.startswith(_UTF32_MARKS):
        raise TextFileError(f"{what}: UTF-32 text, which is not read; save it as UTF-8")
    encoding = "utf-16" if data.startswith(_UTF16_MARKS) else "utf-8-sig"
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        line = data[: error.start].count(b"\n") + 1
        raise TextFileError(
            f"{what}: not UTF-8 or UTF-16 text (line {line}, byte 0x{data[error.start]:02x})"
            if encoding == "utf-8-sig"
            else f"{what}: not UTF-8 or UTF-16 text (UTF-16 broken at byte {error.start})"
        ) from None


def read_text_file(path: str | os.PathLike[str], what: str, limit: int = MAX_FILE_BYTES) -> str:
    """A whole text file by the rules above; FileNotFoundError passes through."""
    return decode_text(read_file_bytes(path, what, limit), what, limit)
