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
`$(` in it, so the scripts stay within what this reader can follow.
"""

import re
from dataclasses import dataclass, field


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
        if char == "\n":
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
            if char == "'" and following == "'":
                code_line.append(following)
                statement.append(following)
                index += 1
            elif char == "'":
                state = "code"
                bare_line.append(char)
        elif state == "double":
            code_line.append(char)
            statement.append(char)
            if char == "`" or (char == '"' and following == '"'):
                code_line.append(following)
                statement.append(following)
                index += 1
            elif char == "$" and following == "(":
                raise ValueError(f"line {line + 1}: $( inside a double-quoted string is beyond this reader")
            elif char == '"':
                state = "code"
                bare_line.append(char)
        elif char == "#":
            state = "comment"
        elif char == "'":
            state = "single"
            code_line.append(char)
            bare_line.append(char)
            statement.append(char)
        elif char == '"':
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
