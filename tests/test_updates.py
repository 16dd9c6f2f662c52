"""Update steps, in the style of terraform-provider-azuread's `_basic` -> `_complete` -> `_basic`: evaluate one
configuration, then a changed one, and check that every surviving portal keeps the URNs of its Application and
ServicePrincipal. A new URN means Pulumi deletes and recreates the registration: a new client id, and an Intrexx
connector that stops working."""

import pytest
from helpers import run_program

from intrexx_connector.simulation import APPLICATION, SERVICE_PRINCIPAL

BASIC = [{"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}]
COMPLETE = [
    {
        "name": "hr",
        "baseUrl": "https://intrexx.example.com/hr",
        "signIn": True,
        "permissions": ["EWS.AccessAsUser.All", "offline_access"],
        "owners": ["3f2504e0-4f89-41d3-9a0c-0305e82c3301"],
    },
    {
        "name": "ops",
        "connector": "m365",
        "baseUrl": "https://ops.example.com",
        "access": "application",
        "mailboxScope": {"recipientFilter": "Department -eq 'Ops'"},
    },
]
ELSEWHERE = [{**COMPLETE[0], "baseUrl": "https://portal.example.com/hr"}, COMPLETE[1]]


def identities(portals, **keys) -> dict:
    """(portal, resource type) -> URN, for the resources whose replacement would change the client id."""
    evaluation = run_program(portals, **keys)
    return {
        (r.name.rsplit("-", 1)[0], r.type): r.urn
        for r in evaluation.tenant.resources
        if r.type in (APPLICATION, SERVICE_PRINCIPAL)
    }


def assert_survivors_keep_their_urns(before: dict, after: dict) -> None:
    survivors = before.keys() & after.keys()
    assert survivors, "no portal survived the update: the step tests nothing"
    for key in sorted(survivors):
        assert before[key] == after[key], f"{key}: {before[key]} became {after[key]}"


@pytest.mark.parametrize(
    ("first", "then", "first_keys", "then_keys"),
    [
        pytest.param(BASIC, COMPLETE, {}, {}, id="basic->complete (signIn, permissions, owners, a new portal)"),
        pytest.param(COMPLETE, BASIC, {}, {}, id="complete->basic (a portal removed, sign-in off)"),
        pytest.param(BASIC, BASIC, {}, {"environment": "Production"}, id="environment renamed"),
        pytest.param(COMPLETE, ELSEWHERE, {}, {}, id="baseUrl moved"),
        pytest.param(BASIC, BASIC, {}, {"secretRotationDays": "30"}, id="rotation period changed"),
        pytest.param(BASIC, BASIC, {}, {"protect": "true"}, id="protect switched on"),
    ],
)
def test_an_update_keeps_every_surviving_registration(first, then, first_keys, then_keys):
    assert_survivors_keep_their_urns(identities(first, **first_keys), identities(then, **then_keys))


def test_basic_complete_basic_round_trip_ends_where_it_began():
    basic = identities(BASIC)
    complete = identities(COMPLETE)
    assert_survivors_keep_their_urns(basic, complete)
    assert identities(BASIC) == basic
    assert ("ops", APPLICATION) in complete and ("ops", APPLICATION) not in basic
