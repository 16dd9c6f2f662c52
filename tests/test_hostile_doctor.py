"""Attack cases against doctor's checks (issue 17, class 3): Microsoft Graph answers of every wrong shape, huge and
odd ISO 8601 durations, dates outside what Python can hold, tokens that are not what they claim. Each ends in a
per-check pass, warning or failure with one line, never a traceback.

The checks are run on Graph documents with each value replaced in turn by a hostile one (`mutations`), through a
fake Graph client; a few cases go through the whole command against the loopback stand-in.
"""

from __future__ import annotations

import copy
import functools
import json
from collections.abc import Iterator
from datetime import date, timedelta
from typing import Any

import pytest
from graph_standin import graph_standin_server
from helpers import settings_for
from test_doctor import (
    DEPLOYER_APP,
    DEPLOYER_SP,
    HR,
    MFA_FOR_ADMINS,
    TODAY,
    WIDE,
    application,
    ca_policy,
    custom_policy,
    default_policy,
    directory_role,
    graph_service_principal,
    jwt_shaped,
    password_restriction,
    service_principal,
    stack_file,
    tenant,
    user_token,
)

from components.config import StackSettings
from intrexx_connector.cli import main
from intrexx_connector.doctor_checks import (
    PASS,
    WARN,
    DoctorContext,
    assess_ca_policy,
    assess_password_restrictions,
    check_app_management_policies,
    check_conditional_access,
    check_deployer,
    check_display_name,
    parse_duration,
)
from intrexx_connector.graph import GraphProtocolError

DAY = date.fromisoformat(TODAY)
OPAQUE_TOKEN = "opaque"  # not a JWT: doctor cannot read claims from it

# Values a hostile or broken Graph could put anywhere.
HOSTILE_VALUES: list[Any] = [
    None,
    True,
    0,
    -1,
    10**400,
    1e308,
    float("inf"),
    "",
    " ",
    "x" * 5000,
    "\x1b]0;owned\x07",
    "P99999999999999999999D",
    [],
    [None],
    [1, 2],
    [[]],
    {},
    {"a": {"b": {"c": []}}},
]


def _leaves(document: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield path
    if isinstance(document, dict):
        for key, value in document.items():
            yield from _leaves(value, (*path, key))
    elif isinstance(document, list):
        for index, value in enumerate(document[:3]):
            yield from _leaves(value, (*path, index))


def _replace(document: Any, path: tuple[Any, ...], value: Any) -> Any:
    if not path:
        return value
    copied = copy.deepcopy(document)
    target = copied
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return copied


def mutations(document: Any) -> Iterator[tuple[str, Any]]:
    """(description, document) with each value in turn replaced by each hostile value."""
    for path in _leaves(document):
        for value in HOSTILE_VALUES:
            yield f"{'.'.join(map(str, path))} = {ascii(value)[:30]}", _replace(document, path, value)


def _one_line_outcome(outcome: Any) -> None:
    lines = [f.line for f in outcome] if isinstance(outcome, list) else [outcome.line] if outcome else []
    for line in lines:
        assert "\n" not in line and "\x1b" not in line, line


# Conditional Access ------------------------------------------------------------------------------------------------

CA_DOCUMENTS = {
    "all users": ca_policy("Block device code", exclude_groups=("c3d4e5f6-a7b8-4c9d-0e1f-2a3b4c5d6e7f",)),
    "report-only": ca_policy("Audit", state="enabledForReportingButNotEnforced"),
    "locations": ca_policy("Off site", locations={"includeLocations": ["All"], "excludeLocations": ["AllTrusted"]}),
    "admins": MFA_FOR_ADMINS,
}


@pytest.mark.parametrize("name", list(CA_DOCUMENTS))
def test_every_wrong_shape_of_a_conditional_access_policy_is_one_line(name):
    cases = 0
    for description, policy in mutations(CA_DOCUMENTS[name]):
        if not isinstance(policy, dict):
            continue  # the collection reader refuses a non-object item (_objects)
        try:
            _one_line_outcome(assess_ca_policy(policy))
        except GraphProtocolError as error:
            assert "\n" not in str(error), description
        cases += 1
    assert cases > 500


@pytest.mark.parametrize(
    "transfer", ["deviceCodeFlow" * 1000, ",,,", " deviceCodeFlow ", "DEVICECODEFLOW", "deviceCodeFlow\x00"], ids=str
)
def test_odd_transfer_method_strings_do_not_break_the_check(transfer):
    finding = assess_ca_policy(ca_policy("Odd", transfer=transfer))
    assert finding is None or finding.status in (PASS, WARN, "fail")


def test_a_hostile_policy_name_is_shown_on_one_line():
    policy = ca_policy("evil\n::error::forged\x1b[2J" + "x" * 500)
    finding = assess_ca_policy(policy)
    assert finding is not None and "\n" not in finding.line and "\x1b" not in finding.line
    assert len(finding.line) < 400


def test_thousands_of_included_groups_are_named_briefly():
    groups = [f"{n:08x}-0000-4000-8000-000000000000" for n in range(5000)]
    finding = assess_ca_policy(ca_policy("Many groups", include_users=(), include_groups=groups))
    assert finding.status == WARN and len(finding.line) < 600 and groups[0] in finding.line


# App management policies: durations and dates ----------------------------------------------------------------------

DURATIONS = {
    "P99999999999999999999D": timedelta.max,
    "P9999999999W": timedelta.max,
    "PT" + "9" * 300 + "S": timedelta.max,
    "PT" + "9" * 90 + "H": timedelta.max,
    "P" + "9" * 5000 + "D": timedelta.max,
    "P180D": timedelta(days=180),
    " P180D ": timedelta(days=180),
    "P0D": timedelta(0),
    "PT0.5S": timedelta(seconds=0.5),
    "P\u0661\u0668\u0660D": None,  # Arabic-Indic digits: int() would read them, ISO 8601 does not
    "P１８０D": None,  # fullwidth digits
    "P-1D": None,
    "P1.5D": None,
    "P1Y": None,
    "P1M": None,
    "PT": None,
    "P": None,
    "": None,
    "180": None,
    "P180DT": None,
    "p180d": None,
}


@pytest.mark.parametrize("text", list(DURATIONS), ids=[ascii(t)[:40] for t in DURATIONS])
def test_durations_parse_or_are_refused_never_overflow(text):
    assert parse_duration(text) == DURATIONS[text]


@pytest.mark.parametrize("value", [None, 180, 1.5, True, [], {}, ["P180D"]], ids=ascii)
def test_a_duration_that_is_not_text_is_not_a_duration(value):
    assert parse_duration(value) is None


@pytest.mark.parametrize(
    "max_lifetime, status",
    [
        ("P99999999999999999999D", PASS),
        ("PT" + "9" * 300 + "S", PASS),
        ("P" + "9" * 5000 + "D", PASS),
        ("P\u0661\u0668\u0660D", WARN),
        ("P1D", "fail"),
        ("P0D", "fail"),
        ("P1Y", WARN),
        (12345, WARN),
        ({"days": 180}, WARN),
    ],
    ids=lambda v: ascii(v)[:30],
)
def test_a_lifetime_restriction_of_any_size_is_one_finding(max_lifetime, status):
    findings = assess_password_restrictions(
        [password_restriction("passwordLifetime", max_lifetime)], 30, DAY, "tenant default policy"
    )
    assert [f.status for f in findings] == [status]
    _one_line_outcome(findings)


@pytest.mark.parametrize(
    "after",
    [
        "0001-01-01T00:00:00+05:00",  # before year 1 in UTC
        "9999-12-31T23:59:59-05:00",  # after year 9999 in UTC
        "2026-13-45T00:00:00Z",
        "not a date",
        "2026-01-01T00:00:00.1234567890123Z",
        "\u0662\u0660\u0662\u0666-01-01",
        "x" * 10000,
        12345,
        True,
        ["2026-01-01"],
        {"date": "2026-01-01"},
    ],
    ids=lambda v: ascii(v)[:30],
)
def test_a_restriction_date_of_any_shape_is_a_protocol_error_or_a_date(after):
    try:
        findings = assess_password_restrictions(
            [password_restriction("passwordAddition", after=after)], 30, DAY, "tenant default policy"
        )
    except GraphProtocolError as error:
        assert "restrictForAppsCreatedAfterDateTime" in str(error) and "\n" not in str(error)
    else:
        _one_line_outcome(findings)


def test_every_wrong_shape_of_a_password_restriction_is_one_line():
    restriction = password_restriction("passwordLifetime", "P90D", after="2025-01-01T00:00:00Z")
    restriction["excludeActors"] = {"customSecurityAttribute": None}
    cases = 0
    for description, mutated in mutations([restriction]):
        try:
            _one_line_outcome(assess_password_restrictions(mutated, 30, DAY, "policy"))
        except GraphProtocolError as error:
            assert "\n" not in str(error), description
        cases += 1
    assert cases > 100


# Whole checks through a fake Graph client ------------------------------------------------------------------------


class FakeGraph:
    """GET only, answered from documents; what the bounded client hands the checks after its own checks (an object
    for a resource, a list for a collection)."""

    origin = "https://graph.standin.invalid"

    def __init__(self, documents: dict[str, Any]) -> None:
        self.documents = documents

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        answer = self.documents.get(path, {})
        if not isinstance(answer, dict):
            raise GraphProtocolError(f"{path}: the answer is not a JSON object")
        return answer

    def get_collection(self, path: str, params: dict[str, str] | None = None) -> Any:
        answer = self.documents.get(path, [])
        if not isinstance(answer, list):
            raise GraphProtocolError(f"{path}: the answer's 'value' is not a list")
        if path == "/servicePrincipals" and params and "$filter" in params:
            wanted = params["$filter"].split("'")[1] if "'" in params["$filter"] else ""
            return [sp for sp in answer if not isinstance(sp, dict) or sp.get("appId") == wanted]
        return answer


@functools.cache
def _settings() -> StackSettings:
    return settings_for([HR, WIDE], stack="test", today=DAY)


def _context(
    documents: dict[str, Any],
    token: str = OPAQUE_TOKEN,
    client_id: str | None = DEPLOYER_APP,
) -> DoctorContext:
    settings = _settings()
    return DoctorContext(
        settings, tuple(settings.portals), FakeGraph(documents), token, DAY, "test", client_id, "--deployer-client-id"
    )  # type: ignore[arg-type]


def _documents() -> dict[str, Any]:
    return copy.deepcopy(tenant(policies=[ca_policy("Block device code")]).documents)


def _run(check: Any, ctx: DoctorContext) -> None:
    try:
        result = check(ctx)
    except GraphProtocolError as error:
        assert "\n" not in str(error)
        return
    for item in result if isinstance(result, list) else [result]:
        assert item.status in ("pass", "warn", "fail")
        assert "\x1b" not in item.detail, item.detail


CHECKS = {
    "conditional-access": (check_conditional_access, "/identity/conditionalAccess/policies"),
    "app-management-default": (check_app_management_policies, "/policies/defaultAppManagementPolicy"),
    "app-management-custom": (check_app_management_policies, "/policies/appManagementPolicies"),
    "deployer-principals": (check_deployer, "/servicePrincipals"),
    "deployer-assignments": (
        check_deployer,
        f"/servicePrincipals/{DEPLOYER_SP}/appRoleAssignments",
    ),
}


@pytest.mark.parametrize("name", list(CHECKS))
def test_every_wrong_shape_of_an_answer_ends_in_the_check(name):
    check, path = CHECKS[name]
    documents = _documents()
    documents["/policies/defaultAppManagementPolicy"] = default_policy(
        password_restriction("passwordLifetime", "P90D"), password_restriction("passwordAddition", after=TODAY)
    )
    documents["/policies/appManagementPolicies"] = [
        custom_policy("Strict", password_restriction("passwordLifetime", "P10D"))
    ]
    for _, answer in mutations(documents[path]):
        mutated = {**documents, path: answer}
        _run(check, _context(mutated))


@pytest.mark.parametrize(
    "path",
    ["/me", "/me/transitiveMemberOf/microsoft.graph.directoryRole"],
)
def test_every_wrong_shape_of_a_signed_in_users_answers_ends_in_the_check(path):
    documents = _documents()
    documents["/me/transitiveMemberOf/microsoft.graph.directoryRole"] = [
        directory_role("Cloud Application Administrator", "158c047a-c907-4556-b7ef-446551a6b5f7")
    ]
    for _, answer in mutations(documents[path]):
        _run(check_deployer, _context({**documents, path: answer}, token=user_token(), client_id=None))


def test_every_wrong_shape_of_an_existing_application_ends_in_the_check():
    documents = _documents()
    existing = application("0a0b0c0d-0000-4000-8000-0000000000ff", "0a0b0c0d-1111-4000-8000-0000000000ff", "x")
    existing["displayName"] = "Intrexx hr (dev)"
    existing["passwordCredentials"] = [{"keyId": "0a0b0c0d-2222-4000-8000-0000000000ff"}]
    documents["/applications"] = [existing]
    for _, answer in mutations(documents["/applications"]):
        ctx = _context({**documents, "/applications": answer})
        _run(lambda c: check_display_name(c, 0, c.portals[0]), ctx)


@pytest.mark.parametrize(
    "claims",
    [
        {"idtyp": "app", "appid": "x" * 5000},
        {"idtyp": "app", "appid": ["not", "text"]},
        {"idtyp": "app", "appid": "{5f0c2b7e-8d1a-4e3b-9c6f-7a2d4e8b1c30}"},
        {"idtyp": "app", "appid": "evil\n::error::x"},
        {"roles": "not a list", "azp": 5},
        {"idtyp": ["user"], "scp": None},
        {"idtyp": "user", "scp": 5},
        {},
    ],
    ids=lambda c: ascii(c)[:40],
)
def test_a_token_with_odd_claims_gives_a_check_not_a_traceback(claims):
    ctx = _context(_documents(), token=jwt_shaped(claims), client_id=None)
    result = check_deployer(ctx)
    assert result.status in ("pass", "warn", "fail")
    assert "::error::" not in result.detail and "\n" not in result.detail.split("\n")[0]


@pytest.mark.parametrize(
    "token",
    ["a.b.c", "x" * 100000, "e30.e30.e30", "....", "eyJhbGciOiJub25lIn0.W10.", "not a jwt at all"],
    ids=lambda t: ascii(t)[:20],
)
def test_an_opaque_or_broken_token_leaves_the_identity_undetermined(token):
    result = check_deployer(_context(_documents(), token=token, client_id=None))
    assert result.status == WARN and "identity not determinable" in result.detail


# The whole command -------------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def standin():
    with graph_standin_server() as server:
        yield server


@pytest.fixture
def graph_env(monkeypatch, standin):
    for name in ("ARM_CLIENT_ID", "AZURE_CLIENT_ID", "ARM_ENVIRONMENT", "CURL_CA_BUNDLE", "INTREXX_GRAPH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", standin.ca_file)
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", TODAY)


HOSTILE_TENANTS = {
    "huge duration": {
        "/policies/defaultAppManagementPolicy": default_policy(
            password_restriction("passwordLifetime", "P99999999999999999999D")
        )
    },
    "year 1 with an offset": {
        "/policies/defaultAppManagementPolicy": default_policy(
            password_restriction("passwordAddition", after="0001-01-01T00:00:00+05:00")
        )
    },
    "policy list of strings": {"/identity/conditionalAccess/policies": ["policy", "another"]},
    "policy with a list for conditions": {
        "/identity/conditionalAccess/policies": [{**ca_policy("Broken"), "conditions": [1, 2]}]
    },
    "graph principal without roles": {
        "/servicePrincipals": [{**graph_service_principal(), "appRoles": "none"}],
    },
    "assignments of numbers": {
        f"/servicePrincipals/{DEPLOYER_SP}/appRoleAssignments": [1, 2, 3],
    },
    "a command in a policy name": {
        "/identity/conditionalAccess/policies": [ca_policy("##vso[task.setvariable variable=x]y\n::error::z")]
    },
}


@pytest.mark.parametrize("case", list(HOSTILE_TENANTS))
def test_doctor_answers_a_hostile_tenant_with_one_line_per_check(
    case, capsys, monkeypatch, standin, graph_env, tmp_path
):
    scenario = tenant()
    scenario.documents.update(HOSTILE_TENANTS[case])
    if case == "graph principal without roles":
        scenario.documents["/servicePrincipals"].append(
            service_principal(DEPLOYER_SP, DEPLOYER_APP, "intrexx-exchange-pipeline")
        )
    if case == "assignments of numbers":
        scenario.documents[f"/servicePrincipals/{DEPLOYER_SP}/appRoleAssignments"] = [1, 2, 3]
    monkeypatch.setenv("INTREXX_GRAPH_TOKEN", standin.add(scenario))
    stack = stack_file(tmp_path, [HR])
    argv = ["doctor", "--stack", stack, "--project-dir", str(tmp_path), "--graph-endpoint", standin.origin]
    code = main([*argv, "--deployer-client-id", DEPLOYER_APP, "--timeout", "20"])
    out, err = capsys.readouterr()
    assert code in (0, 1) and "Traceback" not in out + err, out + err
    for line in out.splitlines():
        assert "##vso[" not in line and not line.lstrip().startswith("::"), line
    code = main([*argv, "--deployer-client-id", DEPLOYER_APP, "--timeout", "20", "--json"])
    document = json.loads(capsys.readouterr().out)
    assert all(check["status"] in ("pass", "warn", "fail") for check in document["checks"])


@pytest.mark.parametrize("error", [OverflowError, IndexError, ZeroDivisionError, RecursionError, KeyError])
def test_an_error_no_check_foresaw_is_still_one_line(error, monkeypatch):
    """The last net under the checks (doctor._guarded): an exception of a shape nobody foresaw fails one check."""
    from intrexx_connector import doctor

    def broken(ctx: DoctorContext) -> Any:
        raise error("unforeseen")

    failed = doctor._guarded(_context(_documents()), "conditional-access", "title", broken)
    assert failed.status == "fail" and error.__name__ in failed.detail and "\n" not in failed.detail
