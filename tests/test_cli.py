"""The command line: exit codes, messages, files, and that no secret ever reaches stdout, stderr or a plain file."""

import json
import os
import subprocess
import sys

import pytest
from helpers import ROOT
from helpers import run_main as run
from outputs_fixtures import HR, LEGACY, OPS, TEAM, WIDE, stack_outputs

from intrexx_connector.cli import main

PORTALS = [HR, OPS, LEGACY, TEAM, WIDE]
OM_CFG = """<?xml version="1.0" encoding="UTF-8"?>
<configuration>
   <!-- keep me -->
   <authentication>
      <binding scope="web" auth-type="IntrexxAuth"/>
   </authentication>
   <security/>
</configuration>
"""


@pytest.fixture
def outputs(tmp_path):
    document = stack_outputs(PORTALS)
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(document))
    return path, document


def secrets_of(document) -> list[str]:
    values = list(document["clientSecrets"].values())
    assert values and all(len(v) >= 30 for v in values)
    return values


def test_render_writes_every_file_and_prints_only_paths(capsys, outputs, tmp_path):
    path, _ = outputs
    code, out, err = run(capsys, "render", "--outputs", str(path), "--out", str(tmp_path / "build"))
    assert code == 0, err
    for name in ("hr", "ops", "legacy", "team", "wide"):
        connector = "exchange" if name in ("hr", "legacy") else "m365"
        assert (tmp_path / "build" / name / f"{connector}-connector.json").stat().st_mode & 0o777 == 0o600
        assert str(tmp_path / "build" / name / "portal-manager.md") in out
    assert (tmp_path / "build" / "hr" / "om.cfg.xml").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "build" / "legacy" / "ews-allow-list.ps1").exists()
    assert (tmp_path / "build" / "team" / "exchange-rbac.ps1").exists()
    assert (tmp_path / "build" / "wide" / "exchange-rbac.ps1").exists(), "the unscoped service account's cleanup"
    assert not (tmp_path / "build" / "ops" / "ews-allow-list.ps1").exists()


def test_render_with_a_stack_writes_to_build_stack_by_default(capsys, outputs, tmp_path, monkeypatch):
    path, _ = outputs
    monkeypatch.chdir(tmp_path)
    code, out, err = run(capsys, "render", "--outputs", str(path), "--stack", "prod", "--portal", "hr")
    assert code == 0, err
    assert (tmp_path / "build" / "prod" / "hr" / "exchange-connector.json").exists()
    assert "build/prod/hr/portal-manager.md" in out


def test_outputs_without_show_secrets_are_refused(capsys, outputs, tmp_path):
    path, document = outputs
    document["clientSecrets"] = "[secret]"
    path.write_text(json.dumps(document))
    code, _, err = run(capsys, "render", "--outputs", str(path), "--out", str(tmp_path / "b"))
    assert code == 2 and "intrexx-connector outputs --stack" in err and err.startswith("OutputsError: ")
    assert not (tmp_path / "b").exists()


def test_missing_fields_and_unknown_portal(capsys, outputs, tmp_path):
    path, document = outputs
    code, _, err = run(capsys, "render", "--outputs", str(path), "--portal", "nope")
    assert code == 2 and "--portal nope: no such portal" in err and "hr" in err
    del document["portals"]["hr"]["tenantId"]
    path.write_text(json.dumps(document))
    code, _, err = run(capsys, "status", "--outputs", str(path))
    assert code == 2 and err == "OutputsError: portals.hr.tenantId: missing\n"
    path.write_text("not json")
    assert run(capsys, "status", "--outputs", str(path))[0] == 2
    assert run(capsys, "status", "--outputs", str(tmp_path / "absent.json"))[0] == 2


def test_without_outputs_and_without_pulumi_the_error_says_what_to_do(capsys, monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    code, _, err = run(capsys, "status")
    assert code == 2 and "intrexx-connector outputs --stack <stack> --out outputs.json" in err


def test_status_exit_code_follows_the_warning_window(capsys, outputs):
    path, _ = outputs
    code, out, _ = run(capsys, "status", "--outputs", str(path))
    assert code == 0 and "hr:" in out
    code, out, _ = run(capsys, "status", "--outputs", str(path), "--warn-days", "400", "--json")
    assert code == 1
    report = json.loads(out)
    assert {p["portal"] for p in report["portals"]} == {"hr", "ops", "legacy", "team", "wide"}


def test_apply_merges_once_and_lists_the_manual_steps(capsys, outputs, tmp_path):
    path, _ = outputs
    cfg = tmp_path / "portal" / "internal" / "cfg"
    cfg.mkdir(parents=True)
    (cfg / "om.cfg").write_text(OM_CFG)
    argv = ("apply", "--outputs", str(path), "--portal", "hr", "--portal-dir", str(tmp_path / "portal"))
    code, out, err = run(capsys, *argv)
    assert code == 0, err
    assert "Remaining manual steps:" in out and "LucyAuth.cfg" in out
    assert '<oauth2 name="entra-hr">' in (cfg / "om.cfg").read_text()
    code, out, _ = run(capsys, *argv)
    assert code == 0 and "nothing changed" in out
    assert len(list(cfg.glob("om.cfg.*.bak"))) == 1
    code, _, err = run(
        capsys, "apply", "--outputs", str(path), "--portal", "ops", "--portal-dir", str(tmp_path / "portal")
    )
    assert code == 2 and "signIn is not enabled" in err
    code, _, err = run(capsys, "apply", "--outputs", str(path), "--portal", "hr", "--portal-dir", str(tmp_path))
    assert code == 2 and err.startswith("FileError: ")


def test_bad_arguments_exit_2(capsys):
    for argv in (["frobnicate"], ["verify", "--timeout", "-1"], ["status", "--warn-days", "x"], ["apply"]):
        with pytest.raises(SystemExit) as caught:
            main(argv)
        assert caught.value.code == 2


def test_stdin_outputs_through_a_real_process(outputs, tmp_path):
    path, document = outputs
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "intrexx_connector",
            "render",
            "--outputs",
            "-",
            "--out",
            str(tmp_path / "out"),
            "--json",
        ],
        input=path.read_text(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    assert set(json.loads(result.stdout)["rendered"]) == {"hr", "ops", "legacy", "team", "wide"}
    for secret in secrets_of(document):
        assert secret not in result.stdout + result.stderr


def test_no_secret_in_any_output_or_plain_file(capsys, outputs, tmp_path, identity_provider, monkeypatch):
    """Every command, every scenario: stdout, stderr and the files meant to be shared hold no secret. verify
    runs against the loopback OpenID provider: real token requests, one portal with the right secret (a token),
    the others registered with a wrong one (the provider answers AADSTS7000215, verify gives up at once)."""
    path, document = outputs
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", identity_provider.ca_file)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    for name, portal in document["portals"].items():
        secret = document["clientSecrets"][name] if name == "team" else "not-the-secret"
        identity_provider.add_client(portal["tenantId"], portal["clientId"], secret)
    identity_provider.reset_requests()
    secrets = secrets_of(document)
    cfg = tmp_path / "portal" / "internal" / "cfg"
    cfg.mkdir(parents=True)
    (cfg / "om.cfg").write_text(OM_CFG)
    hidden = tmp_path / "hidden.json"
    hidden.write_text(json.dumps({**document, "clientSecrets": "[secret]"}))
    printed = []
    for argv in (
        ["render", "--outputs", str(path), "--out", str(tmp_path / "b")],
        ["render", "--outputs", str(path), "--out", str(tmp_path / "b"), "--json"],
        ["render", "--outputs", str(hidden)],
        ["status", "--outputs", str(path)],
        ["status", "--outputs", str(path), "--json", "--warn-days", "999"],
        ["apply", "--outputs", str(path), "--portal", "hr", "--portal-dir", str(tmp_path / "portal")],
        ["apply", "--outputs", str(path), "--portal", "hr", "--portal-dir", str(tmp_path / "portal"), "--json"],
        ["apply", "--outputs", str(path), "--portal", "hr", "--portal-dir", str(tmp_path / "none")],
        ["verify", "--outputs", str(path), "--authority-host", identity_provider.origin, "--timeout", "1"],
        ["verify", "--outputs", str(path), "--authority-host", identity_provider.origin, "--timeout", "1", "--json"],
        ["render", "--outputs", str(path), "--portal", "nope"],
    ):
        try:
            _, out, err = run(capsys, *argv)
        except SystemExit as exit_:  # argparse refuses a bad argument itself
            assert exit_.code == 2
            out, err = capsys.readouterr()
        printed.append(out + err)
    plain = [p.read_text() for p in (tmp_path / "b").rglob("*") if p.suffix in (".md", ".ps1")]
    assert plain
    token_requests = identity_provider.requests()
    assert all(token_requests.get(p["clientId"]) for p in document["portals"].values()), "verify asked for tokens"
    assert any("team: ok" in text for text in printed) and any("AADSTS7000215" in text for text in printed)
    for text in printed + plain:
        for secret in secrets:
            assert secret not in text
