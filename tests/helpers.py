"""Helpers shared by the tests: the program evaluated for a list of portals, and where things are."""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest

from components.clouds import CLOUDS, CloudName
from components.config import StackSettings, parse_stack_config
from intrexx_connector.cli import main
from intrexx_connector.simulation import Evaluation, SimulatedTenant, evaluate

ROOT = Path(__file__).resolve().parent.parent
TODAY = date(2026, 11, 24)


def settings_for(portals: list[dict[str, Any]], stack: str = "dev", today: date = TODAY, **keys: Any) -> StackSettings:
    """Checked settings for these portals and stack keys; the azuread provider signs in to the stack's cloud."""
    raw = {"portals": portals, **keys}
    provider_environment = (
        CLOUDS[CloudName(keys.get("cloud", "global"))].azuread_environment
        if keys.get("cloud", "global") in {c.value for c in CloudName}
        else "global"
    )
    return parse_stack_config(raw, stack, today, provider_environment)


def run_program(
    portals: list[dict[str, Any]],
    stack: str = "dev",
    today: date = TODAY,
    tenant: SimulatedTenant | None = None,
    **keys: Any,
) -> Evaluation:
    """Evaluate the program function; fail the test if an export did not resolve (it would check nothing)."""
    evaluation = evaluate(settings_for(portals, stack, today, **keys), tenant)
    assert not evaluation.unknown_outputs, f"outputs never resolved: {evaluation.unknown_outputs}"
    assert set(evaluation.outputs) == {"portals", "clientSecrets"}, evaluation.outputs.keys()
    return evaluation


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """The command line in-process: exit code, stdout, stderr."""
    code = main(list(argv))
    captured = capsys.readouterr()
    return code, captured.out, captured.err
