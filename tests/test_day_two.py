"""Day two in a real tenant: stable owners whoever runs the program, adopting registrations made by hand, renaming
a portal without a new client id, the secret Intrexx may still hold."""

import pytest
from helpers import TODAY, run_program, settings_for

from components.config import ConfigError
from components.contract import PORTALS
from components.rotation import secret_schedule
from intrexx_connector.simulation import (
    APP_ROLE_ASSIGNMENT,
    APPLICATION,
    APPLICATION_PASSWORD,
    DELEGATED_GRANT,
    SERVICE_PRINCIPAL,
    EntraRefusal,
    HandMadeRegistration,
    SimulatedTenant,
    evaluate,
)

HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}
SERVICE = {"name": "mail", "connector": "m365", "baseUrl": "https://mail.example.com", "access": "application"}
PIPELINE = "5f0c2b7e-1d3a-4c8e-9b6f-2a7d4e1c3b59"
ADMIN = "8d1e4f2a-6b3c-4a5d-9e7f-1c2b3a4d5e6f"
GROUP = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
GRAPH = "00000003-0000-0000-c000-000000000000"
EXCHANGE = "00000002-0000-0ff1-ce00-000000000000"


def only(evaluation, typ, name=None):
    found = [r for r in evaluation.of_type(typ) if name is None or r.name == name]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


# Owners ---------------------------------------------------------------------------------------------------------


def owners_when(runner: str, **keys) -> tuple[list, list, list]:
    evaluation = run_program([HR], tenant=SimulatedTenant(TODAY, deployer_object_id=runner), **keys)
    return (
        only(evaluation, APPLICATION).inputs["owners"],
        only(evaluation, SERVICE_PRINCIPAL).inputs["owners"],
        evaluation.warnings,
    )


def test_with_deployers_the_owners_are_the_same_whoever_runs():
    deployers = [PIPELINE, ADMIN]
    by_pipeline = owners_when(PIPELINE, deployers=deployers)
    by_admin = owners_when(ADMIN, deployers=deployers)
    assert by_pipeline[:2] == by_admin[:2] == ([PIPELINE, ADMIN], [PIPELINE, ADMIN])
    assert not any("deployers" in warning for warning in by_pipeline[2] + by_admin[2])


def test_a_run_by_someone_outside_deployers_warns_naming_it():
    stranger = "0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d"
    app_owners, _, warnings = owners_when(stranger, deployers=[PIPELINE])
    assert app_owners == [PIPELINE]
    assert any(stranger in warning and "not in `deployers`" in warning for warning in warnings)


def test_without_deployers_the_running_identity_owns_what_it_creates():
    assert owners_when(PIPELINE)[0] == [PIPELINE]
    assert owners_when(ADMIN)[0] == [ADMIN], "the churn `deployers` exists to stop"


def test_deployers_must_be_object_ids():
    with pytest.raises(ConfigError, match=r"deployers\[1\]: must be an object id"):
        settings_for([HR], deployers=[PIPELINE, "pipeline"])
    with pytest.raises(ConfigError, match=r"deployers: must list at least one object id"):
        settings_for([HR], deployers=[])


def test_the_simulated_tenant_refuses_a_group_as_owner_like_entra():
    tenant = SimulatedTenant(TODAY, groups=(GROUP,))
    with pytest.raises(EntraRefusal, match=f"owner {GROUP} is a group"):
        evaluate(settings_for([{**HR, "owners": [GROUP]}]), tenant)


# Adopting a registration made by hand ------------------------------------------------------------------------------

HAND_MADE = HandMadeRegistration(
    display_name="Intrexx exchange (made by hand)",
    application_object_id="6a1f4c2e-8b3d-4e5f-9a0b-1c2d3e4f5a6b",
    client_id="b7c8d9e0-f1a2-4b3c-8d4e-5f6a7b8c9d0e",
    service_principal_object_id="c1d2e3f4-a5b6-4c7d-8e9f-0a1b2c3d4e5f",
    grants={EXCHANGE: "grant-exchange-AbCdEfGhIjKlMnOp", GRAPH: "grant-graph-QrStUvWxYzAbCdEf"},
)
ADOPT = {
    "applicationObjectId": HAND_MADE.application_object_id,
    "servicePrincipalObjectId": HAND_MADE.service_principal_object_id,
    "grants": {"exchange": "grant-exchange-AbCdEfGhIjKlMnOp", "graph": "grant-graph-QrStUvWxYzAbCdEf"},
    "handMadeSecretKeyIds": ["1e2f3a4b-5c6d-4e7f-8a9b-0c1d2e3f4a5b"],
}


def test_adopt_imports_the_registration_made_by_hand_and_keeps_its_client_id():
    tenant = SimulatedTenant(TODAY, hand_made=(HAND_MADE,))
    evaluation = run_program([{**HR, "adopt": ADOPT}], tenant=tenant)
    app = only(evaluation, APPLICATION)
    sp = only(evaluation, SERVICE_PRINCIPAL)
    assert app.import_id == f"/applications/{HAND_MADE.application_object_id}"
    assert sp.import_id == HAND_MADE.service_principal_object_id, "pulumi-azuread 6.11: the bare object id"
    grants = {g.name: g.import_id for g in evaluation.of_type(DELEGATED_GRANT)}
    assert grants == {
        "hr-grant-exchange": "/oauth2PermissionGrants/grant-exchange-AbCdEfGhIjKlMnOp",
        "hr-grant-graph": "/oauth2PermissionGrants/grant-graph-QrStUvWxYzAbCdEf",
    }
    assert all(not p.import_id for p in evaluation.of_type(APPLICATION_PASSWORD)), "secrets cannot be imported"
    assert set(tenant.applications) == {HAND_MADE.application_object_id}, "no second application"
    portal = evaluation.outputs[PORTALS]["hr"]
    assert portal["clientId"] == HAND_MADE.client_id
    assert portal["applicationObjectId"] == HAND_MADE.application_object_id
    assert portal["handMadeSecretKeyIds"] == ADOPT["handMadeSecretKeyIds"]


def test_without_adopt_the_hand_made_registration_blocks_a_second_one():
    tenant = SimulatedTenant(TODAY, hand_made=(HAND_MADE,))
    named = {**HR, "name": "exchange"}
    with pytest.raises(EntraRefusal, match="already exists"):
        evaluate(settings_for([named], environment="made by hand"), tenant)


def test_adopting_without_the_existing_grant_ids_is_refused_like_entra():
    tenant = SimulatedTenant(TODAY, hand_made=(HAND_MADE,))
    adopt = {key: value for key, value in ADOPT.items() if key != "grants"}
    with pytest.raises(EntraRefusal, match=r"exists already .*import it with adopt\.grants"):
        evaluate(settings_for([{**HR, "adopt": adopt}]), tenant)


def test_adopted_role_assignments_are_imported_with_the_resource_service_principal():
    role = "e2a3a72e-5f79-4c64-b1b1-878b674786c9"  # Graph Mail.ReadWrite (application)
    hand_made = HandMadeRegistration(
        "Intrexx mail (made by hand)",
        HAND_MADE.application_object_id,
        HAND_MADE.client_id,
        HAND_MADE.service_principal_object_id,
        role_assignments={role: "assignment-AbCdEfGhIjKlMnOpQr"},
    )
    tenant = SimulatedTenant(TODAY, hand_made=(hand_made,))
    adopt = {
        "applicationObjectId": hand_made.application_object_id,
        "servicePrincipalObjectId": hand_made.service_principal_object_id,
        "roleAssignments": {"Mail.ReadWrite": "assignment-AbCdEfGhIjKlMnOpQr"},
    }
    evaluation = run_program([{**SERVICE, "adopt": adopt}], tenant=tenant)
    graph_sp = tenant.resource_service_principals[GRAPH]["objectId"]
    imported = {a.name: a.import_id for a in evaluation.of_type(APP_ROLE_ASSIGNMENT) if a.import_id}
    expected = f"/servicePrincipals/{graph_sp}/appRoleAssignedTo/assignment-AbCdEfGhIjKlMnOpQr"
    assert imported == {"mail-role-graph-Mail.ReadWrite": expected}


@pytest.mark.parametrize(
    ("adopt", "message"),
    [
        ({"applicationObjectId": "x"}, r"adopt\.applicationObjectId: required: the object id"),
        ({**ADOPT, "grants": {"sharepoint": "grant-AbCdEfGhIjKlMnOp"}}, r"adopt\.grants\.sharepoint: is not one of"),
        ({**ADOPT, "grants": {"graph": "no spaces allowed"}}, r"adopt\.grants\.graph: must be the existing object"),
        ({**ADOPT, "servicePrincipalObjectID": "x"}, r"did you mean 'servicePrincipalObjectId'"),
        ({**ADOPT, "handMadeSecretKeyIds": ["secret"]}, r"adopt\.handMadeSecretKeyIds: must be a list of secret ids"),
    ],
)
def test_bad_adopt_entries_name_the_key(adopt, message):
    with pytest.raises(ConfigError, match=message):
        settings_for([{**HR, "adopt": adopt}])


def test_one_registration_cannot_be_adopted_twice():
    with pytest.raises(ConfigError, match=r"portals\[1\]\.adopt\.applicationObjectId: .* is adopted by portals\[0\]"):
        settings_for([{**HR, "adopt": ADOPT}, {**HR, "name": "ops", "adopt": ADOPT}])


# Renaming a portal -------------------------------------------------------------------------------------------------


def test_a_renamed_portal_carries_its_old_names_as_aliases():
    before = {r.name: r.urn for r in run_program([HR]).tenant.resources}
    renamed = run_program([{**HR, "name": "people", "renamedFrom": "hr"}])
    kept = 0
    for resource in renamed.tenant.resources:
        old_name = "hr" + resource.name.removeprefix("people")
        assert resource.aliases == [old_name], resource.urn
        # The engine resolves the alias to the old URN: same type chain, the old name.
        assert resource.urn.rsplit("::", 1)[0] + f"::{old_name}" == before[old_name]
        kept += 1
    assert kept == len(before)


def test_renamed_from_must_name_a_portal_that_is_gone():
    with pytest.raises(ConfigError, match=r"portals\[1\]\.renamedFrom: 'hr' is still a portal of this stack"):
        settings_for([HR, {**HR, "name": "people", "renamedFrom": "hr"}])
    with pytest.raises(ConfigError, match=r"portals\[0\]\.renamedFrom: must be the portal's previous name"):
        settings_for([{**HR, "renamedFrom": "hr"}])


# The secret Intrexx may still hold --------------------------------------------------------------------------------


def test_the_outputs_name_the_previous_secret_and_when_it_stops_working():
    evaluation = run_program([HR], secretRotationDays=30)
    schedule = secret_schedule(TODAY, 30)
    passwords = {p.name: p for p in evaluation.of_type(APPLICATION_PASSWORD)}
    portal = evaluation.outputs[PORTALS]["hr"]
    older = passwords[f"hr-secret-{schedule.older.index}"]
    assert portal["previousSecretKeyId"] == older.state["keyId"] != portal["secretKeyId"]
    assert portal["previousSecretExpiresAt"] == older.inputs["endDate"] == schedule.older.end_date
    assert portal["previousSecretExpiresAt"][:10] == portal["secretRotatesAt"][:10], "it dies at the next rotation"
