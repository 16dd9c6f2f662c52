"""The README renders as GitHub renders it and its console examples are what the shipped stacks give (issue 18).

The README is parsed with markdown-it-py, a CommonMark parser (GitHub's Markdown is CommonMark plus extensions):
- every code fence closes on a line of its own (a line of three backticks followed by text does not close a fence,
  CommonMark 0.31 "Fenced code blocks": "The closing code fence ... may be followed only by spaces or tabs"), so no
  code block swallows the sections after it;
- every in-page link (`#anchor`) names a heading's anchor as GitHub makes it, and every relative link a file;
- every command of a `console` example is either run here, against the shipped stack files with
  INTREXX_EXCHANGE_TODAY pinned to the example's day, and its output compared with what the README shows, or
  checked for the names it uses (portals, resources), or listed in NOT_RUN with the reason.

How an example is compared: the README's lines must appear in the real output (stdout and stderr as a terminal
shows them) in the same order; a line `...` stands for any number of lines and `...` inside a line for any text.
Without a leading (trailing) `...` the example starts (ends) where the output does. A command that `--stack S`
reads outputs for gets them from a stand-in `pulumi` on PATH serving what `plan --stack S --save-outputs` writes.
When an example fails, the message holds the real output: paste it into the README, eliding with `...`.
"""

from __future__ import annotations

import functools
import itertools
import json
import os
import re
import shlex
import subprocess
import sys
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import yaml
from helpers import ROOT
from idp_fixture import IdentityProvider
from markdown_it import MarkdownIt
from markdown_it.token import Token

README = ROOT / "README.md"
# The day the README's examples were made on (the date in `make plan`'s first line).
EXAMPLE_DAY = "2026-11-29"
CONNECTOR = ("python -m intrexx_connector", "intrexx-connector", "venv/bin/intrexx-connector")
# Commands of the README's console examples that are not run here, and why.
NOT_RUN = {
    ". venv/bin/activate": "changes the shell it runs in; the commands after it run here as the connector",
    "make test": "the suite itself; its recipe lines are checked against the Makefile",
    "pulumi state unprotect": "needs a deployed stack; the URNs are checked against the plan",
    "pulumi up": "needs a tenant",
    "apply": "needs an Intrexx portal directory; the portal is checked to be a sign-in portal of the stack",
}


# Every Markdown file of the repository that GitHub renders.
MARKDOWN = sorted(
    path.relative_to(ROOT).as_posix() for pattern in ("*.md", "docs/*.md", "policy/*.md") for path in ROOT.glob(pattern)
)


@functools.cache
def tokens_of(name: str) -> list[Token]:
    return MarkdownIt("commonmark").enable("table").parse((ROOT / name).read_text(encoding="utf-8"))


def readme_tokens() -> list[Token]:
    return tokens_of("README.md")


# -- rendering ---------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", MARKDOWN)
def test_every_code_fence_closes_on_a_line_of_its_own(name):
    lines = (ROOT / name).read_text(encoding="utf-8").splitlines()
    for fence in (t for t in tokens_of(name) if t.type == "fence"):
        assert fence.map is not None
        start, end = fence.map
        closing = lines[end - 1].strip() if end - 1 > start else ""
        assert re.fullmatch(re.escape(fence.markup[0]) + f"{{{len(fence.markup)},}}", closing), (
            f"{name}:{start + 1}: the code fence opened here does not close (CommonMark: the closing fence is "
            f"a line of only {fence.markup}); everything after it renders as code"
        )
        for offset, line in enumerate(fence.content.splitlines(), start + 2):
            assert not line.lstrip().startswith(fence.markup), (
                f"{name}:{offset}: a line starting with {fence.markup} inside a code block: a fence closes only "
                "on a line of the backticks alone"
            )


def test_the_readme_has_code_fences_and_links():
    tokens = readme_tokens()
    assert [t for t in tokens if t.type == "fence"] and list(links(tokens))


def github_anchor(text: str) -> str:
    """The anchor GitHub gives a heading (github-slugger): lower case, every character that is not a letter, digit,
    `_`, `-` or space removed, spaces become `-`."""
    return re.sub(r"[^\w\- ]", "", text.lower()).replace(" ", "-")


def heading_anchors(tokens: list[Token]) -> set[str]:
    """The anchors of the headings; a repeated heading gets `-1`, `-2`, ... as on GitHub."""
    anchors: set[str] = set()
    seen: dict[str, int] = {}
    for previous, token in itertools.pairwise(tokens):
        if previous.type != "heading_open" or token.type != "inline":
            continue
        text = "".join(child.content for child in token.children or () if child.type in ("text", "code_inline"))
        anchor = github_anchor(text)
        count = seen.get(anchor, 0)
        seen[anchor] = count + 1
        anchors.add(anchor if count == 0 else f"{anchor}-{count}")
    return anchors


def links(tokens: list[Token]) -> Iterator[str]:
    for token in tokens:
        for child in token.children or ():
            if child.type == "link_open":
                yield str(child.attrs["href"])
            elif child.type == "image":
                yield str(child.attrs["src"])


def anchors_of(path: Path) -> set[str]:
    return heading_anchors(tokens_of(path.relative_to(ROOT).as_posix()))


def test_github_anchors_are_made_as_github_makes_them():
    assert github_anchor("Post-deploy: `python -m intrexx_connector`") == "post-deploy-python--m-intrexx_connector"
    assert github_anchor("Intrexx's two connectors") == "intrexxs-two-connectors"
    assert github_anchor("Configuration (namespace `intrexx-exchange`)") == "configuration-namespace-intrexx-exchange"
    tokens = MarkdownIt("commonmark").parse("# Notes\n\n## Notes\n")
    assert heading_anchors(tokens) == {"notes", "notes-1"}


def test_the_readme_s_links_to_its_sections_resolve():
    anchors = heading_anchors(readme_tokens())
    assert {"migrating-from-ews-to-microsoft-graph", "permissions-of-the-deploying-identity"} <= anchors


@pytest.mark.parametrize("name", MARKDOWN)
def test_every_link_inside_the_repository_resolves(name):
    """`#anchor` names a heading of the same file, `path` (a link or an image) a file of the repository,
    `path#anchor` a heading there."""
    broken = []
    for href in links(tokens_of(name)):
        if re.match(r"[a-z][a-z0-9+.-]*:", href):
            continue  # https:, mailto:
        path, _, anchor = href.partition("#")
        target = ((ROOT / name).parent / path).resolve() if path else ROOT / name
        outside = not target.exists() or not target.is_relative_to(ROOT)
        if outside or (anchor and target.suffix == ".md" and anchor not in anchors_of(target)):
            broken.append(href)
    assert broken == [], f"{name}: links that lead nowhere"


# -- console examples --------------------------------------------------------------------------------------------


@dataclass
class Example:
    line: int  # of the `$` line in README.md
    command: str  # without the prompt and a trailing `# comment`
    shown: list[str]  # the output lines the README shows

    def where(self) -> str:
        return f"README.md:{self.line}: $ {self.command}"


def console_examples() -> list[Example]:
    examples: list[Example] = []
    for fence in readme_tokens():
        if fence.type != "fence" or fence.info.strip() != "console":
            continue
        assert fence.map is not None
        for number, line in enumerate(fence.content.splitlines(), fence.map[0] + 2):
            prompt = re.match(r"(?:\(venv\) )?\$ ", line)
            if prompt:
                command = re.sub(r"\s+#.*$", "", line[prompt.end() :]).strip()
                examples.append(Example(number, command, []))
            else:
                assert examples, f"README.md:{number}: a console example starts with output, not with `$ `"
                examples[-1].shown.append(line)
    return examples


def connector_arguments(command: str) -> list[str] | None:
    """The arguments after the connector's name, or None when the command is not the connector."""
    for name in CONNECTOR:
        if command.startswith(name + " "):
            return shlex.split(command[len(name) :])
    return None


def line_pattern(shown: str, numbers: bool = False) -> re.Pattern[str]:
    """`...` in a line stands for any text; with `numbers`, every number for any number (timings)."""
    parts = [re.escape(part) for part in shown.split("...")]
    if numbers:
        parts = [re.sub(r"\d+(?:\\\.\d+)?", r"\\d+(?:\\.\\d+)?", part) for part in parts]
    return re.compile(".*".join(parts) + r"\Z", re.DOTALL)


def shows(shown: list[str], real: list[str], numbers: bool = False) -> bool:
    """The README's lines appear in this order in the real output, `...` lines standing for any lines."""
    segments: list[list[str]] = [[]]
    for line in shown:
        if line.strip() == "...":
            segments.append([])
        else:
            segments[-1].append(line)
    anchored_start, anchored_end = bool(segments[0]), bool(segments[-1])
    position = 0
    for index, segment in enumerate(segments):
        if not segment:
            continue
        patterns = [line_pattern(line, numbers) for line in segment]
        last_start = len(real) - len(segment)
        starts = [0] if index == 0 and anchored_start else range(position, last_start + 1)
        for start in starts:
            if all(p.match(real[start + i]) for i, p in enumerate(patterns)):
                position = start + len(segment)
                break
        else:
            return False
    return not anchored_end or position == len(real)


def test_the_comparison_of_examples():
    real = ["a", "b", "c", "d"]
    assert (
        shows(["a", "...", "d"], real) and shows(["...", "b", "c", "..."], real) and shows(["a", "b...", "..."], real)
    )
    assert not shows(["a", "c", "..."], real) and not shows(["a", "..."], real[1:]) and not shows(["...", "c"], real)
    assert not shows(["...", "c", "b", "..."], real)


@dataclass
class ShippedStacks:
    """A folder with the shipped stack files, a stand-in `pulumi` serving each stack's simulated outputs, and the
    environment to run the connector in."""

    folder: Path
    env: dict[str, str]
    plans: dict[str, dict] = field(default_factory=dict)  # `plan --json` of each stack

    def run(
        self, arguments: list[str], merged: bool = True, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        """The connector's exit code and output; with `merged`, stderr is in stdout as a terminal shows both."""
        return subprocess.run(
            [sys.executable, "-m", "intrexx_connector", *arguments],
            cwd=self.folder,
            env=env or self.env,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merged else subprocess.PIPE,
            text=True,
            timeout=120,
        )

    def stack(self, name: str) -> dict:
        return yaml.safe_load((self.folder / f"Pulumi.{name}.yaml").read_text(encoding="utf-8"))["config"]

    def portals(self, stack: str) -> dict[str, dict]:
        return {p["name"]: p for p in self.stack(stack)["intrexx-exchange:portals"]}


STACKS = sorted(p.name.split(".")[1] for p in ROOT.glob("Pulumi.*.yaml"))


@pytest.fixture(scope="module")
def shipped(tmp_path_factory: pytest.TempPathFactory) -> ShippedStacks:
    folder = tmp_path_factory.mktemp("readme")
    for name in ["Pulumi.yaml", *(f"Pulumi.{stack}.yaml" for stack in STACKS)]:
        (folder / name).write_bytes((ROOT / name).read_bytes())
    bin_dir = folder / "bin"
    bin_dir.mkdir()
    # `pulumi stack output --json --show-secrets --stack S` prints the outputs that plan saved for S.
    (bin_dir / "pulumi").write_text(
        '#!/bin/sh\nfor last; do :; done\nexec cat "'
        + str(folder)
        + '/outputs/${INTREXX_README_OUTPUTS:-$last}.json"\n',
        encoding="utf-8",
    )
    (bin_dir / "pulumi").chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}",
        "PYTHONPATH": str(ROOT),
        "PYTHONUNBUFFERED": "1",  # stdout and stderr interleaved as on a terminal
        "INTREXX_EXCHANGE_TODAY": EXAMPLE_DAY,
    }
    stacks = ShippedStacks(folder, env)
    (folder / "outputs").mkdir()
    for stack in STACKS:
        saved = stacks.run(["plan", "--stack", stack, "--json", "--save-outputs", f"outputs/{stack}.json"], False)
        assert saved.returncode == 0, saved.stderr
        stacks.plans[stack] = json.loads(saved.stdout)
    return stacks


def test_every_console_command_is_run_or_checked():
    for example in console_examples():
        arguments = connector_arguments(example.command)
        name = arguments[0] if arguments else example.command
        assert example.command == "make plan" or name in RUN or any(name.startswith(n) for n in NOT_RUN), (
            f"{example.where()}: run it in tests/test_readme.py or say in NOT_RUN why not"
        )


def stack_of(example: Example, arguments: list[str]) -> str:
    assert "--stack" in arguments, f"{example.where()}: the examples name their stack"
    stack = arguments[arguments.index("--stack") + 1]
    assert stack in STACKS, f"{example.where()}: no shipped stack {stack!r}"
    return stack


def compare(example: Example, result: subprocess.CompletedProcess[str], numbers: bool = False) -> None:
    real = result.stdout.splitlines()
    assert result.returncode == 0, f"{example.where()}: exit {result.returncode}\n{result.stdout}"
    if example.shown:
        assert shows(example.shown, real, numbers), (
            f"{example.where()}: the README shows\n"
            + "\n".join(example.shown)
            + "\nthe real output is\n"
            + "\n".join(real)
        )


def run_make_plan(example: Example, stacks: ShippedStacks) -> None:
    """`make plan` echoes its recipe line, then the connector prints."""
    echo, *shown = example.shown
    assert echo == "venv/bin/python -m intrexx_connector plan --stack dev --out build/dev", example.where()
    assert "\t$(CONNECTOR) plan --stack $(STACK) --out build/$(STACK)\n" in (ROOT / "Makefile").read_text()
    compare(Example(example.line, example.command, shown), stacks.run(shlex.split(echo)[3:]))


def run_offline(example: Example, stacks: ShippedStacks) -> None:
    """plan, render and status, with the stand-in `pulumi` for `--stack`."""
    arguments = connector_arguments(example.command)
    assert arguments is not None
    stack_of(example, arguments)
    compare(example, stacks.run(arguments))


# The edit of Pulumi.dev.yaml that the README's `plan --compare` example shows: a portal added, one renamed.
COMPARE_EDIT = (
    "    - name: sandbox\n",
    "    - name: lab\n      renamedFrom: sandbox\n",
    "    - name: hr\n      connector: m365\n      access: application\n"
    "      baseUrl: https://intrexx-dev.contoso.example/hr\n      permissions: [Mail.Read]\n",
)


def run_compare(example: Example, stacks: ShippedStacks) -> None:
    arguments = connector_arguments(example.command)
    assert arguments is not None and arguments[:3] == ["plan", "--stack", "dev"], example.where()
    before = arguments[arguments.index("--compare") + 1]
    stack_file = stacks.folder / "Pulumi.dev.yaml"
    shipped_text = stack_file.read_text(encoding="utf-8")
    old, new, added = COMPARE_EDIT
    assert old in shipped_text
    try:
        (stacks.folder / before).write_bytes((stacks.folder / "outputs" / "dev.json").read_bytes())
        stack_file.write_text(shipped_text.replace(old, new) + added, encoding="utf-8")
        compare(example, stacks.run(arguments))
    finally:
        stack_file.write_text(shipped_text, encoding="utf-8")


def run_verify(example: Example, stacks: ShippedStacks, idp: IdentityProvider) -> None:
    """verify against the test OpenID provider: the stack's clients registered with made-up secrets, `hr` not
    replicated for its first 2.5 s; timings in the README's lines stand for any number."""
    arguments = connector_arguments(example.command)
    assert arguments is not None
    stack = stack_of(example, arguments)
    outputs = json.loads((stacks.folder / "outputs" / f"{stack}.json").read_text(encoding="utf-8"))
    for name, portal in outputs["portals"].items():
        outputs["clientSecrets"][name] = f"{name}-secret-{uuid.uuid4()}"
        delay = 2.5 if name == "hr" else 0.0
        idp.add_client(portal["tenantId"], portal["clientId"], outputs["clientSecrets"][name], [], delay)
    served = stacks.folder / "outputs" / f"{stack}-verify.json"
    served.write_text(json.dumps(outputs), encoding="utf-8")
    env = {**stacks.env, "REQUESTS_CA_BUNDLE": str(idp.ca_file), "INTREXX_README_OUTPUTS": f"{stack}-verify"}
    env.pop("CURL_CA_BUNDLE", None)
    result = stacks.run([*arguments, "--authority-host", idp.origin, "--timeout", "60"], env=env)
    compare(example, result, numbers=True)


RUN = {"plan": run_offline, "render": run_offline, "status": run_offline, "verify": run_verify}


def runnable() -> list[Example]:
    return [
        e for e in console_examples() if e.command == "make plan" or (connector_arguments(e.command) or [""])[0] in RUN
    ]


@pytest.mark.parametrize("example", runnable(), ids=lambda e: e.command)
def test_a_console_example_is_what_the_shipped_stacks_give(example, shipped, request):
    arguments = connector_arguments(example.command)
    if example.command == "make plan":
        run_make_plan(example, shipped)
    elif arguments and "--compare" in arguments:
        run_compare(example, shipped)
    elif arguments and arguments[0] == "verify":
        run_verify(example, shipped, request.getfixturevalue("identity_provider"))
    else:
        assert arguments
        RUN[arguments[0]](example, shipped)


def test_the_readme_has_console_examples_for_plan_render_verify_and_status():
    commands = {(connector_arguments(e.command) or [e.command])[0] for e in runnable()}
    assert {"make plan", "plan", "render", "verify", "status"} <= commands


def test_verify_and_apply_examples_name_portals_of_their_stack(shipped):
    for example in console_examples():
        arguments = connector_arguments(example.command)
        if not arguments or arguments[0] not in ("verify", "apply"):
            continue
        portals = shipped.portals(stack_of(example, arguments))
        if arguments[0] == "apply":
            portal = arguments[arguments.index("--portal") + 1]
            assert portals.get(portal, {}).get("signIn"), f"{example.where()}: {portal} is no sign-in portal"
        for line in example.shown:
            if line == "...":
                continue
            name = re.match(r"([\w-]+): ", line)
            assert name and name[1] in portals, f"{example.where()}: {line!r} names no portal of the stack"


def test_unprotect_examples_name_protected_resources_of_the_plan(shipped):
    project = yaml.safe_load((ROOT / "Pulumi.yaml").read_text(encoding="utf-8"))["name"]
    for example in console_examples():
        if not example.command.startswith("pulumi state unprotect"):
            continue
        urn = shlex.split(example.command)[-1]
        match = re.fullmatch(r"urn:pulumi:(\w+)::([\w-]+)::[\w:-]+:index:PortalRegistration\$[\w/:]+::([\w-]+)", urn)
        assert match, f"{example.where()}: not a URN of a portal's resource"
        stack, urn_project, name = match.groups()
        assert urn_project == project, example.where()
        resources = {r["name"]: r for p in shipped.plans[stack]["portals"].values() for r in p["resources"]}
        assert resources.get(name, {}).get("protect") is True, f"{example.where()}: {name} is not protected"


def test_make_test_shows_the_makefile_s_commands():
    (example,) = [e for e in console_examples() if e.command == "make test"]
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    recipes = [
        line.strip().replace("$(PY)", "venv/bin/python")
        for target in ("lint", "test")
        for line in re.search(rf"^{target}:.*\n((?:\t.*\n)+)", makefile, re.MULTILINE)[1].splitlines()  # type: ignore[index]
    ]
    shown = [line for line in example.shown if line.startswith("venv/bin/python")]
    assert shown == recipes
