"""Stack configuration: one ConfigError listing every problem with its key path, before any resource exists."""

import json
from datetime import date

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from components.config import ConfigError, parse_stack_config

TODAY = date(2026, 11, 24)
HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}


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
    assert (portal.api, portal.access, portal.sign_in, portal.owners) == ("graph", "delegated", False, ())
    assert portal.redirect_uris == ("https://intrexx.example.com/hr/service/oauth2/token/msexchange",)
    assert [p.name for p in portal.permissions] == [
        "Mail.ReadWrite", "Calendars.ReadWrite", "Contacts.ReadWrite", "offline_access", "User.Read"]
    assert (settings_.environment, settings_.cloud.name, settings_.secret_rotation_days) == ("dev", "global", 90)
    assert (settings_.protect, settings_.allow_retired_ews) == (False, False)


@pytest.mark.parametrize("base_url, expected", [
    ("https://host/hr", "https://host/hr/service/oauth2/token/msexchange"),
    ("https://host/hr/", "https://host/hr/service/oauth2/token/msexchange"),
    ("https://host", "https://host/service/oauth2/token/msexchange"),
    ("https://host:8443/a/b/", "https://host:8443/a/b/service/oauth2/token/msexchange"),
    ("http://localhost:1337", "http://localhost:1337/service/oauth2/token/msexchange"),
    ("http://127.0.0.1/portal", "http://127.0.0.1/portal/service/oauth2/token/msexchange"),
])
def test_redirect_uri_keeps_the_base_path(base_url, expected):
    assert parse([{**HR, "baseUrl": base_url}]).portals[0].redirect_uris == (expected,)


def test_sign_in_adds_the_login_module_redirect_and_openid_scopes():
    portal = parse([{**HR, "signIn": True, "redirectPaths": ["service/oauth2/token/msexchange", "x/y"]}]).portals[0]
    assert portal.redirect_uris == (
        "https://intrexx.example.com/hr/service/oauth2/token/msexchange",
        "https://intrexx.example.com/hr/x/y",
        "https://intrexx.example.com/hr/login/oic/authenticate",
    )
    assert {"openid", "profile", "email"} <= {p.name for p in portal.permissions}


@pytest.mark.parametrize("base_url, fragment", [
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
])
def test_bad_base_url_names_the_key(base_url, fragment):
    found = problems([{**HR, "baseUrl": base_url}])
    assert any(p.startswith("portals[0].baseUrl: ") and fragment in p for p in found), found


@pytest.mark.parametrize("path, fragment", [
    ("../admin", "'..'"),
    ("a/../../b", "'..'"),
    ("https://evil.example.com/cb", "scheme"),
    ("javascript:alert(1)", "scheme"),
    ("/service/oauth2", "leading '/'"),
    ("cb?x=1", "'?'"),
    ("cb/*", "'*'"),
    ("", "relative path"),
])
def test_redirect_paths_cannot_escape_the_base(path, fragment):
    found = problems([{**HR, "redirectPaths": [path]}])
    assert any(p.startswith("portals[0].redirectPaths[0]: ") and fragment in p for p in found), found


def test_every_problem_is_reported_at_once():
    found = problems(
        [{"name": "HR", "baseUrl": "http://x.example.com", "api": "soap", "access": "root"},
         {"name": "ok", "baseUrl": "https://ok.example.com", "owners": ["not-a-guid"],
          "mailboxScope": {"groupId": "11111111-2222-3333-4444-555555555555"}},
         {"name": "ok", "baseUrl": "https://ok2.example.com", "permisions": []}],
        cloud="mars", secretRotationDays="3", protect="yes", environmnet="x")
    keys = [p.split(":")[0] for p in found]
    for key in ("portals[0].name", "portals[0].baseUrl", "portals[0].api", "portals[0].access",
                "portals[1].owners[0]", "portals[1].mailboxScope", "portals[2].permisions", "cloud",
                "secretRotationDays", "protect", "environmnet"):
        assert key in keys, (key, found)
    assert any("did you mean 'permissions'" in p for p in found)
    assert any("did you mean 'environment'" in p for p in found)
    message = str(ConfigError(found))
    assert message.startswith(f"invalid stack configuration ({len(found)} problems):")


def test_duplicate_names():
    found = problems([HR, {**HR, "baseUrl": "https://other.example.com"}])
    assert found == ["portals[1].name: 'hr' is already used by portals[0]; names must be unique"]


@pytest.mark.parametrize("portals, fragment", [
    (None, "required"),
    ([], "non-empty list"),
    ({"name": "hr"}, "non-empty list"),
    (["hr"], "must be an object"),
])
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
    found = problems([{**HR, "access": "application", "permissions": ["offline_access"]}])
    assert found == ["portals[0].permissions[0]: 'offline_access' is not an application permission of api "
                     "'graph', and access 'application' needs application permissions"]
    found = problems([{**HR, "api": "ews", "permissions": ["full_access_as_app"]}])
    assert "needs delegated permissions" in found[0]


def test_mailbox_scope_only_for_application_access():
    found = problems([{**HR, "mailboxScope": {"recipientFilter": "Department -eq 'HR'"}}])
    assert found[0].startswith("portals[0].mailboxScope: applies to application access only")
    for bad in ({"groupId": "nope"}, {"groupId": "x", "recipientFilter": "y"}, {"recipientFilter": ""}, "HR"):
        assert problems([{**HR, "access": "application", "mailboxScope": bad}])


def test_mailbox_scope_moves_mailbox_roles_to_exchange_rbac():
    portal = parse([{**HR, "access": "application",
                     "mailboxScope": {"groupId": "11111111-2222-3333-4444-555555555555"}}]).portals[0]
    assert all(portal.exchange_rbac(p) for p in portal.permissions)
    assert not portal.warnings


def test_unscoped_application_access_warns():
    portal = parse([{**HR, "access": "application"}]).portals[0]
    assert "every mailbox in the tenant" in portal.warnings[0] and "'hr'" in portal.warnings[0]


@pytest.mark.parametrize("value", ["6", "366", "ninety", "30.5", "", "true", "1e2"])
def test_rotation_days_range_and_type(value):
    expected = "secretRotationDays: must be an integer from 7 to 365"
    assert problems([HR], secretRotationDays=value)[0].startswith(expected)


def test_ews_warns_before_and_fails_after_the_shutdown():
    portal = parse([{**HR, "api": "ews"}], today=date(2026, 9, 1)).portals[0]
    assert "2026-10-01" in portal.warnings[0] and "2027-04-01" in portal.warnings[0]
    found = problems_on([{**HR, "api": "ews"}], date(2027, 4, 1))
    assert found[0].startswith("portals[0].api: 'ews' is switched off")
    assert parse([{**HR, "api": "ews"}], today=date(2027, 4, 1), allowRetiredEws="true").portals[0].warnings


def problems_on(portals, today):
    with pytest.raises(ConfigError) as caught:
        parse(portals, today=today)
    return caught.value.problems


# Hypothesis: any configuration either parses or raises exactly ConfigError -------------------------------

texts = st.one_of(st.text(max_size=30), st.sampled_from(
    ["https://intrexx.example.com/hr", "http://localhost:1337", "https://a.example.com/x/", "graph", "ews",
     "delegated", "application", "true", "false", "90", "global", "china", "Mail.ReadWrite", "offline_access",
     "full_access_as_app", "service/oauth2/token/msexchange", "../x", "11111111-2222-3333-4444-555555555555"]))
scalars = st.one_of(st.none(), st.booleans(), st.integers(-5, 400), texts)
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                        st.dictionaries(texts, inner, max_size=3)), max_leaves=8)
portal_entries = st.fixed_dictionaries(
    {"name": st.one_of(st.sampled_from(["hr", "ops", "a-1"]), texts), "baseUrl": texts},
    optional={"api": texts, "access": texts, "signIn": scalars, "permissions": st.lists(texts, max_size=4),
              "redirectPaths": st.lists(texts, max_size=3), "owners": st.lists(texts, max_size=2),
              "mailboxScope": st.one_of(values, st.fixed_dictionaries({"groupId": texts})),
              "extra": values})
raw_configs = st.fixed_dictionaries(
    {"portals": st.one_of(st.lists(portal_entries, max_size=4).map(json.dumps), values.map(json.dumps), texts)},
    optional={"cloud": texts, "secretRotationDays": texts, "protect": texts, "allowRetiredEws": texts,
              "environment": texts, "unknown": texts})


@settings(max_examples=500, suppress_health_check=[HealthCheck.too_slow])
@given(raw_configs, st.dates(min_value=date(2026, 1, 1), max_value=date(2028, 1, 1)))
def test_any_configuration_parses_or_raises_one_config_error(raw, today):
    try:
        settings_ = parse_stack_config(raw, "dev", today)
    except ConfigError as error:
        assert error.problems and all(":" in p for p in error.problems)
        return
    assert settings_.portals
    for portal in settings_.portals:
        assert portal.redirect_uris and portal.permissions
        assert all(uri.startswith(("https://", "http://localhost", "http://127.0.0.1")) for uri in portal.redirect_uris)
