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
    return {
        (a["resourceAppId"], item["type"], item["id"])
        for a in application.inputs["requiredResourceAccesses"]
        for item in a["resourceAccesses"]
    }


def grants(evaluation) -> dict:
    sps = {sp["objectId"]: app_id for app_id, sp in evaluation.tenant.resource_service_principals.items()}
    return {
        sps[g.inputs["resourceServicePrincipalObjectId"]]: g.inputs["claimValues"]
        for g in evaluation.of_type(DELEGATED_GRANT)
    }


EXCHANGE_REDIRECTS = [
    "https://intrexx.example.com/hr/oauth2/token/msexchange",
    "https://intrexx.example.com/hr/service/oauth2/token/msexchange",
]
M365_USERS = {
    "name": "hr",
    "connector": "m365",
    "baseUrl": "https://intrexx.example.com/hr",
    "redirectPaths": ["service/oauth2/token/D2A7C1E0B9F84A6C3E5D7F9A1B3C5E7F9A1B3C5D"],
}
M365_SERVICE = {"name": "hr", "connector": "m365", "baseUrl": "https://intrexx.example.com/hr", "access": "application"}


def test_the_default_portal_is_an_exchange_connector_registration():
    """Connector for Microsoft Exchange: EWS as the signed-in mailbox user plus a refresh token, public client flows
    for the device code sign-in, both msexchange redirect URIs, and no Microsoft Graph mail scope at all."""
    e = run_program([HR])
    app = only(e, APPLICATION, "hr-app")
    assert app.inputs["displayName"] == "Intrexx hr (dev)"
    assert app.inputs["signInAudience"] == "AzureADMyOrg"
    assert app.inputs["fallbackPublicClientEnabled"] is True
    assert app.inputs["preventDuplicateNames"] is True
    assert app.inputs["owners"] == [e.tenant.deployer_object_id]
    assert "stack dev" in app.inputs["notes"] and "portal hr" in app.inputs["notes"]
    assert app.inputs["serviceManagementReference"] == "intrexx-exchange/dev/hr"
    assert app.inputs["web"]["redirectUris"] == EXCHANGE_REDIRECTS
    assert app.inputs["web"]["implicitGrant"]["idTokenIssuanceEnabled"] is False
    assert resource_accesses(app) == {
        (EXCHANGE, "Scope", "3b5f3d61-589b-4a3c-a359-5dd4b5ee5bd5"),  # EWS.AccessAsUser.All
        (GRAPH, "Scope", "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"),  # offline_access
        (GRAPH, "Scope", "37f7f235-527c-4136-accd-4a02d197296e"),  # openid
        (GRAPH, "Scope", "14dad69e-099b-42c9-810b-d002981feec1"),  # profile
    }
    sp = only(e, SERVICE_PRINCIPAL, "hr-sp")
    assert sp.inputs["clientId"] == app.state["clientId"] and sp.inputs["owners"] == app.inputs["owners"]
    assert grants(e) == {EXCHANGE: ["EWS.AccessAsUser.All"], GRAPH: ["offline_access", "openid", "profile"]}
    for grant in e.of_type(DELEGATED_GRANT):
        assert grant.inputs["servicePrincipalObjectId"] == sp.state["objectId"]
        assert "userObjectId" not in grant.inputs, "admin consent is for all users"
    assert not e.of_type(APP_ROLE_ASSIGNMENT)
    portal = e.outputs[PORTALS]["hr"]
    assert portal["connector"] == "exchange" and portal["api"] == "ews" and portal["publicClient"] is True
    assert portal["scopes"] == [
        "https://outlook.office365.com/EWS.AccessAsUser.All",
        "offline_access",
        "openid",
        "profile",
    ]
    assert not any(scope.startswith("https://graph.microsoft.com/") for scope in portal["scopes"])
    assert portal["ewsUrl"] == "https://outlook.office365.com/EWS/Exchange.asmx"
    assert portal["resource"] == "https://outlook.office365.com"
    assert "signInRedirectUri" not in portal
    assert len(e.warnings) == 1
    assert all(fact in e.warnings[0] for fact in ("2026-10-01", "2027-04-01", "EwsAllowedAppIDs", "connector: m365"))


def test_m365_user_accounts_get_delegated_graph_consent_and_the_redirect_uri_intrexx_shows():
    e = run_program([M365_USERS])
    app = only(e, APPLICATION, "hr-app")
    assert app.inputs["fallbackPublicClientEnabled"] is False, "Intrexx signs M365 user accounts in in the browser"
    assert app.inputs["web"]["redirectUris"] == [
        "https://intrexx.example.com/hr/service/oauth2/token/D2A7C1E0B9F84A6C3E5D7F9A1B3C5E7F9A1B3C5D"
    ]
    assert resource_accesses(app) == {
        (GRAPH, "Scope", "024d486e-b451-40bb-833d-3e66d98c5c73"),  # Mail.ReadWrite
        (GRAPH, "Scope", "1ec239c2-d7c9-4623-a91a-a9775856bb36"),  # Calendars.ReadWrite
        (GRAPH, "Scope", "d56682ec-c09e-4743-aaf4-1a3aac4caa21"),  # Contacts.ReadWrite
        (GRAPH, "Scope", "7427e0e9-2fba-42fe-b0c0-848c9e6a8182"),  # offline_access
        (GRAPH, "Scope", "e1fe6dd8-ba31-4d61-89e7-88639da4683d"),  # User.Read
    }
    assert grants(e) == {
        GRAPH: ["Mail.ReadWrite", "Calendars.ReadWrite", "Contacts.ReadWrite", "offline_access", "User.Read"]
    }
    portal = e.outputs[PORTALS]["hr"]
    assert portal["connector"] == "m365" and portal["api"] == "graph" and portal["publicClient"] is False
    assert portal["scopes"] == [
        "https://graph.microsoft.com/Mail.ReadWrite",
        "https://graph.microsoft.com/Calendars.ReadWrite",
        "https://graph.microsoft.com/Contacts.ReadWrite",
        "offline_access",
        "https://graph.microsoft.com/User.Read",
    ]
    assert portal["resource"] == "https://graph.microsoft.com"
    assert "ewsUrl" not in portal and "signInRedirectUri" not in portal
    assert not e.warnings
    assert run_program([{**M365_USERS, "publicClientFlows": True}]).outputs[PORTALS]["hr"]["publicClient"] is True


def test_m365_service_account_consents_each_role_and_warns():
    e = run_program([M365_SERVICE])
    app = only(e, APPLICATION)
    assert app.inputs["fallbackPublicClientEnabled"] is False
    assert app.inputs["web"]["redirectUris"] == [], "client credentials need no redirect URI"
    roles = {
        "e2a3a72e-5f79-4c64-b1b1-878b674786c9",
        "ef54d2bf-783f-4e0f-bca1-3210c0444d99",
        "6918b873-d17a-4dc1-b314-35f528134491",
    }
    assert resource_accesses(app) == {(GRAPH, "Role", role) for role in roles}
    assignments = e.of_type(APP_ROLE_ASSIGNMENT)
    graph_sp = e.tenant.resource_service_principals[GRAPH]["objectId"]
    assert {a.inputs["appRoleId"] for a in assignments} == roles
    assert {a.inputs["resourceObjectId"] for a in assignments} == {graph_sp}
    assert {a.inputs["principalObjectId"] for a in assignments} == {only(e, SERVICE_PRINCIPAL).state["objectId"]}
    assert not e.of_type(DELEGATED_GRANT)
    assert e.outputs[PORTALS]["hr"]["scopes"] == ["https://graph.microsoft.com/.default"]
    assert len(e.warnings) == 1 and "every mailbox in the tenant" in e.warnings[0] and "'hr'" in e.warnings[0]


def test_exchange_after_the_ews_shutdown_is_a_config_error_unless_allowed():
    with pytest.raises(ConfigError, match=r"portals\[0\]\.connector: 'exchange' reaches Exchange Online through EWS"):
        settings_for([HR], today=date(2027, 4, 1))
    e = run_program([HR], today=date(2027, 4, 1), allowRetiredEws=True)
    assert e.of_type(APPLICATION)


@pytest.mark.parametrize("portal", [HR, M365_USERS], ids=["exchange", "m365"])
def test_sign_in_works_with_both_connectors(portal):
    e = run_program([{**portal, "signIn": True}])
    app = only(e, APPLICATION)
    assert app.inputs["web"]["redirectUris"][-1] == "https://intrexx.example.com/hr/login/oic/authenticate"
    assert app.inputs["web"]["implicitGrant"]["idTokenIssuanceEnabled"] is True
    assert set(grants(e)[GRAPH]) >= {"openid", "profile", "email"}
    portal = e.outputs[PORTALS]["hr"]
    assert portal["signInRedirectUri"] == "https://intrexx.example.com/hr/login/oic/authenticate"
    assert portal["jwksUri"] == f"https://login.microsoftonline.com/{e.tenant.tenant_id}/discovery/v2.0/keys"


def test_a_scoped_m365_service_account_holds_no_tenant_wide_mail_consent():
    e = run_program(
        [{**M365_SERVICE, "permissions": ["Mail.ReadWrite", "Mail.Send"], "mailboxScope": {"groupId": GROUP}}]
    )
    assert not e.of_type(APP_ROLE_ASSIGNMENT) and not e.of_type(DELEGATED_GRANT)
    assert only(e, APPLICATION).inputs["requiredResourceAccesses"] == []
    portal = e.outputs[PORTALS]["hr"]
    assert portal["mailboxScope"] == {"groupId": GROUP}
    assert [(p["name"], p["grantedBy"], p["exchangeRole"]) for p in portal["permissions"]] == [
        ("Mail.ReadWrite", "exchange-rbac", "Application Mail.ReadWrite"),
        ("Mail.Send", "exchange-rbac", "Application Mail.Send"),
    ]
    assert portal["servicePrincipalObjectId"] == only(e, SERVICE_PRINCIPAL).state["objectId"]
    assert not e.warnings


def test_several_portals_have_their_own_children_and_owners():
    owner = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"
    e = run_program(
        [
            HR,
            {"name": "ops", "baseUrl": "https://ops.example.com", "owners": [owner.upper()]},
            {"name": "mail", "connector": "m365", "baseUrl": "https://mail.example.com", "access": "application"},
        ],
        protect=True,
        environment="Production",
    )
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
    # invokes once per stack and resource API (Exchange Online, Microsoft Graph), not once per portal
    assert sum(call["token"] == GET_SERVICE_PRINCIPAL for call in e.tenant.calls) == 2


@pytest.mark.parametrize(
    "cloud, login, graph, exchange",
    [
        ("global", "https://login.microsoftonline.com", "https://graph.microsoft.com", "https://outlook.office365.com"),
        (
            "usgovernment",
            "https://login.microsoftonline.us",
            "https://graph.microsoft.us",
            "https://outlook.office365.us",
        ),
        (
            "dod",
            "https://login.microsoftonline.us",
            "https://dod-graph.microsoft.us",
            "https://outlook-dod.office365.us",
        ),
        (
            "china",
            "https://login.partner.microsoftonline.cn",
            "https://microsoftgraph.chinacloudapi.cn",
            "https://partner.outlook.cn",
        ),
    ],
)
def test_national_clouds(cloud, login, graph, exchange):
    e = run_program([M365_USERS, {"name": "old", "baseUrl": "https://old.example.com"}], cloud=cloud)
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
    for other in {
        "login.microsoftonline.com",
        "graph.microsoft.com",
        "outlook.office365.com",
        "login.chinacloudapi.cn",
    } - {
        login.split("//")[1],
        graph.split("//")[1],
        exchange.split("//")[1],
    }:
        assert other not in every_url


def test_cloud_must_match_the_azuread_provider():
    raw = {"portals": [HR], "cloud": "china"}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config(raw, "dev", TODAY, provider_environment="public")
    assert caught.value.problems == [
        "cloud: is 'china' but the azuread provider signs in to 'public' (azuread:environment or ARM_ENVIRONMENT); "
        "run `pulumi config set azuread:environment china` so that the registrations are made in the cloud the "
        "outputs describe"
    ]
    for alias in ("usgovernmentl5", "dod", "DoD"):
        settings = parse_stack_config({**raw, "cloud": "dod"}, "dev", TODAY, provider_environment=alias)
        assert evaluate(settings).outputs[PORTALS]["hr"]["cloud"] == "dod"
    assert parse_stack_config(raw, "dev", TODAY, provider_environment=None).cloud.name == "china"


def test_the_exchange_endpoint_can_be_overridden_for_a_national_cloud():
    e = run_program([HR], cloud="dod", exchangeEndpoint="https://outlook-dod.office365.us/")
    portal = e.outputs[PORTALS]["hr"]
    assert portal["resource"] == "https://outlook-dod.office365.us"
    assert portal["ewsUrl"] == "https://outlook-dod.office365.us/EWS/Exchange.asmx"
    assert portal["scopes"][0] == "https://outlook-dod.office365.us/EWS.AccessAsUser.All"
    assert portal["graphEndpoint"] == "https://dod-graph.microsoft.us"
    for bad in ("http://outlook.example", "https://outlook.example/EWS", "outlook.example", "https://u:p@x.example"):
        with pytest.raises(ConfigError, match=r"^invalid stack configuration \(1 problem\):\n  - exchangeEndpoint: "):
            settings_for([HR], exchangeEndpoint=bad)


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
    e = run_program(
        [
            HR,
            {
                "name": "ops",
                "connector": "m365",
                "baseUrl": "https://ops.example.com",
                "access": "application",
                "mailboxScope": {"recipientFilter": "Department -eq 'Ops'"},
                "signIn": True,
            },
        ]
    )
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
    portals = [HR, {**M365_SERVICE, "name": "ops"}]

    def inputs(e):
        return sorted((r.type, r.name, json.dumps(r.inputs, sort_keys=True)) for r in e.tenant.resources)

    assert inputs(run_program(portals)) == inputs(run_program(portals))
    later_same_period = run_program(portals, today=date(2026, 12, 1))
    assert inputs(later_same_period) == inputs(run_program(portals))


def test_tenant_without_a_permission_stops_the_deployment():
    from components.tenant import TenantError

    tenant = SimulatedTenant(TODAY)
    del tenant.resource_service_principals[EXCHANGE]["scopes"]["EWS.AccessAsUser.All"]
    with pytest.raises(TenantError, match=r"publishes no delegated permission 'EWS\.AccessAsUser\.All'"):
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
urls = st.sampled_from(
    [
        "https://intrexx.example.com/hr",
        "https://a.example.com/x/",
        "http://localhost:1337",
        "http://a.example.com",
        "https://a.example.com/?q",
        "ftp://a",
        "https://*.a.com",
    ]
)
entries = st.fixed_dictionaries(
    {"name": names, "baseUrl": urls},
    optional={
        "connector": st.sampled_from(["exchange", "m365", "ews"]),
        "api": st.sampled_from(["graph"]),
        "publicClientFlows": st.sampled_from([True, False]),
        "access": st.sampled_from(["delegated", "application", "x"]),
        "signIn": st.sampled_from([True, False, "yes"]),
        "permissions": st.lists(
            st.sampled_from(
                ["Mail.ReadWrite", "Mail.Send", "offline_access", "full_access_as_app", "EWS.AccessAsUser.All", "Nope"]
            ),
            max_size=3,
        ),
        "redirectPaths": st.lists(st.sampled_from(["cb", "a/b", "../x", "/abs"]), min_size=1, max_size=2),
        "owners": st.lists(st.sampled_from([GROUP, "nope"]), max_size=2),
        "mailboxScope": st.sampled_from([{"groupId": GROUP}, {"recipientFilter": "City -eq 'Ulm'"}, {"groupId": "x"}]),
    },
)


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(entries, min_size=0, max_size=3),
    st.sampled_from(["global", "china", "moon"]),
    st.sampled_from(["7", "90", "365", "0", "x"]),
)
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


def test_the_package_docstring_names_modules_that_exist_and_says_which_import_pulumi():
    import re
    from pathlib import Path

    import components

    root = Path(components.__file__).parent
    modules = {path.stem for path in root.glob("*.py")} - {"__init__"}
    importing = {p.stem for p in root.glob("*.py") if re.search(r"^\s*(import|from) pulumi", p.read_text(), re.M)}
    listed = set(re.split(r",\s+", re.search(r"here \(([^)]*)\)", components.__doc__ or "").group(1)))
    assert listed == modules - importing
    assert importing == {"portal", "program", "tenant"}
    assert all(f"`{name}`" in (components.__doc__ or "") for name in importing)
