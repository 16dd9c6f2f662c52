"""The command line on day two: offline outputs, comparing runs, the rotation handover, and a newcomer's mistakes
(a YAML error, a closed pipe, a bad pinned date) ending in one line, never a traceback."""

import json
import os
import re
import subprocess
import sys

import pytest
from helpers import ROOT, TODAY
from helpers import run_main as run
from outputs_fixtures import HR, OPS, stack_outputs

from intrexx_connector.cli import main

HAND_MADE_APP = "6a1f4c2e-8b3d-4e5f-9a0b-1c2d3e4f5a6b"


def cli(cwd, *args, stdin=None, timeout=120) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INTREXX_EXCHANGE_TODAY": TODAY.isoformat()}
    return subprocess.run(
        [sys.executable, "-m", "intrexx_connector", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL if stdin is None else stdin,
    )


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", TODAY.isoformat())
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    for stack in ("dev", "prod"):
        (tmp_path / f"Pulumi.{stack}.yaml").write_text((ROOT / f"Pulumi.{stack}.yaml").read_text())
    return tmp_path


# plan --save-outputs and --compare ---------------------------------------------------------------------------------


def test_saved_outputs_work_offline_with_render_and_status_and_apply_refuses_them(capsys, project):
    code, out, err = run(capsys, "plan", "--stack", "dev", "--save-outputs", "outputs.json")
    assert code == 0, err
    saved = project / "outputs.json"
    assert saved.stat().st_mode & 0o777 == 0o600 and "simulated outputs written to outputs.json" in out
    document = json.loads(saved.read_text())
    assert set(document) == {"portals", "clientSecrets"}
    assert set(document["clientSecrets"]) == set(document["portals"]) == {"intranet", "sandbox"}
    code, out, err = run(capsys, "render", "--outputs", "outputs.json", "--out", "build/dev")
    assert code == 0, err
    assert (project / "build" / "dev" / "intranet" / "exchange-connector.json").exists()
    assert run(capsys, "status", "--outputs", "outputs.json", "--warn-days", "0")[0] == 0
    config = project / "portal" / "internal" / "cfg"
    config.mkdir(parents=True)
    (config / "om.cfg").write_text(
        '<?xml version="1.0" encoding="UTF-8"?>\n<configuration>\n   <security/>\n</configuration>\n'
    )
    code, out, err = run(capsys, "apply", "--outputs", "outputs.json", "--portal", "intranet", "--portal-dir", "portal")
    # Issue 18: the placeholder secret never reaches a real om.cfg.
    assert code == 2 and "placeholder secret" in err and "<security/>" in (config / "om.cfg").read_text()


def saved_outputs(capsys, project, stack: str) -> dict:
    code, _, err = run(capsys, "plan", "--stack", stack, "--save-outputs", f"{stack}.json")
    assert code == 0, err
    return json.loads((project / f"{stack}.json").read_text())


def test_compare_lists_added_removed_renamed_and_changed(capsys, project):
    previous = saved_outputs(capsys, project, "prod")
    (project / "previous.json").write_text(json.dumps(previous))
    stack = (project / "Pulumi.prod.yaml").read_text()
    stack = stack.replace("    - name: hr\n", "    - name: people\n      renamedFrom: hr\n")
    stack = stack.replace("      permissions: [Mail.ReadWrite, Mail.Send]\n", "      permissions: [Mail.ReadWrite]\n")
    stack += "    - name: extra\n      baseUrl: https://extra.contoso.example\n"
    (project / "Pulumi.prod.yaml").write_text(stack)
    code, out, err = run(capsys, "plan", "--stack", "prod", "--compare", "previous.json")
    assert code == 0, err
    assert "  + added: extra" in out
    assert "  > renamed: hr -> people (aliases keep the registration and its client id)" in out
    assert "  ~ changed: helpdesk: permissions" in out
    code, out, err = run(capsys, "plan", "--stack", "prod", "--compare", "previous.json", "--json")
    comparison = json.loads(out)["comparison"]
    assert comparison["renamed"] == {"hr": "people"} and comparison["added"] == ["extra"]
    assert comparison["problems"] == [] and code == 0


def adopt_the_intranet(project):
    """Give dev's sign-in portal (intranet) an `adopt` block naming a registration made by hand."""
    stack = (
        (project / "Pulumi.dev.yaml")
        .read_text()
        .replace(
            "      signIn: true\n",
            "      signIn: true\n      adopt:\n"
            f"        applicationObjectId: {HAND_MADE_APP}\n"
            "        servicePrincipalObjectId: c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f\n",
        )
    )
    (project / "Pulumi.dev.yaml").write_text(stack)


def test_compare_fails_when_a_surviving_portals_client_id_would_change(capsys, project):
    previous = saved_outputs(capsys, project, "dev")
    (project / "previous.json").write_text(json.dumps(previous))
    adopt_the_intranet(project)
    code, out, _ = run(capsys, "plan", "--stack", "dev", "--compare", "previous.json")
    assert code == 1
    (problem,) = [line for line in out.splitlines() if "PROBLEM" in line]
    assert "intranet: adopt.applicationObjectId" in problem and "Intrexx's client id would change" in problem
    removed = {**previous, "portals": {**previous["portals"], "old": previous["portals"]["sandbox"]}}
    (project / "previous.json").write_text(json.dumps(removed))
    code, out, _ = run(capsys, "plan", "--stack", "dev", "--compare", "previous.json")
    assert "  - removed: old (pulumi up deletes its registration)" in out


def test_compare_exits_1_when_a_registration_would_be_deleted(capsys, project):
    """A removal, and a rename without renamedFrom (a removal plus an addition), delete a registration and its
    client id: exit 1, as the contract says; a rename with renamedFrom and an addition exit 0."""
    previous = saved_outputs(capsys, project, "dev")
    (project / "previous.json").write_text(json.dumps(previous))
    assert run(capsys, "plan", "--stack", "dev", "--compare", "previous.json")[0] == 0
    stack = (project / "Pulumi.dev.yaml").read_text()
    (project / "Pulumi.dev.yaml").write_text(stack.replace("    - name: sandbox\n", "    - name: lab\n"))
    code, out, _ = run(capsys, "plan", "--stack", "dev", "--compare", "previous.json")
    assert code == 1
    assert "  - removed: sandbox" in out and "  + added: lab" in out
    (problem,) = [line for line in out.splitlines() if "PROBLEM" in line]
    assert "sandbox: pulumi up deletes its registration" in problem and "renamedFrom: sandbox" in problem
    code, out, _ = run(capsys, "plan", "--stack", "dev", "--compare", "previous.json", "--json")
    assert code == 1 and json.loads(out)["comparison"]["removed"] == ["sandbox"]
    renamed = stack.replace("    - name: sandbox\n", "    - name: lab\n      renamedFrom: sandbox\n")
    (project / "Pulumi.dev.yaml").write_text(renamed)
    code, out, _ = run(capsys, "plan", "--stack", "dev", "--compare", "previous.json")
    assert code == 0 and "  > renamed: sandbox -> lab" in out and "PROBLEM" not in out


def test_two_offline_plans_of_one_day_agree_on_key_ids(capsys, project):
    """Key ids of an offline plan follow from stack, portal and slot: no rotation between two plans of one day."""
    first, second = saved_outputs(capsys, project, "dev"), saved_outputs(capsys, project, "dev")
    assert first == second
    prod = saved_outputs(capsys, project, "prod")
    ids = {entry["secretKeyId"] for document in (first, prod) for entry in document["portals"].values()}
    assert len(ids) == len(first["portals"]) + len(prod["portals"]), "no two portals or stacks share a key id"
    (project / "before.json").write_text(json.dumps(first))
    code, out, _ = run(capsys, "rotation-notice", "--before", "before.json", "--outputs", "dev.json")
    assert code == 0 and out == "", "no rotation read between two plans"


def test_plan_says_adopt_for_imported_resources_and_notes_unset_deployers(capsys, project):
    adopt_the_intranet(project)
    code, out, err = run(capsys, "plan", "--stack", "dev")
    assert code == 0, err
    assert f"  = Application                                intranet-app  (adopt /applications/{HAND_MADE_APP})" in out
    assert "  = ServicePrincipal                           intranet-sp  (adopt c1d2e3f4-" in out
    assert "  + ApplicationPassword                        intranet-secret-0" in out
    assert "note: `deployers` is not set" in out, "dev leaves deployers unset"
    code, out, _ = run(capsys, "plan", "--stack", "prod")
    assert code == 0 and "note: `deployers`" not in out and "not in `deployers`" not in out, "prod names them"


# The rotation handover ---------------------------------------------------------------------------------------------


def test_rotation_notice_names_portals_environment_and_deadline_without_secrets(capsys, tmp_path):
    before = stack_outputs([HR, OPS])
    after = json.loads(json.dumps(before))
    after["portals"]["hr"]["secretKeyId"] = "00000000-1111-4222-8333-444444444444"
    del before["clientSecrets"]
    (tmp_path / "before.json").write_text(json.dumps(before))
    (tmp_path / "after.json").write_text(json.dumps(after))
    code, out, err = run(
        capsys,
        "rotation-notice",
        "--stack",
        "prod",
        "--before",
        str(tmp_path / "before.json"),
        "--outputs",
        str(tmp_path / "after.json"),
    )
    assert code == 0, err
    assert out.startswith("## New client secrets for Intrexx: stack `prod`")
    deadline = after["portals"]["hr"]["previousSecretExpiresAt"][:10]
    assert f"| hr | dev | {deadline} |" in out and "| ops |" not in out
    assert "python -m intrexx_connector render --stack prod" in out
    assert "apply --stack prod --portal <portal>" in out, "hr signs users in: om.cfg holds the secret too"
    for secret in after["clientSecrets"].values():
        assert secret not in out
    code, out, _ = run(
        capsys,
        "rotation-notice",
        "--before",
        str(tmp_path / "after.json"),
        "--outputs",
        str(tmp_path / "after.json"),
        "--json",
    )
    assert code == 0 and json.loads(out)["portals"] == []
    code, out, _ = run(
        capsys,
        "rotation-notice",
        "--before",
        str(tmp_path / "absent.json"),
        "--outputs",
        str(tmp_path / "after.json"),
    )
    assert code == 0 and out == "", "a first run hands nothing over"


# A newcomer's mistakes --------------------------------------------------------------------------------------------


def test_a_yaml_error_is_one_line_with_file_line_and_column(project):
    (project / "Pulumi.broken.yaml").write_text("config:\n  intrexx-exchange:portals:\n    - name: hr\n   baseUrl: x\n")
    result = cli(project, "plan", "--stack", "broken")
    assert result.returncode == 2
    assert result.stderr.startswith("StackFileError: Pulumi.broken.yaml, line 4, column 4: ")
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_keys_without_a_namespace_are_the_projects_and_a_misspelt_namespace_names_the_key_expected(project):
    """Pulumi gives a key without a namespace the project's (pulumi/pulumi workspace/loaders.go
    `stackConfigNamespacedWithProject`), so plan does too; a misspelt namespace is named with the key meant."""
    (project / "Pulumi.loose.yaml").write_text(
        "config:\n  portals:\n    - {name: hr, baseUrl: https://a.example.com}\n  intrexx-exchang:protect: true\n"
    )
    result = cli(project, "plan", "--stack", "loose")
    assert result.returncode == 2
    assert "intrexx-exchang:protect: unknown namespace 'intrexx-exchang'; did you mean 'intrexx-exchange:protect'?" in (
        result.stderr
    )
    assert "portals" not in result.stderr.replace("did you mean 'intrexx-exchange:protect'", "")
    (project / "Pulumi.loose.yaml").write_text(
        "config:\n  portals:\n    - {name: hr, baseUrl: https://a.example.com}\n"
    )
    assert cli(project, "plan", "--stack", "loose").returncode == 0


def test_errors_come_as_json_on_stderr_with_json(project):
    result = cli(project, "plan", "--stack", "missing", "--json")
    assert result.returncode == 2 and result.stdout == ""
    error = json.loads(result.stderr)
    assert error["error"] == "UsageError" and error["exitCode"] == 2 and "Pulumi.missing.yaml" in error["message"]


def test_a_bad_pinned_date_is_one_line(project):
    env_result = subprocess.run(
        [sys.executable, "-m", "intrexx_connector", "plan", "--stack", "dev"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT), "INTREXX_EXCHANGE_TODAY": "yesterday"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert env_result.returncode == 2 and "Traceback" not in env_result.stderr
    assert "INTREXX_EXCHANGE_TODAY: must be a date YYYY-MM-DD" in env_result.stderr


def test_a_closed_pipe_ends_quietly(project):
    process = subprocess.Popen(
        [sys.executable, "-m", "intrexx_connector", "plan", "--stack", "prod"],
        cwd=project,
        env={**os.environ, "PYTHONPATH": str(ROOT), "INTREXX_EXCHANGE_TODAY": TODAY.isoformat()},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        stdin=subprocess.DEVNULL,
    )
    process.stdout.read(10)
    process.stdout.close()  # what `| head -c 10` does
    _, err = process.communicate(timeout=60)
    assert b"Traceback" not in err and b"BrokenPipe" not in err, err.decode()


def test_plan_leaves_no_event_loop_noise_at_exit(project):
    for _ in range(5):
        result = cli(project, "plan", "--stack", "dev")
        assert result.returncode == 0 and result.stderr == "", result.stderr


def test_apply_help_says_portal_is_required(capsys):
    with pytest.raises(SystemExit):
        main(["apply", "--help"])
    out = capsys.readouterr().out
    assert "the portal whose sign-in provider to merge (required)" in out and "default: all" not in out


# outputs: the safe way to keep the outputs -----------------------------------------------------------------------


def fake_pulumi(tmp_path, monkeypatch, document: str, code: int = 0):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (tmp_path / "printed.json").write_text(document)
    (bin_dir / "pulumi").write_text(
        f'#!/bin/sh\necho "$@" > "{tmp_path}/args"\ncat "{tmp_path}/printed.json"\n'
        + (f"echo 'error: no stack named x' >&2\nexit {code}\n" if code else "")
    )
    (bin_dir / "pulumi").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")


def test_outputs_writes_the_secrets_0600_and_prints_none(capsys, tmp_path, monkeypatch):
    document = stack_outputs([HR, OPS])
    fake_pulumi(tmp_path, monkeypatch, json.dumps(document))
    monkeypatch.setattr(os, "umask", os.umask)  # the mode does not depend on the umask
    os.umask(0)
    try:
        code, out, err = run(capsys, "outputs", "--stack", "prod", "--out", str(tmp_path / "outputs.json"))
    finally:
        os.umask(0o022)
    assert code == 0, err
    assert (tmp_path / "args").read_text().split() == ["stack", "output", "--json", "--show-secrets", "--stack", "prod"]
    written = tmp_path / "outputs.json"
    assert written.stat().st_mode & 0o777 == 0o600
    assert json.loads(written.read_text()) == document
    assert "mode 0600" in out and "2 portal(s)" in out
    for secret in document["clientSecrets"].values():
        assert secret not in out + err
    assert run(capsys, "status", "--outputs", str(written), "--warn-days", "0")[0] == 0


def test_outputs_refuses_what_is_not_an_outputs_document_and_writes_nothing(capsys, tmp_path, monkeypatch):
    fake_pulumi(tmp_path, monkeypatch, "[1, 2]")
    code, _, err = run(capsys, "outputs", "--stack", "prod", "--out", str(tmp_path / "o.json"))
    assert code == 2 and "did not print a JSON object" in err and not (tmp_path / "o.json").exists()
    fake_pulumi(tmp_path, monkeypatch, "", code=255)
    code, _, err = run(capsys, "outputs", "--stack", "x", "--out", str(tmp_path / "o.json"))
    assert code == 2 and "`pulumi stack output` failed (exit 255): error: no stack named x" in err
    assert not (tmp_path / "o.json").exists()
    with pytest.raises(SystemExit) as usage:
        main(["outputs", "--out", str(tmp_path / "o.json")])
    assert usage.value.code == 2 and "--stack" in capsys.readouterr().err


def test_hints_name_commands_that_work_as_printed():
    """Every hint that tells people to save outputs names `intrexx-connector outputs`, never a shell redirect of
    `--show-secrets` (a 0644 file in the working tree); `make plan` installs `intrexx-connector` (Makefile)."""
    sources = [*(ROOT / "intrexx_connector").glob("*.py"), *(ROOT / "components").glob("*.py")]
    for path in sources:
        text = path.read_text()
        assert "--show-secrets >" not in text and "--show-secrets > " not in text, path.name
    gitignored = (ROOT / ".gitignore").read_text().splitlines()
    assert "build/" in gitignored and "*outputs*.json" in gitignored


COMMAND_HINT = re.compile(r"`((?:python -m intrexx_connector|intrexx-connector) [^`]*)`")


def test_every_command_the_tool_prints_parses_as_printed(capsys, project):
    """The commands in plan's, status's and the rotation notice's advice name real subcommands and options, in a
    form that runs after `make plan` (`intrexx-connector`, installed by it, or `python -m intrexx_connector` in the
    activated venv): each one is parsed by the tool's own parser, placeholders filled in."""
    from intrexx_connector.cli import _parser

    printed = [run(capsys, "plan", "--stack", "dev", "--save-outputs", "dev.json")[1]]
    printed.append(run(capsys, "status", "--outputs", "dev.json", "--stack", "dev", "--warn-days", "400")[1])
    before = json.loads((project / "dev.json").read_text())
    for entry in before["portals"].values():
        entry["secretKeyId"] = "00000000-0000-4000-8000-000000000000"
    (project / "before.json").write_text(json.dumps(before))
    notice = run(capsys, "rotation-notice", "--before", "before.json", "--outputs", "dev.json", "--stack", "dev")
    printed.append(notice[1])
    hints = {hint for text in printed for hint in COMMAND_HINT.findall(text)}
    assert any("render" in h for h in hints) and any("apply" in h for h in hints), hints
    for hint in hints:
        words = re.sub(r"<[^>]+>", "x", hint).split()
        words = words[3:] if words[0] == "python" else words[1:]
        try:
            _parser().parse_args(words)
        except SystemExit:
            pytest.fail(f"the tool prints a command its parser refuses: {hint}")
    scripts = (ROOT / "pyproject.toml").read_text()
    assert 'intrexx-connector = "intrexx_connector.cli:run"' in scripts
