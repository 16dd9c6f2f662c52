"""Attack cases against the configuration side (issue 13, part 4): hostile stack files, URLs that Python and a
browser read differently, escapes aimed at the terminal, and bad dates and paths. Each one exits 2 with a clear
message and writes nothing."""

import json
import os
import subprocess
import sys
import time
from datetime import date

import pytest
from helpers import ROOT
from hypothesis import given, settings
from hypothesis import strategies as st

from components.config import ConfigError, parse_stack_config
from components.text import unsafe_characters
from components.today import TODAY_VARIABLE
from components.urls import url_problems
from intrexx_connector.cli import main

TODAY = date(2026, 11, 24)
HR = {"name": "hr", "baseUrl": "https://intrexx.example.com/hr"}
PORTALS_KEY = "intrexx-exchange:portals"


@pytest.fixture
def project(tmp_path, monkeypatch):
    """A project directory with Pulumi.yaml; `write(text)` puts Pulumi.attack.yaml beside it."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    monkeypatch.chdir(tmp_path)

    def write(content: str | bytes) -> None:
        data = content.encode("utf-8") if isinstance(content, str) else content
        (tmp_path / "Pulumi.attack.yaml").write_bytes(data)

    return write


def plan(capsys, *extra):
    code = main(["plan", "--stack", "attack", *extra])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def alias_bomb(levels: int = 9) -> str:
    lines = ["a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for level in range(1, levels):
        previous = f"*a{level - 1}"
        lines.append(f"a{level}: &a{level} [{', '.join([previous] * 9)}]")
    return "\n".join(lines) + "\nconfig: {}\n"


STACK_FILE_ATTACKS = {
    "top level is a list": ("- a\n- b\n", "StackFileError: Pulumi.attack.yaml: must be a mapping"),
    "top level is a scalar": ("just text\n", "StackFileError: Pulumi.attack.yaml: must be a mapping"),
    "not UTF-8": (b"config:\n  intrexx-exchange:environment: \xff\xfe\n", "not UTF-8 or UTF-16 text (line 2"),
    "a YAML set": (f"config:\n  {PORTALS_KEY}: !!set {{a, b}}\n", "portals: must be a non-empty list"),
    "nesting 600 deep": (f"config:\n  {PORTALS_KEY}: {'[' * 600}{']' * 600}\n", "nesting deeper than 64 levels"),
    "an alias bomb": (alias_bomb(), "expands to more than 100000 values"),
    "JSON nested 1,000 deep": (
        f"config:\n  {PORTALS_KEY}: '{'[' * 1000}{']' * 1000}'\n",
        "portals: must be a YAML/JSON list of portal objects, got text nested too deeply",
    ),
    "terminal escapes in environment": (
        f'config:\n  intrexx-exchange:environment: "dev\\e]0;owned\\a\\e[2J"\n  {PORTALS_KEY}: [{json.dumps(HR)}]\n',
        "environment: must be a one-line string without control characters (U+001B, U+0007)",
    ),
    "bidi override in environment": (
        f'config:\n  intrexx-exchange:environment: "dev\\u202eved"\n  {PORTALS_KEY}: [{json.dumps(HR)}]\n',
        "(U+202E)",
    ),
    "NUL before baseUrl": (
        f'config:\n  {PORTALS_KEY}: [{{name: hr, baseUrl: "\\0https://intrexx.example.com"}}]\n',
        "portals[0].baseUrl: must not contain control characters (U+0000)",
    ),
    "vertical tab in baseUrl path": (
        f'config:\n  {PORTALS_KEY}: [{{name: hr, baseUrl: "https://intrexx.example.com/h\\vr"}}]\n',
        "portals[0].baseUrl: must not contain control characters (U+000B)",
    ),
    "control character in recipientFilter": (
        f"config:\n  {PORTALS_KEY}: [{{name: hr, baseUrl: 'https://a.example.com', access: application, "
        "mailboxScope: {recipientFilter: \"Department -eq 'HR'\\e[8m\"}}]\n",
        "mailboxScope.recipientFilter: must be a one-line OPATH filter",
    ),
}


@pytest.mark.parametrize("content, message", STACK_FILE_ATTACKS.values(), ids=STACK_FILE_ATTACKS.keys())
def test_every_stack_file_attack_exits_2_with_a_clear_message(project, capsys, tmp_path, content, message):
    project(content)
    started = time.monotonic()
    code, out, err = plan(capsys, "--out", str(tmp_path / "build"))
    assert time.monotonic() - started < 5
    assert code == 2, (out, err)
    assert message in err, err
    assert err.startswith(("StackFileError: ", "ConfigError: ")) and "Traceback" not in err
    assert out == "" and not (tmp_path / "build").exists()
    assert "\x1b" not in err and "\u202e" not in err


# URLs that Python's urllib.parse accepted (the configuration took all of them before issue 13) and that the
# WHATWG URL Standard refuses, or reads with another host or path than Python did.
WHATWG_CORPUS = [
    ("https://exa^mple.com", "WHATWG"),  # forbidden host code points
    ("https://exa|mple.com", "WHATWG"),
    ("https://exa<mple.com", "WHATWG"),
    ("https://exa>mple.com", "WHATWG"),
    ("https://exa%20mple.com", "WHATWG"),  # a percent-encoded space in a host
    ("https://exa%mple.com", "WHATWG"),  # a bare '%' in a host
    ("https://exa%00mple.com", "WHATWG"),  # a percent-encoded NUL in a host
    ("https://a%2Fb.example.com", "WHATWG"),  # a percent-encoded delimiter in a host
    ("https://example.com%3A8443", "WHATWG"),  # a percent-encoded ':' in a host
    ("https://[fe80::1%25eth0]/hr", "WHATWG"),  # IPv6 zone ids
    ("https://[fe80::1%eth0]/hr", "WHATWG"),
    ("https://[v1.x]/", "WHATWG"),  # IPvFuture
    ("https://4294967296", "WHATWG"),  # an IPv4 address out of range
    ("https://ex%41mple.com", "reads the host as 'example.com'"),  # percent-decoded by browsers
    ("https://%65xample.com", "reads the host as 'example.com'"),
    ("https://exam\u00adple.com", "reads the host as 'example.com'"),  # a soft hyphen, mapped away
    ("https://exa\u200bmple.com", "reads the host as 'example.com'"),  # a zero-width space, mapped away
    ("https://\uff25xample.com", "reads the host as 'example.com'"),  # a full-width letter
    ("https://1.2.3", "reads the host as '1.2.0.3'"),  # IPv4 shorthand
    ("https://0x7f.1", "reads the host as '127.0.0.1'"),  # hexadecimal IPv4
    ("https://127.1", "reads the host as '127.0.0.1'"),
    ("https://exa{mple.com", "DNS name"),  # valid for WHATWG, not a host name DNS can hold
    ('https://exa"mple.com', "DNS name"),
    ("https://-example.com", "DNS name"),
    ("https://example..com", "DNS name"),
    ("https://example.com:0", "port from 1 to 65535"),
    ("https://example.com/hr/%2e%2e/admin", "'..' segments"),  # a dot segment a browser resolves
    ("https://example.com/.%2e/x", "'..' segments"),
    ("https://example.com/hr/.%2E", "'..' segments"),
    ("https://example.com/hr%2f..%2fadmin", "'..' segments"),  # an encoded '/' that a server decodes
    ("https://example.com/%5c..", "backslashes"),
    ("https://example.com/hr;x=1", "';'"),
    ("https://example.com/%", "percent-encoded byte"),
    ("https://example.com/a%zz", "percent-encoded byte"),
    ("https://example.com/hr/\u00e4", "reads the path as '/hr/%C3%A4'"),  # non-ASCII is percent-encoded
    ("https://example.com/hr/\u202e", "control characters (U+202E)"),
]


@pytest.mark.parametrize("url, reason", WHATWG_CORPUS, ids=[repr(url) for url, _ in WHATWG_CORPUS])
def test_urls_python_accepted_but_browsers_read_otherwise_are_refused(url, reason):
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"portals": [{**HR, "baseUrl": url}]}, "dev", TODAY)
    assert any(p.startswith("portals[0].baseUrl: ") and reason in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_the_corpus_is_what_issue_13_counted():
    assert len(WHATWG_CORPUS) >= 26


@pytest.mark.parametrize(
    "url",
    [
        "https://intrexx.example.com",
        "https://intrexx.example.com/hr/",
        "https://intrexx.example.com:8443/a/b",
        "https://intrexx_dev.corp.example",
        "https://[::1]:8443/portal",
        "https://10.0.0.5/portal",
        "https://xn--bcher-kva.example/hr",
        "https://example.com/hr/%C3%A4",
        "http://localhost:1337",
        "http://127.0.0.1/portal",
    ],
)
def test_urls_browsers_read_as_written_are_accepted(url):
    assert url_problems(url, http_hosts=("localhost", "127.0.0.1")) == []
    parse_stack_config({"portals": [{**HR, "baseUrl": url}]}, "dev", TODAY)


@pytest.mark.parametrize(
    "path, reason",
    [
        ("%2e%2e/%2e%2e/evil", "'..' segments"),
        (".%2e/x", "'..' segments"),
        ("%2E/x", "'..' segments"),
        ("..;/x", "';'"),
        ("x/..;/y", "';'"),
        ("x%3b/y", "';'"),
        ("x%5c..%5cy", "backslashes"),
        ("x%2f..%2f..%2fy", "'..' segments"),
        ("%252e%252e/x", "'..' segments"),  # decoded twice, by a proxy and then the container
        ("x%00y", "control characters"),
        ("x%3fy=1", "'?' or '#'"),
        ("x/\u00e4", "write it that way"),
    ],
)
def test_redirect_paths_are_checked_after_percent_decoding(path, reason):
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"portals": [{**HR, "redirectPaths": [path]}]}, "dev", TODAY)
    assert any(p.startswith("portals[0].redirectPaths[0]: ") and reason in p for p in caught.value.problems), (
        caught.value.problems
    )


def test_deeply_nested_parsed_values_are_a_config_error_not_a_recursion_error():
    deep: list = []
    for _ in range(5000):
        deep = [deep]
    with pytest.raises(ConfigError, match=r"portals\[0\]: must be an object .*, got a list nested too deeply"):
        parse_stack_config({"portals": [deep]}, "dev", TODAY)


@pytest.mark.parametrize(
    "value",
    ["garbage", "2026-13-01", "2026-02-30", "2026-1-1", "0001-01-01", "9999-12-31", "2023-12-31", "3000-01-01", " "],
)
def test_a_bad_pinned_date_is_exit_2(project, capsys, monkeypatch, value):
    project(f"config:\n  {PORTALS_KEY}: [{json.dumps(HR)}]\n")
    monkeypatch.setenv(TODAY_VARIABLE, value)
    code, out, err = plan(capsys)
    assert code == 2 and out == ""
    assert err.startswith(f"ConfigError: invalid stack configuration (1 problem):\n  - {TODAY_VARIABLE}: must be")


def test_the_calendars_ends_that_are_allowed_plan(project, capsys, monkeypatch):
    # A Microsoft 365 service account: an Exchange-connector portal is refused after EWS's shutdown (2027-04-01).
    service_account = {**HR, "connector": "m365", "access": "application"}
    project(f"config:\n  {PORTALS_KEY}: [{json.dumps(service_account)}]\n")
    for value in ("2024-01-01", "2999-12-31"):
        monkeypatch.setenv(TODAY_VARIABLE, value)
        code, out, err = plan(capsys)
        assert code == 0, err
        assert f"on {value}" in out


def test_plan_output_shows_no_raw_escape_even_from_a_value_it_printed(project, capsys):
    """Belt and braces: whatever reaches the terminal goes through one filter that escapes control characters."""
    project(f"config:\n  {PORTALS_KEY}: [{json.dumps(HR)}]\n")
    code = main(["plan", "--stack", "attack", "--portal", "hr\x1b[2J"])
    captured = capsys.readouterr()
    assert code == 2 and "\x1b" not in captured.err and "hr\\x1b[2J" in captured.err


def test_a_non_utf8_out_directory_is_exit_2_and_writes_nothing(tmp_path):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_text((ROOT / "Pulumi.dev.yaml").read_text())
    for out in (b"build-\xff", b"build-\x1b[2J"):
        result = subprocess.run(
            [sys.executable, "-m", "intrexx_connector", "plan", "--stack", "dev", "--out", out],
            capture_output=True,
            cwd=tmp_path,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
            timeout=60,
            check=False,
        )
        assert result.returncode == 2, result.stderr
        assert b"argument --out: must" in result.stderr and b"Traceback" not in result.stderr
        assert b"\x1b" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["Pulumi.dev.yaml", "Pulumi.yaml"]


# Whole-value rules (issue 17): `$` also matches before a final line break, and uuid.UUID also reads braces, a
# `urn:uuid:` prefix, 32 bare digits and white space. Each of these passed the configuration once and broke a later
# stage (plan, a Graph filter, a script): they are refused where they enter.
GUID = "11111111-2222-4333-8444-555555555555"
WHOLE_VALUE_CASES = {
    "name with a trailing line break": ({**HR, "name": "hr\n"}, "portals[0].name: must be a lower-case letter"),
    "name with a leading line break": ({**HR, "name": "\nhr"}, "portals[0].name: must be a lower-case letter"),
    "renamedFrom with a trailing line break": (
        {**HR, "renamedFrom": "old\n"},
        "portals[0].renamedFrom: must be the portal's previous name",
    ),
    "owner GUID in braces": ({**HR, "owners": ["{" + GUID + "}"]}, "portals[0].owners[0]: must be an object id"),
    "owner GUID as a URN": ({**HR, "owners": ["urn:uuid:" + GUID]}, "portals[0].owners[0]: must be an object id"),
    "owner GUID without hyphens": ({**HR, "owners": [GUID.replace("-", "")]}, "portals[0].owners[0]"),
    "owner GUID with a line break": ({**HR, "owners": [GUID + "\n"]}, "portals[0].owners[0]"),
    "owner GUID with full-width digits": ({**HR, "owners": ["\uff11" + GUID[1:]]}, "portals[0].owners[0]"),
    "groupId in braces": (
        {**HR, "connector": "m365", "access": "application", "mailboxScope": {"groupId": "{" + GUID + "}"}},
        "portals[0].mailboxScope.groupId: must be the object id (GUID)",
    ),
    "adopted object id as a URN": (
        {**HR, "adopt": {"applicationObjectId": "urn:uuid:" + GUID, "servicePrincipalObjectId": GUID}},
        "portals[0].adopt.applicationObjectId: required",
    ),
    "hand-made key id in braces": (
        {
            **HR,
            "adopt": {
                "applicationObjectId": GUID,
                "servicePrincipalObjectId": GUID.replace("1", "9"),
                "handMadeSecretKeyIds": ["{" + GUID + "}"],
            },
        },
        "portals[0].adopt.handMadeSecretKeyIds: must be a list of secret ids",
    ),
    "grant id with a trailing line break": (
        {
            **HR,
            "adopt": {
                "applicationObjectId": GUID,
                "servicePrincipalObjectId": GUID.replace("1", "9"),
                "grants": {"exchange": "aaBBcDDeFG6h5JKLMN2PQrrssTTUUvW\n"},
            },
        },
        "portals[0].adopt.grants.exchange: must be the existing object's id",
    ),
}


WHOLE_VALUE_CASES.update(
    {
        "permission with a line break": (
            {**HR, "permissions": ["Mail.Read\n"]},
            "portals[0].permissions[0]: unknown permission 'Mail.Read\\n'",
        ),
        "unknown key with a line break": ({**HR, "x\ny": 1}, "portals[0]['x\\ny']: unknown key"),
        "unknown adopt key with an escape": (
            {**HR, "adopt": {"applicationObjectId": GUID, "servicePrincipalObjectId": GUID, "\x1b[2J": 1}},
            "portals[0].adopt['\\x1b[2J']: unknown key",
        ),
        "grant key with a line break": (
            {**HR, "adopt": {"applicationObjectId": GUID, "servicePrincipalObjectId": GUID, "grants": {"a\nb": "x"}}},
            "portals[0].adopt.grants['a\\nb']: is not one of",
        ),
    }
)


@pytest.mark.parametrize("entry, message", WHOLE_VALUE_CASES.values(), ids=WHOLE_VALUE_CASES.keys())
def test_values_are_checked_whole_where_they_enter(entry, message):
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"portals": [entry]}, "dev", TODAY)
    assert any(message in problem for problem in caught.value.problems), caught.value.problems
    assert not any(unsafe_characters(problem) for problem in caught.value.problems), caught.value.problems


def test_lone_surrogates_are_refused_where_the_configuration_comes_in():
    service = {**HR, "connector": "m365", "access": "application", "mailboxScope": {"recipientFilter": "x\ud800"}}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"portals": [service], "environment": "dev\udfff"}, "dev", TODAY)
    assert caught.value.problems == [
        "environment: must be Unicode text, not lone surrogates (U+DFFF)",
        "portals[0].mailboxScope.recipientFilter: must be a one-line OPATH filter such as \"Department -eq 'HR'\", "
        "got 'x\\ud800'",
    ]


@pytest.mark.parametrize("environment", [" dev", "dev ", "dev\u3000"])
def test_an_environment_with_white_space_at_its_ends_is_refused(environment):
    with pytest.raises(ConfigError, match="environment: must not start or end with white space"):
        parse_stack_config({"portals": [HR], "environment": environment}, "dev", TODAY)


@pytest.mark.parametrize("value", ["\u0662\u0660\u0662\u0666-11-02", "2026-11-02\n", "2026-11-2"])
def test_refresh_tokens_requested_on_is_ascii_iso_only(value):
    with pytest.raises(ConfigError, match="refreshTokensRequestedOn: must be the date"):
        parse_stack_config({"portals": [{**HR, "refreshTokensRequestedOn": value}]}, "dev", TODAY)


@pytest.mark.parametrize("days", ["30\n", " 30", "\u0663\u0660", "3_0", "+ 30"])
def test_rotation_days_are_ascii_digits_only(days):
    with pytest.raises(ConfigError, match="secretRotationDays: must be an integer"):
        parse_stack_config({"portals": [HR], "secretRotationDays": days}, "dev", TODAY)


# Base URLs (issue 18): written the way browsers serialise them, one registration per redirect URI, no page.
@pytest.mark.parametrize(
    "written, kept",
    [
        ("https://Intrexx.Example.COM/hr", "https://intrexx.example.com/hr"),
        ("https://intrexx.example.com:443/hr/", "https://intrexx.example.com/hr"),
        ("HTTPS://intrexx.example.com:8443/hr", "https://intrexx.example.com:8443/hr"),
        ("http://LOCALHOST:80/portal", "http://localhost/portal"),
        ("https://[0:0::1]:443/p", "https://[::1]/p"),
    ],
)
def test_a_base_url_is_kept_as_browsers_write_it(written, kept):
    portal = parse_stack_config({"portals": [{**HR, "baseUrl": written}]}, "dev", TODAY).portals[0]
    assert portal.base_url == kept
    assert all(uri.startswith(kept + "/") for uri in portal.redirect_uris)


@pytest.mark.parametrize("page", ["default.ixsp", "index.html", "Login.JSP", "start.aspx"])
def test_a_base_url_naming_a_page_is_refused_with_the_url_to_write(page):
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"portals": [{**HR, "baseUrl": f"https://intrexx.example.com/hr/{page}"}]}, "dev", TODAY)
    assert caught.value.problems == [
        f"portals[0].baseUrl: names a page ({page!r}), which would end up inside every redirect URI: write the "
        "portal's base URL 'https://intrexx.example.com/hr' (as in Intrexx's portal properties)"
    ]


def test_a_folder_with_a_dot_is_no_page():
    portal = parse_stack_config({"portals": [{**HR, "baseUrl": "https://a.example.com/hr.v2"}]}, "dev", TODAY)
    assert portal.portals[0].base_url == "https://a.example.com/hr.v2"


@pytest.mark.parametrize("where", ["baseUrl", "redirectPaths"])
@pytest.mark.parametrize("character", list("!$'(),"))
def test_characters_entra_refuses_in_redirect_uris_are_refused(where, character):
    entry = (
        {**HR, "baseUrl": f"https://intrexx.example.com/h{character}r"}
        if where == "baseUrl"
        else {**HR, "redirectPaths": [f"oauth{character}cb"]}
    )
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"portals": [entry]}, "dev", TODAY)
    (problem,) = caught.value.problems
    assert problem.startswith(f"portals[0].{where}") and "Entra refuses these characters in redirect URIs" in problem


def test_two_portals_with_one_base_url_and_connector_are_refused():
    copy = {"name": "hr-copy", "baseUrl": "https://INTREXX.example.com:443/hr/"}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"portals": [HR, {"name": "x", "baseUrl": "ftp://bad"}, copy]}, "dev", TODAY)
    assert caught.value.problems[-1] == (
        "portals[2].baseUrl: gives the redirect URI 'https://intrexx.example.com/hr/oauth2/token/msexchange' of "
        "portals[0] ('hr') again (the same baseUrl 'https://intrexx.example.com/hr'): every portal needs its own; "
        "is this entry a copy?"
    )


def test_one_portal_on_both_connectors_shares_its_base_url_not_its_redirect_uris():
    graph = {**HR, "name": "hr-graph", "connector": "m365", "redirectPaths": ["service/oauth2/token/0A1B"]}
    service = {**HR, "name": "hr-service", "connector": "m365", "access": "application"}
    settings = parse_stack_config({"portals": [HR, graph, service]}, "dev", TODAY)
    assert len({portal.base_url for portal in settings.portals}) == 1


def test_the_same_redirect_uri_from_two_base_urls_names_redirect_paths():
    nested = {"name": "sub", "baseUrl": "https://intrexx.example.com/hr/oauth2/token", "redirectPaths": ["msexchange"]}
    with pytest.raises(ConfigError) as caught:
        parse_stack_config({"portals": [HR, {**nested, "connector": "m365"}]}, "dev", TODAY)
    assert caught.value.problems[0].startswith("portals[1].redirectPaths: gives the redirect URI")


_LABELS = st.text(alphabet="abcXYZ019-_\u00e4", min_size=1, max_size=8)
URLISH = st.builds(
    lambda scheme, labels, port, segments, tail: f"{scheme}://{'.'.join(labels)}{port}/{'/'.join(segments)}{tail}",
    st.sampled_from(["https", "HTTPS", "http", "Https"]),
    st.lists(_LABELS, min_size=1, max_size=3),
    st.sampled_from(["", ":443", ":80", ":8443", ":0", ":65536", ":"]),
    st.lists(st.text(alphabet="aZ09.-_%2e;!()$'~:@ \u00e4/", max_size=8), max_size=3),
    st.sampled_from(["", "/", "//", "?q", "#f"]),
)


@settings(max_examples=400, deadline=None)
@given(url=st.one_of(URLISH, st.sampled_from(["http://LOCALHOST:80/p", "https://127.0.0.1:443"])))
def test_a_base_url_is_refused_in_one_line_or_kept_in_a_form_that_reads_back_the_same(url):
    try:
        portal = parse_stack_config({"portals": [{**HR, "baseUrl": url}]}, "dev", TODAY).portals[0]
    except ConfigError as error:
        assert all(p.startswith("portals[0].baseUrl: ") and "\n" not in p for p in error.problems), error.problems
        return
    again = parse_stack_config({"portals": [{**HR, "baseUrl": portal.base_url}]}, "dev", TODAY).portals[0]
    assert again.base_url == portal.base_url and again.redirect_uris == portal.redirect_uris
    assert portal.base_url == portal.base_url.strip() and not portal.base_url.endswith("/")
    assert url_problems(portal.base_url, http_hosts=("localhost", "127.0.0.1")) == []


def test_one_origin_rule_for_everyone_who_judges_a_url():
    from components.urls import UrlError, origin_of, parse_web_url, same_origin

    graph = parse_web_url("https://graph.microsoft.com")
    assert same_origin("https://GRAPH.microsoft.com:443/v1.0/users?$skiptoken=1", graph)  # a paging link
    assert same_origin("https://graph.microsoft.com/v1.0/x", "https://graph.microsoft.com")
    for elsewhere in (
        "https://graph.microsoft.com.evil.example/v1.0",
        "https://graph.microsoft.com:8443/v1.0",
        "http://graph.microsoft.com/v1.0",
        "https://evil.example\\@graph.microsoft.com/",
        "https://graph.microsoft.com@evil.example/",
        "https://graph.microsoft.com\t/v1.0",
        "not a url",
    ):
        assert not same_origin(elsewhere, graph), elsewhere
    assert origin_of("https://Login.MicrosoftOnline.com:443/tenant/v2.0") == "https://login.microsoftonline.com"
    assert origin_of("http://127.0.0.1:8080/x", http_hosts=("127.0.0.1",)) == "http://127.0.0.1:8080"
    with pytest.raises(UrlError, match="must use https"):
        origin_of("http://127.0.0.1:8080/x")
