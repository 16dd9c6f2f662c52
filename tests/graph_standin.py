"""A loopback Microsoft Graph stand-in for doctor's tests.

Standard library `http.server` over HTTPS on 127.0.0.1, with a throwaway CA made like the OpenID provider's
(`idp_fixture.make_ca_and_server_cert`). It serves fixture documents in Graph's JSON shapes under `/v1.0`:

* collections as `{"@odata.context", "value": [...], "@odata.nextLink": ...}`, `page_size` objects per page and,
  by default, an empty first page, so that whatever a test looks for arrives on page 2 or later; `$filter` with
  `<field> eq '<value>'` (OData quotes doubled) is applied, as Graph does for displayName and appId;
* errors as `{"error": {"code", "message"}}`; 401 `InvalidAuthenticationToken` without a known bearer token;
  405 for anything but GET (doctor must only read);
* per-path faults: any status with `Retry-After` and other headers, a raw body (not JSON, `value` not a list,
  huge), a delay before the answer, a body dripped byte by byte; per-collection nextLink overrides (another host,
  endless paging).

Scenarios are selected by bearer token: `standin.add(scenario)` returns a fresh token that selects it, so tests
sharing the module's server cannot see each other. Every request is logged with its method, path, query and
whether it carried that token (`standin.requests(token)`).
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import secrets
import shutil
import ssl
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, quote, urlsplit

import pytest
from idp_fixture import make_ca_and_server_cert


@dataclass
class Fault:
    """What one path answers instead of its document, `times` times (None: always)."""

    status: int = 500
    body: object = None  # bytes as they are, anything else as JSON; None: a Graph error body for the status
    headers: dict = field(default_factory=dict)
    times: int | None = None
    delay: float = 0.0  # seconds before anything is sent
    drip: float = 0.0  # seconds between single bytes of the body (headers are sent at once)


@dataclass
class Scenario:
    documents: dict  # path below /v1.0 -> an object (a single resource) or a list (a collection)
    faults: dict = field(default_factory=dict)  # path -> Fault
    next_links: dict = field(default_factory=dict)  # path -> "endless" or a URL put on every page
    page_size: int = 1
    empty_first_page: bool = True


@dataclass(frozen=True)
class LoggedRequest:
    method: str
    path: str
    query: dict
    token: str | None
    at: float


_FILTER = re.compile(r"^\s*(\w+)\s+eq\s+'((?:[^']|'')*)'\s*$")
_ERROR_CODES = {
    400: "BadRequest",
    401: "InvalidAuthenticationToken",
    403: "Authorization_RequestDenied",
    404: "Request_ResourceNotFound",
    405: "MethodNotAllowed",
    429: "TooManyRequests",
    500: "InternalServerError",
    503: "ServiceUnavailable",
    504: "GatewayTimeout",
}


class GraphStandin:
    def __init__(self) -> None:
        self._workdir = tempfile.mkdtemp(prefix="graph-standin-")
        self.ca_file, cert, key = make_ca_and_server_cert(self._workdir)
        self._scenarios: dict[str, Scenario] = {}
        self._fault_counts: dict[tuple, int] = {}
        self._log: list[LoggedRequest] = []
        self._lock = threading.Lock()
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self._server = _Server(("127.0.0.1", 0), _Handler)
        self._server.standin = self
        # The handshake happens in the handler's thread: a client that never completes it blocks nobody else.
        self._server.socket = context.wrap_socket(self._server.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.05}, name="graph-standin", daemon=True
        )

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join()
        shutil.rmtree(self._workdir, ignore_errors=True)

    def add(self, scenario: Scenario) -> str:
        """Register a scenario; the returned bearer token selects it."""
        token = "standin-" + secrets.token_urlsafe(24)
        with self._lock:
            self._scenarios[token] = copy.deepcopy(scenario)
        return token

    def add_token(self, token: str, scenario: Scenario) -> str:
        """Register a scenario under a given token (a JWT-shaped one, for identity tests)."""
        with self._lock:
            self._scenarios[token] = copy.deepcopy(scenario)
        return token

    def requests(self, token: str | None = None) -> list[LoggedRequest]:
        with self._lock:
            return [r for r in self._log if token is None or r.token == token]

    # used by the handler ---------------------------------------------------------------------------------------

    def _record(self, request: LoggedRequest) -> None:
        with self._lock:
            self._log.append(request)

    def _scenario(self, token: str | None) -> Scenario | None:
        with self._lock:
            return self._scenarios.get(token) if token else None

    def _take_fault(self, token: str, scenario: Scenario, path: str) -> Fault | None:
        fault = scenario.faults.get(path)
        if fault is None:
            return None
        with self._lock:
            used = self._fault_counts.get((token, path), 0)
            if fault.times is not None and used >= fault.times:
                return None
            self._fault_counts[(token, path)] = used + 1
        return fault


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    block_on_close = False
    standin: GraphStandin

    def handle_error(self, request, client_address):  # a client that hangs up is not a test failure
        pass


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # headers and body go out in two writes: no 40 ms delayed-ACK stall
    server: _Server

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._handle()

    def do_POST(self):
        self._handle()

    def do_PATCH(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def _handle(self) -> None:
        standin = self.server.standin
        url = urlsplit(self.path)
        query = parse_qs(url.query, keep_blank_values=True)
        auth = self.headers.get("Authorization", "")
        token = auth[len("Bearer ") :] if auth.startswith("Bearer ") else None
        standin._record(LoggedRequest(self.command, url.path, query, token, time.monotonic()))
        if self.command != "GET":
            return self._error(405, "doctor must only read")
        scenario = standin._scenario(token)
        if scenario is None:
            message = "Access token is empty." if not auth else "Invalid token (not one of the stand-in's)."
            return self._error(401, message, {"WWW-Authenticate": 'Bearer realm=""'})
        if not url.path.startswith("/v1.0/"):
            return self._error(400, f"Invalid version: {url.path.split('/')[1] if '/' in url.path else ''}")
        path = url.path[len("/v1.0") :]
        fault = standin._take_fault(token, scenario, path)
        if fault is not None:
            return self._fault(fault)
        document = scenario.documents.get(path)
        if document is None:
            return self._error(
                404,
                f"Resource '{path}' does not exist or one of its queried reference-property objects are not present.",
            )
        if isinstance(document, list):
            return self._collection(scenario, path, document, query)
        self._json(200, {"@odata.context": f"{standin.origin}/v1.0/$metadata#{path.strip('/')}/$entity", **document})

    def _collection(self, scenario: Scenario, path: str, items: list, query: dict) -> None:
        standin = self.server.standin
        filter_text = query.get("$filter", [None])[0]
        if filter_text is not None:
            match = _FILTER.match(filter_text)
            if not match:
                return self._error(400, f"Invalid filter clause: {filter_text[:80]}")
            key, value = match.group(1), match.group(2).replace("''", "'")
            items = [i for i in items if isinstance(i, dict) and str(i.get(key, "")).casefold() == value.casefold()]
        token = query.get("$skiptoken", [None])[0]
        base = {k: v[0] for k, v in query.items() if k != "$skiptoken"}

        def link(skip: int) -> str:
            params = "&".join(f"{k}={quote(v, safe=chr(39))}" for k, v in {**base, "$skiptoken": str(skip)}.items())
            return f"{standin.origin}/v1.0{path}?{params}"

        if token is None and scenario.empty_first_page:
            page, next_skip = [], 0
        else:
            skip = int(token or 0)
            page = items[skip : skip + scenario.page_size]
            next_skip = skip + scenario.page_size if skip + scenario.page_size < len(items) else None
        body = {"@odata.context": f"{standin.origin}/v1.0/$metadata#{path.strip('/')}", "value": page}
        override = scenario.next_links.get(path)
        if override == "endless":
            body["@odata.nextLink"] = link(int(token or 0) + 1)
        elif override is not None:
            body["@odata.nextLink"] = override
        elif next_skip is not None:
            body["@odata.nextLink"] = link(next_skip)
        self._json(200, body)

    def _fault(self, fault: Fault) -> None:
        if fault.delay:
            time.sleep(fault.delay)
        if isinstance(fault.body, bytes):
            body, content_type = fault.body, "text/html; charset=utf-8"
        elif fault.body is None:
            body = json.dumps(
                {
                    "error": {
                        "code": _ERROR_CODES.get(fault.status, "UnknownError"),
                        "message": f"stand-in answer {fault.status}",
                    }
                }
            ).encode()
            content_type = "application/json"
        else:
            body, content_type = json.dumps(fault.body).encode(), "application/json"
        headers = {"Content-Type": content_type, **fault.headers}
        self._send(fault.status, body, headers, drip=fault.drip)

    def _error(self, status: int, message: str, headers: dict | None = None) -> None:
        self._json(
            status,
            {
                "error": {
                    "code": _ERROR_CODES.get(status, "UnknownError"),
                    "message": message,
                    "innerError": {"date": "2026-11-24T10:00:00", "request-id": "00000000-0000-4000-8000-000000000000"},
                }
            },
            headers,
        )

    def _json(self, status: int, document, headers: dict | None = None) -> None:
        self._send(
            status,
            json.dumps(document).encode(),
            {"Content-Type": "application/json;odata.metadata=minimal", **(headers or {})},
        )

    def _send(self, status: int, body: bytes, headers: dict, drip: float = 0.0) -> None:
        try:
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            if not drip:
                self.wfile.write(body)
                return
            self.wfile.flush()
            for index in range(len(body)):
                self.wfile.write(body[index : index + 1])
                self.wfile.flush()
                time.sleep(drip)
        except (BrokenPipeError, ConnectionResetError, ssl.SSLError, OSError):
            self.close_connection = True


@contextlib.contextmanager
def graph_standin_server() -> Iterator[GraphStandin]:
    standin = GraphStandin()
    standin.start()
    try:
        yield standin
    finally:
        standin.stop()


@pytest.fixture(scope="module")
def graph_standin() -> Iterator[GraphStandin]:
    with graph_standin_server() as standin:
        yield standin
