"""The daily fleet status in both CI systems (rotate.yml's job `fleet-status`, .azure-pipelines/fleet-status.yml):
what they run and publish, and the shell steps run for real against a stand-in `pulumi` and a loopback webhook.
actionlint and shellcheck of the GitHub workflow run in tests/test_pipelines.py; the Azure DevOps file is
shellchecked here."""

from __future__ import annotations

import http.server
import json
import os
import stat
import subprocess
import threading
from pathlib import Path

import pytest
import yaml
from outputs_fixtures import HR, LEGACY, OPS, stack_outputs
from test_pipelines import STATUS_FILES, _shellcheck_script

ROOT = Path(__file__).resolve().parent.parent
ROTATE = ROOT / ".github" / "workflows" / "rotate.yml"
ADO_STATUS = ROOT / ".azure-pipelines" / "fleet-status.yml"
TODAY = "2026-11-24"


def github_steps() -> list[dict]:
    return yaml.safe_load(ROTATE.read_text(encoding="utf-8"))["jobs"]["fleet-status"]["steps"]


def ado_steps() -> list[dict]:
    return yaml.safe_load(ADO_STATUS.read_text(encoding="utf-8"))["jobs"][0]["steps"]


def test_both_pipelines_run_daily_without_secrets_in_files_or_arguments():
    ado = yaml.safe_load(ADO_STATUS.read_text(encoding="utf-8"))
    assert ado["schedules"][0]["cron"].split()[2:] == ["*", "*", "*"] and ado["trigger"] == "none"
    for text in (ROTATE.read_text(encoding="utf-8"), ADO_STATUS.read_text(encoding="utf-8")):
        code = "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
        assert "--show-secrets" not in code and "|| true" not in code
        assert "--notify \\" in code or "--notify >" in code, "the URL comes from the environment, never argv"
        assert "--warn-days 0" in code, "the job fails when something has expired"
    (notify,) = [s for s in github_steps() if "--notify" in s.get("run", "")]
    assert notify["env"] == {"INTREXX_NOTIFY_WEBHOOK": "${{ secrets.INTREXX_NOTIFY_WEBHOOK }}"}
    (ado_notify,) = [s for s in ado_steps() if "--notify" in s.get("bash", "")]
    assert ado_notify["env"] == {"INTREXX_NOTIFY_WEBHOOK": "$(INTREXX_NOTIFY_WEBHOOK)"}
    (upload,) = [s for s in github_steps() if str(s.get("uses", "")).startswith("actions/upload-artifact")]
    assert sorted(Path(p).name for p in upload["with"]["path"].split()) == sorted(STATUS_FILES)
    (publish,) = [s for s in ado_steps() if s.get("task") == "PublishPipelineArtifact@1"]
    assert publish["inputs"] == {"targetPath": "status", "artifact": "intrexx-status"}


@pytest.mark.parametrize("index", range(len([s for s in ado_steps() if "bash" in s])))
def test_ado_status_scripts_are_shellcheck_clean(index):
    script = [s["bash"] for s in ado_steps() if "bash" in s][index]
    assert _shellcheck_script(script) == []


# Running the GitHub steps ---------------------------------------------------------------------------------------


class Webhook:
    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        hook = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, format, *args):
                pass

            def do_POST(self):
                hook.bodies.append(self.rfile.read(int(self.headers.get("Content-Length", "0"))))
                self.send_response(202)
                self.send_header("Content-Length", "0")
                self.end_headers()

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook/SECRETPATH"


@pytest.fixture
def workspace(tmp_path):
    """A checkout with two stack files, the shared venv, and a stand-in `pulumi` printing each stack's outputs
    without secrets, as `pulumi stack output --json` does."""
    work = tmp_path / "work"
    work.mkdir()
    (work / "venv").symlink_to(ROOT / "venv")
    outputs = tmp_path / "outputs"
    outputs.mkdir()
    for stack, portals in {"prod": [{**HR, "refreshTokensRequestedOn": "2026-09-01"}, OPS], "dev": [LEGACY]}.items():
        (work / f"Pulumi.{stack}.yaml").write_text("config: {}\n")
        document = stack_outputs(portals, stack=stack)
        document["clientSecrets"] = "[secret]"
        (outputs / f"{stack}.json").write_text(json.dumps(document))
    (work / "Pulumi.gone.yaml").write_text("config: {}\n")  # never deployed: skipped with a warning
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    pulumi = bin_dir / "pulumi"
    pulumi.write_text(
        "#!/bin/sh\n"
        '# pulumi stack output --stack S --json\nfile="' + str(outputs) + '/$4.json"\n'
        '[ -f "$file" ] || { echo "error: no stack named $4" >&2; exit 255; }\ncat "$file"\n'
    )
    pulumi.chmod(pulumi.stat().st_mode | stat.S_IXUSR)
    return work, bin_dir, tmp_path


def run_steps(workspace, env: dict[str, str]) -> list[subprocess.CompletedProcess[str]]:
    work, bin_dir, tmp_path = workspace
    runner_temp = tmp_path / "runner"
    runner_temp.mkdir(exist_ok=True)
    results = []
    for step in github_steps():
        if "run" not in step or ("venv" in step["run"] and "pip install" in step["run"]):
            continue
        environment = {
            **os.environ,
            "PATH": f"{bin_dir}:{os.environ['PATH']}",
            "PYTHONPATH": str(ROOT),
            "RUNNER_TEMP": str(runner_temp),
            "GITHUB_STEP_SUMMARY": str(tmp_path / "summary.md"),
            "INTREXX_EXCHANGE_TODAY": TODAY,
            "INTREXX_NOTIFY_WEBHOOK": "",
            **env,
            **{k: v for k, v in (step.get("env") or {}).items() if "${{" not in str(v)},
        }
        if "INTREXX_NOTIFY_WEBHOOK" in (step.get("env") or {}):
            environment["INTREXX_NOTIFY_WEBHOOK"] = env.get("INTREXX_NOTIFY_WEBHOOK", "")
        result = subprocess.run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            cwd=work,
            env=environment,
            capture_output=True,
            text=True,
            timeout=300,
            check=False,
        )
        results.append(result)
        if result.returncode != 0:
            break
    return results


def test_the_github_steps_publish_post_once_and_fail_on_what_expired(workspace):
    work, _, tmp_path = workspace
    hook = Webhook()
    try:
        results = run_steps(workspace, {"INTREXX_NOTIFY_WEBHOOK": hook.url})
    finally:
        hook.server.shutdown()
        hook.server.server_close()
    logs = "".join(r.stdout + r.stderr for r in results)
    outputs_step, formats_step, notify_step, gate = results
    assert outputs_step.returncode == 0 and "::warning::stack gone has no outputs" in outputs_step.stdout
    assert formats_step.returncode == 0, formats_step.stderr
    assert sorted(p.name for p in (work / "status").iterdir()) == sorted(STATUS_FILES)
    assert "BEGIN:VCALENDAR" in (work / "status" / "intrexx-status.ics").read_text()
    assert "due within 30 days" in (tmp_path / "summary.md").read_text()
    assert notify_step.returncode == 0, notify_step.stdout + notify_step.stderr
    assert len(hook.bodies) == 1 and "prod / hr" in hook.bodies[0].decode()
    # prod/hr's refresh tokens (requested 2026-09-01) were due on 2026-12-01: not yet on 2026-11-24
    assert gate.returncode == 0, gate.stdout
    assert "SECRETPATH" not in logs


def test_the_gate_fails_visibly_once_something_expired(workspace):
    results = run_steps(workspace, {"INTREXX_EXCHANGE_TODAY": "2026-12-02"})
    gate = results[-1]
    assert len(results) == 4 and gate.returncode == 1
    assert "::error::an Intrexx connector secret, refresh token or EWS date has expired or is overdue" in gate.stdout
    assert "no INTREXX_NOTIFY_WEBHOOK secret: no message" in results[2].stdout


# .ci/run and the missing-tool summary ------------------------------------------------------------------------------


def test_ci_run_installs_the_test_tools_before_make_test():
    text = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "packages=(chromium prometheus)" in text
    assert "apt-get update" in text and "apt-get install -y -qq --no-install-recommends" in text
    assert text.index("apt-get install") < text.rindex("make test")
    assert _shellcheck_script(text) == []


def test_a_missing_tool_skips_naming_its_package_and_the_run_lists_it(tmp_path):
    (tmp_path / "test_needs_a_tool.py").write_text(
        "from tools import require\n\n\ndef test_it():\n    require('no-such-tool-xyz', 'no-such-package')\n"
    )
    result = subprocess.run(
        [str(ROOT / "venv" / "bin" / "python"), "-m", "pytest", "-q", "-p", "tools", "-rs", str(tmp_path)],
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT / "tests")},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 skipped" in result.stdout
    assert "missing: no-such-tool-xyz (Debian package no-such-package" in result.stdout
