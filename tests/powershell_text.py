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
    script = Script(text)
    code_line: list[str] = []
    bare_line: list[str] = []
    comment_line: list[str] = []
    statement: list[str] = []  # the code since the last brace or ';' on this line: a block's header
    stack: list[Block] = []
    line = 0
    state = "code"
    index = 0

    def end_line() -> None:
        nonlocal code_line, bare_line, comment_line, statement
        script.code.append("".join(code_line).strip())
        script.bare.append("".join(bare_line).strip())
        script.comments.append("".join(comment_line).strip())
        code_line, bare_line, comment_line, statement = [], [], [], []

    while index < len(text):
        char = text[index]
        following = text[index + 1] if index + 1 < len(text) else ""
        if char in LINE_ENDS:
            if state == "comment":
                state = "code"
            if state in ("single", "double"):
                code_line.append(char)  # a string may span lines; keep it on the line where it started
            else:
                end_line()
                line += 1
            index += 1
            continue
        if state == "comment":
            comment_line.append(char)
        elif state == "single":
            code_line.append(char)
            statement.append(char)
            if char in SINGLE_QUOTES and following and following in SINGLE_QUOTES:
                code_line.append(following)
                statement.append(following)
                index += 1
            elif char in SINGLE_QUOTES:
                state = "code"
                bare_line.append(char)
        elif state == "double":
            code_line.append(char)
            statement.append(char)
            if char == "`" or (char in DOUBLE_QUOTES and following and following in DOUBLE_QUOTES):
                code_line.append(following)
                statement.append(following)
                index += 1
            elif char == "$" and following == "(":
                raise ValueError(f"line {line + 1}: $( inside a double-quoted string is beyond this reader")
            elif char in DOUBLE_QUOTES:
                state = "code"
                bare_line.append(char)
        elif char == "#":
            state = "comment"
        elif char in SINGLE_QUOTES:
            state = "single"
            code_line.append(char)
            bare_line.append(char)
            statement.append(char)
        elif char in DOUBLE_QUOTES:
            state = "double"
            code_line.append(char)
            bare_line.append(char)
            statement.append(char)
        elif char == "{":
            block = Block(
                "".join(statement).strip().removeprefix("}").strip(), line, parent=stack[-1] if stack else None
            )
            script.blocks.append(block)
            stack.append(block)
            code_line.append(char)
            bare_line.append(char)
            statement = []
        elif char == "}":
            if not stack:
                raise ValueError(f"line {line + 1}: '}}' without '{{'")
            stack.pop().end = line
            code_line.append(char)
            bare_line.append(char)
            statement = ["}"]
        elif char == ";":
            code_line.append(char)
            bare_line.append(char)
            statement = []
        else:
            code_line.append(char)
            bare_line.append(char)
            statement.append(char)
        index += 1
    end_line()
    if state in ("single", "double"):
        raise ValueError("a string is not closed")
    if stack:
        raise ValueError(f"'{{' on line {stack[-1].start + 1} is not closed")
    return script
