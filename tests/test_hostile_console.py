"""Attack cases against what the command line writes (issue 17, classes 3 and 5): a console that cannot encode
the text (Windows gives a pipe cp1252), and lines from outside that a CI agent would run as logging commands."""

import io
import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT

from components.config import ConfigError
from intrexx_connector.cli import _SafeText

# One environment with every script the cases need: each subprocess costs a plan (about 2 s on this machine).
ENVIRONMENT = "日本語 Ελληνικά русский عربي ESPAÑA Ò 🚀"


def test_plan_of_a_non_latin_environment_to_a_cp1252_pipe_does_not_crash(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.intl.yaml").write_text(
        "config:\n"
        f'  intrexx-exchange:environment: "{ENVIRONMENT}"\n'
        "  intrexx-exchange:portals:\n"
        "    - name: hr\n"
        "      baseUrl: https://intrexx.contoso.example/hr\n",
        encoding="utf-8",
    )
    result = subprocess.run(
        [sys.executable, "-m", "intrexx_connector", "plan", "--stack", "intl"],
        capture_output=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONIOENCODING": "cp1252"},
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr.decode("cp1252")
    assert b"Traceback" not in result.stderr
    shown = ENVIRONMENT.encode("cp1252", "backslashreplace").decode("cp1252")
    assert shown in result.stdout.decode("cp1252")
    assert "ESPAÑA Ò" in shown, "what cp1252 holds is written as it is"


class _Console(io.StringIO):
    """A text stream that, like a console in a narrow encoding, refuses what its encoding cannot hold."""

    def __init__(self, encoding: str) -> None:
        super().__init__()
        self._encoding = encoding

    @property
    def encoding(self) -> str:  # type: ignore[override]
        return self._encoding

    def write(self, text: str) -> int:
        text.encode(self._encoding)
        return super().write(text)


@pytest.mark.parametrize("encoding", ["cp1252", "ascii", "latin-1", "cp437", "cp932", "utf-8"])
@pytest.mark.parametrize(
    "text",
    ["日本語", "\udcff lone surrogate", "mixed ä € 日", "\U0001f680", "\u202e bidi", "€ fits", "ÿ"],
    ids=["cjk", "surrogate", "mixed", "astral", "bidi", "euro", "y-diaeresis"],
)
def test_the_writer_escapes_what_the_console_cannot_encode(text, encoding):
    console = _Console(encoding)
    writer = _SafeText(console)
    assert writer.write(text) == len(text)
    written = console.getvalue()
    assert written.encode(encoding)  # no UnicodeEncodeError
    assert "\u202e" not in written
    if "\udcff" not in text and "\u202e" not in text:
        assert written.encode(encoding, "backslashreplace") == text.encode(encoding, "backslashreplace")


def test_an_argument_echoed_by_argparse_is_no_command(capsys):
    from intrexx_connector.cli import main

    with pytest.raises(SystemExit) as exit_:
        main(["status", "--stack", "x", "--warn-days", "##vso[task.setvariable variable=a]b"])
    assert exit_.value.code == 2
    err = capsys.readouterr().err
    assert "##vso[" not in err and "##vso\\u005b" in err


@pytest.mark.parametrize(
    "pieces",
    [
        ["##vso[task.setvariable variable=PATH]/tmp\n"],
        ["name: ", "##vso[task.complete result=Succeeded]", "\n"],
        ["#", "#vso[task.uploadfile]/etc/shadow", "\n"],
        ["::stop-commands::abc", "\n"],
        ["  ", ":", ":error::fake", "\n"],
        ["ok\n::warning::x\n"],
    ],
    ids=["whole", "middle", "split-hash", "stop-commands", "split-colon", "second-line"],
)
def test_the_writer_breaks_ci_logging_commands_in_every_line(pieces):
    console = io.StringIO()
    writer = _SafeText(console)
    for piece in pieces:
        writer.write(piece)
    for line in console.getvalue().split("\n"):
        assert "##vso[" not in line and "##[" not in line and not line.lstrip().startswith("::")


@pytest.mark.parametrize(
    "problem",
    [
        "environment: got '\x1b]0;owned\x07'",
        "name: hr\n::warning::forged second problem",
        "name: ##vso[task.setvariable variable=x]y",
        "rtl \u202e text",
        "tab\there",
    ],
    ids=["osc", "newline-command", "vso", "bidi", "tab"],
)
def test_a_config_error_under_pulumi_up_keeps_no_raw_escape_and_no_command(problem):
    message = str(ConfigError([problem]))
    lines = message.split("\n")
    assert len(lines) == 2  # the header and one line for the one problem
    assert not any(ch in message for ch in "\x1b\x07\u202e\t")
    assert not any("##vso[" in line or line.lstrip().startswith("::") for line in lines)


@pytest.mark.parametrize(
    "value",
    ["##vso[task.setvariable variable=x]y", "::error::x", "a\n::warning::b", "##[group]x", "\x1b[2J ##vso[x.y]"],
    ids=["vso", "colon", "newline", "group", "escape"],
)
def test_json_output_stays_json_with_commands_broken(value):
    console = io.StringIO()
    writer = _SafeText(console)
    document = {"detail": value, value: [value]}
    writer.write(json.dumps(document, indent=2, sort_keys=True))
    writer.write("\n")
    written = console.getvalue()
    assert json.loads(written) == document
    for line in written.split("\n"):
        assert "##vso[" not in line and "##[" not in line and not line.lstrip().startswith("::")
