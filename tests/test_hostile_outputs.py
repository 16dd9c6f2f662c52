"""Attack cases against the outputs file (issue 13, part 2): it is untrusted input. Every malformed value is one
clear line naming the portal and the field, exit 2, before anything is written; encodings Windows tools write
are read."""

import codecs
import json

import pytest
from outputs_fixtures import HR, LEGACY, TEAM, stack_outputs

from intrexx_connector.cli import main

GUID = "11111111-2222-4333-8444-555555555555"


@pytest.fixture
def document():
    return stack_outputs([HR, LEGACY, TEAM])


def render(capsys, tmp_path, content: bytes | str):
    path = tmp_path / "outputs.json"
    path.write_bytes(content.encode("utf-8") if isinstance(content, str) else content)
    code = main(["render", "--outputs", str(path), "--out", str(tmp_path / "out")])
    captured = capsys.readouterr()
    return code, captured.out, captured.err


@pytest.mark.parametrize(
    "encode",
    [
        lambda text: codecs.BOM_UTF8 + text.encode("utf-8"),
        lambda text: text.encode("utf-16"),  # with a byte order mark, as Windows PowerShell 5.1's `>` writes
        lambda text: codecs.BOM_UTF16_BE + text.encode("utf-16-be"),
    ],
    ids=["utf-8 with BOM", "utf-16 with BOM", "utf-16-be with BOM"],
)
def test_outputs_in_the_encodings_windows_tools_write_are_read(capsys, tmp_path, document, encode):
    code, _, err = render(capsys, tmp_path, encode(json.dumps(document)))
    assert code == 0, err
    assert (tmp_path / "out" / "hr" / "exchange-connector.json").exists()


@pytest.mark.parametrize(
    "content, message",
    [
        ("[" * 5000 + "]" * 5000, "nested too deeply"),
        ('{"portals": ' + "[" * 5000 + "]" * 5000 + "}", "nested too deeply"),
        (b"\xff\xfe\x00\xd8" + b"x" * 9, "not UTF-8 or UTF-16 text"),
        (b'{"portals": "\xc3\x28"}', "not UTF-8 or UTF-16 text"),
        (" " * 16_000_001, "larger than 16000000 bytes"),
        ("[]", "(top level): must be an object"),
        ("null", "(top level): must be an object"),
        ('"text"', "(top level): must be an object"),
        ("NaN", "(top level): must be an object"),
    ],
    ids=["5000 deep", "5000 deep inside", "bad utf-16", "bad utf-8", "too large", "list", "null", "string", "NaN"],
)
def test_unreadable_outputs_are_exit_2(capsys, tmp_path, content, message):
    code, out, err = render(capsys, tmp_path, content)
    assert code == 2 and out == "" and message in err, err
    assert err.startswith("OutputsError: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()


def set_field(document, portal, dotted, value):
    target = document["portals"][portal]
    *parents, last = dotted.split(".")
    for part in parents:
        target = target[int(part)] if part.isdigit() else target[part]
    if value is DELETE:
        del target[int(last) if last.isdigit() else last]
    elif last.isdigit():
        target[int(last)] = value
    else:
        target[last] = value


class _Delete:
    """The field is removed; its repr gives a test id that is the same in every run (pytest-xdist needs that)."""

    def __repr__(self) -> str:
        return "DELETE"


DELETE = _Delete()

# (portal, field, value, what the message says after "portals.<portal>.<field>: ")
MUTATIONS = [
    # wrong JSON types (tracebacks before the output contract)
    ("hr", "permissions", "Mail.Read", "must be a list"),
    ("hr", "permissions.0", "Mail.Read", "must be an object"),
    ("hr", "permissions.0.type", "Delegated", "must be one of Scope | Role"),
    ("hr", "redirectUris", "https://intrexx.example.com/hr", "must be a list"),
    ("hr", "redirectUris.0", 42, "must be a string"),
    ("team", "mailboxScope", "all", "must be an object"),
    ("team", "mailboxScope.groupId", [GUID], "must be a string"),
    ("hr", "cloud", "mars", "must be one of global | usgovernment | dod | china"),
    ("hr", "cloud", ["global"], "must be one of global | usgovernment | dod | china"),
    ("hr", "environment", {"name": "dev"}, "must be a string"),
    ("hr", "environment", None, "missing"),
    ("hr", "signIn", "yes", "must be true or false"),
    ("hr", "secretRotationDays", 90.5, "must be a whole number"),
    ("hr", "secretExpiresAt", "soon", "must be an ISO 8601 date"),
    ("hr", "secretExpiresAt", "2026-02-30", "is not a calendar date"),
    ("legacy", "ewsUrl", DELETE, "missing (required for connector exchange)"),
    ("hr", "signInRedirectUri", DELETE, "missing (required when signIn is true)"),
    # what the type check cannot see
    ("hr", "tokenEndpoint", "http://login.microsoftonline.com/t/oauth2/v2.0/token", "must use https"),
    ("hr", "tokenEndpoint", "https://evil^host/t", "WHATWG"),
    ("hr", "authorityHost", "https://login.microsoftonline.com/extra/path", "must not have a path"),
    ("hr", "authorityHost", "https://[::1", "must be an https origin"),
    ("hr", "resource", "javascript:alert(1)", "must be an https URL"),
    ("hr", "redirectUris.0", "https://intrexx.example.com/hr/%2e%2e/admin", "'..' segments"),
    ("hr", "signInRedirectUri", "http://intrexx.example.com/login", "must use https"),
    ("legacy", "ewsUrl", "https://user:pw@outlook.office365.com/EWS/Exchange.asmx", "credentials"),
    ("hr", "tenantId", "not-a-guid", "must be a GUID"),
    ("hr", "clientId", "{" + GUID + "}", "must be a GUID"),
    ("hr", "secretKeyId", GUID.upper() + "\n", "must not contain control characters (U+000A)"),
    ("hr", "permissions.0.id", "Mail.Read", "must be a GUID"),
    ("team", "mailboxScope.groupId", "all-staff", "must be a GUID"),
    ("hr", "displayName", "Intrexx hr \x1b]0;owned\x07", "must not contain control characters (U+001B, U+0007)"),
    ("hr", "environment", "dev\u202eved", "must not contain control characters (U+202E)"),
    ("hr", "scopes.0", "Mail.Read\r\nX-Injected: 1", "must not contain control characters (U+000D, U+000A)"),
    ("team", "mailboxScope.groupId", None, "must hold exactly one of groupId or recipientFilter"),
    # issue 17: whole values only, each field checked by the kind it declares (components/contract.py)
    ("hr", "previousSecretKeyId", "{" + GUID + "}", "must be a GUID"),  # a field the hand-kept lists forgot
    ("hr", "tenantId", "urn:uuid:" + GUID, "must be a GUID"),
    ("hr", "clientId", GUID.replace("-", ""), "must be a GUID"),
    ("hr", "clientId", " " + GUID, "must be a GUID"),
    ("hr", "permissions.0.resourceAppId", "{" + GUID + "}", "must be a GUID"),
    ("hr", "issuer", "http://login.microsoftonline.com/t/v2.0", "must use https"),
    ("hr", "secretRotatesAt", "2026-01-01T::::", "must be an ISO 8601 date"),
    ("hr", "refreshTokensRequestedOn", "2026-01-01\n", "must be an ISO 8601 date"),
    ("hr", "portal", "hr\n", "must not contain control characters (U+000A)"),
    ("hr", "baseUrl", "https://intrexx.example.com/hr\n", "must not contain control characters (U+000A)"),
    ("hr", "permissions.0.name", "Mail.Read\u2066", "must not contain control characters (U+2066)"),
    ("hr", "redirectUris.1", "https://intrexx.example.com/hr/\u00e4", "reads the path as"),
]


@pytest.mark.parametrize(
    "portal, field, value, message", MUTATIONS, ids=[f"{p}.{f}={v!r}"[:60] for p, f, v, _ in MUTATIONS]
)
def test_every_bad_field_is_one_line_naming_portal_and_field(capsys, tmp_path, document, portal, field, value, message):
    set_field(document, portal, field, value)
    code, out, err = render(capsys, tmp_path, json.dumps(document))
    assert code == 2 and out == "", err
    assert err.startswith("OutputsError: portals.") and err.count("\n") == 1, err
    assert message in err, err
    name = field.split(".")[0]
    assert f"portals.{portal}.{name}" in err, err
    assert "\x1b" not in err and "\u202e" not in err
    assert not (tmp_path / "out").exists()
    for secret in document["clientSecrets"].values():
        assert secret not in err


def test_a_secret_that_is_not_a_string_is_refused(capsys, tmp_path, document):
    document["clientSecrets"]["hr"] = {"value": "x"}
    code, _, err = render(capsys, tmp_path, json.dumps(document))
    assert code == 2 and err == "OutputsError: clientSecrets.hr: missing\n"


def test_a_secret_copied_into_a_field_is_not_quoted_in_the_error(capsys, tmp_path, document):
    document["portals"]["hr"]["tokenEndpoint"] = "http://x/" + document["clientSecrets"]["hr"]
    code, _, err = render(capsys, tmp_path, json.dumps(document))
    assert code == 2 and "portals.hr.tokenEndpoint: must use https" in err
    assert document["clientSecrets"]["hr"] not in err and "[secret hidden]" in err


@pytest.mark.parametrize(
    "secret, shown",
    [
        ("abc\x07def", "U+0007"),
        ("abc\ndef", "U+000A"),
        ("abc\u202edef", "U+202E"),
        ("abc\ud800def", "U+D800"),
    ],
    ids=["bell", "line break", "bidi override", "lone surrogate"],
)
def test_a_secret_that_xml_or_a_terminal_would_change_is_refused_without_showing_it(
    capsys, tmp_path, document, secret, shown
):
    document["clientSecrets"]["hr"] = secret
    code, out, err = render(capsys, tmp_path, json.dumps(document))
    assert code == 2 and out == "" and err.count("\n") == 1, err
    assert err.startswith("OutputsError: clientSecrets.hr: must not contain control characters (")
    assert shown in err and "abc" not in err
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize("field", ["displayName", "environment", "permissions.0.name", "scopes.0"])
def test_a_lone_surrogate_in_any_text_is_refused_where_the_outputs_are_read(capsys, tmp_path, document, field):
    set_field(document, "hr", field, "x\udc80y")
    code, out, err = render(capsys, tmp_path, json.dumps(document))
    assert code == 2 and out == "" and "not lone surrogates (U+DC80)" in err and err.count("\n") == 1, err
