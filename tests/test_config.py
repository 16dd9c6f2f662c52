"""Stack configuration: one ConfigError listing every problem with its key path, before any resource exists."""

import json
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.config import ConfigError, parse_stack_config
from components.contract import is_portal_name
from components.facts import LOOPBACK_HOSTS, is_guid
from components.urls import parse_web_url

TODAY = date(2026, 11, 24)
HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}
USERS = {**HR, "connector": "m365", "redirectPaths": ["service/oauth2/token/D2A7C1E0B9F84A6C3E5D7F9A1B3C5E7F9A1B3C5D"]}
SERVICE = {**HR, "connector": "m365", "access": "application"}


def parse(portals, today=TODAY, **keys):
    raw = {"portals": json.dumps(portals)} if portals is not None else {}
    raw.update(keys)
    return parse_stack_config(raw, "dev", today)


def problems(portals, **keys) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(portals, **keys)
    return caught.value.problems


def test_minimal_portal_gets_the_defaults():
    settings_ = parse([HR])
    portal = settings_.portals[0]
    assert (portal.connector, portal.api, portal.access, portal.sign_in, portal.owners) == (
        "exchange",
        "ews",
        "delegated",
        False,
        (),
    )
    assert portal.public_client_flows is True
    assert portal.redirect_uris == (
        "https://intrexx.example.com/hr/oauth2/token/msexchange",
        "https://intrexx.example.com/hr/service/oauth2/token/msexchange",
    )
    assert [p.name for p in portal.permissions] == ["EWS.AccessAsUser.All", "offline_access", "openid", "profile"]
    assert (settings_.environment, settings_.cloud.name, settings_.secret_rotation_days) == ("dev", "global", 90)
    assert (settings_.protect, settings_.allow_retired_ews) == (False, False)


@pytest.mark.parametrize(
    "base_url, expected",
    [
        ("https://host/hr", "https://host/hr/service/oauth2/token/msexchange"),
        ("https://host/hr/", "https://host/hr/service/oauth2/token/msexchange"),
        ("https://host", "https://host/service/oauth2/token/msexchange"),
        ("https://host:8443/a/b/", "https://host:8443/a/b/service/oauth2/token/msexchange"),
        ("http://localhost:1337", "http://localhost:1337/service/oauth2/token/msexchange"),
        ("http://127.0.0.1/portal", "http://127.0.0.1/portal/service/oauth2/token/msexchange"),
    ],
)
def test_redirect_uri_keeps_the_base_path(base_url, expected):
    assert parse([{**HR, "baseUrl": base_url}]).portals[0].redirect_uris == (
        expected.replace("/service/oauth2/", "/oauth2/"),
        expected,
    )


def test_sign_in_adds_the_login_module_redirect_and_openid_scopes():
    portal = parse([{**HR, "signIn": True, "redirectPaths": ["service/oauth2/token/msexchange", "x/y"]}]).portals[0]
    assert portal.redirect_uris == (
        "https://intrexx.example.com/hr/service/oauth2/token/msexchange",
        "https://intrexx.example.com/hr/x/y",
        "https://intrexx.example.com/hr/login/oic/authenticate",
    )
    assert {"openid", "profile", "email"} <= {p.name for p in portal.permissions}


@pytest.mark.parametrize(
    "base_url, fragment",
    [
        ("http://intrexx.example.com", "must use https"),
        ("https://user:pw@intrexx.example.com", "credentials"),
        ("https://intrexx.example.com/?a=1", "query"),
        ("https://intrexx.example.com/#top", "fragment"),
        ("https://*.example.com", "wildcard"),
        ("intrexx.example.com/hr", "absolute https URL"),
        ("/hr", "absolute https URL"),
        ("ftp://intrexx.example.com", "absolute https URL"),
        ("https://intrexx.example.com/a/../b", "'..'"),
        ("https://intrexx.example.com/a b", "white space"),
        ("", "absolute https URL"),
        (42, "absolute https URL"),
    ],
)
def test_bad_base_url_names_the_key(base_url, fragment):
    found = problems([{**HR, "baseUrl": base_url}])
    assert any(p.startswith("portals[0].baseUrl: ") and fragment in p for p in found), found


@pytest.mark.parametrize(
    "path, fragment",
    [
        ("../admin", "'..'"),
        ("a/../../b", "'..'"),
        ("https://evil.example.com/cb", "scheme"),
        ("javascript:alert(1)", "scheme"),
        ("/service/oauth2", "leading '/'"),
        ("cb?x=1", "'?'"),
        ("cb/*", "'*'"),
        ("", "relative path"),
    ],
)
def test_redirect_paths_cannot_escape_the_base(path, fragment):
    found = problems([{**HR, "redirectPaths": [path]}])
    assert any(p.startswith("portals[0].redirectPaths[0]: ") and fragment in p for p in found), found


def test_every_problem_is_reported_at_once():
    found = problems(
        [
            {"name": "HR", "baseUrl": "http://x.example.com", "connector": "soap", "access": "root"},
            {
                "name": "ok",
                "baseUrl": "https://ok.example.com",
                "owners": ["not-a-guid"],
                "mailboxScope": {"groupId": "11111111-2222-3333-4444-555555555555"},
            },
            {"name": "ok", "baseUrl": "https://ok2.example.com", "permisions": []},
        ],
        cloud="mars",
        secretRotationDays="3",
        protect="yes",
        environmnet="x",
    )
    keys = [p.split(":")[0] for p in found]
    for key in (
        "portals[0].name",
        "portals[0].baseUrl",
        "portals[0].connector",
        "portals[0].access",
        "portals[1].owners[0]",
        "portals[1].mailboxScope",
        "portals[2].permisions",
        "cloud",
        "secretRotationDays",
        "protect",
        "environmnet",
    ):
        assert key in keys, (key, found)
    assert any("did you mean 'permissions'" in p for p in found)
    assert any("did you mean 'environment'" in p for p in found)
    message = str(ConfigError(found))
    assert message.startswith(f"invalid stack configuration ({len(found)} problems):")


def test_duplicate_names():
    found = problems([HR, {**HR, "baseUrl": "https://other.example.com"}])
    assert found == ["portals[1].name: 'hr' is already used by portals[0]; names must be unique"]


@pytest.mark.parametrize(
    "portals, fragment",
    [
        (None, "required"),
        ([], "non-empty list"),
        ({"name": "hr"}, "non-empty list"),
        (["hr"], "must be an object"),
    ],
)
def test_portals_shape(portals, fragment):
    found = problems(portals)
    assert any(p.startswith("portals") and fragment in p for p in found), found


def test_portals_that_are_not_json():
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"portals": "[{"}, "dev", TODAY)
    assert caught.value.problems == ["portals: must be a YAML/JSON list, got text that does not parse"]


def test_unknown_permission_lists_close_matches():
    found = problems([{**HR, "permissions": ["Mail.ReadWrit", "Calendar.ReadWrite"]}])
    assert "did you mean Mail.ReadWrite" in found[0] and found[0].startswith("portals[0].permissions[0]")
    assert "Calendars.ReadWrite" in found[1]


def test_permission_of_the_wrong_kind():
    found = problems([{**SERVICE, "permissions": ["offline_access"]}])
    assert found == [
        "portals[0].permissions[0]: 'offline_access' is a delegated permission (for signed-in users), but "
        "`access: application` (a service account) needs application permissions"
    ]
    found = problems([{**HR, "permissions": ["full_access_as_app"]}])
    assert found == [
        "portals[0].permissions[0]: 'full_access_as_app' is an application permission, but the Connector for "
        "Microsoft Exchange signs users in (delegated)"
    ]


def test_mailbox_scope_only_for_m365_service_accounts():
    scope = {"recipientFilter": "Department -eq 'HR'"}
    for portal in (HR, USERS):
        found = problems([{**portal, "mailboxScope": scope}])
        assert found[0].startswith("portals[0].mailboxScope: applies to the Microsoft 365 connector's service accounts")
    for bad in ({"groupId": "nope"}, {"groupId": "x", "recipientFilter": "y"}, {"recipientFilter": ""}, "HR"):
        assert problems([{**SERVICE, "mailboxScope": bad}])


def test_mailbox_scope_moves_mailbox_roles_to_exchange_rbac():
    portal = parse([{**SERVICE, "mailboxScope": {"groupId": "11111111-2222-3333-4444-555555555555"}}]).portals[0]
    assert all(portal.exchange_rbac(p) for p in portal.permissions)
    assert not portal.warnings


def test_unscoped_application_access_warns():
    portal = parse([SERVICE]).portals[0]
    assert "every mailbox in the tenant" in portal.warnings[0] and "'hr'" in portal.warnings[0]


def test_the_old_api_key_says_what_to_write_instead():
    for api in ("graph", "ews"):
        found = problems([{**HR, "api": api}])
        assert found == [
            "portals[0].api: replaced by `connector`: write `connector: exchange` for the Connector for Microsoft "
            "Exchange (EWS, api: ews) or `connector: m365` for the Connector for Microsoft 365 and Teams "
            "(Microsoft Graph, api: graph)"
        ]


def test_a_misspelt_connector_gets_a_did_you_mean():
    assert problems([{**HR, "connector": "m356"}]) == [
        "portals[0].connector: must be one of exchange | m365, got 'm356' (did you mean 'm365'?)"
    ]
    assert problems([{**HR, "connector": "Exchange"}])[0].endswith("(did you mean 'exchange'?)")


def test_the_exchange_connector_has_no_app_only_access():
    found = problems([{**HR, "access": "application"}])
    assert found == [
        "portals[0].access: the Connector for Microsoft Exchange signs each mailbox user in (delegated access, "
        '"Request MS365 Refresh Token"); app-only access is the Microsoft 365 connector\'s service account: '
        "write `connector: m365` with `access: application`"
    ]


def test_m365_user_accounts_need_the_redirect_uri_intrexx_shows():
    without_paths = {key: value for key, value in USERS.items() if key != "redirectPaths"}
    found = problems([without_paths])
    assert found[0].startswith("portals[0].redirectPaths: required for `connector: m365` with delegated access")
    assert parse([SERVICE]).portals[0].redirect_uris == ()


def test_public_client_flows_follow_the_connector():
    assert parse([HR]).portals[0].public_client_flows is True
    assert parse([USERS]).portals[0].public_client_flows is False
    assert parse([{**USERS, "publicClientFlows": True}]).portals[0].public_client_flows is True
    assert parse([SERVICE]).portals[0].public_client_flows is False
    assert problems([{**HR, "publicClientFlows": False}])[0].startswith(
        "portals[0].publicClientFlows: must stay true for `connector: exchange`"
    )
    assert problems([{**SERVICE, "publicClientFlows": True}])[0].startswith(
        "portals[0].publicClientFlows: must be false for `access: application`"
    )


@pytest.mark.parametrize("value", ["6", "91", "120", "366", "ninety", "30.5", "", "true", "1e2"])
def test_rotation_days_range_and_type(value):
    expected = "secretRotationDays: must be an integer from 7 to 90"
    assert problems([HR], secretRotationDays=value)[0].startswith(expected)


def test_ews_warns_before_and_fails_after_the_shutdown():
    portal = parse([HR], today=date(2026, 9, 1)).portals[0]
    assert "2026-10-01" in portal.warnings[0] and "2027-04-01" in portal.warnings[0]
    found = problems_on([HR], date(2027, 4, 1))
    assert found[0].startswith("portals[0].connector: 'exchange' reaches Exchange Online through EWS, switched off")
    assert parse([HR], today=date(2027, 4, 1), allowRetiredEws="true").portals[0].warnings
    assert not parse([USERS], today=date(2027, 4, 1)).portals[0].warnings


def problems_on(portals, today):
    with pytest.raises(ConfigError) as caught:
        parse(portals, today=today)
    return caught.value.problems


# Hypothesis: any configuration either parses or raises exactly ConfigError -------------------------------

texts = st.one_of(
    st.text(max_size=30),
    st.sampled_from(
        [
            "https://intrexx.example.com/hr",
            "http://localhost:1337",
            "https://a.example.com/x/",
            "exchange",
            "m365",
            "delegated",
            "application",
            "true",
            "false",
            "90",
            "global",
            "china",
            "Mail.ReadWrite",
            "offline_access",
            "full_access_as_app",
            "service/oauth2/token/msexchange",
            "../x",
            "11111111-2222-3333-4444-555555555555",
            "{11111111-2222-3333-4444-555555555555}",
            "urn:uuid:11111111-2222-3333-4444-555555555555",
            "11111111-2222-3333-4444-555555555555\n",
            "hr\n",
            "old",
            "https://Intrexx.Example.com:443/hr/",
            "https://intrexx.example.com/hr/default.ixsp",
            "https://intrexx.example.com/h(r)",
        ]
    ),
)
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 400), texts)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=3), st.dictionaries(texts, inner, max_size=3)),
    max_leaves=8,
)
portal_entries = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["hr", "ops", "a-1"]), texts), "baseUrl": texts},
    optional={
        "connector": texts,
        "access": texts,
        "publicClientFlows": scalars,
        "signIn": scalars,
        "permissions": st.lists(texts, max_size=4),
        "redirectPaths": st.lists(texts, max_size=3),
        "owners": st.lists(texts, max_size=2),
        "mailboxScope": st.one_of(values, st.fixed_dictionaries({"groupId": texts})),
        "renamedFrom": texts,
        "extra": values,
    },
)
raw_configs = st.fixed_dictionaries(
    {"portals": st.one_of(st.lists(portal_entries, max_size=4).map(json.dumps), values.map(json.dumps), texts)},
    optional={
        "cloud": texts,
        "secretRotationDays": texts,
        "protect": texts,
        "allowRetiredEws": texts,
        "environment": texts,
        "unknown": texts,
    },
)


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(raw_configs, st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 1, 1)))
def test_any_configuration_parses_or_raises_one_config_error(raw, today):
    try:
        settings_ = parse_stack_config(raw, "dev", today)
    except ConfigError as error:
        assert error.problems and all(":" in p and "\n" not in p for p in error.problems)
        return
    assert settings_.portals
    every_uri = [uri for portal in settings_.portals for uri in portal.redirect_uris]
    assert len(every_uri) == len(set(every_uri))  # no redirect URI given by two portals
    for portal in settings_.portals:
        assert portal.permissions and (portal.redirect_uris or portal.access == "application")
        assert all(uri.startswith(("https://", "http://localhost", "http://127.0.0.1")) for uri in portal.redirect_uris)
        # Whatever passes is whole and canonical, so no later stage can trip over it.
        assert is_portal_name(portal.name) and (portal.renamed_from is None or is_portal_name(portal.renamed_from))
        assert all(is_guid(owner) and owner == owner.lower() for owner in portal.owners)
        assert parse_web_url(portal.base_url, http_hosts=LOOPBACK_HOSTS).href.rstrip("/") == portal.base_url


# refreshTokensRequestedOn: Intrexx's MS365 refresh tokens are "valid for three months" and "must then be manually
# requested again" (help.intrexx.com integration-connector-exchange-ms365-refresh-token; components/refresh_tokens.py).


def test_refresh_tokens_requested_on_is_read_as_a_date_and_reaches_the_outputs():
    from outputs_fixtures import stack_outputs

    from components.contract import StackOutputs

    portal = parse([{**HR, "refreshTokensRequestedOn": "2026-11-02"}]).portals[0]
    assert portal.refresh_tokens_requested_on == date(2026, 11, 2)
    yaml_date = parse_stack_config({"portals": [{**HR, "refreshTokensRequestedOn": date(2026, 11, 2)}]}, "dev", TODAY)
    assert yaml_date.portals[0] == portal  # plan reads the stack file with PyYAML: an unquoted date is a date
    assert parse([HR]).portals[0].refresh_tokens_requested_on is None
    document = stack_outputs([{**HR, "refreshTokensRequestedOn": "2026-11-02"}])
    assert document["portals"]["hr"]["refreshTokensRequestedOn"] == "2026-11-02T00:00:00Z"
    read = StackOutputs.from_output(document).portals["hr"]
    assert read.refresh_tokens_requested_on == date(2026, 11, 2)
    assert "refreshTokensRequestedOn" not in stack_outputs([HR])["portals"]["hr"]


@pytest.mark.parametrize(
    "value, fragment",
    [
        ("2026-02-30", "as YYYY-MM-DD"),
        ("02.11.2026", "as YYYY-MM-DD"),
        ("2026-11-02\n", "as YYYY-MM-DD"),
        ("2026-11-02T00:00:00Z", "as YYYY-MM-DD"),
        (20261102, "as YYYY-MM-DD"),
        (True, "as YYYY-MM-DD"),
        ("2026-11-25", "is in the future (today is 2026-11-24)"),
    ],
)
def test_refresh_tokens_requested_on_must_be_a_past_calendar_date(value, fragment):
    (line,) = problems([{**HR, "refreshTokensRequestedOn": value}])
    assert line.startswith("portals[0].refreshTokensRequestedOn: ")
    assert fragment in line


def test_refresh_tokens_requested_on_belongs_to_exchange_portals_only():
    (line,) = problems([{**USERS, "refreshTokensRequestedOn": "2026-11-02"}])
    assert line.startswith("portals[0].refreshTokensRequestedOn: only for `connector: exchange` portals")


@pytest.mark.parametrize(
    "requested, due",
    [
        ("2026-11-02", "2027-02-02"),
        ("2026-11-30", "2027-02-28"),
        ("2027-11-30", "2028-02-29"),
        ("2026-10-31", "2027-01-31"),
    ],
)
def test_refresh_tokens_are_due_three_calendar_months_after_the_request(requested, due):
    from components.refresh_tokens import refresh_tokens_due

    assert refresh_tokens_due(date.fromisoformat(requested)) == date.fromisoformat(due)


def test_warnings_of_one_kind_are_one_line_for_many_portals():
    portals = [{"name": f"p{index:03}", "baseUrl": f"https://intrexx.example.com/p{index:03}"} for index in range(300)]
    portals += [{**SERVICE, "name": f"svc{index}", "baseUrl": f"https://s{index}.example.com"} for index in range(2)]
    settings_ = parse(portals)
    assert len(settings_.warnings) == 2
    ews, unscoped = settings_.warnings
    assert ews.startswith("the Connector for Microsoft Exchange (portals 'p000', 'p001', 'p002', 'p003', 'p004' and ")
    assert "and 295 more)" in ews and len(ews) < 500
    assert "(portals 'svc0' and 'svc1') can read and write every mailbox in the tenant" in unscoped
    assert settings_.portals[7].warnings == (
        ews.replace("portals 'p000', 'p001', 'p002', 'p003', 'p004' and 295 more", "portal 'p007'"),
    )


def test_one_portal_is_named_alone():
    (warning,) = parse([SERVICE]).warnings
    assert warning.startswith("application access without mailboxScope (portal 'hr') can read and write")
