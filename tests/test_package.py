"""The package: `pip install .` gives a working `intrexx-connector`, and its dependencies are the runtime's."""

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tomllib
import venv

from helpers import ROOT

import intrexx_connector


def requirement_lines(path) -> dict[str, str]:
    lines = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line and not line.startswith("-r"):
            name = re.split(r"[<>=!~ ]", line, maxsplit=1)[0].lower()
            lines[name] = line.replace(" ", "")
    return lines


def test_pyproject_dependencies_are_in_the_runtime_install_list():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    runtime = requirement_lines(ROOT / "requirements.txt")
    for dependency in project["dependencies"]:
        name = re.split(r"[<>=!~ ]", dependency, maxsplit=1)[0].lower()
        assert runtime.get(name) == dependency.replace(" ", ""), f"{dependency} differs in requirements.txt"
    assert project["scripts"]["intrexx-connector"] == "intrexx_connector.cli:run"


def test_pip_install_gives_a_working_console_script(tmp_path):
    """Build the wheel without build isolation (setuptools comes from requirements-dev.txt), install it into a
    fresh virtual environment that borrows this one's dependencies, and run the console script from elsewhere.
    The build runs on a copy of the sources: setuptools writes build/ and *.egg-info beside them."""
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    for package in ("components", "intrexx_connector"):
        shutil.copytree(ROOT / package, source / package, ignore=shutil.ignore_patterns("__pycache__"))
    wheels = tmp_path / "wheels"
    build = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "--no-deps",
            "--no-build-isolation",
            "--quiet",
            "-w",
            str(wheels),
            str(source),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert build.returncode == 0, build.stderr
    (wheel,) = wheels.glob("intrexx_exchange-*.whl")
    assert f"-{intrexx_connector.__version__}-" in wheel.name
    environment = tmp_path / "env"
    venv.EnvBuilder(with_pip=False).create(environment)
    site = next(environment.glob("lib/python*/site-packages"))
    (site / "dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    python = environment / "bin" / "python"
    install = subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "--python",
            str(python),
            "install",
            "--no-deps",
            "--no-index",
            "--quiet",
            str(wheel),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=tmp_path,
    )
    assert install.returncode == 0, install.stderr
    script = environment / "bin" / "intrexx-connector"
    clean = {key: value for key, value in os.environ.items() if key != "PYTHONPATH"}
    version = subprocess.run(
        [str(script), "--version"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=clean
    )
    assert version.returncode == 0, version.stderr
    assert version.stdout.strip() == f"intrexx-connector {intrexx_connector.__version__}"
    usage = subprocess.run([str(script), "--help"], capture_output=True, text=True, timeout=60, cwd=tmp_path, env=clean)
    assert usage.returncode == 0 and "plan" in usage.stdout and "verify" in usage.stdout and "doctor" in usage.stdout
    where = subprocess.run(
        [str(python), "-c", "import components, intrexx_connector; print(components.__file__)"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean,
    )
    assert str(environment) in where.stdout, "the installed package, not the checkout, answered"
    catalogue = subprocess.run(
        [str(python), "-c", "from components.catalogue import load_catalogue; print(len(load_catalogue().resources))"],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean,
    )
    assert catalogue.returncode == 0 and int(catalogue.stdout) >= 2, catalogue.stderr
    # The templates render writes its sheets and scripts from ship as package data.
    shipped = (ROOT / "intrexx_connector" / "templates").glob("*.j2")
    templates = subprocess.run(
        [
            str(python),
            "-c",
            "from importlib import resources; "
            "folder = resources.files('intrexx_connector').joinpath('templates'); "
            "print(' '.join(sorted(p.name for p in folder.iterdir())))",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=tmp_path,
        env=clean,
    )
    assert templates.returncode == 0, templates.stderr
    assert templates.stdout.split() == sorted(p.name for p in shipped)


def test_pulumi_s_type_check_passes_as_pulumi_runs_it():
    """Pulumi.yaml sets `typechecker: mypy`; before the program, the Python language host runs
    `python -m mypy --exclude <virtualenv, relative> <program directory>` in the program directory
    (pulumi/pulumi sdk/python/cmd/pulumi-language-python main.go). The `exclude` list in pyproject.toml keeps the
    tests, the benchmark and the policy pack (a second `__main__.py`) out of that run."""
    pulumi_yaml = (ROOT / "Pulumi.yaml").read_text(encoding="utf-8")
    assert re.search(r"^\s+typechecker: mypy$", pulumi_yaml, re.MULTILINE)
    result = subprocess.run(
        [sys.executable, "-m", "mypy", "--exclude", "venv", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_lint_holds_every_function_to_types_and_complexity_15():
    """`make lint` runs mypy and ruff with these settings: every product function typed, none above complexity 15."""
    settings = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assert settings["mypy"]["disallow_untyped_defs"] is True
    assert {"components", "intrexx_connector"} <= set(settings["mypy"]["files"])
    assert "C90" in settings["ruff"]["lint"]["select"]
    assert settings["ruff"]["lint"]["mccabe"]["max-complexity"] == 15
