"""Reading the structure of the PowerShell scripts that `render` writes, without PowerShell.

PowerShell cannot be installed on these machines: Debian's archive has no `powershell` package (`apt-cache policy
powershell` shows no candidate), the PyPI package `pwsh` is a Windows-only wrapper around an installed PowerShell
(its metadata says "Platform: win32", "Operating System :: Microsoft :: Windows"; it imports pythonnet's `clr` and
System.Management.Automation), and the npm package `pwsh` downloads PowerShell from GitHub releases in its
postinstall script, which these machines cannot reach. So the tests read the generated text: this module splits a
script into code and comments, follows its braces, and tells for each line which blocks (`if (...)`, `function X`,
`try`, `foreach (...)`) enclose it.

It understands what the rendered scripts use: `#` comments, single-quoted strings ('' escapes), double-quoted
strings (backtick and "" escapes) without `$(...)` inside, and braces. `parse()` refuses a double-quoted string with
`$(` in it, so the scripts stay within what this reader can follow. Like PowerShell's tokenizer it takes U+2018..U+201B
as single quotes and U+201C..U+201E as double quotes (PowerShell/PowerShell CharTraits.cs, SpecialChars), and
NextLine U+0085 as a line end.

Windows PowerShell 5.1 reads a script without a byte order mark in the ANSI code page (about_Character_Encoding);
`decode_like_windows_powershell` reads bytes that way (cp1252, a Western Windows), so a test can see what 5.1 sees.
`evaluate` computes the value of what render.ps_quote writes: single-quoted strings and [char]0xNNNN joined by +.
"""

import re
from dataclasses import dataclass, field

SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
DOUBLE_QUOTES = '"\u201c\u201d\u201e'
LINE_ENDS = "\n\u0085"
UTF8_BOM = b"\xef\xbb\xbf"


def decode_like_windows_powershell(data: bytes, code_page: str = "cp1252") -> str:
    """The text Windows PowerShell 5.1 reads from a script's bytes: UTF-8 after a UTF-8 byte order mark, else the
    ANSI code page. Windows maps the five bytes cp1252 leaves undefined (0x81, 0x8D, 0x8F, 0x90, 0x9D) to the C1
    control of the same number; Python's codec refuses them."""
    if data.startswith(UTF8_BOM):
        return data[len(UTF8_BOM) :].decode("utf-8")
    return "".join(bytes([byte]).decode(code_page, errors="replace").replace("\ufffd", chr(byte)) for byte in data)


_LITERAL = re.compile(r"'((?:[^']|'')*)'|\[char\]0x([0-9A-F]{4})")


def evaluate(expression: str) -> str:
    """The value of `'text'` or `('text' + [char]0x00D1 + ...)`: what ps_quote writes, and nothing else."""
    inner = expression[1:-1] if expression.startswith("(") and expression.endswith(")") else expression
    parts = re.findall(r"'(?:[^']|'')*'|\[char\]0x[0-9A-F]{4}", inner)
    assert " + ".join(parts) == inner, f"not a quoted value: {expression!r}"
    units = []
    for part in parts:
        if part.startswith("'"):
            units.append(part[1:-1].replace("''", "'").encode("utf-16-le"))
        else:
            units.append(int(part[8:], 16).to_bytes(2, "little"))
    return b"".join(units).decode("utf-16-le", "surrogatepass")


@dataclass
class Block:
    header: str  # the code before its "{" on that line: "if ($changed)", "else", "function Read-EwsPolicy", "try"
    start: int  # line index of "{"
    end: int = -1  # line index of the matching "}"
    parent: "Block | None" = None

    def contains(self, index: int) -> bool:
        return self.start < index < self.end or (self.start == index == self.end)


@dataclass
class Script:
    text: str
    code: list[str] = field(default_factory=list)  # each line without its comment, stripped
    bare: list[str] = field(default_factory=list)  # the same with every string's content left out: '' and ""
    comments: list[str] = field(default_factory=list)  # each line's comment text
    blocks: list[Block] = field(default_factory=list)

    def lines(self, pattern: str) -> list[int]:
        """Indices of the code lines that match `pattern` (re.search)."""
        return [index for index, line in enumerate(self.code) if re.search(pattern, line)]

    def calls(self, pattern: str) -> list[int]:
        """Indices of the lines whose code outside strings matches `pattern`: commands, not messages."""
        return [index for index, line in enumerate(self.bare) if re.search(pattern, line)]

    def line(self, exact: str) -> int:
        """The index of the one code line that is exactly `exact`."""
        found = [index for index, line in enumerate(self.code) if line == exact]
        assert len(found) == 1, f"{exact!r} found {len(found)} times"
        return found[0]

    def enclosing(self, index: int) -> list[Block]:
        """The blocks around line `index`, outermost first: a line between a block's braces, or on a one-line
        block (`if (...) { ... }`)."""
        return [block for block in self.blocks if block.contains(index)]

    def headers(self, index: int) -> list[str]:
        return [block.header for block in self.enclosing(index)]

    def block(self, header: str) -> Block:
        found = [block for block in self.blocks if block.header == header]
        assert len(found) == 1, f"block {header!r} found {len(found)} times"
        return found[0]

    def body(self, block: Block) -> list[str]:
        return [line for line in self.code[block.start + 1 : block.end] if line]

    @property
    def comment_text(self) -> str:
        return " ".join(self.comments)


def parse(text: str) -> Script:
    return _Reader(text).read()


class _Reader:
    """One pass over the text; one method per state (code, comment, single- or double-quoted string)."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.script = Script(text)
        self.code_line: list[str] = []
        self.bare_line: list[str] = []
        self.comment_line: list[str] = []
        self.statement: list[str] = []  # the code since the last brace or ';' on this line: a block's header
        self.stack: list[Block] = []
        self.line = 0
        self.state = "code"

    def read(self) -> Script:
        index = 0
        while index < len(self.text):
            char = self.text[index]
            following = self.text[index + 1] if index + 1 < len(self.text) else ""
            if char in LINE_ENDS:
                self.line_end(char)
                index += 1
                continue
            step = {"comment": self.comment, "single": self.single, "double": self.double, "code": self.code}
            index += step[self.state](char, following)
        self.end_line()
        if self.state in ("single", "double"):
            raise ValueError("a string is not closed")
        if self.stack:
            raise ValueError(f"'{{' on line {self.stack[-1].start + 1} is not closed")
        return self.script

    def end_line(self) -> None:
        self.script.code.append("".join(self.code_line).strip())
        self.script.bare.append("".join(self.bare_line).strip())
        self.script.comments.append("".join(self.comment_line).strip())
        self.code_line, self.bare_line, self.comment_line, self.statement = [], [], [], []

    def line_end(self, char: str) -> None:
        if self.state == "comment":
            self.state = "code"
        if self.state in ("single", "double"):
            self.code_line.append(char)  # a string may span lines; keep it on the line where it started
        else:
            self.end_line()
            self.line += 1

    def comment(self, char: str, following: str) -> int:
        self.comment_line.append(char)
        return 1

    def in_string(self, *chars: str) -> None:
        self.code_line.extend(chars)
        self.statement.extend(chars)

    def single(self, char: str, following: str) -> int:
        if char in SINGLE_QUOTES and following and following in SINGLE_QUOTES:
            self.in_string(char, following)  # a doubled quote of any kind is one quote
            return 2
        self.in_string(char)
        if char in SINGLE_QUOTES:
            self.state = "code"
            self.bare_line.append(char)
        return 1

    def double(self, char: str, following: str) -> int:
        if char == "`" or (char in DOUBLE_QUOTES and following and following in DOUBLE_QUOTES):
            self.in_string(char, following)
            return 2
        if char == "$" and following == "(":
            raise ValueError(f"line {self.line + 1}: $( inside a double-quoted string is beyond this reader")
        self.in_string(char)
        if char in DOUBLE_QUOTES:
            self.state = "code"
            self.bare_line.append(char)
        return 1

    def code(self, char: str, following: str) -> int:
        if char == "#":
            self.state = "comment"
            return 1
        if char in SINGLE_QUOTES:
            self.state = "single"
        elif char in DOUBLE_QUOTES:
            self.state = "double"
        self.code_line.append(char)
        self.bare_line.append(char)
        if char == "{":
            header = "".join(self.statement).strip().removeprefix("}").strip()
            block = Block(header, self.line, parent=self.stack[-1] if self.stack else None)
            self.script.blocks.append(block)
            self.stack.append(block)
            self.statement = []
        elif char == "}":
            if not self.stack:
                raise ValueError(f"line {self.line + 1}: '}}' without '{{'")
            self.stack.pop().end = self.line
            self.statement = ["}"]
        elif char == ";":
            self.statement = []
        else:
            self.statement.append(char)
        return 1
