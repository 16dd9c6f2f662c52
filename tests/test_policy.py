"""The policy pack (policy/), run as the engine runs it and fed what the simulated tenant records.

One pack process per module (tests/policy_harness.py starts it like the engine: `python -u -m pulumi.policy
<engine address> .` in policy/, from policy/venv); every test configures it afresh through the engine's Configure.
"""

import copy
import json
from datetime import UTC, datetime, timedelta
from importlib.metadata import version

import policy_harness as harness
import pytest
import yaml
from google.protobuf import json_format
from helpers import ROOT, TODAY
from policy_harness import Secret, Unknown

STACKS = ("dev", "prod")
PACK_NAME = "entra-app-guardrails"
NOW = datetime.combine(TODAY, datetime.min.time(), tzinfo=UTC)
APPLICATION = "azuread:index/application:Application"
PASSWORD = "azuread:index/applicationPassword:ApplicationPassword"
SERVICE_PRINCIPAL = "azuread:index/servicePrincipal:ServicePrincipal"
APP_ROLE_ASSIGNMENT = "azuread:index/appRoleAssignment:AppRoleAssignment"
GRAPH_MAIL_SEND = "b633e1c5-b582-4048-a93e-9f11b44c7e96"
GRAPH_USER_READ_ALL = "df021288-bdef-4463-88db-98f22de89214"  # Graph application role User.Read.All: no mailbox
OWNER = "3f2504e0-4f89-41d3-9a0c-0305e82c3301"


@pytest.fixture(scope="module")
def pack():
    with harness.PolicyPackProcess(env={"INTREXX_EXCHANGE_TODAY": TODAY.isoformat()}, timeout=15) as process:
        assert process.handshake() == harness.grpc.StatusCode.UNIMPLEMENTED  # the engine falls back on this
        process.configure_stack()
        yield process


@pytest.fixture(autouse=True)
def default_config(pack):
    pack.configure()


@pytest.fixture(scope="module")
def records():
    return {stack: harness.recorded_resources(stack, TODAY) for stack in STACKS}


@pytest.fixture(scope="module")
def stacks(records):
    return {stack: harness.from_recorded(records[stack], stack) for stack in STACKS}


@pytest.fixture(scope="module")
def app_only(pack):
    """Unscoped application access: the simulator's AppRoleAssignments of a Microsoft 365 service account, and
    Exchange Online's full_access_as_app assigned the way another program (an EWS app-only registration) would."""
    portals = [
        {"name": "mail", "connector": "m365", "baseUrl": "https://mail.contoso.example", "access": "application"}
    ]
    resources = harness.from_recorded(harness.recorded_resources("dev", TODAY, portals), "dev")
    sp = named(resources, "mail-sp")
    return harness.add_resource(
        resources,
        APP_ROLE_ASSIGNMENT,
        "legacy-role-exchange-full_access_as_app",
        {
            "appRoleId": "dc890d15-9560-4a4c-9b7f-a736ec74ec40",  # full_access_as_app
            "principalObjectId": sp.outputs["objectId"],
            "resourceObjectId": "0ac14a4f-2fb4-5c1a-9a64-4a7a45cba1b2",
        },
        parent="mail",
    )


def named(resources, name):
    return next(r for r in resources if r.name == name)


def changed(resources, name, drop=(), **values):
    """A copy of `resources` where resource `name` has `values` set and `drop` removed, in inputs and outputs."""
    result = copy.deepcopy(resources)
    target = named(result, name)
    for props in (target.inputs, target.outputs):
        props.update(values)
        for key in drop:
            props.pop(key, None)
    return result


def mandatory(diagnostics):
    return [d for d in diagnostics if d.level == "mandatory"]


def of(diagnostics, policy):
    return [d for d in diagnostics if d.policy == policy]


def everything(pack, resources):
    return pack.analyze_all(resources) + pack.analyze_stack(resources)


# The pack and the engine's calls ----------------------------------------------------------------------------------


def test_pack_describes_every_policy(pack):
    info = pack.info()
    assert info.name == PACK_NAME and info.supportsConfig
    levels = {p.name: harness.ENGINE_LEVELS[p.enforcementLevel] for p in info.policies}
    assert levels == {
        "application-password-lifetime": "mandatory",
        "web-redirect-uris-https": "mandatory",
        "single-tenant-sign-in-audience": "mandatory",
        "public-client-without-app-roles": "mandatory",
        "registration-names-its-owner": "advisory",
        "tenant-wide-mailbox-roles": "advisory",
        "application-has-owner": "mandatory",
        "application-has-service-principal": "mandatory",
    }
    for policy in info.policies:
        assert policy.description and policy.remediation_steps, policy.name
    schema = {p.name: json_format.MessageToDict(p.configSchema.properties) for p in info.policies}
    assert schema["application-password-lifetime"]["maxSecretLifetimeDays"]["default"] == 180


def test_the_pack_runs_from_its_own_venv_without_the_project():
    for source in harness.PACK_DIR.glob("*.py"):
        text = source.read_text()
        assert "import components" not in text and "intrexx_connector" not in text, source
    requirements = (harness.PACK_DIR / "requirements.txt").read_text()
    assert "pulumi-policy>=1.21,<1.22" in requirements and "pulumi>=3." in requirements


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stack_passes_every_policy(pack, stacks, stack):
    assert everything(pack, stacks[stack]) == []


@pytest.mark.parametrize("stack", STACKS)
def test_shipped_stack_passes_in_preview(pack, stacks, records, stack):
    """During preview a new application's clientId and objectId are unknown: owners and service principals are
    matched through the engine's property dependencies."""
    previewed = harness.as_preview(stacks[stack], harness.computed_keys(records[stack], stacks[stack]))
    sp = next(r for r in previewed if r.type == SERVICE_PRINCIPAL)
    assert sp.outputs["clientId"] == Unknown() and sp.property_dependencies["clientId"]
    assert everything(pack, previewed) == []


# Secret lifetime ----------------------------------------------------------------------------------------------------


def password(resources):
    return next(r for r in resources if r.type == PASSWORD)


def iso(moment):
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def test_secret_longer_than_180_days_is_mandatory_violation(pack, stacks):
    secret = password(stacks["prod"])
    resources = changed(stacks["prod"], secret.name, endDate=iso(NOW + timedelta(days=730)))
    [violation] = pack.analyze(named(resources, secret.name))
    assert (violation.policy, violation.level, violation.urn) == (
        "application-password-lifetime",
        "mandatory",
        secret.urn,
    )
    assert "lies 730 days after today (2026-11-24): more than maxSecretLifetimeDays (180)" in violation.message
    assert f"Fix: set endDate to {iso(NOW + timedelta(days=180))} or earlier" in violation.message


def test_secret_of_exactly_180_days_passes(pack, stacks):
    secret = password(stacks["prod"])
    resources = changed(stacks["prod"], secret.name, endDate=iso(NOW + timedelta(days=180)))
    assert pack.analyze(named(resources, secret.name)) == []


def test_secret_without_end_date_is_a_violation(pack, stacks):
    secret = password(stacks["dev"])
    [violation] = pack.analyze(named(changed(stacks["dev"], secret.name, drop=("endDate",)), secret.name))
    assert violation.level == "mandatory" and "no endDate" in violation.message


@pytest.mark.parametrize(
    ("relative", "passes"),
    [("4320h", True), ("2400h30m", True), ("4321h", False), ("8760h", False), ("six months", False)],
)
def test_end_date_relative_is_held_to_the_same_limit(pack, stacks, relative, passes):
    secret = password(stacks["dev"])
    resources = changed(stacks["dev"], secret.name, drop=("endDate",), endDateRelative=relative)
    violations = pack.analyze(named(resources, secret.name))
    assert (violations == []) == passes, violations
    if not passes:
        assert "endDateRelative" in violations[0].message


def test_end_date_wins_over_end_date_relative_like_the_provider(pack, stacks):
    secret = password(stacks["dev"])
    resources = changed(stacks["dev"], secret.name, endDateRelative="87600h")
    assert pack.analyze(named(resources, secret.name)) == []


def test_a_start_date_in_the_past_counts(pack, stacks):
    secret = password(stacks["dev"])
    resources = changed(
        stacks["dev"], secret.name, startDate=iso(NOW - timedelta(days=100)), endDate=iso(NOW + timedelta(days=100))
    )
    [violation] = pack.analyze(named(resources, secret.name))
    assert "200 days after its startDate" in violation.message


def test_unknown_end_date_is_the_sdks_preview_advisory(pack, stacks):
    secret = password(stacks["dev"])
    resources = changed(stacks["dev"], secret.name, endDate=Unknown())
    [diagnostic] = pack.analyze(named(resources, secret.name))
    assert (
        diagnostic.level == "advisory"
        and "can't run policy 'application-password-lifetime'" in diagnostic.message
        and "during preview" in diagnostic.message
    )


def newer_than(resources, days):
    return {
        r.name
        for r in resources
        if r.type == PASSWORD and datetime.fromisoformat(r.inputs["endDate"]) - NOW > timedelta(days=days)
    }


@pytest.mark.parametrize("stack", STACKS)
def test_configured_30_days_fails_the_shipped_stacks_and_stays_mandatory(pack, stacks, stack):
    """The engine sends the config as a Struct (30 -> 30.0) and keeps the policy's own level when the config gives
    only properties (ReconcilePolicyPackConfig)."""
    sent = pack.configure({"application-password-lifetime": {"maxSecretLifetimeDays": 30}})
    assert sent["application-password-lifetime"] == {
        "enforcementLevel": "mandatory",
        "properties": {"maxSecretLifetimeDays": 30},
    }
    violations = pack.analyze_all(stacks[stack])
    expected = newer_than(stacks[stack], 30)
    assert expected and expected != {r.name for r in stacks[stack] if r.type == PASSWORD}  # the newer slots only
    assert {named(stacks[stack], v.urn.split("::")[-1]).name for v in violations} == expected
    assert all(v.level == "mandatory" and "(30)" in v.message for v in violations)


def test_config_without_a_level_sent_raw_turns_advisory(pack, stacks):
    """What a client that does not reconcile like the engine gets: proto3 has no "unset" level, 0 is ADVISORY, and
    the SDK applies it (pulumi_policy/policy.py Configure). The harness therefore reconciles."""
    pack.configure_raw({"application-password-lifetime": {"properties": {"maxSecretLifetimeDays": 30.0}}})
    violations = pack.analyze_all(stacks["dev"])
    assert violations and {v.level for v in violations} == {"advisory"}


def test_config_the_engine_would_refuse_fails_loudly(pack, stacks):
    """The engine validates the config against the schema first; sent anyway, the pack refuses it by name."""
    pack.configure_raw(
        {
            "application-password-lifetime": {
                "enforcementLevel": "mandatory",
                "properties": {"maxSecretLifetimeDays": "half a year"},
            }
        }
    )
    with pytest.raises(harness.grpc.RpcError) as error:
        pack.analyze(password(stacks["dev"]))
    assert "maxSecretLifetimeDays must be a positive number of days" in error.value.details()


def test_enforcement_level_from_config(pack, stacks):
    pack.configure({"application-password-lifetime": {"enforcementLevel": "advisory", "maxSecretLifetimeDays": 30}})
    assert {v.level for v in pack.analyze_all(stacks["dev"])} == {"advisory"}
    pack.configure({"all": "disabled", "application-password-lifetime": {"maxSecretLifetimeDays": 30}})
    assert pack.analyze_all(stacks["dev"]) == []


# Applications -------------------------------------------------------------------------------------------------------


def app(resources, portal="intranet"):
    return named(resources, f"{portal}-app")


@pytest.mark.parametrize(
    "uri",
    [
        "http://intrexx.contoso.example/service/oauth2/token/msexchange",
        "https://*.contoso.example/service/oauth2/token/msexchange",
        "https://intrexx.contoso.example/*",
        "intrexx.contoso.example/cb",
    ],
)
def test_web_redirect_uri_must_be_https_without_wildcards(pack, stacks, uri):
    target = app(stacks["prod"])
    web = {**target.inputs["web"], "redirectUris": [*target.inputs["web"]["redirectUris"], uri]}
    [violation] = pack.analyze(named(changed(stacks["prod"], target.name, web=web), target.name))
    assert (violation.policy, violation.level) == ("web-redirect-uris-https", "mandatory")
    assert uri in violation.message


def test_http_redirect_uris_for_loopback_pass(pack, stacks):
    sandbox = app(stacks["dev"], "sandbox")
    assert sandbox.inputs["web"]["redirectUris"][0].startswith("http://localhost:")
    web = {**sandbox.inputs["web"], "redirectUris": ["http://127.0.0.1:8080/cb"]}
    assert pack.analyze(named(changed(stacks["dev"], sandbox.name, web=web), sandbox.name)) == []


def test_application_redirect_uris_resource_of_type_web(pack, stacks):
    target = app(stacks["dev"])
    resources = harness.add_resource(
        stacks["dev"],
        "azuread:index/applicationRedirectUris:ApplicationRedirectUris",
        "extra-web",
        {"applicationId": target.id, "type": "Web", "redirectUris": ["http://portal.contoso.example/cb"]},
    )
    assert [v.policy for v in pack.analyze(resources[-1])] == ["web-redirect-uris-https"]
    resources = harness.add_resource(
        stacks["dev"],
        "azuread:index/applicationRedirectUris:ApplicationRedirectUris",
        "extra-native",
        {"applicationId": target.id, "type": "PublicClient", "redirectUris": ["http://portal.contoso.example/cb"]},
    )
    assert pack.analyze(resources[-1]) == []


def test_multi_tenant_audience_is_refused_unless_allowed(pack, stacks):
    target = app(stacks["dev"])
    resources = changed(stacks["dev"], target.name, signInAudience="AzureADMultipleOrgs")
    [violation] = pack.analyze(named(resources, target.name))
    assert (violation.policy, violation.level) == ("single-tenant-sign-in-audience", "mandatory")
    assert "signInAudience is AzureADMultipleOrgs" in violation.message
    pack.configure(
        {"single-tenant-sign-in-audience": {"allowedSignInAudiences": ["AzureADMyOrg", "AzureADMultipleOrgs"]}}
    )
    assert pack.analyze(named(resources, target.name)) == []


def test_missing_audience_is_the_providers_default_single_tenant(pack, stacks):
    target = app(stacks["dev"])
    assert pack.analyze(named(changed(stacks["dev"], target.name, drop=("signInAudience",)), target.name)) == []


def test_public_client_flows_only_without_application_roles(pack, app_only, stacks):
    target = app(app_only, "mail")
    assert target.inputs["fallbackPublicClientEnabled"] is False
    assert of(pack.analyze(target), "public-client-without-app-roles") == []
    assert app(stacks["dev"]).inputs["fallbackPublicClientEnabled"] is True  # delegated: passes (shipped stack)
    [violation] = of(
        pack.analyze(named(changed(app_only, target.name, fallbackPublicClientEnabled=True), target.name)),
        "public-client-without-app-roles",
    )
    assert violation.level == "mandatory"
    assert "(Mail.ReadWrite, Calendars.ReadWrite, Contacts.ReadWrite)" in violation.message


def test_notes_or_service_management_reference_is_advisory(pack, stacks):
    target = app(stacks["dev"])
    resources = changed(stacks["dev"], target.name, drop=("notes", "serviceManagementReference"))
    [violation] = pack.analyze(named(resources, target.name))
    assert (violation.policy, violation.level) == ("registration-names-its-owner", "advisory")
    resources = changed(stacks["dev"], target.name, drop=("notes",))
    assert pack.analyze(named(resources, target.name)) == []


# Mailbox roles ------------------------------------------------------------------------------------------------------


def test_simulated_unscoped_application_access_is_reported(pack, app_only):
    diagnostics = pack.analyze_all(app_only)
    assert {d.policy for d in diagnostics} == {"tenant-wide-mailbox-roles"}
    assert {d.level for d in diagnostics} == {"advisory"}
    messages = " ".join(d.message for d in diagnostics)
    for role in (
        "Application Mail.ReadWrite",
        "Application Calendars.ReadWrite",
        "Application Contacts.ReadWrite",
        "Application EWS.AccessAsApp",
    ):
        assert f'-Role "{role}"' in messages
    assert len(diagnostics) == 4 and "names from the permission catalogue" in messages
    assert pack.analyze_stack(app_only) == []


def test_mailbox_roles_become_mandatory_by_config(pack, app_only):
    pack.configure({"tenant-wide-mailbox-roles": "mandatory"})
    diagnostics = pack.analyze_all(app_only)
    assert len(diagnostics) == 4 and {d.level for d in diagnostics} == {"mandatory"}


def test_tenant_wide_grant_beside_a_mailbox_scope_is_reported(pack, stacks):
    """prod's helpdesk portal is scoped with Exchange RBAC; a tenant-wide Mail.Send grant would undo the scope."""
    sp = named(stacks["prod"], "helpdesk-sp")
    resources = harness.add_resource(
        stacks["prod"],
        APP_ROLE_ASSIGNMENT,
        "helpdesk-role-graph-Mail.Send",
        {
            "appRoleId": GRAPH_MAIL_SEND,
            "principalObjectId": sp.outputs["objectId"],
            "resourceObjectId": "c912db06-e63f-5d5c-9ee3-16140ee25775",
        },
        parent="helpdesk",
    )
    [violation] = pack.analyze(resources[-1])
    assert violation.policy == "tenant-wide-mailbox-roles" and "Mail.Send" in violation.message
    assert resources[-1].property_dependencies == {"principalObjectId": [sp.urn]}
    other = harness.add_resource(
        stacks["prod"],
        APP_ROLE_ASSIGNMENT,
        "helpdesk-users",
        {
            "appRoleId": GRAPH_USER_READ_ALL,
            "principalObjectId": sp.outputs["objectId"],
            "resourceObjectId": "c912db06-e63f-5d5c-9ee3-16140ee25775",
        },
    )
    assert pack.analyze(other[-1]) == []


def catalogue_roles():
    document = yaml.safe_load((ROOT / "components" / "catalogue.yaml").read_text())
    return [
        (name, entry["id"]) for resource in document["resources"].values() for name, entry in resource["roles"].items()
    ]


def test_without_the_catalogue_the_built_in_list_names_the_same_roles(pack, stacks):
    roles = catalogue_roles()
    assert len(roles) == 10
    assignments = [
        harness.add_resource(
            stacks["dev"],
            APP_ROLE_ASSIGNMENT,
            f"role-{i}",
            {"appRoleId": role_id, "principalObjectId": "p", "resourceObjectId": "r"},
        )[-1]
        for i, (_, role_id) in enumerate(roles)
    ]
    from_catalogue = [pack.analyze(a) for a in assignments]
    pack.configure({"tenant-wide-mailbox-roles": {"cataloguePath": "no/such/catalogue.yaml"}})
    built_in = [pack.analyze(a) for a in assignments]
    for (name, _), with_file, without in zip(roles, from_catalogue, built_in, strict=True):
        assert len(with_file) == len(without) == 1, name
        assert "the pack's built-in role list" in without[0].message and "not found" in without[0].message
        cut = " (names from"
        assert with_file[0].message.split(cut)[0] == without[0].message.split(cut)[0]
        assert f"application permission {name}:" in without[0].message


# Stack: owners and service principals -------------------------------------------------------------------------------


def test_application_without_owners_is_reported(pack, stacks):
    target = app(stacks["prod"], "hr")
    resources = changed(stacks["prod"], target.name, owners=[])
    [violation] = pack.analyze_stack(resources)
    assert (violation.policy, violation.level, violation.urn) == ("application-has-owner", "mandatory", target.urn)


@pytest.mark.parametrize("shape", ["update", "preview"])
def test_an_application_owner_resource_counts(pack, stacks, records, shape):
    target = app(stacks["prod"], "hr")
    resources = harness.add_resource(
        changed(stacks["prod"], target.name, drop=("owners",)),
        "azuread:index/applicationOwner:ApplicationOwner",
        "hr-owner",
        {"applicationId": target.id, "ownerObjectId": OWNER},
    )
    assert resources[-1].property_dependencies == {"applicationId": [target.urn]}
    if shape == "preview":
        resources = harness.as_preview(resources, harness.computed_keys(records["prod"], resources))
    assert pack.analyze_stack(resources) == []


def test_application_without_service_principal_is_reported(pack, stacks):
    target = app(stacks["dev"], "sandbox")
    resources = [r for r in stacks["dev"] if r.name != "sandbox-sp"]
    [violation] = pack.analyze_stack(resources)
    assert (violation.policy, violation.level, violation.urn) == (
        "application-has-service-principal",
        "mandatory",
        target.urn,
    )
    assert target.outputs["clientId"] in violation.message


def test_service_principal_of_another_application_does_not_count(pack, stacks):
    other = app(stacks["dev"], "intranet")
    resources = harness.without_dependencies(changed(stacks["dev"], "sandbox-sp", clientId=other.outputs["clientId"]))
    [violation] = pack.analyze_stack(resources)
    assert violation.urn == app(stacks["dev"], "sandbox").urn


def test_imported_or_hard_coded_ids_are_matched_by_value(pack, stacks):
    """import_ reads the resources, so their ids are known even in preview, and a program may pass literal ids:
    no property dependencies, the values match."""
    assert pack.analyze_stack(harness.without_dependencies(stacks["prod"])) == []


def test_unknown_client_id_without_dependency_information_is_not_accused(pack, stacks, records):
    previewed = harness.as_preview(stacks["dev"], harness.computed_keys(records["dev"], stacks["dev"]))
    assert pack.analyze_stack(harness.without_dependencies(previewed)) == []


def test_new_application_in_preview_without_any_service_principal_is_reported(pack, stacks, records):
    resources = [r for r in stacks["dev"] if r.name != "intranet-sp"]
    previewed = harness.as_preview(resources, harness.computed_keys(records["dev"], resources))
    [violation] = pack.analyze_stack(previewed)
    assert violation.policy == "application-has-service-principal" and "intranet-app" in violation.urn


# The harness speaks the engine's protocol ---------------------------------------------------------------------------


def test_marshalling_follows_the_engine():
    """pkg/resource/plugin/rpc.go MarshalProperties with KeepUnknowns, KeepSecrets, SkipInternalKeys."""
    struct = harness.marshal_properties(
        {
            "a": 1,
            "b": None,
            "c": Secret("s"),
            "d": Unknown(),
            "__defaults": [],
            "e": {"__inner": True, "n": [Unknown("number")]},
        }
    )
    assert json_format.MessageToDict(struct) == {
        "a": 1.0,
        "b": None,
        "c": {"4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270", "value": "s"},
        "d": "04da6b54-80e4-46f7-96ec-b56ff0331ba9",
        "e": {"__inner": True, "n": ["3eeb2bf0-c639-47a8-9e75-3b44932eb421"]},
    }


def engine_request_for_dev_intranet_secret(app_object_id):
    """The AnalyzeRequest the engine sends for dev's `intranet-secret-1`, written from the engine's code:

    - urn/type/name: new.URN, new.Type, new.URN.Name() (step_generator.go analyzeAll); the URN's type chain is
      the parent's qualified type without the root stack (deployment.go generateURN);
    - properties: the resource's inputs, MarshalProperties(..., SkipInternalKeys) (analyzer_plugin.go Analyze);
    - options: marshalResourceOptions: protect, ignoreChanges, deleteBeforeReplace(Defined), aliases are empty here,
      additionalSecretOutputs from pulumi_azuread's ApplicationPassword (["value"]), customTimeouts always set,
      parent = the PortalRegistration component;
    - provider: the default provider default_<version> with its inputs: the `azuread:` config (none in
      Pulumi.dev.yaml) and "version" (default_providers.go newRegisterDefaultProviderEvent).
    """
    azuread = version("pulumi_azuread")
    provider = "default_" + azuread.replace(".", "_")
    return {
        "type": "azuread:index/applicationPassword:ApplicationPassword",
        "urn": "urn:pulumi:dev::intrexx-exchange::intrexx-exchange:index:PortalRegistration"
        "$azuread:index/applicationPassword:ApplicationPassword::intranet-secret-1",
        "name": "intranet-secret-1",
        "properties": {
            "applicationId": f"/applications/{app_object_id}",
            "displayName": "intrexx-exchange slot 1 from 2026-11-16",
            "endDate": "2027-01-15T00:00:00Z",
            "rotateWhenChanged": {"period": "slot1-2026-11-16"},
        },
        "options": {
            "additionalSecretOutputs": ["value"],
            "customTimeouts": {},
            "parent": "urn:pulumi:dev::intrexx-exchange::intrexx-exchange:index:PortalRegistration::intranet",
        },
        "provider": {
            "type": "pulumi:providers:azuread",
            "name": provider,
            "urn": f"urn:pulumi:dev::intrexx-exchange::pulumi:providers:azuread::{provider}",
            "properties": {"version": azuread},
        },
    }


def test_analyze_request_has_the_engines_shape(stacks):
    app_object_id = app(stacks["dev"]).outputs["objectId"]
    request = harness.analyze_request(named(stacks["dev"], "intranet-secret-1"))
    assert json_format.MessageToDict(request) == engine_request_for_dev_intranet_secret(app_object_id)


def test_analyze_stack_entry_has_the_engines_shape(stacks):
    """AnalyzeStack adds parent, dependencies and non-empty propertyDependencies, and sends OUTPUTS
    (step_generator.go AnalyzeResources, analyzer_plugin.go AnalyzeStack); secret outputs stay secrets."""
    application = app(stacks["dev"])
    component = "urn:pulumi:dev::intrexx-exchange::intrexx-exchange:index:PortalRegistration::intranet"
    entry = json_format.MessageToDict(harness.analyzer_resource(named(stacks["dev"], "intranet-sp")))
    assert entry["urn"] == (
        "urn:pulumi:dev::intrexx-exchange::intrexx-exchange:index:PortalRegistration"
        "$azuread:index/servicePrincipal:ServicePrincipal::intranet-sp"
    )
    assert entry["parent"] == entry["options"]["parent"] == component
    assert entry["dependencies"] == [application.urn]
    assert entry["propertyDependencies"] == {"clientId": {"urns": [application.urn]}}
    assert entry["properties"]["clientId"] == application.outputs["clientId"]
    assert set(entry["properties"]) == {
        "clientId",
        "owners",
        "appRoleAssignmentRequired",
        "objectId",
        "applicationTenantId",
    }
    secret = json_format.MessageToDict(harness.analyzer_resource(named(stacks["dev"], "intranet-secret-1")))
    assert secret["properties"]["value"] == {
        "4dabf18193072939515e22adb298388d": "1b47061264138c4ac30d75fd1eb44270",
        "value": harness.SECRET_PLACEHOLDER,
    }
    names = [r.name for r in stacks["dev"]]
    assert names[:2] == ["intrexx-exchange-dev", "default_" + version("pulumi_azuread").replace(".", "_")]
    assert named(stacks["dev"], "intranet").parent == stacks["dev"][0].urn


def test_the_readme_shows_a_real_violation(pack, stacks):
    pack.configure({"application-password-lifetime": {"maxSecretLifetimeDays": 30}})
    violations = [v for v in pack.analyze_all(stacks["dev"]) if v.urn.endswith("::intranet-secret-1")]
    rendered = harness.render_policies(violations, PACK_NAME, "0.1.0", "policy")
    assert rendered in (harness.PACK_DIR / "README.md").read_text(), rendered
    assert "version: 0.1.0" in (harness.PACK_DIR / "PulumiPolicy.yaml").read_text()


def test_config_example_in_readme_is_valid_json_for_the_pack(pack):
    text = (harness.PACK_DIR / "README.md").read_text()
    example = json.loads(text.split("```json\n", 1)[1].split("```", 1)[0])
    sent = pack.configure(example)
    names = {p.name for p in pack.info().policies}
    assert set(example) <= names | {"all"} and sent["tenant-wide-mailbox-roles"]["enforcementLevel"] == "mandatory"
