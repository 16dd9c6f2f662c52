"""verify against a hostile identity provider (issue 13, part 1; tests/hostile_authority.py).

Every case asserts where the requests went (the servers' collector), not only what verify said: no request
carrying the secret, and in fact no request at all, reaches a host other than the authority's."""

import io
import json
import os
import signal
import socket
import subprocess
import sys
import time

import pytest
import requests
import urllib3
from helpers import ROOT
from hostile_authority import HostileAuthority
from outputs_fixtures import HR, WIDE, stack_outputs

from components.facts import PLACEHOLDER_SECRET
from components.urls import parse_web_url
from intrexx_connector import transport
from intrexx_connector.cli import _ProgressLine, main
from intrexx_connector.secrets import contains_secret
from intrexx_connector.stack_outputs import parse_outputs
from intrexx_connector.verify import UNREACHABLE_TRIES, Progress, VerifyOptions, verify_portals

# Characters that form encoding changes ('+', '/', '=', ' ', '~'), as an echo would carry them.
SECRET = "Q8~hostile.secret+with/slash=and space_0123456789"


@pytest.fixture(scope="module")
def hostile():
    server = HostileAuthority()
    yield server
    server.close()


def outputs_for(hostile, modes: dict[str, str], portal=HR) -> dict:
    """Outputs with one portal per mode (named hr, hr2, ...), each in the tenant that misbehaves that way."""
    template = stack_outputs([portal])
    ((name, fields),) = template["portals"].items()
    document = {"portals": {}, "clientSecrets": {}}
    for index, mode in enumerate(modes.values()):
        portal_name = name if index == 0 else f"{name}{index + 1}"
        # The tenant everywhere it appears: the outputs contract holds the authority and endpoints to it.
        in_tenant = json.loads(json.dumps(fields).replace(fields["tenantId"], hostile.tenant(mode)))
        document["portals"][portal_name] = {**in_tenant, "portal": portal_name}
        document["clientSecrets"][portal_name] = SECRET
    return document


def verify(hostile, mode, portal=HR, **options):
    document = outputs_for(hostile, {"only": mode}, portal)
    lines: list[str] = []
    options.setdefault("timeout", 3.0)
    options.setdefault("http_client", hostile.session())
    before = len(hostile.seen)
    started = time.monotonic()
    (result,) = verify_portals(
        parse_outputs(json.dumps(document)),
        VerifyOptions(authority_host=hostile.origin, **options),
        lambda event: lines.append(event.line),
    )
    return result, lines, hostile.seen[before:], time.monotonic() - started


def assert_only_the_authority_was_asked(seen):
    assert seen, "the authority was not even asked"
    elsewhere = [s for s in seen if s.server != "authority"]
    assert not elsewhere, [s.text() for s in elsewhere]


def assert_no_secret_in(*texts):
    for text in texts:
        assert not contains_secret(text, [SECRET]), text


def test_an_honest_authority_still_gives_a_token(hostile):
    result, _, seen, _ = verify(hostile, "honest")
    assert result.ok, result
    assert_only_the_authority_was_asked(seen)
    assert any(contains_secret(s.text(), [SECRET]) for s in seen if s.method == "POST")


REFUSED = {
    "token-elsewhere": "names the token endpoint https://localhost:",
    "token-other-port": "names the token endpoint https://127.0.0.1:",
    "token-plain-http": "names the token endpoint http://127.0.0.1:",
    "token-userinfo-trick": "names the token endpoint https://localhost:",
    "discovery-redirect": "answered GET with a redirect (HTTP 302 to https://localhost:",
    "redirect-307-elsewhere": "answered POST with a redirect (HTTP 307 to https://localhost:",
    "redirect-307-plain": "answered POST with a redirect (HTTP 307 to http://127.0.0.1:",
    "redirect-308-elsewhere": "answered POST with a redirect (HTTP 308 to https://localhost:",
    "redirect-302-elsewhere": "answered POST with a redirect (HTTP 302 to https://localhost:",
}


@pytest.mark.parametrize("mode, reason", REFUSED.items(), ids=REFUSED.keys())
def test_the_secret_goes_to_the_authority_only(hostile, mode, reason):
    result, lines, seen, elapsed = verify(hostile, mode)
    assert not result.ok and reason in result.reason, result
    assert result.attempts == 1 and elapsed < 2
    assert_only_the_authority_was_asked(seen)
    assert_no_secret_in(result.reason, *lines)


MALFORMED = {
    "discovery-empty": "the discovery document has no 'token_endpoint' string",
    "discovery-list": "the discovery document is not a JSON object",
    "discovery-token-endpoint-number": "the discovery document has no 'token_endpoint' string",
    "discovery-not-json": "the discovery document is not JSON (HTTP 200)",
    "error-codes-string": "has 'error_codes' that is not a list of numbers",
    "error-codes-mixed": "has 'error_codes' that is not a list of numbers",
    "error-codes-bool": "has 'error_codes' that is not a list of numbers",
    "error-description-list": "has 'error_description' that is not a string",
    "error-number": "has 'error' that is not a string",
    "access-token-number": "has 'access_token' that is not a string",
    "access-token-list": "has 'access_token' that is not a string",
    "expires-in-text": "has 'expires_in' that is not a number",
    "jwt-roles-string": "the token's 'roles' claim is not a list of strings",
    "jwt-roles-mixed": "the token's 'roles' claim is not a list of strings",
    "answer-list": "the token endpoint's answer is not a JSON object (HTTP 200)",
    "answer-null": "the token endpoint's answer is not a JSON object (HTTP 400)",
    "answer-not-json": "the token endpoint's answer is not JSON (HTTP 200)",
    "answer-huge": "answered with more than 1000000 bytes",
    "echo-html": "the token endpoint's answer is not JSON (HTTP 400)",
}


@pytest.mark.parametrize("mode, reason", MALFORMED.items(), ids=MALFORMED.keys())
def test_a_malformed_answer_is_a_clear_failure_of_that_portal(hostile, mode, reason):
    result, lines, seen, elapsed = verify(hostile, mode)
    assert not result.ok and reason in result.reason, result
    assert result.attempts == 1 and elapsed < 2
    assert_only_the_authority_was_asked(seen)
    assert_no_secret_in(result.reason, *lines)


def test_a_token_whose_payload_is_json_but_not_a_claims_object_has_no_roles(hostile):
    result, _, seen, _ = verify(
        hostile, "jwt-payload-list", portal=WIDE, timeout=1.2, min_interval=0.3, max_interval=0.3
    )
    assert not result.ok and "role missing from the token: Calendars.ReadWrite" in result.reason, result
    assert_only_the_authority_was_asked(seen)
    result, _, _, _ = verify(hostile, "jwt-payload-list")  # a delegated portal needs no claims
    assert result.ok, result


def test_a_token_that_cannot_be_decoded_is_opaque_and_says_so(hostile):
    """Microsoft: "Tokens that a Microsoft API receives might not always be a JWT that can be decoded". Such a token
    proves the registration works but not its roles: verify passes with a warning instead of waiting in vain."""
    result, _, seen, _ = verify(hostile, "jwt-payload-not-json", portal=WIDE, timeout=1.2)
    assert result.ok and result.warnings == ["roles not checkable (opaque token)"] and result.attempts == 1, result
    assert_only_the_authority_was_asked(seen)


ECHOES = ["echo-body", "echo-body-decoded", "echo-body-json", "echo-in-error", "echo-in-aadsts", "echo-html"]


@pytest.mark.parametrize("mode", ECHOES)
def test_an_answer_that_echoes_the_request_never_shows_the_secret(hostile, mode, tmp_path, capsys, monkeypatch):
    document = outputs_for(hostile, {"only": mode})
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(document))
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", hostile.ca_file)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    printed = []
    for extra in ([], ["--json"]):
        code = main(["verify", "--outputs", str(path), "--authority-host", hostile.origin, "--timeout", "2", *extra])
        captured = capsys.readouterr()
        assert code == 1, captured
        printed.append(captured.out + captured.err)
    report = json.loads(printed[1][: printed[1].rindex("}") + 1])
    assert not report["ok"] and report["portals"][0]["reason"]
    assert "Traceback" not in "".join(printed)
    assert_no_secret_in(*printed)
    echoed = [s for s in hostile.seen if document["portals"]["hr"]["tenantId"] in s.path and s.method == "POST"]
    assert echoed and all(contains_secret(s.text(), [SECRET]) for s in echoed)  # the secret was there to echo


def test_a_server_error_page_that_echoes_the_request_is_retried_without_showing_it(hostile):
    result, lines, seen, elapsed = verify(hostile, "echo-500", timeout=1.5, min_interval=0.3, max_interval=0.3)
    assert not result.ok and "gave up after 1.5 s" in result.reason and result.attempts >= 2
    assert elapsed < 1.5 + 1
    assert_only_the_authority_was_asked(seen)
    assert_no_secret_in(result.reason, *lines)


def test_the_device_code_endpoint_must_be_the_authoritys_too(hostile):
    result, _, seen, _ = verify(hostile, "device-elsewhere", device_code=True, on_device_flow=lambda p, f: None)
    # The discovery document is refused as a whole, already for the client credentials request.
    assert not result.ok, result
    assert "the discovery document names the device authorization endpoint https://localhost:" in result.reason
    assert_only_the_authority_was_asked(seen)


def cli(hostile, tmp_path, document, *argv, **popen):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(document))
    environment = {**os.environ, "PYTHONPATH": str(ROOT), "REQUESTS_CA_BUNDLE": hostile.ca_file}
    environment.pop("CURL_CA_BUNDLE", None)
    command = [sys.executable, "-m", "intrexx_connector", "verify", "--outputs", str(path)]
    return subprocess.Popen(
        [*command, "--authority-host", hostile.origin, *argv],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=environment,
        **popen,
    )


def test_verify_timeout_5_against_a_server_dripping_its_headers_ends_within_7_s(hostile, tmp_path):
    document = outputs_for(hostile, {"a": "drip-headers", "b": "discovery-drip-headers", "c": "drip-body"})
    started = time.monotonic()
    process = cli(hostile, tmp_path, document, "--timeout", "5")
    out, err = process.communicate(timeout=30)
    elapsed = time.monotonic() - started
    assert elapsed < 7, (elapsed, out, err)
    assert process.returncode == 1 and out.count("FAILED: gave up after 5 s") == 3, (out, err)
    assert "Traceback" not in err


def test_ctrl_c_with_several_portals_ends_within_a_second(hostile, tmp_path):
    document = outputs_for(hostile, {str(n): "drip-headers" for n in range(4)})
    tenants = {fields["tenantId"] for fields in document["portals"].values()}
    before = len(hostile.seen)
    process = cli(hostile, tmp_path, document, "--timeout", "60")
    try:
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            posts = [s for s in hostile.seen[before:] if s.method == "POST" and s.path.split("/")[1] in tenants]
            if len(posts) >= 4:
                break
            time.sleep(0.05)
        assert len(posts) >= 4, "verify never reached the token requests"
        time.sleep(0.3)
        interrupted = time.monotonic()
        process.send_signal(signal.SIGINT)
        out, err = process.communicate(timeout=10)
        elapsed = time.monotonic() - interrupted
    finally:
        process.kill()
    assert elapsed < 1.0, elapsed
    assert process.returncode == 130 and err.endswith("interrupted\n"), (out, err)
    assert "Traceback" not in err


# Every value points at loopback (port 9, where nothing listens), so that even a regression sends nothing out.
@pytest.mark.parametrize(
    "argv, message",
    [
        (["--timeout", "inf"], "must be a finite positive number"),
        (["--timeout", "1e309"], "must be a finite positive number"),
        (["--timeout", "nan"], "must be a finite positive number"),
        (["--timeout", "0"], "must be a finite positive number"),
        (["--timeout", "-5"], "must be a finite positive number"),
        (["--authority-host", "https://[::1"], "argument --authority-host"),
        (["--authority-host", "http://127.0.0.1:9"], "must use https"),
        (["--authority-host", "https://127.0.0.1:9/tenant"], "must not have a path"),
        (["--authority-host", "https://user@127.0.0.1:9"], "credentials"),
        (["--authority-host", "https://127.0.0.1:9\x1b[2J"], "control characters"),
    ],
)
def test_bad_verify_arguments_exit_2_before_anything_is_sent(capsys, tmp_path, argv, message):
    path = tmp_path / "outputs.json"
    path.write_text(json.dumps(stack_outputs([HR])))
    with pytest.raises(SystemExit) as caught:
        main(["verify", "--outputs", str(path), "--authority-host", "https://127.0.0.1:9", "--timeout", "1", *argv])
    err = capsys.readouterr().err
    assert caught.value.code == 2 and message in err and "Traceback" not in err, err
    assert "\x1b" not in err


def test_a_dripping_answer_ends_by_the_timeout_even_with_more_portals_than_workers(hostile):
    """Headers, the discovery document's headers or a body dripped a byte at a time: each portal ends by the
    run's one deadline, also the ones that waited for a free worker."""
    modes = ["drip-headers", "discovery-drip-headers", "drip-body", "drip-headers"]
    document = outputs_for(hostile, {str(n): mode for n, mode in enumerate(modes)})
    before = len(hostile.seen)
    started = time.monotonic()
    results = verify_portals(
        parse_outputs(json.dumps(document)),
        VerifyOptions(authority_host=hostile.origin, http_client=hostile.session(), timeout=2.0, max_workers=2),
    )
    assert time.monotonic() - started < 2.0 + 1.0
    assert len(results) == 4 and not any(result.ok for result in results)
    assert all("gave up after 2 s: no complete answer from the authority in time" in r.reason for r in results[:2])
    assert_only_the_authority_was_asked(hostile.seen[before:])


# Fail fast where no replication delay explains the failure (issue 18, item 6) ----------------------------------


@pytest.fixture
def closed_port():
    """A loopback port that is bound but not listening: a connection to it is refused. Held until the test ends,
    so that no other test (or xdist worker) can start listening on it meanwhile."""
    with socket.socket() as held:
        held.bind(("127.0.0.1", 0))
        yield held.getsockname()[1]


def test_a_refused_connection_fails_after_a_few_tries_not_the_timeout(closed_port):
    lines: list[str] = []
    started = time.monotonic()
    (result,) = verify_portals(
        parse_outputs(json.dumps(stack_outputs([HR]))),
        VerifyOptions(authority_host=f"https://127.0.0.1:{closed_port}", timeout=60),
        lambda event: lines.append(event.line),
    )
    assert not result.ok and result.attempts == UNREACHABLE_TRIES, result
    assert "refused the connection" in result.reason and "gave up after 3 tries" in result.reason
    assert time.monotonic() - started < 8
    assert len(lines) == UNREACHABLE_TRIES - 1


def test_a_certificate_verify_does_not_trust_fails_after_a_few_tries(hostile):
    untrusting = requests.Session()
    untrusting.trust_env = False  # the default CA bundle, which does not hold the test CA
    result, _, seen, elapsed = verify(hostile, "honest", timeout=60, http_client=untrusting)
    assert not result.ok and result.attempts == UNREACHABLE_TRIES, result
    assert "TLS with the authority" in result.reason and "REQUESTS_CA_BUNDLE" in result.reason
    assert elapsed < 8 and not any(s.method == "POST" for s in seen)


def test_an_unknown_host_name_is_a_lasting_failure():
    """Classified without a lookup: a test sends nothing but to loopback, and a DNS query may leave the host."""
    failure = urllib3.exceptions.NameResolutionError("login.invalid", None, socket.gaierror(-2, "Name unknown"))
    error = requests.ConnectionError(urllib3.exceptions.MaxRetryError(None, "/", failure))
    unreachable = transport._unreachable(error, "the authority", parse_web_url("https://login.invalid"))
    assert unreachable.lasting and unreachable.reason == (
        "the host name of the authority (https://login.invalid) is not found (DNS)"
    )
    broken = transport._unreachable(requests.ConnectionError("reset"), "the authority", parse_web_url("https://a.b"))
    assert not broken.lasting


def test_the_offline_plans_placeholder_secret_is_refused_before_anything_is_sent(hostile, tmp_path):
    document = outputs_for(hostile, {"only": "honest"})
    document["clientSecrets"]["hr"] = PLACEHOLDER_SECRET
    before = len(hostile.seen)
    process = cli(hostile, tmp_path, document, "--timeout", "60")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 2 and out == "", (out, err)
    assert err.startswith("UsageError: portal(s) hr: the client secret is the offline plan's placeholder")
    assert len(err.splitlines()) == 1
    assert hostile.seen[before:] == []


def test_waiting_in_a_log_is_one_line_per_change_not_one_per_retry(hostile, tmp_path):
    """Not a terminal (CI): a line when a portal starts waiting for a reason, none for each retry."""
    process = cli(hostile, tmp_path, outputs_for(hostile, {"only": "echo-500"}), "--timeout", "4")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1 and "gave up after 4 s" in out, (out, err)
    waiting = [line for line in err.splitlines() if line.startswith("hr: waiting: ")]
    assert len(waiting) == 1 and len(err.splitlines()) == 1, err


def test_waiting_on_a_terminal_rewrites_one_line():
    class Terminal(io.StringIO):
        def isatty(self):
            return True

    terminal = Terminal()
    progress = _ProgressLine(terminal)
    for second in range(3):
        progress(Progress("hr", "AADSTS700016", f"hr: AADSTS700016; retrying in 1.0 s ({second}/300 s)"))
    progress.clear()
    assert "\n" not in terminal.getvalue() and terminal.getvalue().count("\r\x1b[K") == 4
    assert terminal.getvalue().endswith("\r\x1b[K")


def test_an_html_page_echoing_the_request_is_not_logged_to_stderr_by_msal(hostile, tmp_path):
    """In a real process: MSAL logs a token answer it cannot parse with logger.exception, which Python's
    last-resort handler prints to stderr (pytest's own log capture would hide that in-process)."""
    process = cli(hostile, tmp_path, outputs_for(hostile, {"only": "echo-html"}), "--timeout", "2")
    out, err = process.communicate(timeout=30)
    assert process.returncode == 1 and "FAILED" in out, (out, err)
    assert "Traceback" not in err
    assert_no_secret_in(out, err)
