"""Every shipped Pulumi.<stack>.yaml, each evaluated by `plan` in a fresh process, as `make plan` runs it."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import ROOT, TODAY

STACKS = sorted(path.name.split(".")[1] for path in ROOT.glob("Pulumi.*.yaml"))


def plan(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "INTREXX_EXCHANGE_TODAY": TODAY.isoformat()}
    return subprocess.run(
        [sys.executable, "-m", "intrexx_connector", "plan", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        stdin=subprocess.DEVNULL,
    )


def test_the_shipped_stacks_are_dev_and_prod():
    assert {"dev", "prod"} <= set(STACKS)


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stack_plans_and_renders(stack, tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / f"Pulumi.{stack}.yaml").write_text((ROOT / f"Pulumi.{stack}.yaml").read_text())
    result = plan(tmp_path, "--stack", stack, "--json", "--out", "build/" + stack)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["stack"] == stack and document["portals"]
    for name, portal in document["portals"].items():
        kinds = [r["type"] for r in portal["resources"]]
        assert kinds.count("Application") == kinds.count("ServicePrincipal") == 1
        assert kinds.count("ApplicationPassword") == 2
        assert portal["secrets"][0]["expires"] != portal["secrets"][1]["expires"]
        folder = tmp_path / "build" / stack / name
        connector_file = folder / f"{portal['connector']}-connector.json"
        assert connector_file.stat().st_mode & 0o777 == 0o600
        assert "PLACEHOLDER" in connector_file.read_text()
    if stack == "prod":
        assert len(document["portals"]) >= 3
        for portal in document["portals"].values():
            assert all(r["protect"] == (r["type"] in ("Application", "ServicePrincipal")) for r in portal["resources"])
        scoped = [p for p in document["portals"].values() if p["access"] == "application"]
        assert scoped and all(perm["grantedBy"] == "exchange-rbac" for p in scoped for perm in p["permissions"])
        assert not any(r["type"] == "AppRoleAssignment" for p in scoped for r in p["resources"])


def test_plan_prints_and_writes_nothing_without_out(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_text((ROOT / "Pulumi.dev.yaml").read_text())
    result = plan(tmp_path, "--stack", "dev")
    assert result.returncode == 0, result.stderr
    assert "Plan for stack 'dev'" in result.stdout and "+ Application" in result.stdout
    assert "rendered into" not in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.dev.yaml", "Pulumi.yaml"]


def test_bad_stack_file_gives_the_config_error_and_exit_2(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.broken.yaml").write_text(
        "config:\n  intrexx-exchange:secretRotationDays: 1000\n  intrexx-exchange:portals:\n"
        "    - name: Bad_Name\n      baseUrl: http://intrexx.example.com\n"
    )
    result = plan(tmp_path, "--stack", "broken")
    assert result.returncode == 2
    assert result.stderr.startswith("ConfigError: invalid stack configuration (3 problems):")
    for key in ("portals[0].name:", "portals[0].baseUrl:", "secretRotationDays:"):
        assert key in result.stderr
    assert not (tmp_path / "build").exists()
    assert plan(tmp_path, "--stack", "missing").returncode == 2
