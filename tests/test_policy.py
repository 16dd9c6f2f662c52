"""The policy pack (policy/), run as the engine runs it and fed what the simulated tenant records.

One pack process per module (tests/policy_harness.py starts it like the engine: `python -u -m pulumi.policy
<engine address> .` in policy/, from policy/venv); every test configures it afresh through the engine's Configure.
"""

import copy
import json
import shutil
import sys
from datetime import UTC, date, datetime, time, timedelta
from importlib.metadata import version

import policy_harness as harness
import pytest
import yaml
from google.protobuf import json_format
from helpers import ROOT, TODAY
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from policy_harness import Secret, Unknown

from components import facts
from components.facts import DEFAULT_MAX_SECRET_DAYS, MAX_ROTATION_DAYS, MIN_ROTATION_DAYS
from components.rotation import EPOCH, period_start, secret_schedule
from components.stack_file import load_stack_settings

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
    assert "ada-url>=4.0,<5" in requirements  # the WHATWG URL parser the program uses (requirements.txt)


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
    assert (
        "Fix: in an intrexx-exchange stack, set secretRotationDays to 90 or less (each secret lives 2 x "
        f"secretRotationDays days); in another program, set endDate to {iso(NOW + timedelta(days=180))} or earlier"
    ) in violation.message


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


# One rule for secret lifetime, shared with the program (components/facts.py) -----------------------------------

rules = harness.pack_rules()
ROTATION_DAYS = st.integers(min_value=MIN_ROTATION_DAYS, max_value=MAX_ROTATION_DAYS)


def midnight(day):
    return datetime.combine(day, time.min, tzinfo=UTC)


@settings(max_examples=80)
@given(r=ROTATION_DAYS, first=st.dates(min_value=EPOCH, max_value=date(2080, 12, 31)), late=st.integers(0, 86399))
def test_every_secret_the_program_makes_passes_the_pack_on_every_day(r, first, late):
    """Every accepted secretRotationDays, every day of two full periods, both slots: the end date the program gives
    each ApplicationPassword passes the pack's lifetime rule with its default limit, measured as the pack measures
    it (from the moment it runs: midnight UTC, the worst case, and a later moment of the same day)."""
    start = period_start((first - EPOCH).days // r, r)
    for offset in range(2 * r):
        day = start + timedelta(days=offset)
        for slot in secret_schedule(day, r).slots:
            props = {"endDate": slot.end_date, "displayName": f"intrexx-exchange slot {slot.index}"}
            for moment in (midnight(day), midnight(day) + timedelta(seconds=late)):
                assert rules.password_lifetime(props, DEFAULT_MAX_SECRET_DAYS, moment) == [], (r, day, slot)


def test_the_longest_accepted_rotation_reaches_the_limit_on_its_rotation_day():
    """2 x MAX_ROTATION_DAYS is the pack's default limit exactly: one day more would fail, so the program refuses it."""
    day = period_start(4, MAX_ROTATION_DAYS)
    newer = secret_schedule(day, MAX_ROTATION_DAYS).newer
    end = datetime.fromisoformat(newer.end_date)
    assert facts.secret_lifetime(end, midnight(day)) == timedelta(days=DEFAULT_MAX_SECRET_DAYS)
    assert rules.password_lifetime({"endDate": newer.end_date}, DEFAULT_MAX_SECRET_DAYS, midnight(day)) == []
    with pytest.raises(ValueError, match=r"rotation_days must be 7\.\.90"):
        secret_schedule(day, MAX_ROTATION_DAYS + 1)
    longer = iso(midnight(day) + timedelta(days=facts.secret_lifetime_days(MAX_ROTATION_DAYS + 1)))
    [violation] = rules.password_lifetime({"endDate": longer}, DEFAULT_MAX_SECRET_DAYS, midnight(day))
    assert "set secretRotationDays to 90 or less" in violation


@settings(max_examples=80)
@given(data=st.data(), limit=st.integers(min_value=2 * MIN_ROTATION_DAYS, max_value=facts.ENTRA_MAX_SECRET_DAYS))
def test_a_lower_limit_names_the_rotation_that_fits_it(data, limit):
    """maxSecretLifetimeDays stays meaningful: the secretRotationDays the violation names passes that limit on every
    day, one more does not (while the program accepts it)."""
    fits = facts.largest_rotation_days(timedelta(days=limit))
    r = data.draw(st.integers(min_value=MIN_ROTATION_DAYS, max_value=fits), label="secretRotationDays")
    day = period_start(data.draw(st.integers(0, 400), label="period"), r)
    for offset in range(2 * r):
        for slot in secret_schedule(day + timedelta(days=offset), r).slots:
            now = midnight(day + timedelta(days=offset))
            assert rules.password_lifetime({"endDate": slot.end_date}, limit, now) == []
    if fits < MAX_ROTATION_DAYS:
        newer = secret_schedule(period_start(10, fits + 1), fits + 1).newer
        [violation] = rules.password_lifetime({"endDate": newer.end_date}, limit, midnight(newer.created_in))
        assert f"set secretRotationDays to {fits} or less" in violation


def test_a_limit_below_the_shortest_rotation_says_none_fits(pack, stacks):
    pack.configure({"application-password-lifetime": {"maxSecretLifetimeDays": 10}})
    violations = pack.analyze_all(stacks["dev"])
    assert violations and all(
        "no secretRotationDays fits: the shortest, 7, makes secrets that live 14 days" in v.message for v in violations
    )


def test_shipped_stacks_pass_on_their_rotation_day():
    """A day that starts a period for both shipped stacks (30 and 90 days): the newer secrets live the longest
    they ever do, and the pack, pinned to that day like the program, passes them."""
    rotations = {stack: load_stack_settings(stack, ROOT, TODAY).secret_rotation_days for stack in STACKS}
    assert rotations == {"dev": 30, "prod": 90}
    day = period_start(((TODAY - EPOCH).days // 90) + 1, 90)
    with harness.PolicyPackProcess(env={"INTREXX_EXCHANGE_TODAY": day.isoformat()}, timeout=15) as process:
        process.configure_stack()
        process.configure()
        for stack in STACKS:
            resources = harness.from_recorded(harness.recorded_resources(stack, day), stack)
            ends = [datetime.fromisoformat(r.inputs["endDate"]) for r in resources if r.type == PASSWORD]
            assert max(ends) - midnight(day) == timedelta(days=2 * rotations[stack])
            assert process.analyze_all(resources) + process.analyze_stack(resources) == []


def test_the_pack_loads_the_shared_facts_by_path():
    source = (harness.PACK_DIR / "entra_guardrails.py").read_text()
    assert "spec_from_file_location" in source and 'PACK_DIR.parent / "components" / "facts.py"' in source
    assert rules.facts.__file__ == str(ROOT / "components" / "facts.py")
    assert rules.DEFAULT_MAX_SECRET_DAYS == facts.DEFAULT_MAX_SECRET_DAYS == 180
    assert set(facts.LOOPBACK_HOSTS) == rules.LOOPBACK_HOSTS and rules.GRAPH_APP_ID == facts.GRAPH_APP_ID


def test_without_the_shared_facts_the_pack_stops_with_one_line(tmp_path):
    """A pack folder copied without ../components/facts.py: no port, exit 1, and the engine shows why."""
    copy_dir = tmp_path / "policy"
    copy_dir.mkdir()
    for name in ("__main__.py", "entra_guardrails.py", "PulumiPolicy.yaml"):
        shutil.copy(harness.PACK_DIR / name, copy_dir / name)
    with pytest.raises(harness.PackFailedToStart) as failure:
        harness.PolicyPackProcess(pack_dir=copy_dir, timeout=15).start()
    message = str(failure.value)
    assert "exited with code 1" in message
    assert f"entra-app-guardrails cannot start: {tmp_path / 'components' / 'facts.py'} not found" in message
    assert "copy components/facts.py and components/catalogue.yaml along with the policy folder" in message
    assert "Traceback" not in message


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


# Any property shape: a violation or nothing, never an error -------------------------------------------------------

FULL_ACCESS_AS_APP = "dc890d15-9560-4a4c-9b7f-a736ec74ec40"
KEYS = (
    "web",
    "redirectUris",
    "requiredResourceAccesses",
    "resourceAccesses",
    "resourceAppId",
    "id",
    "type",
    "appRoleId",
    "endDate",
    "endDateRelative",
    "startDate",
    "signInAudience",
    "fallbackPublicClientEnabled",
    "notes",
    "serviceManagementReference",
    "owners",
    "clientId",
    "applicationId",
    "objectId",
)
SAMPLES = (
    "Role",
    "Scope",
    "Web",
    "AzureADMyOrg",
    FULL_ACCESS_AS_APP,
    FULL_ACCESS_AS_APP.upper(),
    "{" + FULL_ACCESS_AS_APP + "}",
    "urn:uuid:" + FULL_ACCESS_AS_APP,
    "2027-01-15T00:00:00Z",
    "0001-01-01T00:00:00+05:00",
    "9999-12-31T23:59:59-23:59",
    "2026-13-45T00:00:00Z",
    "4320h",
    "-4320h",
    "2562048h",
    "1e400h",
    "https://intrexx.contoso.example/cb",
    "http://evil.example\\@localhost/cb",
    "http://localhost:8080/cb",
    "http://[::1",
    "https://*.contoso.example/",
    "/applications/" + FULL_ACCESS_AS_APP,
    "##vso[task.setvariable variable=x]y",
    "\x1b[31m\u202e",
    "",
)


def property_trees(text, numbers, extra_leaves=()):
    leaves = st.one_of(st.none(), st.booleans(), numbers, st.floats(), text, st.sampled_from(SAMPLES), *extra_leaves)
    return st.recursive(
        leaves,
        lambda children: (
            st.lists(children, max_size=4) | st.dictionaries(st.sampled_from(KEYS) | text, children, max_size=4)
        ),
        max_leaves=16,
    )


ANY_TEXT = st.text(max_size=24)
ANY_NUMBER = st.integers()


def properties(text=ANY_TEXT, numbers=ANY_NUMBER, extra_leaves=()):
    return st.dictionaries(st.sampled_from(KEYS), property_trees(text, numbers, extra_leaves), max_size=8)


def catalogue():
    return rules.load_role_catalogue(str(ROOT / "components" / "catalogue.yaml"))


def every_resource_rule(props, today, max_days):
    """Each resource rule on `props`, as the policies call them; an UnknownValueError from the SDK's proxy counts
    as what the SDK makes of it: the preview advisory."""
    calls = (
        lambda: rules.password_lifetime(props, max_days, today),
        lambda: rules.redirect_uris(rules.APPLICATION, props),
        lambda: rules.redirect_uris(rules.APPLICATION_REDIRECT_URIS, props),
        lambda: rules.sign_in_audience(props, (rules.DEFAULT_SIGN_IN_AUDIENCE,)),
        lambda: rules.public_client_flows(props, catalogue().roles),
        lambda: rules.ownership_notes(props),
        lambda: rules.mailbox_role_assignment(props, catalogue()),
    )
    messages = []
    for call in calls:
        try:
            result = call()
        except harness.sdk_proxy().UnknownValueError:
            continue
        assert isinstance(result, list)
        messages += result
    return messages


def assert_readable(message):
    """One printable line: no control or bidirectional characters, no CI logging command."""
    assert isinstance(message, str) and message.isprintable(), message
    assert "##" not in message, message


MOMENTS = st.datetimes(min_value=datetime(2024, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(UTC))
LIMITS = st.floats(min_value=1, max_value=730)


@settings(max_examples=250)
@given(props=properties(), today=MOMENTS, max_days=LIMITS)
def test_resource_rules_are_total_over_any_property_tree(props, today, max_days):
    for message in every_resource_rule(props, today, max_days):
        assert_readable(message)


@settings(max_examples=120)
@given(
    props=properties(extra_leaves=(st.sampled_from(sorted(harness.UNKNOWN_SENTINELS.values())),)),
    today=MOMENTS,
    max_days=LIMITS,
)
def test_resource_rules_are_total_behind_the_sdks_proxy(props, today, max_days):
    """What a policy really receives: the SDK's unknown-checking proxies (Mapping and Sequence, not dict and
    list), with unknown sentinels anywhere."""
    for message in every_resource_rule(harness.sdk_proxy().unknown_checking_proxy(props), today, max_days):
        assert_readable(message)


STACK_TYPES = (
    rules.APPLICATION,
    rules.APPLICATION_REGISTRATION,
    rules.APPLICATION_OWNER,
    rules.SERVICE_PRINCIPAL,
    PASSWORD,
)


STACK_PROPERTIES = properties(extra_leaves=(st.just(rules.UNKNOWN),))


@st.composite
def stack_resources(draw):
    count = draw(st.integers(min_value=1, max_value=4))
    urns = [f"urn:pulumi:dev::p::t::r{i}" for i in range(count)]
    some_urns = st.sets(st.sampled_from(urns), max_size=3)
    return [
        rules.StackResource(
            urn=urn,
            type=draw(st.sampled_from(STACK_TYPES)),
            name=f"r{i}",
            props=draw(STACK_PROPERTIES),
            dependencies=draw(some_urns),
            property_dependencies=draw(st.dictionaries(st.sampled_from(KEYS), some_urns, max_size=3)),
        )
        for i, urn in enumerate(urns)
    ]


@settings(max_examples=100)
@given(resources=stack_resources())
def test_stack_rules_are_total_over_any_property_tree(resources):
    for find in (rules.applications_without_owner, rules.applications_without_service_principal):
        for urn, message in find(resources):
            assert urn in {r.urn for r in resources}
            assert_readable(message)


HOSTILE_SHAPES = [
    # (resource, inputs, policy that reports it or None, text in its message)
    ("intranet-app", {"web": ["https://x.example/cb"]}, "web-redirect-uris-https", "web is a list, not an object"),
    ("intranet-app", {"web": "https://x.example/cb"}, "web-redirect-uris-https", "web is a string, not an object"),
    ("intranet-app", {"web": {"redirectUris": 5}}, "web-redirect-uris-https", "web.redirectUris is a number"),
    ("intranet-app", {"web": {"redirectUris": [{"uri": "https://x"}]}}, "web-redirect-uris-https", "an object"),
    (
        "intranet-app",
        {"web": {"redirectUris": ["http://evil.example\\@localhost/cb"]}},
        "web-redirect-uris-https",
        "uses http for 'evil.example', not for localhost/127.0.0.1",
    ),
    (
        "intranet-app",
        {"web": {"redirectUris": ["https://ex%61mple.com/cb"]}},
        "web-redirect-uris-https",
        "reaches host 'example.com' in a browser but reads differently elsewhere",
    ),
    ("intranet-app", {"web": {"redirectUris": ["http://LOCALHOST:8080/cb"]}}, None, ""),
    (
        "intranet-app",
        {"requiredResourceAccesses": {"resourceAppId": FULL_ACCESS_AS_APP}},
        "public-client-without-app-roles",
        "requiredResourceAccesses is an object, not a list",
    ),
    (
        "intranet-app",
        {"requiredResourceAccesses": [{"resourceAppId": 5, "resourceAccesses": [{"id": 7, "type": "Role"}]}]},
        "public-client-without-app-roles",
        "requests application permissions (7)",
    ),
    (
        "intranet-app",
        {
            "requiredResourceAccesses": [
                {"resourceAppId": 5, "resourceAccesses": [{"id": GRAPH_MAIL_SEND.upper(), "type": "Role"}]}
            ]
        },
        "public-client-without-app-roles",
        "requests application permissions (Mail.Send)",
    ),
    ("intranet-app", {"signInAudience": 5}, "single-tenant-sign-in-audience", "signInAudience is 5;"),
    ("intranet-app", {"signInAudience": ["AzureADMyOrg"]}, "single-tenant-sign-in-audience", "is a list;"),
    ("intranet-app", {"signInAudience": float("nan")}, "single-tenant-sign-in-audience", "signInAudience is 'NaN';"),
    (
        "intranet-app",
        {"web": {"redirectUris": [float("-inf")]}},
        "web-redirect-uris-https",
        "'-Infinity' is not a URL (WHATWG URL Standard)",
    ),
    ("intranet-secret-1", {"endDate": 5}, "application-password-lifetime", "endDate 5 is not an RFC 3339 date"),
    ("intranet-secret-1", {"endDate": {"a": 1}}, "application-password-lifetime", "endDate an object is not"),
    ("intranet-secret-1", {"endDate": "0001-01-01T00:00:00+05:00"}, None, ""),
    (
        "intranet-secret-1",
        {"startDate": "0001-01-01T00:00:00+05:00"},
        "application-password-lifetime",
        "lies 739995.2 days after its startDate 0001-01-01T00:00:00+05:00",
    ),
    (
        "intranet-secret-1",
        {"endDate": "9999-12-31T23:59:59-23:59"},
        "application-password-lifetime",
        "endDate 9999-12-31T23:59:59-23:59 lies",
    ),
    ("intranet-secret-1", {"startDate": []}, "application-password-lifetime", "startDate a list is not an RFC 3339"),
    (
        "intranet-secret-1",
        {"endDate": None, "endDateRelative": "2562048h"},
        "application-password-lifetime",
        "endDateRelative '2562048h' is not a duration",
    ),
    (
        "intranet-secret-1",
        {"endDate": None, "endDateRelative": "9223372036854775807ns"},
        "application-password-lifetime",
        "endDateRelative 9223372036854775807ns (ends 2319-03-05T23:47:16Z) lies 106752 days",
    ),
    (
        "intranet-secret-1",
        {"endDate": None, "endDateRelative": 4320},
        "application-password-lifetime",
        "endDateRelative 4320 is not a duration",
    ),
    (
        "intranet-secret-1",
        {"endDate": "2027-01-15T00:00:00Z\n##vso[task.setvariable variable=x]y"},
        "application-password-lifetime",
        "endDate '2027-01-15T00:00:00Z\\n\\x23\\x23vso[task.setvariable variable=x]y' is not an RFC 3339 date",
    ),
]


@pytest.mark.parametrize(
    ("name", "values", "policy", "text"),
    HOSTILE_SHAPES,
    ids=[f"{name}:{'+'.join(values)}:{i}" for i, (name, values, _, _) in enumerate(HOSTILE_SHAPES)],
)
def test_hostile_shapes_through_the_engines_protocol(pack, stacks, name, values, policy, text):
    found = pack.analyze(named(changed(stacks["dev"], name, **values), name))
    if policy is None:
        assert found == []
        return
    [violation] = found
    assert violation.policy == policy and text in violation.message, violation.message
    assert_readable(violation.message.split("\n", 1)[1])


def test_a_value_nested_beyond_pythons_recursion_limit_gets_an_answer(pack, stacks):
    """protobuf carries values nested far deeper than Python's recursion limit lets the SDK convert them; the pack
    cuts them at MAX_DEPTH (64) levels into a string, so the policies still answer."""
    limit = sys.getrecursionlimit()
    deep = "https://intrexx.contoso.example/cb"
    for _ in range(1500):
        deep = [deep]
    sys.setrecursionlimit(20000)  # for this harness's own (recursive) marshalling, not for the pack
    try:
        resources = harness.add_resource(
            stacks["dev"], APPLICATION, "deep", {"notes": "n", "web": {"redirectUris": deep}}
        )
        [violation] = pack.analyze(resources[-1])
        stack_policies = {d.policy for d in pack.analyze_stack(resources)}
    finally:
        sys.setrecursionlimit(limit)
    assert violation.policy == "web-redirect-uris-https" and "a list is not a URL but a list" in violation.message
    assert stack_policies == {"application-has-owner", "application-has-service-principal"}


@pytest.mark.parametrize(
    ("app_role_id", "reported"),
    [
        pytest.param(FULL_ACCESS_AS_APP.upper(), True, id="upper-case"),
        pytest.param("{" + FULL_ACCESS_AS_APP + "}", True, id="braces"),
        pytest.param("urn:uuid:" + FULL_ACCESS_AS_APP, True, id="urn-uuid"),
        pytest.param(FULL_ACCESS_AS_APP.replace("-", ""), True, id="no-hyphens"),
        pytest.param(5, False, id="number"),
        pytest.param([FULL_ACCESS_AS_APP], False, id="list"),
        pytest.param({"id": FULL_ACCESS_AS_APP}, False, id="object"),
        pytest.param(GRAPH_USER_READ_ALL.upper(), False, id="other-role"),
    ],
)
def test_mailbox_roles_are_found_in_any_guid_form(pack, stacks, app_role_id, reported):
    resources = harness.add_resource(
        stacks["dev"],
        APP_ROLE_ASSIGNMENT,
        "role",
        {"appRoleId": app_role_id, "principalObjectId": OWNER, "resourceObjectId": OWNER},
    )
    found = pack.analyze(resources[-1])
    assert [d.policy for d in found] == (["tenant-wide-mailbox-roles"] if reported else [])
    if reported:
        assert f"appRoleId {FULL_ACCESS_AS_APP}" in found[0].message and "full_access_as_app" in found[0].message
        assert ("not in the canonical 8-4-4-4-12 form" in found[0].message) == (not facts.is_guid(app_role_id))


def test_stack_rules_compare_ids_as_guids(pack, stacks):
    sandbox = app(stacks["dev"], "sandbox")
    loose = harness.without_dependencies(
        changed(stacks["dev"], "sandbox-sp", clientId=sandbox.outputs["clientId"].upper())
    )
    assert pack.analyze_stack(loose) == []
    for hostile in (5, [sandbox.outputs["clientId"]], {"id": 1}):
        [violation] = pack.analyze_stack(
            harness.without_dependencies(changed(stacks["dev"], "sandbox-sp", clientId=hostile))
        )
        assert violation.policy == "application-has-service-principal" and violation.urn == sandbox.urn
    for owners in ({"a": OWNER}, "x", [5]):
        [violation] = pack.analyze_stack(changed(stacks["dev"], sandbox.name, owners=owners))
        assert violation.policy == "application-has-owner" and violation.urn == sandbox.urn


GRPC_TEXT = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=24)
GRPC_NUMBERS = st.integers(min_value=-(2**53), max_value=2**53)
GRPC_TYPES = (rules.APPLICATION, PASSWORD, APP_ROLE_ASSIGNMENT, rules.APPLICATION_REDIRECT_URIS)


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(props=properties(GRPC_TEXT, GRPC_NUMBERS), type_=st.sampled_from(GRPC_TYPES))
def test_any_property_tree_through_the_engines_protocol(pack, stacks, props, type_):
    """Whatever the engine marshals, every resource policy and both stack policies answer (no gRPC error)."""
    resources = harness.add_resource(stacks["dev"], type_, "hostile", props)
    for diagnostic in pack.analyze(resources[-1]):
        assert_readable(diagnostic.message.replace("\n", " "))
    for diagnostic in pack.analyze_stack(resources):
        assert_readable(diagnostic.message.replace("\n", " "))
