import json
import sys
from datetime import date
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from components.simulation import evaluate  # noqa: E402

TODAY = date(2026, 11, 24)


def stack_config(portals, **keys) -> dict:
    """Config as the engine hands it over; `cloud=` also points the azuread provider at that cloud."""
    config = {"intrexx-exchange:portals": json.dumps(portals)}
    config.update({f"intrexx-exchange:{key}": str(value).lower() if isinstance(value, bool) else str(value)
                   for key, value in keys.items()})
    if "cloud" in keys:
        config["azuread:environment"] = str(keys["cloud"])
    return config


def run_program(portals, stack="dev", today=TODAY, **keys):
    """Evaluate the real program; fail the test if any export did not resolve (it would check nothing)."""
    evaluation = evaluate(stack_config(portals, **keys), stack, today)
    assert not evaluation.unknown_outputs, f"outputs never resolved: {evaluation.unknown_outputs}"
    assert set(evaluation.outputs) == {"portals", "clientSecrets"}, evaluation.outputs.keys()
    return evaluation


@pytest.fixture
def program():
    return run_program


try:
    from idp_fixture import identity_provider  # noqa: F401,E402  (the loopback OpenID provider)
except ImportError:  # pragma: no cover - the module is part of the repository
    pass
