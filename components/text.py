"""Text that reaches a file or a terminal: which characters are refused, and how printed text is made harmless.

A value from a stack file or an outputs file ends up in XML, JSON, PowerShell, Markdown and on the terminal. Control
characters there break files (a NUL or a vertical tab makes om.cfg not well-formed: XML 1.0 section 2.2 allows
no C0 character but tab, line feed and carriage return), and on a terminal
an escape sequence can rewrite the screen, set the window title or, on some terminals, answer back as typed input.
Bidirectional formatting characters make text read differently from what it is ("Trojan Source", CVE-2021-42574).
So every such string is refused where it comes in, and everything printed is escaped once more on the way out.
"""

from __future__ import annotations

import re

# U+061C, U+200E/U+200F, U+202A..U+202E and U+2066..U+2069: the bidirectional formatting characters that
# Unicode UAX #9 lists (the ones CVE-2021-42574 abuses).
BIDI_CONTROLS = "\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069"
# Unicode category Cc is exactly U+0000..U+001F and U+007F..U+009F (C0, DEL, C1); U+2028 and U+2029 are the
# line and paragraph separators, which some editors and terminals treat as line breaks.
_UNSAFE = re.compile(f"[\x00-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")
# On the terminal, new lines and tabs are ours to print; everything else unsafe is shown escaped.
_UNSAFE_ON_TERMINAL = re.compile(f"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029{BIDI_CONTROLS}]")


def unsafe_characters(text: str) -> list[str]:
    """The distinct characters of `text` that must not reach a file or a terminal, in order of appearance."""
    return list(dict.fromkeys(_UNSAFE.findall(text)))


def describe_characters(characters: list[str]) -> str:
    """`U+001B, U+202E`: how an error message names characters that cannot be shown."""
    return ", ".join(f"U+{ord(character):04X}" for character in characters)


def for_terminal(text: str) -> str:
    """`text` with every unsafe character except new line and tab written as an escape (`\\x1b`, `\\u202e`)."""
    return _UNSAFE_ON_TERMINAL.sub(_escape, text)


def _escape(match: re.Match[str]) -> str:
    code = ord(match.group())
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
