"""The Pulumi program under mocks, against the simulated tenant: what Entra would receive, and the outputs."""

import json
from datetime import date

import pytest
from helpers import TODAY, run_program, settings_for
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.config import ConfigError, parse_stack_config
from components.contract import CLIENT_SECRETS, PORTALS, PortalOutput
from components.portal import COMPONENT_TYPE as PORTAL_COMPONENT
from components.rotation import secret_schedule
from intrexx_connector.simulation import (
    APP_ROLE_ASSIGNMENT,
    APPLICATION,
    APPLICATION_PASSWORD,
    DELEGATED_GRANT,
    GET_SERVICE_PRINCIPAL,
    SERVICE_PRINCIPAL,
    EntraRefusal,
    SimulatedTenant,
    evaluate,
)

GRAPH = "00000003-0000-0000-c000-000000000000"
EXCHANGE = "00000002-0000-0ff1-ce00-000000000000"
HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}
GROUP = "11111111-2222-3333-4444-555555555555"


def only(evaluation, typ, name=None):
    found = [r for r in evaluation.of_type(typ) if name is None or r.name == name]
    assert len(found) == 1, [r.name for r in found]
    return found[0]


def resource_accesses(application) -> dict:
    return {(a["resourceAppId"], item["type"], item["id"])
            for a in application.inputs["requiredResourceAccesses"] for item in a["resourceAccesses"]}


def grants(evaluation) -> dict:
    sps = {sp["objectId"]: app_id for app_id, sp in evaluation.tenant.resource_service_principals.items()}
    return {sps[g.inputs["resourceServicePrincipalObjectId"]]: g.inputs["claimValues"]
            for g in evaluation.of_type(DELEGATED_GRANT)}


def test_graph_delegated_registration():
    e = run_program([HR])
    app = only(e, APPLICATION, "hr-app")
    assert app.inputs["displayName"] == "Intrexx hr (dev)"
    assert app.inputs["signInAudience"] == "AzureADMyOrg"
    assert app.inputs["fallbackPublicClientEnabled"] is True
    assert app.inputs["preventDuplicateNames"] is True
    assert app.inputs["owners"] == [e.tenant.deployer_object_id]
    assert "stack dev" in app.inputs["notes"] and "portal hr" in app.inputs["notes"]
    assert app.inputs["serviceManagementReference"] == "intrexx-exchange/dev/hr"
    assert app.inputs["web"]["redirectUris"] == ["https://intrexx.example.com/hr/service/oauth2/token/msexchange"]
    assert app.inputs["web"]["implicitGrant"]["idTokenIssuanceEnabled"] is False
    assert resource_accesses(app) == {
        (GRAPH, "Scope", "024d486e-b451-40bb-833d-3e66d98c5c73"),  # Mail.ReadWrite
        (GRAPH, "Scope", "1ec239c2-d7c9-4623-a91a-a9775856bb36"),  # Calendars.ReadWrite
        (GRAPH, "Scope", "d56682ec-c09e-4743-aaf4-1a3aac4caa21"),  # Contacts.ReadWrite
        (GRAPH, "Scope", "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"),  # offline_access
        (GRAPH, "Scope", "e1fe6dd8-ba31-4d61-89e7-88639da4683d"),  # User.Read
    }
    sp = only(e, SERVICE_PRINCIPAL, "hr-sp")
    assert sp.inputs["clientId"] == app.state["clientId"] and sp.inputs["owners"] == app.inputs["owners"]
    assert grants(e) == {GRAPH: ["Mail.ReadWrite", "Calendars.ReadWrite", "Contacts.ReadWrite", "offline_access",
                                 "User.Read"]}
    grant = only(e, DELEGATED_GRANT)
    assert grant.inputs["servicePrincipalObjectId"] == sp.state["objectId"]
    assert "userObjectId" not in grant.inputs, "admin consent is for all users"
    assert not e.of_type(APP_ROLE_ASSIGNMENT)
    portal = e.outputs[PORTALS]["hr"]
    assert portal["scopes"] == [
        "https://graph.microsoft.com/Mail.ReadWrite", "https://graph.microsoft.com/Calendars.ReadWrite",
        "https://graph.microsoft.com/Contacts.ReadWrite", "offline_access", "https://graph.microsoft.com/User.Read"]
    assert portal["resource"] == "https://graph.microsoft.com"
    assert "ewsUrl" not in portal and "signInRedirectUri" not in portal
    assert not e.warnings


def test_graph_application_registration_consents_each_role_and_warns():
    e = run_program([{**HR, "access": "application"}])
    app = only(e, APPLICATION)
    assert app.inputs["fallbackPublicClientEnabled"] is False
    roles = {"e2a3a72e-5f79-4c64-b1b1-878b674786c9", "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
             "6918b873-d17a-4dc1-b314-35f528134491"}
    assert resource_accesses(app) == {(GRAPH, "Role", role) for role in roles}
    assignments = e.of_type(APP_ROLE_ASSIGNMENT)
    graph_sp = e.tenant.resource_service_principals[GRAPH]["objectId"]
    assert {a.inputs["appRoleId"] for a in assignments} == roles
    assert {a.inputs["resourceObjectId"] for a in assignments} == {graph_sp}
    assert {a.inputs["principalObjectId"] for a in assignments} == {only(e, SERVICE_PRINCIPAL).state["objectId"]}
    assert not e.of_type(DELEGATED_GRANT)
    assert e.outputs[PORTALS]["hr"]["scopes"] == ["https://graph.microsoft.com/.default"]
    assert len(e.warnings) == 1 and "every mailbox in the tenant" in e.warnings[0] and "'hr'" in e.warnings[0]


def test_ews_delegated_grants_per_resource_api_and_warns_of_retirement():
    e = run_program([{**HR, "api": "ews"}])
    app = only(e, APPLICATION)
    assert resource_accesses(app) == {
        (EXCHANGE, "Scope", "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5"),
        (GRAPH, "Scope", "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"),
        (GRAPH, "Scope", "e1fe6dd8-ba31-4d61-89e7-88639da4683d"),
    }
    assert grants(e) == {EXCHANGE: ["EWS.AccessAsUser.All"], GRAPH: ["offline_access", "User.Read"]}
    portal = e.outputs[PORTALS]["hr"]
    assert portal["scopes"] == ["https://outlook.office365.com/EWS.AccessAsUser.All", "offline_access"]
    assert portal["ewsUrl"] == "https://outlook.office365.com/EWS/Exchange.asmx"
    assert portal["resource"] == "https://outlook.office365.com"
    assert len(e.warnings) == 1
    assert all(fact in e.warnings[0] for fact in ("2026-10-01", "2027-04-01", "EwsAllowedAppIDs", "Graph"))


def test_ews_application_assigns_full_access_as_app():
    e = run_program([{**HR, "api": "ews", "access": "application"}])
    assignment = only(e, APP_ROLE_ASSIGNMENT)
    assert assignment.inputs["appRoleId"] == "dc890d15-9560-4a4c-9b7f-a736ec74ec40"
    assert assignment.inputs["resourceObjectId"] == e.tenant.resource_service_principals[EXCHANGE]["objectId"]
    assert e.outputs[PORTALS]["hr"]["scopes"] == ["https://outlook.office365.com/.default"]
    assert len(e.warnings) == 2  # EWS retirement, and every mailbox


def test_ews_after_shutdown_is_a_config_error_unless_allowed():
    with pytest.raises(ConfigError, match=r"portals\[0\]\.api: 'ews' is switched off"):
        settings_for([{**HR, "api": "ews"}], today=date(2027, 4, 1))
    e = run_program([{**HR, "api": "ews"}], today=date(2027, 4, 1), allowRetiredEws=True)
    assert e.of_type(APPLICATION)


def test_sign_in_portal():
    e = run_program([{**HR, "signIn": True}])
    app = only(e, APPLICATION)
    assert app.inputs["web"]["redirectUris"] == [
        "https://intrexx.example.com/hr/service/oauth2/token/msexchange",
        "https://intrexx.example.com/hr/login/oic/authenticate"]
    assert app.inputs["web"]["implicitGrant"]["idTokenIssuanceEnabled"] is True
    assert set(grants(e)[GRAPH]) >= {"openid", "profile", "email"}
    portal = e.outputs[PORTALS]["hr"]
    assert portal["signInRedirectUri"] == "https://intrexx.example.com/hr/login/oic/authenticate"
    assert portal["jwksUri"] == f"https://login.microsoftonline.com/{e.tenant.tenant_id}/discovery/v2.0/keys"


def test_mailbox_scope_replaces_tenant_wide_consent_with_exchange_rbac():
    e = run_program([{**HR, "access": "application", "permissions": ["Mail.ReadWrite", "Mail.Send"],
                      "mailboxScope": {"groupId": GROUP}}])
    assert not e.of_type(APP_ROLE_ASSIGNMENT) and not e.of_type(DELEGATED_GRANT)
    assert only(e, APPLICATION).inputs["requiredResourceAccesses"] == []
    portal = e.outputs[PORTALS]["hr"]
    assert portal["mailboxScope"] == {"groupId": GROUP}
    assert [(p["name"], p["grantedBy"], p["exchangeRole"]) for p in portal["permissions"]] == [
        ("Mail.ReadWrite", "exchange-rbac", "Application Mail.ReadWrite"),
        ("Mail.Send", "exchange-rbac", "Application Mail.Send")]
    assert portal["servicePrincipalObjectId"] == only(e, SERVICE_PRINCIPAL).state["objectId"]
    assert not e.warnings


def test_several_portals_have_their_own_children_and_owners():
    owner = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    e = run_program([HR, {"name": "ops", "baseUrl": "https://ops.example.com", "owners": [owner.upper()]},
                     {"name": "mail", "baseUrl": "https://mail.example.com", "access": "application"}],
                    protect=True, environment="Production")
    components = {r.name: r for r in e.of_type(PORTAL_COMPONENT)}
    assert set(components) == {"hr", "ops", "mail"}
    for resource in e.tenant.resources:
        if resource.type == PORTAL_COMPONENT:
            continue
        portal = resource.name.split("-")[0]
        assert resource.parent == components[portal].urn, resource.urn
        assert PORTAL_COMPONENT in resource.urn
        protected = resource.type in (APPLICATION, SERVICE_PRINCIPAL)
        assert resource.protect is protected, resource.urn
    assert only(e, APPLICATION, "ops-app").inputs["owners"] == [e.tenant.deployer_object_id, owner]
    assert only(e, APPLICATION, "mail-app").inputs["displayName"] == "Intrexx mail (Production)"
    assert set(e.outputs[PORTALS]) == set(e.outputs[CLIENT_SECRETS]) == {"hr", "ops", "mail"}
    # invokes once per stack, not once per portal
    assert sum(call["token"] == GET_SERVICE_PRINCIPAL for call in e.tenant.calls) == 1


@pytest.mark.parametrize("cloud, login, graph, exchange", [
    ("global", "https://login.microsoftonline.com", "https://graph.microsoft.com", "https://outlook.office365.com"),
    ("usgovernment", "https://login.microsoftonline.us", "https://graph.microsoft.us", "https://outlook.office365.us"),
    ("dod", "https://login.microsoftonline.us", "https://dod-graph.microsoft.us", "https://webmail.apps.mil"),
    ("china", "https://login.chinacloudapi.cn", "https://microsoftgraph.chinacloudapi.cn",
     "https://partner.outlook.cn"),
])
def test_national_clouds(cloud, login, graph, exchange):
    e = run_program([HR, {"name": "old", "baseUrl": "https://old.example.com", "api": "ews"}], cloud=cloud)
    tenant = e.tenant.tenant_id
    hr, old = e.outputs[PORTALS]["hr"], e.outputs[PORTALS]["old"]
    assert hr["cloud"] == cloud
    assert hr["authorityHost"] == login and hr["authority"] == f"{login}/{tenant}"
    assert hr["tokenEndpoint"] == f"{login}/{tenant}/oauth2/v2.0/token"
    assert hr["authorizeEndpoint"] == f"{login}/{tenant}/oauth2/v2.0/authorize"
    assert hr["deviceCodeEndpoint"] == f"{login}/{tenant}/oauth2/v2.0/devicecode"
    assert hr["resource"] == graph and hr["scopes"][0] == f"{graph}/Mail.ReadWrite"
    assert old["resource"] == exchange and old["ewsUrl"] == f"{exchange}/EWS/Exchange.asmx"
    every_url = json.dumps(e.outputs[PORTALS])
    for other in {"login.microsoftonline.com", "graph.microsoft.com", "outlook.office365.com"} - \
            {login.split("//")[1], graph.split("//")[1], exchange.split("//")[1]}:
        assert other not in every_url


def test_cloud_must_match_the_azuread_provider():
    raw = {"portals": [HR], "cloud": "china"}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw, "dev", TODAY, provider_environment="public")
    assert caught.value.problems == [
        "cloud: is 'china' but the azuread provider signs in to 'public' (azuread:environment or ARM_ENVIRONMENT); "
        "run `pulumi config set azuread:environment china` so that the registrations are made in the cloud the "
        "outputs describe"]
    for alias in ("usgovernmentl5", "dod", "DoD"):
        settings = parse_stack_config({**raw, "cloud": "dod"}, "dev", TODAY, provider_environment=alias)
        assert evaluate(settings).outputs[PORTALS]["hr"]["cloud"] == "dod"
    assert parse_stack_config(raw, "dev", TODAY, provider_environment=None).cloud.name == "china"


def test_secret_slots_follow_the_schedule():
    e = run_program([HR], secretRotationDays=30)
    schedule = secret_schedule(TODAY, 30)
    passwords = {p.name: p for p in e.of_type(APPLICATION_PASSWORD)}
    assert set(passwords) == {"hr-secret-0", "hr-secret-1"}
    app = only(e, APPLICATION)
    for slot in schedule.slots:
        inputs = passwords[f"hr-secret-{slot.index}"].inputs
        assert inputs["applicationId"] == app.id
        assert inputs["endDate"] == slot.end_date
        assert inputs["rotateWhenChanged"] == {"period": slot.rotation_key}
    portal = e.outputs[PORTALS]["hr"]
    newer = passwords[f"hr-secret-{schedule.newer.index}"]
    assert portal["secretExpiresAt"] == schedule.newer.end_date
    assert portal["secretRotatesAt"] == f"{schedule.rotates_at.isoformat()}T00:00:00Z"
    assert portal["secretKeyId"] == newer.state["keyId"]


def test_outputs_hold_every_field_and_the_secret_only_in_client_secrets():
    e = run_program([HR, {"name": "ops", "baseUrl": "https://ops.example.com", "access": "application",
                          "mailboxScope": {"recipientFilter": "Department -eq 'Ops'"}, "signIn": True}])
    assert e.secret_outputs == {CLIENT_SECRETS}
    assert PORTALS not in e.secret_outputs
    for name, portal in e.outputs[PORTALS].items():
        assert PortalOutput.from_output(portal, f"portals.{name}").name == name
        app = only(e, APPLICATION, f"{name}-app")
        assert portal["clientId"] == app.state["clientId"]
        assert portal["applicationObjectId"] == app.state["objectId"]
    passwords = e.tenant.secret_values
    schedule = secret_schedule(TODAY, 90)
    for name, secret in e.outputs[CLIENT_SECRETS].items():
        assert secret == passwords[f"{name}-secret-{schedule.newer.index}"]
    non_secret = json.dumps(e.outputs[PORTALS]) + "\n".join(e.warnings)
    for value in passwords.values():
        assert len(value) >= 30 and value not in non_secret


def test_two_evaluations_ask_for_identical_inputs():
    portals = [HR, {"name": "ops", "baseUrl": "https://ops.example.com", "api": "ews", "access": "application"}]

    def inputs(e):
        return sorted((r.type, r.name, json.dumps(r.inputs, sort_keys=True)) for r in e.tenant.resources)

    assert inputs(run_program(portals)) == inputs(run_program(portals))
    later_same_period = run_program(portals, today=date(2026, 12, 1))
    assert inputs(later_same_period) == inputs(run_program(portals))


def test_tenant_without_a_permission_stops_the_deployment():
    from components.tenant import TenantError

    tenant = SimulatedTenant(TODAY)
    del tenant.resource_service_principals[GRAPH]["scopes"]["Contacts.ReadWrite"]
    with pytest.raises(TenantError, match=r"publishes no delegated permission 'Contacts\.ReadWrite'"):
        evaluate(settings_for([HR]), tenant)
    assert not [r for r in tenant.resources if r.type != PORTAL_COMPONENT]


def test_duplicate_display_name_is_refused_like_entra():
    tenant = SimulatedTenant(TODAY, existing_display_names=("Intrexx hr (dev)",))
    with pytest.raises(EntraRefusal, match="already exists"):
        evaluate(settings_for([HR]), tenant)
    # A refused deployment leaves nothing behind that would disturb the next evaluation in this process.
    assert run_program([HR]).of_type(APPLICATION)


def test_config_error_lists_every_problem_before_anything_runs():
    with pytest.raises(ConfigError) as caught:
        settings_for([{**HR, "baseUrl": "http://x.example.com"}, {"name": "B"}])
    assert len(caught.value.problems) == 3


# Hypothesis over whole programs: resources or that one config error, never another exception ---------------

names = st.sampled_from(["hr", "ops", "a-1", "HR", "", "x" * 41, "dup"])
urls = st.sampled_from(["https://intrexx.example.com/hr", "https://a.example.com/x/", "http://localhost:1337",
                        "http://a.example.com", "https://a.example.com/?q", "ftp://a", "https://*.a.com"])
entries = st.fixed_dictionaries(
    {"name": names, "baseUrl": urls},
    optional={"api": st.sampled_from(["graph", "ews", "soap"]),
              "access": st.sampled_from(["delegated", "application", "x"]),
              "signIn": st.sampled_from([True, False, "yes"]),
              "permissions": st.lists(st.sampled_from(["Mail.ReadWrite", "Mail.Send", "offline_access",
                                                       "full_access_as_app", "EWS.AccessAsUser.All", "Nope"]),
                                      max_size=3),
              "redirectPaths": st.lists(st.sampled_from(["cb", "a/b", "../x", "/abs"]), min_size=1, max_size=2),
              "owners": st.lists(st.sampled_from([GROUP, "nope"]), max_size=2),
              "mailboxScope": st.sampled_from([{"groupId": GROUP}, {"recipientFilter": "City -eq 'Ulm'"},
                                               {"groupId": "x"}])})


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(entries, min_size=0, max_size=3), st.sampled_from(["global", "china", "moon"]),
       st.sampled_from(["7", "90", "365", "0", "x"]))
def test_any_generated_program_yields_resources_or_one_config_error(portals, cloud, rotation):
    try:
        e = evaluate(settings_for(portals, cloud=cloud, secretRotationDays=rotation))
    except ConfigError as error:
        assert error.problems
        return
    assert not e.unknown_outputs
    assert set(e.outputs[PORTALS]) == {p["name"] for p in portals}
    assert len(e.of_type(APPLICATION)) == len(e.of_type(SERVICE_PRINCIPAL)) == len(portals)
    assert len(e.of_type(APPLICATION_PASSWORD)) == 2 * len(portals)
