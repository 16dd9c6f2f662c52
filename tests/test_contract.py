"""The output contract: what the program writes is what the command line reads, and any other shape is one clear
error naming the field."""

import copy
import dataclasses
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from outputs_fixtures import HR, LEGACY, OPS, TEAM, WIDE, stack_outputs

from components.contract import (
    OUTPUT_SCHEMA_VERSION,
    Access,
    Api,
    Connector,
    ContractError,
    GrantedBy,
    PortalOutput,
    StackOutputs,
    camel,
)

DOCUMENT = stack_outputs([HR, OPS, LEGACY, TEAM, WIDE])


def test_every_portal_round_trips():
    outputs = StackOutputs.from_output(DOCUMENT)
    assert set(outputs.portals) == {"hr", "ops", "legacy", "team", "wide"}
    for name, portal in outputs.portals.items():
        assert portal.to_output() == DOCUMENT["portals"][name]
        assert portal.client_secret == DOCUMENT["clientSecrets"][name]
    assert StackOutputs.from_output(outputs.to_output()) == outputs


def test_derived_facts_are_properties():
    portals = StackOutputs.from_output(DOCUMENT).portals
    assert portals["hr"].delegated and not portals["hr"].scoped and portals["hr"].access is Access.DELEGATED
    assert portals["ops"].scoped and portals["team"].scoped and not portals["wide"].scoped
    assert portals["legacy"].uses_ews and portals["legacy"].api is Api.EWS and portals["hr"].uses_ews
    assert portals["legacy"].connector is Connector.EXCHANGE and portals["ops"].connector is Connector.M365
    assert not portals["ops"].uses_ews and portals["ops"].api is Api.GRAPH
    assert {p.granted_by for p in portals["ops"].rbac_permissions} == {GrantedBy.EXCHANGE_RBAC}
    assert not portals["ops"].consented_roles and portals["wide"].consented_roles
    assert portals["hr"].cloud_record.login == portals["hr"].authority_host


def test_the_secret_never_shows_in_repr_or_the_portals_entry():
    portal = StackOutputs.from_output(DOCUMENT).portals["hr"]
    assert portal.client_secret not in repr(portal)
    assert portal.client_secret not in json.dumps(portal.to_output())


def test_outputs_of_an_older_version_name_the_schema():
    document = copy.deepcopy(DOCUMENT)
    del document["portals"]["hr"]["schemaVersion"]
    with pytest.raises(ContractError, match=r"^portals\.hr\.schemaVersion: missing: these outputs come from an older"):
        StackOutputs.from_output(document)


def test_outputs_of_a_newer_version_ask_for_an_upgrade():
    document = copy.deepcopy(DOCUMENT)
    document["portals"]["hr"]["schemaVersion"] = OUTPUT_SCHEMA_VERSION + 1
    with pytest.raises(ContractError, match=r"^portals\.hr\.schemaVersion: \d+ is newer than this tool reads"):
        StackOutputs.from_output(document)


def test_the_api_must_be_the_connectors():
    document = copy.deepcopy(DOCUMENT)
    document["portals"]["ops"]["api"] = "ews"
    with pytest.raises(ContractError, match=r"^portals\.ops\.api: must be 'graph' for connector 'm365', got 'ews'"):
        StackOutputs.from_output(document)


def test_a_missing_conditional_field_is_named():
    document = copy.deepcopy(DOCUMENT)
    del document["portals"]["legacy"]["ewsUrl"]
    with pytest.raises(ContractError, match=r"^portals\.legacy\.ewsUrl: missing \(required for connector exchange\)"):
        StackOutputs.from_output(document)
    document = copy.deepcopy(DOCUMENT)
    del document["portals"]["hr"]["signInRedirectUri"]
    with pytest.raises(ContractError, match=r"^portals\.hr\.signInRedirectUri: missing"):
        StackOutputs.from_output(document)


def test_hidden_secrets_and_foreign_names_are_refused():
    with pytest.raises(ContractError, match="--show-secrets"):
        StackOutputs.from_output({**DOCUMENT, "clientSecrets": "[secret]"})
    assert StackOutputs.from_output({**DOCUMENT, "clientSecrets": "[secret]"}, need_secrets=False).portals
    renamed = copy.deepcopy(DOCUMENT)
    renamed["portals"]["../escaped"] = renamed["portals"].pop("hr")
    with pytest.raises(ContractError, match=r"'\.\./escaped' is not a portal name"):
        StackOutputs.from_output(renamed)
    mismatch = copy.deepcopy(DOCUMENT)
    mismatch["portals"]["hr"]["portal"] = "ops"
    with pytest.raises(ContractError, match=r"^portals\.hr\.portal: must be 'hr'"):
        StackOutputs.from_output(mismatch)


FIELDS = sorted(DOCUMENT["portals"]["team"])
OPTIONAL = {"signInRedirectUri", "ewsUrl", "mailboxScope", "handMadeSecretKeyIds"}
WRONG = [None, 1, 1.5, True, "text", [], ["x"], {}, {"a": 1}]


@settings(max_examples=300, deadline=None)
@given(field=st.sampled_from(FIELDS), value=st.sampled_from(WRONG))
def test_a_wrong_value_in_any_field_is_one_error_naming_it(field, value):
    document = copy.deepcopy(DOCUMENT)
    original = document["portals"]["team"][field]
    document["portals"]["team"][field] = value
    try:
        outputs = StackOutputs.from_output(document)
    except ContractError as error:
        assert str(error).startswith(f"portals.team.{field}"), (field, value, str(error))
        return
    written = outputs.portals["team"].to_output()
    if value is None:  # null stands for an optional field's absence, as the program leaves such fields out
        assert field in OPTIONAL and field not in written
        return
    # Accepted only where the value has the field's own type and shape (e.g. another string for a string field).
    assert type(value) is type(original) or (isinstance(original, list) and value == []), (field, value)
    assert written[field] == value


def test_camel_case_names_match_the_dataclass_fields():
    assert camel("service_principal_object_id") == "servicePrincipalObjectId"
    fields = {item.name for item in dataclasses.fields(PortalOutput)} - {"client_secret"}
    written = {camel(name) for name in fields}
    assert written == set(DOCUMENT["portals"]["hr"]) | {
        "mailboxScope",
        "handMadeSecretKeyIds",
        "refreshTokensRequestedOn",
    }
