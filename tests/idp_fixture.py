"""A local OpenID provider standing in for Microsoft Entra ID in tests.

``tests/idp/server.js`` runs oidc-provider (one provider per tenant) over HTTPS on
127.0.0.1 with a throwaway CA made here. It answers MSAL the way Entra does (AADSTS
error bodies, JWT access tokens with ``tid``/``roles``/``scp``) and also serves two
mailbox stand-ins that check the bearer token:

* ``GET  {origin}/graph/v1.0/me/mailFolders/inbox`` (also ``/users/{id}/...``),
  token audience ``{origin}/graph``; ``/me`` needs a delegated token.
* ``POST {origin}/ews/Exchange.asmx`` (SOAP GetFolder, distinguished folder
  ``inbox``), token audience ``{origin}/ews``.

The audience of a token is the scope's resource: ``{origin}/graph/.default`` gives
``aud == {origin}/graph``. MSAL needs ``instance_discovery=False`` and HTTP that
trusts the test CA, either a session from ``idp.session()``::

    app = msal.ConfidentialClientApplication(
        client_id, client_credential=secret, authority=idp.authority(tenant),
        instance_discovery=False, http_client=idp.session(timeout=5))

(MSAL ignores ``timeout=`` when ``http_client=`` is given), or MSAL's own session
with ``REQUESTS_CA_BUNDLE=idp.ca_file`` and ``CURL_CA_BUNDLE`` unset in the
environment. MSAL itself keeps a 400 answer for 60 s and a 5xx answer for 5 s per
application object and replays it without asking the server again.

Entra behaviour the server emulates:

* a client is unknown (AADSTS700016) until ``replication_delay_seconds`` after it
  was (re-)posted; a wrong secret gives AADSTS7000215 (401); an unknown tenant gives
  AADSTS90002 on discovery and token requests;
* public clients do the device code flow (poll interval 1 s); the scripted user
  signs in and consents to the requested scopes through the provider's own pages;
* a confidential client registered with ``public_client_flows=True`` is an app with
  Entra's "Allow public client flows" on: the same client id does client credentials
  with its secret and the device code flow (and refresh) without one, tokens carrying
  that client id either way. With the setting off, a request without a secret gets
  AADSTS7000218 (401, ``invalid_client``), client credentials always do;
* ``delegated_scopes`` are the app's configured delegated permissions, bare
  (``"Mail.Read"``, valid for any resource) or full (``"{origin}/ews/EWS.AccessAsUser.All"``);
  ``{resource}/.default`` stands for all of them. Like Entra, one request may name
  only one resource (else AADSTS28000), and a refresh token also yields tokens for
  other resources whose permissions are configured (MSAL's ``acquire_token_silent``).

The state of the server (tenants, clients, faults, request counts) lives as long as
the process, which the ``identity_provider`` fixture keeps for the whole session of
one pytest-xdist worker (each worker runs a provider of its own, on a port the system
picks): give each test its own tenant id (e.g. ``str(uuid.uuid4())``), and never rely
on what a test before it registered, which may have run in another worker.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import functools
import ipaddress
import json
import os
import selectors
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO_ROOT = Path(__file__).resolve().parent.parent
IDP_DIR = REPO_ROOT / "tests" / "idp"
SERVER_JS = IDP_DIR / "server.js"
STARTUP_TIMEOUT = 20.0
INSTALL_HINT = "run `make test`, or install the test IdP with `npm ci --prefix tests/idp`"


def make_ca_and_server_cert(directory: str | os.PathLike) -> tuple[str, str, str]:
    """Write a throwaway CA and a server certificate for 127.0.0.1 / localhost.

    Returns ``(ca_pem_path, cert_path, key_path)``.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)
    not_before, not_after = now - datetime.timedelta(hours=1), now + datetime.timedelta(days=2)

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "intrexx-connector test CA")])
    ca_ski = x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key())
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=False,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(ca_ski, critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(not_before)
        .not_valid_after(not_after)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")), x509.DNSName("localhost")]),
            critical=False,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ca_ski), critical=False)
        .sign(ca_key, hashes.SHA256())
    )

    ca_path, cert_path, key_path = directory / "ca.pem", directory / "server.pem", directory / "server-key.pem"
    ca_path.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return str(ca_path), str(cert_path), str(key_path)


def missing_prerequisites(node: str | None = None, idp_dir: Path = IDP_DIR) -> str | None:
    """Why the test IdP cannot start here, or None when it can."""
    node = node or shutil.which("node")
    if not node or not Path(node).exists():
        return f"node (Node.js 20 or later) is not on PATH; {INSTALL_HINT}"
    if not (idp_dir / "node_modules" / "oidc-provider" / "package.json").is_file():
        return f"{idp_dir / 'node_modules' / 'oidc-provider'} is missing; {INSTALL_HINT}"
    return None


def jwt_claims(token: str) -> dict:
    """The payload of a JWT, not verified (tests compare claims, the APIs verify)."""
    payload = token.split(".")[1]
    return json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))


class IdentityProviderError(RuntimeError):
    pass


class IdentityProvider:
    """Runs ``node tests/idp/server.js`` for the duration of a ``with`` block."""

    def __init__(self, node: str | None = None, startup_timeout: float = STARTUP_TIMEOUT):
        self._node = node or shutil.which("node") or "node"
        self._startup_timeout = startup_timeout
        self._process: subprocess.Popen | None = None
        self._workdir: str | None = None
        self._control: requests.Session | None = None
        self.port: int | None = None
        self.ca_file: str | None = None
        self.log_file: str | None = None

    # -- lifecycle ---------------------------------------------------------

    def __enter__(self) -> IdentityProvider:
        self.start()
        return self

    def __exit__(self, *exc_info) -> None:
        self.stop()

    def start(self) -> None:
        problem = missing_prerequisites(self._node)
        if problem:
            raise IdentityProviderError(problem)
        self._workdir = tempfile.mkdtemp(prefix="test-idp-")
        self.ca_file, cert, key = make_ca_and_server_cert(self._workdir)
        self.log_file = os.path.join(self._workdir, "server.log")
        with open(self.log_file, "wb") as log:
            self._process = subprocess.Popen(
                [self._node, str(SERVER_JS), "--cert", cert, "--key", key, "--ca", self.ca_file],
                cwd=str(IDP_DIR),
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
            )
        try:
            self.port = self._read_port()
        except BaseException:
            self.stop()
            raise
        self._control = self.session()

    def _read_port(self) -> int:
        deadline = time.monotonic() + self._startup_timeout
        line = b""
        with selectors.DefaultSelector() as selector:
            selector.register(self._process.stdout, selectors.EVENT_READ)
            while not line.endswith(b"\n"):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not selector.select(remaining):
                    raise IdentityProviderError(
                        f"test IdP did not report its port within {self._startup_timeout:.0f} s; "
                        f"see {self.log_file}: {self._log_tail()}"
                    )
                chunk = os.read(self._process.stdout.fileno(), 4096)
                if not chunk:
                    raise IdentityProviderError(f"test IdP exited with {self._process.wait()}: {self._log_tail()}")
                line += chunk
        return int(json.loads(line)["port"])

    def _log_tail(self, size: int = 2000) -> str:
        try:
            with open(self.log_file, "rb") as log:
                return log.read()[-size:].decode("utf-8", "replace")
        except OSError:
            return ""

    def stop(self) -> None:
        if self._control is not None:
            self._control.close()
            self._control = None
        process, self._process = self._process, None
        if process is not None:
            with contextlib.suppress(OSError):
                process.stdin.close()
            try:
                process.wait(timeout=5)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
            process.stdout.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    # -- addresses ---------------------------------------------------------

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def authority(self, tenant_id: str) -> str:
        return f"{self.origin}/{tenant_id}"

    def session(self, timeout: float | None = None) -> requests.Session:
        """A requests session that trusts only the test CA and ignores proxy/CA env vars.

        MSAL ignores its own ``timeout=`` when given ``http_client=``; pass the timeout
        here instead (it applies to every request of the session).
        """
        session = requests.Session()
        session.trust_env = False
        session.verify = self.ca_file
        if timeout is not None:
            session.request = functools.partial(session.request, timeout=timeout)
        return session

    # -- control API -------------------------------------------------------

    def _call(self, method: str, path: str, body: dict | None = None) -> dict:
        response = self._control.request(method, f"{self.origin}/_control{path}", json=body, timeout=30)
        if response.status_code >= 400:
            raise IdentityProviderError(f"{method} /_control{path}: {response.status_code} {response.text}")
        return response.json()

    def add_client(
        self,
        tenant_id: str,
        client_id: str,
        client_secret: str,
        roles: Sequence[str] = (),
        replication_delay_seconds: float = 0,
        public_client_flows: bool = False,
        delegated_scopes: Sequence[str] = (),
        opaque_tokens: bool = False,
        refresh_tokens: bool = True,
    ) -> None:
        """Register (or replace) a confidential client using client_secret_post.

        ``public_client_flows`` is Entra's "Allow public client flows": requests without
        client authentication (device authorization, device code polling, refresh) are
        then served as a public client with ``delegated_scopes`` (see add_public_client).
        ``opaque_tokens``: its access tokens are opaque strings, not decodable JWTs.
        ``refresh_tokens=False``: sign-ins get no refresh token, even with offline_access."""
        self._call(
            "POST",
            f"/tenants/{tenant_id}/clients",
            {
                "client_id": client_id,
                "client_secret": client_secret,
                "roles": list(roles),
                "replication_delay_seconds": replication_delay_seconds,
                "allow_public_client_flows": bool(public_client_flows),
                "delegated_scopes": list(delegated_scopes),
                "opaque_access_tokens": bool(opaque_tokens),
                "refresh_tokens": bool(refresh_tokens),
            },
        )

    def add_public_client(self, tenant_id: str, client_id: str, delegated_scopes: Sequence[str]) -> None:
        """Register (or replace) a public client for the device code flow."""
        self._call(
            "POST",
            f"/tenants/{tenant_id}/clients",
            {
                "client_id": client_id,
                "public": True,
                "delegated_scopes": list(delegated_scopes),
            },
        )

    def set_faults(self, tenant_id: str, status: int | None = None, count: int = 0, hang: bool = False) -> None:
        """Make the tenant's next ``count`` token requests (all of them while ``count`` is 0)
        answer ``status`` (5xx, HTML body like a gateway), or, with ``hang``, never answer
        (the connection stays open until the server stops). No arguments clears the faults; a tenant this
        provider never saw has none, so clearing them is a no-op whichever tests ran before in this process (each
        pytest-xdist worker has a provider of its own)."""
        body: dict = {}
        if status is not None:
            body.update(status=status, count=count)
        if hang:
            body["hang"] = True
        try:
            self._call("POST", f"/tenants/{tenant_id}/faults", body)
        except IdentityProviderError as error:
            if body or "tenant not registered" not in str(error):
                raise

    def approve_device_code(self, tenant_id: str, user_code: str, username: str) -> None:
        """Sign in as ``username`` and consent for ``user_code``, as a person in a browser would."""
        self._call("POST", f"/tenants/{tenant_id}/device/approve", {"user_code": user_code, "username": username})

    def requests(self) -> dict:
        """Token requests so far: ``{client_id: {"tenant", "count", "timestamps", "grants", "scopes"}}``,
        timestamps in seconds since the epoch, grant types and scope parameters, in arrival order; device
        authorization requests add ``"deviceCodeScopes"`` (their scope parameters) without counting."""
        return self._call("GET", "/requests")

    def reset_requests(self) -> None:
        self._call("DELETE", "/requests")


@pytest.fixture(scope="session")
def identity_provider() -> Iterator[IdentityProvider]:
    """A running test IdP; fails (never skips) when Node.js or oidc-provider is missing."""
    problem = missing_prerequisites()
    if problem:
        pytest.fail(f"test IdP unavailable: {problem}", pytrace=False)
    with IdentityProvider() as idp:
        yield idp


class SilentServer:
    """A TCP listener on 127.0.0.1 that accepts connections and never sends a byte."""

    def __init__(self) -> None:
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.setblocking(False)
        self.port: int = self._listener.getsockname()[1]
        self._connections: list[socket.socket] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._accept_loop, name="silent-server", daemon=True)

    @property
    def origin(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    def authority(self, tenant_id: str) -> str:
        return f"{self.origin}/{tenant_id}"

    def _accept_loop(self) -> None:
        with selectors.DefaultSelector() as selector:
            selector.register(self._listener, selectors.EVENT_READ)
            while not self._stop.is_set():
                if selector.select(timeout=0.1):
                    with contextlib.suppress(BlockingIOError):
                        connection, _ = self._listener.accept()
                        self._connections.append(connection)

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
        for connection in self._connections:
            connection.close()
        self._listener.close()


@contextlib.contextmanager
def silent_server() -> Iterator[SilentServer]:
    """Yield a server whose ``.origin`` / ``.authority(tenant)`` accept TCP and hang
    (TLS handshakes never complete), for client timeout tests."""
    server = SilentServer()
    server._thread.start()
    try:
        yield server
    finally:
        server.close()
