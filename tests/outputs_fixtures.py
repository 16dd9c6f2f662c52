"""Stack outputs produced by the real program against the simulated tenant, for tests of the post-deploy step."""

import copy
import functools
import json
from datetime import date

from helpers import TODAY, settings_for

from intrexx_connector.simulation import evaluate

HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr", "signIn": True}
OPS = {"name": "ops", "baseUrl": "https://ops.example.com", "access": "application",
       "mailboxScope": {"recipientFilter": "Department -eq 'Ops'"}}
LEGACY = {"name": "legacy", "baseUrl": "https://old.example.com", "api": "ews"}
TEAM = {"name": "team", "baseUrl": "https://team.example.com", "access": "application",
        "mailboxScope": {"groupId": "0b7f6a2e-4c1d-4e8f-9a3b-2d5c6e7f8a9b"}}
WIDE = {"name": "wide", "baseUrl": "https://wide.example.com", "access": "application"}
SAMPLE_PORTALS = [HR, OPS, LEGACY]


def stack_outputs(portals: list[dict], today: date = TODAY, cloud: str | None = None, stack: str = "dev") -> dict:
    """The document `pulumi stack output --json --show-secrets` would print after `pulumi up` of these portals."""
    return copy.deepcopy(_evaluate(json.dumps(portals, sort_keys=True), today, cloud, stack))


def stack_outputs_json(portals: list[dict], today: date = TODAY, cloud: str | None = None, stack: str = "dev") -> str:
    return json.dumps(stack_outputs(portals, today, cloud, stack))


@functools.lru_cache(maxsize=64)
def _evaluate(portals_json: str, today: date, cloud: str | None, stack: str) -> dict:
    keys = {"cloud": cloud} if cloud is not None else {}
    return evaluate(settings_for(json.loads(portals_json), stack, today, **keys)).outputs
