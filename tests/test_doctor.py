"""doctor against a loopback Microsoft Graph stand-in (tests/graph_standin.py).

Fixture documents follow the shapes of the Graph reference pages (conditionalAccessPolicy,
tenantAppManagementPolicy, appManagementPolicy, application, servicePrincipal, appRoleAssignment, user,
directoryRole). Every test asserts the exit code and names what it expects in the output; every request the
stand-in saw must be a GET carrying the test's token, and the token must never be printed.
"""

import base64
import copy
import json
import time
from datetime import timedelta

import pytest
from graph_standin import Fault, Scenario, graph_standin_server
from idp_fixture import silent_server

from components.catalogue import load_catalogue
from components.contract import PermissionType
from components.facts import largest_rotation_days
from intrexx_connector.cli import main
from intrexx_connector.doctor import DoctorOptions, run_doctor
from intrexx_connector.doctor_checks import assess_ca_policy, parse_duration
from intrexx_connector.graph import GraphLimits

TODAY = "2026-11-24"
GRAPH_APP_ID = "00000003-0000-0000-c000-000000000000"
GRAPH_SP = "7e3b1a52-4c8d-4f0e-9a61-2b5c8d9e0f11"
EXCHANGE_SP = "1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f"
DEPLOYER_APP = "5f0c2b7e-8d1a-4e3b-9c6f-7a2d4e8b1c30"
DEPLOYER_SP = "a4b8c2d6-e0f2-4a6b-8c0d-2e4f6a8b0c1d"
USER_ID = "d1e2f3a4-b5c6-4d7e-8f9a-0b1c2d3e4f5a"
MAILBOX_GROUP = "c3d4e5f6-a7b8-4c9d-0e1f-2a3b4c5d6e7f"
BREAK_GLASS = "e5f6a7b8-c9d0-4e1f-2a3b-4c5d6e7f8a9b"

# Microsoft Graph app role ids as in learn.microsoft.com/graph/permissions-reference (doctor resolves names
# through the Graph service principal's appRoles and does not depend on them).
GRAPH_ROLES = {
    "Application.ReadWrite.OwnedBy": "18a4783c-866b-4cc7-a460-3d5e5662c884",
    "Application.ReadWrite.All": "1bfefb4e-e0b5-418b-a88f-73c46d2cc8e9",
    "Application.Read.All": "9a5d68dd-52b0-4cc2-bd40-abcf44ac3a30",
    "AppRoleAssignment.ReadWrite.All": "06b708a9-e830-4db3-a914-8e69da51d44f",
    "DelegatedPermissionGrant.ReadWrite.All": "8e8e4742-1d95-4f68-9d56-6ee75648c72a",
}
PIPELINE_ROLES = (
    "Application.ReadWrite.OwnedBy",
    "Application.Read.All",
    "DelegatedPermissionGrant.ReadWrite.All",
    "AppRoleAssignment.ReadWrite.All",
)

HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}
WIDE = {"name": "wide", "connector": "m365", "baseUrl": "https://wide.example.com", "access": "application"}
LEGACY = {"name": "legacy", "baseUrl": "https://old.example.com"}


# Graph documents ------------------------------------------------------------------------------------------------


def ca_policy(
    name,
    state="enabled",
    include_users=("All",),
    exclude_users=(),
    include_groups=(),
    exclude_groups=(),
    controls=("block",),
    transfer="deviceCodeFlow",
    apps=("All",),
    locations=None,
):
    """A conditionalAccessPolicy as GET /identity/conditionalAccess/policies lists it."""
    return {
        "id": f"policy-{abs(hash(name)) % 10**8:08d}-0000-4000-8000-000000000000",
        "displayName": name,
        "createdDateTime": "2026-03-01T08:00:00Z",
        "modifiedDateTime": None,
        "state": state,
        "sessionControls": None,
        "conditions": {
            "userRiskLevels": [],
            "signInRiskLevels": [],
            "clientAppTypes": ["all"],
            "servicePrincipalRiskLevels": [],
            "platforms": None,
            "locations": locations,
            "devices": None,
            "clientApplications": None,
            "applications": {
                "includeApplications": list(apps),
                "excludeApplications": [],
                "includeUserActions": [],
                "includeAuthenticationContextClassReferences": [],
            },
            "users": {
                "includeUsers": list(include_users),
                "excludeUsers": list(exclude_users),
                "includeGroups": list(include_groups),
                "excludeGroups": list(exclude_groups),
                "includeRoles": [],
                "excludeRoles": [],
                "includeGuestsOrExternalUsers": None,
                "excludeGuestsOrExternalUsers": None,
            },
            "authenticationFlows": {"transferMethods": transfer} if transfer else None,
        },
        "grantControls": {
            "operator": "OR",
            "builtInControls": list(controls),
            "customAuthenticationFactors": [],
            "termsOfUse": [],
            "authenticationStrength": None,
        },
    }


MFA_FOR_ADMINS = ca_policy("Require MFA for administrators", include_users=(), controls=("mfa",), transfer=None)
MFA_FOR_ADMINS["conditions"]["users"]["includeRoles"] = ["62e90394-69f5-4237-9190-012177145e10"]


def password_restriction(kind, max_lifetime=None, after=None, state="enabled"):
    return {
        "restrictionType": kind,
        "state": state,
        "maxLifetime": max_lifetime,
        "restrictForAppsCreatedAfterDateTime": after,
        "excludeActors": None,
    }


def default_policy(*restrictions, enabled=True):
    """GET /policies/defaultAppManagementPolicy (tenantAppManagementPolicy)."""
    return {
        "id": "00000000-0000-0000-0000-000000000000",
        "displayName": "Default app management tenant policy",
        "description": "Default tenant policy that enforces app management restrictions on applications and "
        "service principals.",
        "isEnabled": enabled,
        "applicationRestrictions": {"passwordCredentials": list(restrictions), "keyCredentials": []},
        "servicePrincipalRestrictions": {"passwordCredentials": [], "keyCredentials": []},
    }


def custom_policy(name, *restrictions, enabled=True):
    """One appManagementPolicy of GET /policies/appManagementPolicies."""
    return {
        "id": f"{abs(hash(name)) % 10**8:08d}-3488-4da4-9994-49773c454e33",
        "displayName": name,
        "description": "Custom policy",
        "isEnabled": enabled,
        "restrictions": {"passwordCredentials": list(restrictions), "keyCredentials": []},
    }


def service_principal(object_id, app_id, name, app_roles=()):
    return {
        "id": object_id,
        "appId": app_id,
        "displayName": name,
        "servicePrincipalType": "Application",
        "accountEnabled": True,
        "appRoles": list(app_roles),
    }


def graph_service_principal():
    roles = [
        {
            "id": role_id,
            "value": value,
            "displayName": value,
            "description": value,
            "isEnabled": True,
            "origin": "Application",
            "allowedMemberTypes": ["Application"],
        }
        for value, role_id in GRAPH_ROLES.items()
    ]
    return service_principal(GRAPH_SP, GRAPH_APP_ID, "Microsoft Graph", roles)


def role_assignments(*names):
    """GET /servicePrincipals/{id}/appRoleAssignments (appRoleAssignment)."""
    return [
        {
            "id": f"assignment-{index}",
            "deletedDateTime": None,
            "appRoleId": GRAPH_ROLES[name],
            "createdDateTime": "2026-01-10T09:00:00Z",
            "principalDisplayName": "intrexx-exchange-pipeline",
            "principalId": DEPLOYER_SP,
            "principalType": "ServicePrincipal",
            "resourceDisplayName": "Microsoft Graph",
            "resourceId": GRAPH_SP,
        }
        for index, name in enumerate(names)
    ]


def directory_role(name, template):
    return {
        "@odata.type": "#microsoft.graph.directoryRole",
        "id": f"role-{template[:8]}",
        "deletedDateTime": None,
        "description": name,
        "displayName": name,
        "roleTemplateId": template,
    }


CLOUD_APP_ADMIN = directory_role("Cloud Application Administrator", "158c047a-c907-4556-b7ef-446551a6b5f7")
PRIVILEGED_ROLE_ADMIN = directory_role("Privileged Role Administrator", "e8611ab8-c189-46e8-94e1-60213ab1f814")


def application(object_id, app_id, name):
    return {
        "id": object_id,
        "appId": app_id,
        "displayName": name,
        "createdDateTime": "2025-05-05T12:00:00Z",
        "signInAudience": "AzureADMyOrg",
    }


def tenant(
    policies=(), default=None, custom=(), roles=PIPELINE_ROLES, applications=(), directory_roles=None, **scenario
) -> Scenario:
    """A healthy tenant unless told otherwise; the interesting objects come after a harmless one."""
    documents = {
        "/identity/conditionalAccess/policies": [MFA_FOR_ADMINS, *policies],
        "/policies/defaultAppManagementPolicy": default or default_policy(enabled=False),
        "/policies/appManagementPolicies": [custom_policy("Unused draft", enabled=False), *custom],
        "/servicePrincipals": [
            service_principal(EXCHANGE_SP, "00000002-0000-0ff1-ce00-000000000000", "Office 365 Exchange Online"),
            graph_service_principal(),
            service_principal(DEPLOYER_SP, DEPLOYER_APP, "intrexx-exchange-pipeline"),
        ],
        f"/servicePrincipals/{DEPLOYER_SP}/appRoleAssignments": role_assignments(*roles),
        "/applications": [
            application("0a0b0c0d-0000-4000-8000-00000000000a", "0a0b0c0d-1111-4000-8000-00000000000a", "Contoso HR"),
            *applications,
        ],
        "/me": {
            "id": USER_ID,
            "displayName": "Adele Vance",
            "userPrincipalName": "AdeleV@contoso.example",
            "mail": "AdeleV@contoso.example",
        },
        "/me/transitiveMemberOf/microsoft.graph.directoryRole": (
            [CLOUD_APP_ADMIN, PRIVILEGED_ROLE_ADMIN] if directory_roles is None else list(directory_roles)
        ),
    }
    return Scenario(documents=documents, **scenario)


def jwt_shaped(claims: dict) -> str:
    """A JWT-shaped token (unsigned: doctor only takes hints from it)."""

    def part(obj):
        return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b"=").decode()

    claims = {"aud": "https://graph.microsoft.com", "uti": str(time.time_ns()), **claims}
    return f"{part({'typ': 'JWT', 'alg': 'RS256'})}.{part(claims)}.c2lnbmF0dXJl"


def user_token(upn="AdeleV@contoso.example") -> str:
    return jwt_shaped(
        {"idtyp": "user", "upn": upn, "oid": USER_ID, "scp": "Application.Read.All Policy.Read.All User.Read"}
    )


# Running doctor -----------------------------------------------------------------------------------------------


def stack_file(directory, portals, stack="test", **keys) -> str:
    lines = ["config:"]
    for key, value in keys.items():
        lines.append(f"  intrexx-exchange:{key}: {json.dumps(value)}")
    lines.append(f"  intrexx-exchange:portals: {json.dumps(portals)}")
    (directory / f"Pulumi.{stack}.yaml").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return stack


@pytest.fixture(scope="module")
def standin():
    """One stand-in per module; each test selects its own scenario with its own token."""
    with graph_standin_server() as server:
        yield server


@pytest.fixture(autouse=True)
def environment(monkeypatch, standin):
    for name in ("ARM_CLIENT_ID", "AZURE_CLIENT_ID", "ARM_ENVIRONMENT", "CURL_CA_BUNDLE", "INTREXX_GRAPH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", standin.ca_file)
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", TODAY)


class Run:
    def __init__(self, code, out, err, token):
        self.code, self.out, self.err, self.token = code, out, err, token

    @property
    def document(self) -> dict:
        return json.loads(self.out)

    def check(self, check_id) -> dict:
        return next(c for c in self.document["checks"] if c["id"] == check_id)


def doctor(
    capsys, monkeypatch, standin, scenario, tmp_path, portals, *extra, token=None, json_output=False, **keys
) -> Run:
    token = standin.add_token(token, scenario) if token else standin.add(scenario)
    monkeypatch.setenv("INTREXX_GRAPH_TOKEN", token)
    stack = stack_file(tmp_path, portals, **keys)
    capsys.readouterr()
    argv = [
        "doctor",
        "--stack",
        stack,
        "--project-dir",
        str(tmp_path),
        "--graph-endpoint",
        standin.origin,
        "--timeout",
        "20",
        *extra,
    ] + (["--json"] if json_output else [])
    code = main(argv)
    captured = capsys.readouterr()
    assert token not in captured.out + captured.err, "the token was printed"
    seen = standin.requests(token)
    assert seen and {r.method for r in seen} == {"GET"}, [(r.method, r.path) for r in seen]
    return Run(code, captured.out, captured.err, token)


def both(capsys, monkeypatch, standin, scenario, tmp_path, portals, *extra, **keys) -> tuple[Run, Run]:
    """The same scenario as text and as --json: the same exit code."""
    text = doctor(capsys, monkeypatch, standin, scenario, tmp_path, portals, *extra, **keys)
    machine = doctor(capsys, monkeypatch, standin, scenario, tmp_path, portals, *extra, json_output=True, **keys)
    assert text.code == machine.code
    return text, machine


# Conditional Access -------------------------------------------------------------------------------------------


def test_a_healthy_tenant_passes_every_check(capsys, monkeypatch, standin, tmp_path):
    text, machine = both(
        capsys, monkeypatch, standin, tenant(), tmp_path, [HR, WIDE], "--deployer-client-id", DEPLOYER_APP
    )
    assert text.code == 0, text.out
    assert "0 failed, 1 warning(s)" in text.out, "only the EWS allow list, which Graph cannot read, stays a warning"
    document = machine.document
    assert document["ok"] and document["summary"]["fail"] == 0
    assert {c["id"] for c in document["checks"]} == {
        "graph-access",
        "deployer-permissions",
        "conditional-access",
        "app-management-policy",
        "display-name/hr",
        "display-name/wide",
        "ews-allow-list/hr",
    }
    assert all(set(c) >= {"id", "status", "title", "detail", "remedy"} for c in document["checks"])
    assert document["identity"] == {
        "kind": "servicePrincipal",
        "appId": DEPLOYER_APP,
        "objectId": DEPLOYER_SP,
        "displayName": "intrexx-exchange-pipeline",
    }


def test_device_code_blocked_for_all_users_fails_naming_the_policy(capsys, monkeypatch, standin, tmp_path):
    policy = ca_policy(
        "Block device code flow", exclude_users=(BREAK_GLASS,), transfer="deviceCodeFlow,authenticationTransfer"
    )
    text, machine = both(
        capsys, monkeypatch, standin, tenant(policies=[policy]), tmp_path, [HR], "--deployer-client-id", DEPLOYER_APP
    )
    assert text.code == 1
    assert "FAIL  conditional-access" in text.out
    assert "'Block device code flow' (enabled) blocks the device code flow for all users except 1 user(s)" in text.out
    assert "Request MS365 Refresh Token" in text.out and "exclude the group of those mailbox users" in text.out
    check = machine.check("conditional-access")
    assert check["status"] == "fail" and "Block device code flow" in check["detail"]
    assert any("policy-block-authentication-flows" in s for s in check["sources"])
    # The policy sat on page 2 of the collection: doctor followed @odata.nextLink.
    pages = [r for r in standin.requests(text.token) if r.path.endswith("/conditionalAccess/policies")]
    assert len(pages) >= 3 and all("$skiptoken" in r.query for r in pages[1:])


def test_a_policy_excluding_a_group_warns_to_check_membership(capsys, monkeypatch, standin, tmp_path):
    policy = ca_policy("Block device code except Intrexx mailboxes", exclude_groups=(MAILBOX_GROUP,))
    text, machine = both(
        capsys, monkeypatch, standin, tenant(policies=[policy]), tmp_path, [HR], "--deployer-client-id", DEPLOYER_APP
    )
    assert text.code == 0
    assert "WARN  conditional-access" in text.out
    assert f"except members of group(s) {MAILBOX_GROUP}" in text.out
    assert "must be a member of an excluded group" in machine.check("conditional-access")["detail"]


@pytest.mark.parametrize(
    "state, status, words",
    [
        ("enabledForReportingButNotEnforced", "warn", "(report-only) would block"),
        ("disabled", "pass", "(disabled) would block the device code flow; it is switched off"),
    ],
)
def test_report_only_warns_and_disabled_passes(capsys, monkeypatch, standin, tmp_path, state, status, words):
    policy = ca_policy("Device code: audit first", state=state)
    text, machine = both(
        capsys, monkeypatch, standin, tenant(policies=[policy]), tmp_path, [HR], "--deployer-client-id", DEPLOYER_APP
    )
    assert text.code == 0
    check = machine.check("conditional-access")
    assert check["status"] == status and "'Device code: audit first'" in check["detail"] and words in check["detail"]


def test_a_stack_without_delegated_portals_does_not_read_conditional_access(capsys, monkeypatch, standin, tmp_path):
    run = doctor(
        capsys,
        monkeypatch,
        standin,
        tenant(policies=[ca_policy("Block device code flow")]),
        tmp_path,
        [WIDE],
        "--deployer-client-id",
        DEPLOYER_APP,
        json_output=True,
    )
    assert run.code == 0 and run.check("conditional-access")["status"] == "pass"
    assert not [r for r in standin.requests(run.token) if "conditionalAccess" in r.path]


def test_policies_that_do_not_stop_the_mailbox_users_are_ignored():
    assert assess_ca_policy(ca_policy("MFA for device code", controls=("mfa",))) is None
    assert assess_ca_policy(ca_policy("Block transfer only", transfer="authenticationTransfer")) is None
    one_app = ("0b0b0b0b-0000-4000-8000-0000000000bb",)
    assert assess_ca_policy(ca_policy("Block device code for one app", apps=one_app)) is None
    assert assess_ca_policy(ca_policy("Guests only", include_users=("GuestsOrExternalUsers",))) is None
    elsewhere = assess_ca_policy(
        ca_policy(
            "Block device code off site", locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}
        )
    )
    assert elsewhere.status == "warn" and "locations" in elsewhere.line


SALES = "aaaaaaaa-0000-4000-8000-000000000001"
GLOBAL_ADMIN = "62e90394-69f5-4237-9190-012177145e10"


def roles_policy(name, roles=(GLOBAL_ADMIN,), state="enabled", **users):
    policy = ca_policy(name, state=state, include_users=users.get("include_users", ()))
    policy["conditions"]["users"]["includeRoles"] = list(roles)
    policy["conditions"]["users"]["includeGroups"] = list(users.get("include_groups", ()))
    return policy


def test_a_block_for_admin_roles_only_passes_with_a_note():
    """Third review: mailbox users are rarely administrators; a role-only block is not a failure for Intrexx."""
    for state in ("enabled", "enabledForReportingButNotEnforced"):
        finding = assess_ca_policy(roles_policy("Block device code for admins", state=state))
        assert finding.status == "pass", finding
        assert f"only for the directory role(s) {GLOBAL_ADMIN} it includes" in finding.line
        assert "mailbox users rarely hold a directory role" in finding.line


def test_a_block_for_groups_or_named_users_warns_naming_them():
    groups = assess_ca_policy(ca_policy("Block device code for sales", include_users=(), include_groups=(SALES,)))
    assert groups.status == "warn" and f"the group(s) {SALES} it includes" in groups.line
    assert "doctor does not read memberships" in groups.line
    users = assess_ca_policy(ca_policy("Block device code for one person", include_users=(BREAK_GLASS,)))
    assert users.status == "warn" and f"the user(s) {BREAK_GLASS} it includes" in users.line
    mixed = assess_ca_policy(roles_policy("Admins and sales", include_groups=(SALES,)))
    assert mixed.status == "warn" and "group(s)" in mixed.line and "directory role(s)" in mixed.line


def test_a_block_for_all_users_fails_even_when_it_also_names_roles():
    finding = assess_ca_policy(roles_policy("Everyone and admins", include_users=("All",)))
    assert finding.status == "fail" and "for all users" in finding.line


def test_a_report_only_block_of_groups_warns():
    finding = assess_ca_policy(
        ca_policy("Audit sales", state="enabledForReportingButNotEnforced", include_users=(), include_groups=(SALES,))
    )
    assert finding.status == "warn" and "(report-only) would block" in finding.line


# App management policies ------------------------------------------------------------------------------------


def test_a_90_day_lifetime_fails_with_the_largest_rotation_that_fits(capsys, monkeypatch, standin, tmp_path):
    policy = default_policy(password_restriction("passwordLifetime", "P90D", "2025-01-01T00:00:00Z"))
    text, machine = both(
        capsys,
        monkeypatch,
        standin,
        tenant(default=policy),
        tmp_path,
        [HR],
        "--deployer-client-id",
        DEPLOYER_APP,
        secretRotationDays=60,
    )
    assert text.code == 1
    assert "FAIL  app-management-policy" in text.out
    assert (
        "tenant default policy: secrets may live at most 90 days (P90D) for applications created since "
        "2025-01-01; ours live up to 120 days (2 x secretRotationDays 60): secretRotationDays 45 or less fits"
        in text.out
    )
    assert "CredentialInvalidLifetimeAsPerAppPolicy" in machine.check("app-management-policy")["remedy"]


def test_the_same_lifetime_passes_a_shorter_rotation(capsys, monkeypatch, standin, tmp_path):
    policy = default_policy(password_restriction("passwordLifetime", "P180D"))
    run = doctor(
        capsys,
        monkeypatch,
        standin,
        tenant(default=policy),
        tmp_path,
        [HR],
        "--deployer-client-id",
        DEPLOYER_APP,
        json_output=True,
        secretRotationDays=90,
    )
    assert run.code == 0
    check = run.check("app-management-policy")
    assert check["status"] == "pass" and "secrets may live 180 days for every application" in check["detail"]


def test_blocked_client_secrets_fail(capsys, monkeypatch, standin, tmp_path):
    policy = default_policy(password_restriction("passwordAddition", after="2019-10-19T10:37:00Z"))
    text, machine = both(
        capsys, monkeypatch, standin, tenant(default=policy), tmp_path, [HR], "--deployer-client-id", DEPLOYER_APP
    )
    assert text.code == 1
    assert "tenant default policy: blocks new client secrets for applications created since 2019-10-19" in text.out
    assert "excludeActors" in machine.check("app-management-policy")["remedy"]


def test_disabled_future_and_custom_restrictions_do_not_fail(capsys, monkeypatch, standin, tmp_path):
    default = default_policy(
        password_restriction("passwordAddition", state="disabled"),
        password_restriction("passwordLifetime", "P30D", after="2027-06-01T00:00:00.0000000Z"),
    )
    custom = custom_policy("Strict apps", password_restriction("passwordLifetime", "P4DT12H30M5S"))
    run = doctor(
        capsys,
        monkeypatch,
        standin,
        tenant(default=default, custom=[custom]),
        tmp_path,
        [HR],
        "--deployer-client-id",
        DEPLOYER_APP,
        json_output=True,
    )
    assert run.code == 0
    detail = run.check("app-management-policy")["detail"]
    assert run.check("app-management-policy")["status"] == "warn"
    assert "passwordAddition is disabled, not enforced" in detail
    assert "for applications created from 2027-06-01 on" in detail
    assert "policy 'Strict apps': secrets may live at most 4.52089 days" in detail
    assert "no secretRotationDays fits" in detail and "applies only to the applications it is assigned to" in detail


def test_durations_and_the_rotation_that_fits():
    assert parse_duration("P180D").days == 180 and parse_duration("P2W").days == 14
    assert parse_duration("PT36H").total_seconds() == 36 * 3600
    assert parse_duration("P1Y") is None and parse_duration("P") is None and parse_duration(None) is None
    assert parse_duration("P99999999999999D") == timedelta.max  # longer than any secret lives
    assert largest_rotation_days(parse_duration("P180D")) == 90
    assert largest_rotation_days(parse_duration("P179DT23H")) == 89
    assert largest_rotation_days(parse_duration("P3650D")) == 90  # the most the program accepts (components/facts.py)


# The deploying identity -------------------------------------------------------------------------------------


def test_a_pipeline_identity_missing_a_permission_fails_naming_it(capsys, monkeypatch, standin, tmp_path):
    monkeypatch.setenv("ARM_CLIENT_ID", DEPLOYER_APP)
    scenario = tenant(
        roles=("Application.ReadWrite.OwnedBy", "Application.Read.All", "DelegatedPermissionGrant.ReadWrite.All")
    )
    text, machine = both(capsys, monkeypatch, standin, scenario, tmp_path, [HR, WIDE])
    assert text.code == 1
    assert "FAIL  deployer-permissions" in text.out
    assert "missing: AppRoleAssignment.ReadWrite.All (admin consent to application permissions: wide)" in text.out
    check = machine.check("deployer-permissions")
    assert f"appId {DEPLOYER_APP} from ARM_CLIENT_ID" in check["detail"]
    assert "Application.ReadWrite.OwnedBy" in check["detail"] and "docs/pipeline-identity.md" in check["remedy"]


def test_delegated_only_stacks_do_not_need_app_role_consent(capsys, monkeypatch, standin, tmp_path):
    scenario = tenant(
        roles=("Application.ReadWrite.OwnedBy", "Application.Read.All", "DelegatedPermissionGrant.ReadWrite.All")
    )
    run = doctor(
        capsys, monkeypatch, standin, scenario, tmp_path, [HR], "--deployer-client-id", DEPLOYER_APP, json_output=True
    )
    assert run.code == 0 and run.check("deployer-permissions")["status"] == "pass"


def test_deployers_besides_the_pipeline_need_application_readwrite_all(capsys, monkeypatch, standin, tmp_path):
    scenario = tenant(
        roles=("Application.ReadWrite.OwnedBy", "Application.Read.All", "DelegatedPermissionGrant.ReadWrite.All")
    )
    admin = "8d1e4f2a-6b3c-4a5d-9e7f-1c2b3a4d5e6f"
    only_itself = doctor(
        capsys,
        monkeypatch,
        standin,
        scenario,
        tmp_path,
        [HR],
        "--deployer-client-id",
        DEPLOYER_APP,
        json_output=True,
        deployers=[DEPLOYER_SP],
    )
    assert only_itself.check("deployer-permissions")["status"] == "pass"
    run = doctor(
        capsys,
        monkeypatch,
        standin,
        scenario,
        tmp_path,
        [HR],
        "--deployer-client-id",
        DEPLOYER_APP,
        json_output=True,
        deployers=[DEPLOYER_SP, admin],
    )
    assert run.code == 1
    assert (
        f"missing: Application.ReadWrite.All (make the other `deployers` owners ({admin}))"
        in run.check("deployer-permissions")["detail"]
    )


def test_extra_owners_need_application_readwrite_all(capsys, monkeypatch, standin, tmp_path):
    owned = {**HR, "owners": ["3f2504e0-4f89-41d3-9a0c-0305e82c3301"]}
    run = doctor(
        capsys,
        monkeypatch,
        standin,
        tenant(),
        tmp_path,
        [owned],
        "--deployer-client-id",
        DEPLOYER_APP,
        json_output=True,
    )
    assert run.code == 1
    assert (
        "missing: Application.ReadWrite.All (add the extra owners of hr)" in run.check("deployer-permissions")["detail"]
    )


def test_a_person_without_privileged_role_administrator_fails_for_graph_app_roles(
    capsys, monkeypatch, standin, tmp_path
):
    scenario = tenant(directory_roles=[CLOUD_APP_ADMIN])
    text = doctor(capsys, monkeypatch, standin, scenario, tmp_path, [HR, WIDE], token=user_token())
    assert text.code == 1
    assert (
        "missing: Privileged Role Administrator or Global Administrator (consent to Microsoft Graph application "
        "permissions: wide)"
    ) in text.out
    assert "user 'AdeleV@contoso.example' holds directory roles: Cloud Application Administrator" in text.out
    machine = doctor(capsys, monkeypatch, standin, scenario, tmp_path, [HR], token=user_token("b"), json_output=True)
    assert machine.code == 0 and machine.check("deployer-permissions")["status"] == "pass"
    assert machine.document["identity"]["kind"] == "user"


def test_an_app_only_token_names_its_service_principal(capsys, monkeypatch, standin, tmp_path):
    token = jwt_shaped({"idtyp": "app", "appid": DEPLOYER_APP, "oid": DEPLOYER_SP, "roles": list(PIPELINE_ROLES)})
    run = doctor(capsys, monkeypatch, standin, tenant(), tmp_path, [HR, WIDE], token=token, json_output=True)
    assert run.code == 0
    check = run.check("deployer-permissions")
    assert check["status"] == "pass" and f"appId {DEPLOYER_APP} from the token's claims" in check["detail"]


def test_an_opaque_token_without_a_client_id_leaves_the_identity_undetermined(capsys, monkeypatch, standin, tmp_path):
    text, machine = both(capsys, monkeypatch, standin, tenant(), tmp_path, [HR])
    assert text.code == 0
    assert "WARN  deployer-permissions" in text.out and "identity not determinable" in text.out
    assert "--deployer-client-id" in machine.check("deployer-permissions")["remedy"]
    assert not [r for r in standin.requests(text.token) if r.path.startswith("/v1.0/me")]


# Display names ------------------------------------------------------------------------------------------------


def test_an_existing_display_name_fails_with_the_ids_to_adopt(capsys, monkeypatch, standin, tmp_path):
    app_object, app_id, sp_object = (
        "6a1b2c3d-0000-4000-8000-0000000000a1",
        "6a1b2c3d-1111-4000-8000-0000000000a1",
        "6a1b2c3d-2222-4000-8000-0000000000a1",
    )
    scenario = tenant(applications=[application(app_object, app_id, "Intrexx hr (O'Neil's lab)")])
    scenario.documents["/servicePrincipals"].append(service_principal(sp_object, app_id, "Intrexx hr (O'Neil's lab)"))
    scenario.documents[f"/servicePrincipals/{sp_object}/oauth2PermissionGrants"] = []
    text, machine = both(
        capsys,
        monkeypatch,
        standin,
        scenario,
        tmp_path,
        [HR, WIDE],
        "--deployer-client-id",
        DEPLOYER_APP,
        environment="O'Neil's lab",
    )
    assert text.code == 1
    assert "FAIL  display-name/hr" in text.out and "PASS  display-name/wide" in text.out
    check = machine.check("display-name/hr")
    assert (
        f"applicationObjectId {app_object}" in check["detail"]
        and f"servicePrincipalObjectId {sp_object}" in check["detail"]
    )
    # Nothing consented and no secret: the two object ids are all adopt needs.
    assert (
        f"portals[0].adopt: {{applicationObjectId: {app_object}, servicePrincipalObjectId: {sp_object}}};"
        in check["remedy"]
    )
    # The quote in the display name was doubled in the OData literal, as Graph requires.
    filters = [r.query["$filter"][0] for r in standin.requests(text.token) if r.path.endswith("/applications")]
    assert "displayName eq 'Intrexx hr (O''Neil''s lab)'" in filters


def adoptable(name, sp_grants=(), sp_roles=(), secrets=()):
    """A registration made by hand: the application, its service principal, its consent and secrets."""
    app_object, app_id, sp_object = (
        "6a1b2c3d-0000-4000-8000-0000000000b2",
        "6a1b2c3d-1111-4000-8000-0000000000b2",
        "6a1b2c3d-2222-4000-8000-0000000000b2",
    )
    made_by_hand = {
        **application(app_object, app_id, name),
        "passwordCredentials": [
            {"keyId": key_id, "displayName": "made by hand", "endDateTime": "2027-05-01T00:00:00Z", "hint": "abc"}
            for key_id in secrets
        ],
    }
    scenario = tenant(applications=[made_by_hand])
    scenario.documents["/servicePrincipals"].append(service_principal(sp_object, app_id, name))
    scenario.documents[f"/servicePrincipals/{sp_object}/oauth2PermissionGrants"] = list(sp_grants)
    scenario.documents[f"/servicePrincipals/{sp_object}/appRoleAssignments"] = list(sp_roles)
    return scenario, app_object, sp_object


def test_the_adopt_block_names_the_consent_and_the_secrets_made_by_hand(capsys, monkeypatch, standin, tmp_path):
    grants = [
        # A grant for one user only is not the admin consent the program would create.
        {"id": "grant-one-user-0000001", "clientId": "x", "consentType": "Principal", "resourceId": EXCHANGE_SP},
        {"id": "grant-exchange-000001", "clientId": "x", "consentType": "AllPrincipals", "resourceId": EXCHANGE_SP},
        {"id": "grant-graph-000000001", "clientId": "x", "consentType": "AllPrincipals", "resourceId": GRAPH_SP},
        {"id": "grant-hostile<script>1", "clientId": "x", "consentType": "AllPrincipals", "resourceId": GRAPH_SP},
    ]
    secret = "3f9a1b2c-0000-4000-8000-000000000003"
    scenario, app_object, sp_object = adoptable("Intrexx hr (lab)", grants, secrets=[secret, "not-a-guid"])
    run = doctor(capsys, monkeypatch, standin, scenario, tmp_path, [HR], environment="lab", json_output=True)
    assert run.code == 1
    remedy = run.check("display-name/hr")["remedy"]
    assert (
        f"portals[0].adopt: {{applicationObjectId: {app_object}, servicePrincipalObjectId: {sp_object}, "
        f"grants: {{exchange: grant-exchange-000001, graph: grant-graph-000000001}}, "
        f"handMadeSecretKeyIds: [{secret}]}};"
    ) in remedy
    assert "<script>" not in remedy and "not-a-guid" not in remedy


def test_the_adopt_block_names_the_role_assignments_of_a_service_account(capsys, monkeypatch, standin, tmp_path):
    mail_role = load_catalogue().resources["graph"].permissions[(PermissionType.ROLE, "Mail.ReadWrite")].id
    roles = [
        {"id": "assignment-mail-000001", "appRoleId": mail_role, "resourceId": GRAPH_SP},
        {"id": "assignment-other-00001", "appRoleId": "00000000-0000-4000-8000-000000000000", "resourceId": GRAPH_SP},
    ]
    scenario, _, _ = adoptable("Intrexx wide (lab)", sp_roles=roles)
    run = doctor(capsys, monkeypatch, standin, scenario, tmp_path, [WIDE], environment="lab", json_output=True)
    remedy = run.check("display-name/wide")["remedy"]
    assert "roleAssignments: {Mail.ReadWrite: assignment-mail-000001}" in remedy
    assert "assignment-other" not in remedy and "grants:" not in remedy


def test_unreadable_consent_still_names_the_two_object_ids(capsys, monkeypatch, standin, tmp_path):
    scenario, app_object, sp_object = adoptable("Intrexx hr (lab)")
    scenario.faults[f"/servicePrincipals/{sp_object}/oauth2PermissionGrants"] = Fault(status=403)
    run = doctor(capsys, monkeypatch, standin, scenario, tmp_path, [HR], environment="lab", json_output=True)
    check = run.check("display-name/hr")
    assert check["status"] == "fail"
    assert (
        f"{{applicationObjectId: {app_object}, servicePrincipalObjectId: {sp_object}}} "
        "(consent and secret ids not readable" in check["remedy"]
    )


# EWS -----------------------------------------------------------------------------------------------------------


def test_ews_portals_get_the_powershell_line_that_shows_the_allow_list(capsys, monkeypatch, standin, tmp_path):
    text, machine = both(
        capsys, monkeypatch, standin, tenant(), tmp_path, [LEGACY], "--deployer-client-id", DEPLOYER_APP
    )
    assert text.code == 0
    assert "WARN  ews-allow-list/legacy" in text.out
    assert (
        "Get-OrganizationConfig -RetrieveEwsOperationAccessPolicy | Format-List EwsEnabled,EwsAllowedAppIDs"
        in machine.check("ews-allow-list/legacy")["detail"]
    )


# Graph errors ---------------------------------------------------------------------------------------------------


def test_a_403_names_the_permission_doctor_needs(capsys, monkeypatch, standin, tmp_path):
    scenario = tenant(
        faults={
            "/identity/conditionalAccess/policies": Fault(
                403,
                {
                    "error": {
                        "code": "AccessDenied",
                        "message": "You cannot perform the requested operation, required scopes are "
                        "missing in the token.",
                    }
                },
            )
        }
    )
    text, machine = both(capsys, monkeypatch, standin, scenario, tmp_path, [HR], "--deployer-client-id", DEPLOYER_APP)
    assert text.code == 1
    check = machine.check("conditional-access")
    assert check["status"] == "fail" and "HTTP 403 AccessDenied" in check["detail"]
    assert check["remedy"].startswith("doctor needs Policy.Read.All to read this")
    assert machine.check("app-management-policy")["status"] == "pass"  # the other checks still ran


def test_a_429_is_retried_after_retry_after(capsys, monkeypatch, standin, tmp_path):
    scenario = tenant(
        faults={"/policies/defaultAppManagementPolicy": Fault(429, headers={"Retry-After": "1"}, times=1)}
    )
    started = time.monotonic()
    run = doctor(
        capsys, monkeypatch, standin, scenario, tmp_path, [HR], "--deployer-client-id", DEPLOYER_APP, json_output=True
    )
    assert run.code == 0 and run.check("app-management-policy")["status"] == "pass"
    hits = [r for r in standin.requests(run.token) if r.path.endswith("/defaultAppManagementPolicy")]
    assert len(hits) == 2 and hits[1].at - hits[0].at >= 0.95
    assert time.monotonic() - started < 10


def test_endless_throttling_is_bounded(standin, tmp_path):
    # Header names are case-insensitive (HTTP/2 peers send them in lower case).
    scenario = tenant(faults={"/policies/defaultAppManagementPolicy": Fault(429, headers={"retry-after": "3600"})})
    token = standin.add(scenario)
    stack = stack_file(tmp_path, [HR])
    started = time.monotonic()
    report = run_doctor(
        DoctorOptions(
            stack,
            date_today(),
            tmp_path,
            standin.origin,
            DEPLOYER_APP,
            limits=GraphLimits(request_timeout=2, deadline=10, max_retry_wait=0.2, max_attempts=3),
        ),
        {"INTREXX_GRAPH_TOKEN": token},
    )
    assert time.monotonic() - started < 5
    check = next(c for c in report.checks if c.id == "app-management-policy")
    assert check.status == "fail" and "HTTP 429 3 time(s); Retry-After 3600" in check.detail
    assert "run doctor again in a few minutes" in check.remedy
    assert len([r for r in standin.requests(token) if r.path.endswith("/defaultAppManagementPolicy")]) == 3


def test_a_token_graph_refuses_fails_every_read_with_one_line(capsys, monkeypatch, standin, tmp_path):
    stack = stack_file(tmp_path, [HR])
    monkeypatch.setenv("INTREXX_GRAPH_TOKEN", "not-a-token-the-stand-in-knows")
    code = main(
        [
            "doctor",
            "--stack",
            stack,
            "--project-dir",
            str(tmp_path),
            "--graph-endpoint",
            standin.origin,
            "--deployer-client-id",
            DEPLOYER_APP,
            "--json",
        ]
    )
    document = json.loads(capsys.readouterr().out)
    assert code == 1
    graph_checks = [c for c in document["checks"] if c["id"] != "graph-access" and not c["id"].startswith("ews-")]
    assert graph_checks and all(
        c["status"] == "fail" and "HTTP 401 InvalidAuthenticationToken" in c["detail"] for c in graph_checks
    )
    assert all("Graph refused the token" in c["remedy"] for c in graph_checks)


# Hostile answers ------------------------------------------------------------------------------------------------


def date_today():
    from datetime import date

    return date.fromisoformat(TODAY)


def hostile_run(standin, tmp_path, scenario, **limits):
    token = standin.add(scenario)
    stack = stack_file(tmp_path, [HR])
    options = DoctorOptions(
        stack,
        date_today(),
        tmp_path,
        standin.origin,
        DEPLOYER_APP,
        limits=GraphLimits(**{"request_timeout": 1.0, "deadline": 15.0, **limits}),
    )
    started = time.monotonic()
    report = run_doctor(options, {"INTREXX_GRAPH_TOKEN": token})
    checks = {c.id: c for c in report.checks}
    assert {r.method for r in standin.requests(token)} == {"GET"}
    return checks, time.monotonic() - started, token


CA_PATH = "/identity/conditionalAccess/policies"


def test_a_body_that_is_not_json_fails_the_check(standin, tmp_path):
    checks, _, _ = hostile_run(
        standin, tmp_path, tenant(faults={CA_PATH: Fault(200, b"<html><body>Sign in to continue</body></html>")})
    )
    assert checks["conditional-access"].status == "fail"
    assert "the answer is not JSON (content type text/html; charset=utf-8)" in checks["conditional-access"].detail


def test_value_that_is_not_a_list_fails_the_check(standin, tmp_path):
    checks, _, _ = hostile_run(standin, tmp_path, tenant(faults={CA_PATH: Fault(200, {"value": {"id": "x"}})}))
    assert "the answer's 'value' is an object, not a list" in checks["conditional-access"].detail


def test_fields_of_the_wrong_type_fail_the_check_with_one_line(standin, tmp_path):
    broken = ca_policy("Broken policy")
    broken["conditions"]["users"]["includeUsers"] = "All"
    weird = copy.deepcopy(broken)
    weird["conditions"] = ["not", "an", "object"]
    for policy, words in (
        (broken, "conditions.users.includeUsers is a string"),
        (weird, "is inside a list, not an object"),
    ):
        checks, _, _ = hostile_run(standin, tmp_path, tenant(policies=[policy]))
        assert checks["conditional-access"].status == "fail" and words in checks["conditional-access"].detail


def test_a_next_link_to_another_host_is_not_followed(standin, tmp_path):
    with silent_server() as elsewhere:
        checks, _, _ = hostile_run(
            standin, tmp_path, tenant(next_links={CA_PATH: f"{elsewhere.origin}/v1.0{CA_PATH}?$skiptoken=1"})
        )
        time.sleep(0.2)
        assert not elsewhere._connections, "doctor followed a nextLink to another host"
    assert "@odata.nextLink points away from" in checks["conditional-access"].detail
    assert "not followed" in checks["conditional-access"].detail


def test_endless_paging_stops_at_the_page_cap(standin, tmp_path):
    checks, _, token = hostile_run(standin, tmp_path, tenant(next_links={CA_PATH: "endless"}), max_pages=5)
    assert "still more after 5 pages; stopped" in checks["conditional-access"].detail
    assert len([r for r in standin.requests(token) if r.path.endswith(CA_PATH)]) == 5


def test_a_slow_server_meets_the_request_timeout(standin, tmp_path):
    checks, elapsed, _ = hostile_run(standin, tmp_path, tenant(faults={CA_PATH: Fault(200, {"value": []}, delay=2.5)}))
    assert "answer within 1 s" in checks["conditional-access"].detail
    assert "--request-timeout" in checks["conditional-access"].remedy
    assert elapsed < 2.4  # the other checks did not wait for the slow one


def test_a_dripping_body_meets_the_request_timeout(standin, tmp_path):
    checks, elapsed, _ = hostile_run(
        standin, tmp_path, tenant(faults={CA_PATH: Fault(200, b'{"value": []}' + b" " * 20, drip=0.1)})
    )
    assert "no complete answer within 1 s" in checks["conditional-access"].detail
    assert elapsed < 2.4


def test_a_huge_answer_is_not_read(standin, tmp_path):
    huge = {"value": [ca_policy(f"Policy {n}") for n in range(300)]}
    checks, _, _ = hostile_run(standin, tmp_path, tenant(faults={CA_PATH: Fault(200, huge)}), max_bytes=64 * 1024)
    assert "the answer is larger than 65536 bytes; not read" in checks["conditional-access"].detail


def test_a_redirect_is_not_followed(standin, tmp_path):
    checks, _, _ = hostile_run(
        standin,
        tmp_path,
        tenant(faults={CA_PATH: Fault(307, b"", headers={"Location": f"https://127.0.0.2:9/v1.0{CA_PATH}"})}),
    )
    assert (
        "HTTP 307 redirect to" in checks["conditional-access"].detail
        and "not followed" in checks["conditional-access"].detail
    )


def test_an_error_that_echoes_the_token_does_not_print_it(capsys, monkeypatch, standin, tmp_path):
    token = "echo-" + "x" * 40
    scenario = tenant(
        faults={CA_PATH: Fault(400, {"error": {"code": "BadRequest", "message": f"bad token {token} in request"}})}
    )
    run = doctor(
        capsys,
        monkeypatch,
        standin,
        scenario,
        tmp_path,
        [HR],
        "--deployer-client-id",
        DEPLOYER_APP,
        token=token,
        json_output=True,
    )
    assert run.code == 1 and "bad token [token] in request" in run.check("conditional-access")["detail"]


# Usage and configuration ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "endpoint",
    [
        "http://graph.microsoft.com",
        "https://graph.microsoft.com/v1.0",
        "https://user:pw@graph.microsoft.com",
        "https://graph.microsoft.com?x=1",
        "graph.microsoft.com",
        "https://graph.microsoft.com:99999",
    ],
)
def test_a_bad_graph_endpoint_is_a_usage_error(capsys, monkeypatch, tmp_path, endpoint):
    monkeypatch.setenv("INTREXX_GRAPH_TOKEN", "t")
    stack = stack_file(tmp_path, [HR])
    assert main(["doctor", "--stack", stack, "--project-dir", str(tmp_path), "--graph-endpoint", endpoint]) == 2
    err = capsys.readouterr().err
    assert err.startswith("UsageError: --graph-endpoint must be a bare https origin") and len(err.splitlines()) == 1


def test_stack_and_config_errors_exit_2(capsys, monkeypatch, tmp_path):
    monkeypatch.setenv("INTREXX_GRAPH_TOKEN", "t")
    assert main(["doctor", "--stack", "missing", "--project-dir", str(tmp_path)]) == 2
    assert "no stack file Pulumi.missing.yaml" in capsys.readouterr().err
    stack = stack_file(tmp_path, [{"name": "Bad_Name", "baseUrl": "http://intrexx.example.com"}])
    assert main(["doctor", "--stack", stack, "--project-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("ConfigError: invalid stack configuration") and "portals[0].name" in err
    assert main(["doctor", "--project-dir", str(tmp_path)]) == 2
    assert "doctor needs --stack" in capsys.readouterr().err


def test_bad_token_and_client_id_variables_exit_2(capsys, monkeypatch, tmp_path):
    stack = stack_file(tmp_path, [HR])
    monkeypatch.setenv("INTREXX_GRAPH_TOKEN", "two words")
    assert main(["doctor", "--stack", stack, "--project-dir", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "INTREXX_GRAPH_TOKEN is set but holds no bearer token" in err and "two words" not in err
    monkeypatch.setenv("INTREXX_GRAPH_TOKEN", "t")
    monkeypatch.setenv("ARM_CLIENT_ID", "not-a-guid")
    assert main(["doctor", "--stack", stack, "--project-dir", str(tmp_path)]) == 2
    assert "ARM_CLIENT_ID must be a client id (a GUID)" in capsys.readouterr().err


def test_without_a_token_azure_identity_is_asked_for_the_clouds_graph(capsys, monkeypatch, tmp_path):
    """DefaultAzureCredential is replaced here: the real one would probe the managed identity endpoint, an
    address tests must not reach. What doctor asks it for is what matters."""
    import azure.identity
    from azure.core.exceptions import ClientAuthenticationError

    asked = {}

    class NoCredential:
        def __init__(self, **kwargs):
            asked.update(kwargs)

        def get_token(self, *scopes):
            asked["scopes"] = scopes
            raise ClientAuthenticationError(
                "DefaultAzureCredential failed to retrieve a token from the included "
                "credentials.\nAttempted credentials: ..."
            )

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", NoCredential)
    stack = stack_file(tmp_path, [HR], cloud="usgovernment")
    monkeypatch.setenv("ARM_ENVIRONMENT", "usgovernment")
    assert main(["doctor", "--stack", stack, "--project-dir", str(tmp_path), "--json"]) == 1
    document = json.loads(capsys.readouterr().out)
    assert asked["scopes"] == ("https://graph.microsoft.us/.default",)
    assert asked["authority"] == "https://login.microsoftonline.us"
    (check,) = document["checks"]
    assert check["id"] == "graph-access" and check["status"] == "fail"
    assert "DefaultAzureCredential failed to retrieve a token from the included credentials." in check["detail"]
    assert "az login" in check["remedy"] and document["graphEndpoint"] == "https://graph.microsoft.us"
