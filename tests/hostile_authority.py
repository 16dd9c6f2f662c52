"""A hostile identity provider on loopback, beside the honest one in tests/idp (issue 13).

Three servers share one collector of every request they receive (server, method, path, headers, body):

* `authority`: HTTPS on 127.0.0.1, the authority verify is pointed at (`--authority-host`);
* `elsewhere`: HTTPS on another port, addressed as `localhost`: another host, which must never see the secret;
* `plain`: plain HTTP on 127.0.0.1, which must never see it either.

The authority misbehaves per tenant: `tenant(mode)` gives the tenant id (a GUID) whose discovery, token and
device code endpoints behave as `mode` says (see `HostileHandler`). `elsewhere` and `plain` answer every request
with a token, as a thief would, so that a client that talks to them reports success. TLS uses the throwaway CA
of idp_fixture; `session()` trusts it.
"""

from __future__ import annotations

import base64
import contextlib
import http.server
import json
import ssl
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote_plus

import requests
from idp_fixture import make_ca_and_server_cert

MODE_NAMESPACE = uuid.UUID("2f0d8f34-36b5-4a8e-9d8c-4e1f0f2b9c11")
DRIP_INTERVAL = 0.5
DRIP_LIMIT = 120.0  # a dripping answer ends by itself after this, whatever the client does


@dataclass(frozen=True)
class Seen:
    server: str
    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def text(self) -> str:
        return f"{self.method} {self.path}\n{self.headers}\n{self.body.decode('utf-8', 'replace')}"


def fake_jwt(claims: object) -> str:
    def part(value: bytes) -> str:
        return base64.urlsafe_b64encode(value).rstrip(b"=").decode()

    payload = claims if isinstance(claims, bytes) else json.dumps(claims).encode()
    return ".".join((part(b'{"alg":"none"}'), part(payload), part(b"sig")))


class HostileHandler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: HostileServer

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._handle(b"")

    def do_POST(self):
        length = int(self.headers.get("Content-Length") or 0)
        self._handle(self.rfile.read(length) if length else b"")

    def _handle(self, body: bytes) -> None:
        hostile = self.server.hostile
        hostile.seen.append(Seen(self.server.role, self.command, self.path, dict(self.headers), body))
        if self.server.role != "authority":
            return self._json(
                200, {"access_token": fake_jwt({"stolen": True}), "token_type": "Bearer", "expires_in": 3599}
            )
        tenant, _, rest = self.path.lstrip("/").partition("/")
        mode = hostile.modes.get(tenant, "honest")
        if rest.startswith("v2.0/.well-known/openid-configuration"):
            return self._discovery(mode, tenant)
        if rest.startswith("oauth2/v2.0/token"):
            return self._token(mode, tenant, body)
        if rest.startswith("oauth2/v2.0/devicecode"):
            return self._json(200, {"error": "invalid_request", "error_description": "no device flow here"})
        return self._json(404, {"error": "not_found"})

    # -- discovery --------------------------------------------------------------------------------------

    def _discovery(self, mode: str, tenant: str) -> None:
        hostile = self.server.hostile
        base = f"{hostile.origin}/{tenant}"
        document: object = {
            "issuer": f"{base}/v2.0",
            "authorization_endpoint": f"{base}/oauth2/v2.0/authorize",
            "token_endpoint": f"{base}/oauth2/v2.0/token",
            "device_authorization_endpoint": f"{base}/oauth2/v2.0/devicecode",
            "jwks_uri": f"{base}/discovery/v2.0/keys",
        }
        assert isinstance(document, dict)
        elsewhere = {
            "token-elsewhere": f"{hostile.elsewhere_origin}/{tenant}/oauth2/v2.0/token",
            "token-other-port": f"https://127.0.0.1:{hostile.elsewhere.port}/{tenant}/oauth2/v2.0/token",
            "token-plain-http": f"{hostile.plain_origin}/{tenant}/oauth2/v2.0/token",
            "token-userinfo-trick": f"https://127.0.0.1:{hostile.port}@localhost:{hostile.elsewhere.port}/t/token",
        }
        if mode in elsewhere:
            document["token_endpoint"] = elsewhere[mode]
        elif mode == "device-elsewhere":
            document["device_authorization_endpoint"] = f"{hostile.elsewhere_origin}/{tenant}/oauth2/v2.0/devicecode"
        elif mode == "discovery-redirect":
            return self._redirect(302, f"{hostile.elsewhere_origin}/{tenant}/v2.0/.well-known/openid-configuration")
        elif mode == "discovery-empty":
            document = {}
        elif mode == "discovery-list":
            document = [document]
        elif mode == "discovery-token-endpoint-number":
            document["token_endpoint"] = 42
        elif mode == "discovery-not-json":
            return self._text(200, "text/html", "<html>sign in to the Wi-Fi first</html>")
        elif mode == "discovery-drip-headers":
            return self._drip_headers()
        self._json(200, document)

    # -- token ------------------------------------------------------------------------------------------

    def _token(self, mode: str, tenant: str, body: bytes) -> None:
        hostile = self.server.hostile
        text = body.decode("utf-8", "replace")
        redirects = {
            "redirect-307-elsewhere": (307, f"{hostile.elsewhere_origin}/steal"),
            "redirect-307-plain": (307, f"{hostile.plain_origin}/steal"),
            "redirect-308-elsewhere": (308, f"{hostile.elsewhere_origin}/steal"),
            "redirect-302-elsewhere": (302, f"{hostile.elsewhere_origin}/steal"),
        }
        token = fake_jwt({"aud": "x", "tid": tenant, "roles": [], "exp": int(time.time()) + 3600})
        answers: dict[str, tuple[int, object]] = {
            "echo-body": (400, {"error": "invalid_client", "error_description": text, "error_codes": [9999]}),
            "echo-body-decoded": (
                400,
                {"error": "invalid_client", "error_description": unquote_plus(text), "error_codes": [9999]},
            ),
            "echo-body-json": (400, {"error": "invalid_client", "error_description": json.dumps(text)}),
            "echo-in-error": (400, {"error": text, "error_description": "bad"}),
            "echo-in-aadsts": (400, {"error": "invalid_client", "error_description": f"AADSTS7000215: {text}"}),
            "error-codes-string": (400, {"error": "invalid_client", "error_codes": "700016"}),
            "error-codes-mixed": (400, {"error": "invalid_client", "error_codes": [700016, "x"]}),
            "error-codes-bool": (400, {"error": "invalid_client", "error_codes": [True]}),
            "error-description-list": (400, {"error": "invalid_client", "error_description": ["a", "b"]}),
            "error-number": (400, {"error": 5}),
            "access-token-number": (200, {"access_token": 12345, "token_type": "Bearer", "expires_in": 3599}),
            "access-token-list": (200, {"access_token": ["a"], "token_type": "Bearer", "expires_in": 3599}),
            "expires-in-text": (200, {"access_token": token, "token_type": "Bearer", "expires_in": "soon"}),
            "jwt-payload-list": (200, {"access_token": fake_jwt([1, 2]), "token_type": "Bearer", "expires_in": 3599}),
            "jwt-payload-not-json": (
                200,
                {"access_token": fake_jwt(b"\xff{"), "token_type": "Bearer", "expires_in": 3599},
            ),
            "jwt-roles-string": (
                200,
                {"access_token": fake_jwt({"roles": "Mail.ReadWrite"}), "token_type": "Bearer", "expires_in": 3599},
            ),
            "jwt-roles-mixed": (
                200,
                {"access_token": fake_jwt({"roles": [1, "Mail.Read"]}), "token_type": "Bearer", "expires_in": 3599},
            ),
            "answer-list": (200, [{"access_token": token}]),
            "answer-null": (400, None),
            "honest": (200, {"access_token": token, "token_type": "Bearer", "expires_in": 3599}),
        }
        if mode in redirects:
            return self._redirect(*redirects[mode])
        if mode == "echo-html":
            return self._text(400, "text/html", f"<html><body>Bad request: <pre>{text}</pre></body></html>")
        if mode == "echo-500":
            return self._text(500, "text/plain", f"upstream failed for {text}")
        if mode == "answer-not-json":
            return self._text(200, "text/plain", "ok")
        if mode == "answer-huge":
            return self._text(200, "application/json", json.dumps({"access_token": "a" * 3_000_000}))
        if mode == "drip-headers":
            return self._drip_headers()
        if mode == "drip-body":
            return self._drip_body()
        status, document = answers.get(mode, answers["honest"])
        self._json(status, document)

    # -- answers ----------------------------------------------------------------------------------------

    def _json(self, status: int, document: object) -> None:
        self._text(status, "application/json; charset=utf-8", json.dumps(document))

    def _text(self, status: int, content_type: str, text: str) -> None:
        data = text.encode("utf-8")
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _redirect(self, status: int, location: str) -> None:
        self.send_response(status)
        self.send_header("Location", location)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def _drip(self, data_before: bytes, drop: bytes) -> None:
        self.close_connection = True
        stop, started = self.server.hostile.stop, time.monotonic()
        with contextlib.suppress(OSError, ssl.SSLError):
            self.wfile.write(data_before)
            self.wfile.flush()
            while not stop.is_set() and time.monotonic() - started < DRIP_LIMIT:
                self.wfile.write(drop)
                self.wfile.flush()
                stop.wait(DRIP_INTERVAL)

    def _drip_headers(self) -> None:
        self._drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-Slow: ", b"a")

    def _drip_body(self) -> None:
        self._drip(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", b" ")


class HostileServer(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, hostile: HostileAuthority, role: str, tls: ssl.SSLContext | None):
        self.hostile, self.role = hostile, role
        super().__init__(("127.0.0.1", 0), HostileHandler)
        if tls is not None:
            self.socket = tls.wrap_socket(self.socket, server_side=True, do_handshake_on_connect=False)
        self.port = self.server_address[1]
        self._thread = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def handle_error(self, request, client_address):
        pass  # a client that hangs up on a dripping answer is the point of that answer

    def stop(self) -> None:
        self.shutdown()
        self.server_close()
        self._thread.join()


class HostileAuthority:
    def __init__(self) -> None:
        self._workdir = tempfile.mkdtemp(prefix="test-hostile-")
        self.ca_file, cert, key = make_ca_and_server_cert(self._workdir)
        tls = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        tls.load_cert_chain(cert, key)
        self.seen: list[Seen] = []
        self.modes: dict[str, str] = {}
        self.stop = threading.Event()
        self.authority = HostileServer(self, "authority", tls)
        self.elsewhere = HostileServer(self, "elsewhere", tls)
        self.plain = HostileServer(self, "plain", None)

    @property
    def port(self) -> int:
        return self.authority.port

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.authority.port}"

    @property
    def elsewhere_origin(self) -> str:
        return f"https://localhost:{self.elsewhere.port}"

    @property
    def plain_origin(self) -> str:
        return f"http://127.0.0.1:{self.plain.port}"

    def tenant(self, mode: str) -> str:
        tenant = str(uuid.uuid5(MODE_NAMESPACE, mode))
        self.modes[tenant] = mode
        return tenant

    def session(self) -> requests.Session:
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_file
        return session

    def seen_by(self, tenant: str) -> list[Seen]:
        return [s for s in self.seen if tenant in s.path or s.server != "authority"]

    def close(self) -> None:
        self.stop.set()
        for server in (self.authority, self.elsewhere, self.plain):
            server.stop()
        with contextlib.suppress(OSError):
            for path in Path(self._workdir).iterdir():
                path.unlink()
            Path(self._workdir).rmdir()
