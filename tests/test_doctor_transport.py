"""doctor's transport against hostile answers and a missing credential (issues 16, 17 and 18); the hostile
shapes of what the checks read are in test_hostile_doctor.py.

Graph is the loopback stand-in (tests/graph_standin.py); the scenarios come from tests/test_doctor.py. Every
request doctor sends goes through transport.py: one session, in the calling thread, ended by its deadline."""

import json
import logging
import threading
import time

import pytest
from graph_standin import Fault, graph_standin_server
from test_doctor import DEPLOYER_APP, HR, TODAY, date_today, stack_file, tenant

from intrexx_connector.cli import main
from intrexx_connector.doctor import DoctorOptions, run_doctor
from intrexx_connector.graph import GraphLimits

CA_PATH = "/identity/conditionalAccess/policies"


@pytest.fixture(scope="module")
def standin():
    with graph_standin_server() as server:
        yield server


@pytest.fixture(autouse=True)
def environment(monkeypatch, standin):
    for name in ("ARM_CLIENT_ID", "AZURE_CLIENT_ID", "ARM_ENVIRONMENT", "CURL_CA_BUNDLE", "INTREXX_GRAPH_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", standin.ca_file)
    monkeypatch.setenv("INTREXX_EXCHANGE_TODAY", TODAY)


def run(standin, tmp_path, scenario, **limits):
    token = standin.add(scenario)
    options = DoctorOptions(
        stack_file(tmp_path, [HR]),
        date_today(),
        tmp_path,
        standin.origin,
        DEPLOYER_APP,
        limits=GraphLimits(**{"request_timeout": 1.0, "deadline": 15.0, **limits}),
    )
    report = run_doctor(options, {"INTREXX_GRAPH_TOKEN": token})
    return {c.id: c for c in report.checks}, report, token


def test_json_nested_deeper_than_python_recurses_fails_that_check_in_one_line(standin, tmp_path):
    deep = b'{"value": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    checks, _, _ = run(standin, tmp_path, tenant(faults={CA_PATH: Fault(200, deep)}))
    failed = checks["conditional-access"]
    assert failed.status == "fail" and failed.detail.count("\n") == 0, failed
    assert "nested too deeply" in failed.detail
    assert checks["app-management-policy"].status == "pass"  # the other checks went on


def test_an_error_body_nested_too_deeply_is_still_the_status_it_came_with(standin, tmp_path):
    deep = b'{"error": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    checks, _, _ = run(standin, tmp_path, tenant(faults={CA_PATH: Fault(400, deep)}))
    assert checks["conditional-access"].detail == f"could not read Microsoft Graph: /v1.0{CA_PATH}: HTTP 400"


def test_every_read_goes_through_one_session_in_the_calling_thread(standin, tmp_path, monkeypatch):
    import requests

    sessions, threads = [], []
    original = requests.Session.request

    def counting(session, method, url, *args, **kwargs):
        sessions.append(id(session))
        threads.append(threading.current_thread())
        return original(session, method, url, *args, **kwargs)

    monkeypatch.setattr(requests.Session, "request", counting)
    _, report, _ = run(standin, tmp_path, tenant())
    assert report.graph_requests == len(sessions) > 5
    assert len(set(sessions)) == 1 and set(threads) == {threading.current_thread()}


def client_threads() -> set:
    """Threads but the stand-in's own (ThreadingHTTPServer answers each request in a `process_request_thread`)."""
    return {t for t in threading.enumerate() if "process_request_thread" not in t.name}


def test_a_request_that_times_out_leaves_no_thread_behind(standin, tmp_path):
    before = client_threads()
    started = time.monotonic()
    checks, _, _ = run(standin, tmp_path, tenant(faults={CA_PATH: Fault(200, {"value": []}, delay=2.5)}))
    assert "no complete answer within 1 s" in checks["conditional-access"].detail
    assert time.monotonic() - started < 2.4
    assert client_threads() == before


class ChainDump(Exception):
    pass


@pytest.fixture
def no_credential(monkeypatch):
    """DefaultAzureCredential replaced (the real one would probe the managed identity endpoint, an address tests
    must not reach) by one that fails as the real one does: the whole chain logged at WARNING and in the error."""
    import azure.identity

    asked = {}
    chain = [
        "DefaultAzureCredential failed to retrieve a token from the included credentials.",
        "Attempted credentials:",
        "\tEnvironmentCredential: EnvironmentCredential authentication unavailable. Environment variables are not "
        "fully configured.",
        "\tManagedIdentityCredential: ManagedIdentityCredential authentication unavailable, no response from the "
        "IMDS endpoint.",
        "\tAzureCliCredential: Please run 'az login' to set up an account",
        "To mitigate this issue, please refer to the troubleshooting guidelines here at "
        "https://aka.ms/azsdk/python/identity/defaultazurecredential/troubleshoot.",
    ]

    class NoCredential:
        def __init__(self, **kwargs):
            asked.update(kwargs)

        def get_token(self, *scopes):
            logging.getLogger("azure.identity._credentials.chained").warning("\n".join(chain))
            raise ChainDump("\n".join(chain))

    monkeypatch.setattr(azure.identity, "DefaultAzureCredential", NoCredential)
    return asked


def doctor_without_token(tmp_path, capfd, *extra):
    stack = stack_file(tmp_path, [HR])
    code = main(["doctor", "--stack", stack, "--project-dir", str(tmp_path), "--timeout", "5", *extra])
    return code, capfd.readouterr()


def test_without_credentials_doctor_says_so_in_a_few_lines(tmp_path, capfd, no_credential):
    code, captured = doctor_without_token(tmp_path, capfd)
    assert code == 1 and captured.err == "", captured.err  # nothing of azure-identity's log reaches stderr
    lines = captured.out.splitlines()
    assert len(lines) <= 5, captured.out
    assert "azure-identity found no usable credential (ChainDump: DefaultAzureCredential failed" in captured.out
    assert "--verbose shows each credential's answer" in captured.out
    assert "ManagedIdentityCredential" not in captured.out
    # azure-identity's HTTP goes through transport.py's session, which doctor owns and closes.
    assert no_credential["transport"].session is not None and no_credential["transport"]._session_owner is False


def test_verbose_shows_each_credentials_answer(tmp_path, capfd, no_credential):
    code, captured = doctor_without_token(tmp_path, capfd, "--verbose")
    assert code == 1 and captured.err == "", captured.err
    assert "ManagedIdentityCredential authentication unavailable" in captured.out
    assert "AzureCliCredential: Please run 'az login'" in captured.out
    assert captured.out.count("EnvironmentCredential: EnvironmentCredential") == 1  # the log and the error, once


def test_json_output_without_credentials_is_one_document(tmp_path, capfd, no_credential):
    code, captured = doctor_without_token(tmp_path, capfd, "--json")
    assert code == 1 and captured.err == ""
    (check,) = json.loads(captured.out)["checks"]
    assert check["status"] == "fail" and "\n" not in check["detail"]
