"""The output contract: what the program writes is what the command line reads, and any other shape is one clear
error naming the field."""

import copy
import dataclasses
import json
from dataclasses import dataclass
from typing import Annotated

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
    Guid,
    Kind,
    PortalOutput,
    StackOutputs,
    camel,
    field_shapes,
)
from components.contract import _Record as Record
from components.facts import is_guid
from components.urls import url_problems

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
    with pytest.raises(ContractError, match="intrexx-connector outputs"):
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


def test_a_field_without_a_declared_kind_is_refused():
    @dataclass(frozen=True)
    class Forgotten(Record):
        client_id: Guid
        new_field: str  # what is it? a URL, an id, free text: nothing says, so nothing would check it

    with pytest.raises(TypeError, match=r"Forgotten\.new_field: declares no kind"):
        field_shapes(Forgotten)


def test_a_kind_its_type_cannot_hold_is_refused():
    @dataclass(frozen=True)
    class Mismatch(Record):
        expires: Annotated[str, Kind.DATE]

    with pytest.raises(TypeError, match=r"Mismatch\.expires: a DATE field cannot be held in"):
        field_shapes(Mismatch)


def test_every_output_field_declares_a_kind():
    kinds = {shape.key: shape.kind for shape in field_shapes(PortalOutput)}
    assert set(kinds) == {camel(item.name) for item in dataclasses.fields(PortalOutput)} - {"clientSecret"}
    assert kinds["previousSecretKeyId"] is Kind.GUID  # the hand-kept list of GUID fields had forgotten it
    assert kinds["authorityHost"] is Kind.HTTPS_ORIGIN and kinds["redirectUris"] is Kind.PORTAL_URL


STRING_FIELDS = {shape.key: shape for shape in field_shapes(PortalOutput) if shape.base is str}


@settings(max_examples=400, deadline=None)
@given(field=st.sampled_from(sorted(STRING_FIELDS)), text=st.text(max_size=80))
def test_any_text_in_a_string_field_is_accepted_only_when_it_means_what_the_field_declares(field, text):
    document = copy.deepcopy(DOCUMENT)
    entry = document["portals"]["team"]
    entry[field] = [text] if STRING_FIELDS[field].many else text
    try:
        portal = StackOutputs.from_output(document).portals["team"]
    except ContractError as error:
        assert str(error).startswith(f"portals.team.{field}"), (field, text, str(error))
        return
    kind = STRING_FIELDS[field].kind
    assert "\n" not in text and "\x00" not in text
    if kind is Kind.GUID:
        assert is_guid(text)
    elif kind in (Kind.HTTPS_URL, Kind.HTTPS_ORIGIN):
        assert text.startswith("https://") and url_problems(text, allow_path=kind is Kind.HTTPS_URL) == []
    elif kind is Kind.PORTAL_NAME:
        assert text == "team"  # the entry's key
    assert portal.to_output()[field] == entry[field]


@pytest.mark.parametrize(
    "value",
    [
        "2026-01-01T::::",  # the old rule took any run of digits, ':' and '.'
        "2026-01-01T00:00:00Zjunk",
        "\u0662\u0660\u0662\u0666-01-01",  # Arabic-Indic digits: `\\d` matched them
        "2026-01-01\n",
        "2026-01-01 00:00:00Z",
    ],
)
def test_dates_are_rfc_3339_and_nothing_else(value):
    document = copy.deepcopy(DOCUMENT)
    document["portals"]["hr"]["secretExpiresAt"] = value
    with pytest.raises(ContractError, match=r"^portals\.hr\.secretExpiresAt: must be an ISO 8601 date"):
        StackOutputs.from_output(document)
