"""Stack outputs produced by the real program against the simulated tenant, for tests of the post-deploy step."""

import copy
import functools
import json
from datetime import date

from helpers import TODAY, settings_for

from intrexx_connector.simulation import evaluate

# The Connector for Microsoft Exchange (the default connector): with portal sign-in, and without.
HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr", "signIn": True}
LEGACY = {"name": "legacy", "baseUrl": "https://old.example.com"}
# The Connector for Microsoft 365 and Teams: service accounts scoped by a filter or a group, one unscoped, and
# user accounts (whose redirect path Intrexx's registration wizard shows; public client flows on for verify
# --device-code).
OPS = {
    "name": "ops",
    "connector": "m365",
    "baseUrl": "https://ops.example.com",
    "access": "application",
    "mailboxScope": {"recipientFilter": "Department -eq 'Ops'"},
}
TEAM = {
    "name": "team",
    "connector": "m365",
    "baseUrl": "https://team.example.com",
    "access": "application",
    "mailboxScope": {"groupId": "0b7f6a2e-4c1d-4e8f-9a3b-2d5c6e7f8a9b"},
}
WIDE = {"name": "wide", "connector": "m365", "baseUrl": "https://wide.example.com", "access": "application"}
USERS = {
    "name": "users",
    "connector": "m365",
    "baseUrl": "https://users.example.com",
    "publicClientFlows": True,
    "redirectPaths": ["service/oauth2/token/D2A7C1E0B9F84A6C3E5D7F9A1B3C5E7F9A1B3C5D"],
}
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
