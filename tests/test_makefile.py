"""`make up` previews and asks before it changes anything; it applies without asking only in CI or with YES=1."""

import os
import subprocess

from helpers import ROOT


def make(*args, env=None):
    return subprocess.run(
        ["make", "--no-print-directory", *args],
        cwd=ROOT,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def fake_pulumi(tmp_path):
    """A `pulumi` on PATH that only notes how it was called."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "pulumi.log"
    (bin_dir / "pulumi").write_text(f'#!/bin/sh\necho "$@" >> "{log}"\n')
    (bin_dir / "pulumi").chmod(0o755)
    return {"PATH": f"{bin_dir}:{os.environ['PATH']}"}, log


def test_without_a_terminal_make_up_refuses_to_apply_unasked(tmp_path):
    env, log = fake_pulumi(tmp_path)
    # -o: never (re)install into the shared venv from inside the suite (pytest-xdist runs other tests in it).
    result = make("up", "STACK=dev", "-o", "venv/.runtime-installed", env={**env, "CI": ""})
    assert result.returncode != 0
    assert "no terminal to confirm the preview on; run `make up YES=1`" in result.stderr
    assert not log.exists(), "pulumi was not called"


def test_make_up_applies_with_yes_only_in_ci_or_with_yes_1():
    dry = make("-n", "up", "STACK=prod", "YES=1")
    assert dry.returncode == 0, dry.stderr
    recipe = dry.stdout
    assert 'if [ "$CI" = "true" ] || [ "1" = "1" ]; then' in recipe and "pulumi up --stack prod --yes;" in recipe
    assert "elif [ -t 0 ]; then" in recipe and "pulumi up --stack prod; " in recipe
    assert recipe.index("pulumi up") < recipe.index("render --stack prod") < recipe.index("verify --stack prod")


def test_make_plan_installs_the_package_editable_so_the_console_script_works():
    """`make plan` installs this folder into venv (editable, no dependencies: requirements.txt has them), so that
    `venv/bin/intrexx-connector` and, in an activated venv, `intrexx-connector` run, as the README and the hints say."""
    dry = make("-n", "-W", "pyproject.toml", "plan", "STACK=dev")
    assert dry.returncode == 0, dry.stderr
    lines = dry.stdout.splitlines()
    install = next(i for i, line in enumerate(lines) if "pip install" in line and "--no-deps -e ." in line)
    planned = next(i for i, line in enumerate(lines) if "intrexx_connector plan --stack dev" in line)
    assert install < planned
