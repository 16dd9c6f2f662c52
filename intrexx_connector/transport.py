"""The one HTTP layer of the post-deploy commands: verify's requests to the identity provider (MSAL's
http_client), doctor's Microsoft Graph reads and doctor's token request all go through one `requests.Session`
per run with `_DeadlineAdapter` mounted, in the calling thread (no thread per request).

MSAL does its HTTP through the `http_client` it is given: `get(url, params=, headers=)` and
`post(url, params=, headers=, data=)`, reading `status_code`, `text` and `headers` of the answer
(msal/authority.py `tenant_discovery`, msal/oauth2cli/oauth2.py `_obtain_token`, msal/throttled_http_client.py
`NormalizedResponse`). `AuthorityHttp` is that client, an `OriginHttp` bound to the authority's origin;
`graph.GraphClient` sends its GETs through an `OriginHttp` bound to Graph's:

* every request must go to an https URL on the origin's own scheme, host and port, as a browser reads it
  (components/urls.py), or it is refused before a byte is sent (`Refused`): a discovery document that names a
  token or device code endpoint elsewhere cannot make verify send the client secret there;
* redirects are never followed: requests follows them by default for every method but HEAD, and for 307 and
  308 sends the same method with the same body again, secret included, to wherever `Location` points, plain
  http too (requests/sessions.py `Session.request` and `SessionRedirectMixin.rebuild_method`; RFC 9110
  section 15.4.8). For MSAL a 3xx answer is a refusal; Graph's client reports it;
* a request has one deadline for connecting, the TLS handshake, sending, the headers and the body: requests'
  and urllib3's timeouts apply to each socket operation ("the maximum amount of time to wait between consecutive
  read operations", urllib3 `Timeout`), so a server that sends a byte of its headers every half second never
  trips them. Here every TLS socket operation gets the time left until the deadline as its timeout, through a
  subclass of `ssl.SSLSocket` set as the context's `sslsocket_class` (docs.python.org/3/library/ssl.html
  #ssl.SSLContext.sslsocket_class). One such operation ends within its timeout however the peer drips: the
  handshake's timeout "is now the maximum total duration of the handshake" (ssl docs, changed in 3.5), and
  CPython's Modules/_ssl.c sets one deadline per read and write call too. Name resolution is left to the
  system resolver's own limits. When the deadline passes, the connection is closed (urllib3 closes a
  connection whose request failed, and `Response.close` one whose body was not read to the end), so nothing
  of a request outlives it;
* a connection that fails before any answer is `Unreachable`, naming the kind: refused, unknown host name
  (DNS) and TLS failures are `lasting` (no replication delay explains them);
* the answer is read up to `max_bytes` (`MAX_ANSWER_BYTES` for an authority: an Entra discovery document or
  token answer is a few KB) and, for MSAL, must be JSON (an object) where MSAL will parse it, so that MSAL never
  logs a body it could not parse (it logs `resp.text` with `logger.exception`, msal/oauth2cli/oauth2.py
  `_obtain_token`, and without a configured handler Python's `logging.lastResort` prints that to stderr).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import ssl
import threading
import time
import weakref
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self
from urllib.parse import urljoin

import requests
import urllib3
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from components.urls import UrlError, WebUrl, parse_web_url, request_origin, same_origin, shown_origin

MAX_ANSWER_BYTES = 1_000_000
CHUNK_BYTES = 64 * 1024
# How long a request may still start before the deadline: below this, verify does not send another one.
MIN_REQUEST_TIME = 0.05
# Targets an OriginHttp remembers as checked; beyond this (paging links differ each time) it checks each anew.
MAX_ALLOWED_TARGETS = 16

_deadline = threading.local()


class TransportError(Exception):
    """Something verify will not do, or an answer it cannot use; `reason` is one line without secrets."""

    retry = False

    def __init__(self, reason: str):
        super().__init__(reason)
        self.reason = reason


class Refused(TransportError):
    """A request verify refuses to send, or a redirect it refuses to follow."""


class Malformed(TransportError):
    """The identity provider's answer is not what the protocol says it is."""


class DeadlinePassed(TransportError):
    """No complete answer before the deadline."""

    retry = True


class Unreachable(TransportError):
    """No connection: refused, an unknown host name, a TLS failure (`lasting`), or a connection that broke."""

    retry = True

    def __init__(self, reason: str, lasting: bool = False):
        super().__init__(reason)
        self.lasting = lasting


@dataclass
class Answer:
    """An HTTP answer read in full: what MSAL and verify use of `requests.Response`."""

    status_code: int
    headers: CaseInsensitiveDict = field(default_factory=CaseInsensitiveDict)
    content: bytes = b""
    url: str = ""

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.content)

    def raise_for_status(self) -> None:
        if self.status_code >= 400:
            raise requests.HTTPError(f"HTTP {self.status_code} from {self.url}")


class _DeadlineSSLSocket(ssl.SSLSocket):
    """Each handshake, read and write may take only the time left until this thread's request deadline. `live`
    (one set per adapter) holds the connections made, so that `abort_requests` can end them from another
    thread."""

    live: ClassVar[weakref.WeakSet[ssl.SSLSocket]] = weakref.WeakSet()
    aborted: ClassVar[bool] = False

    def _arm(self) -> None:
        if self.aborted:
            raise ConnectionAbortedError("the requests were aborted")
        deadline = getattr(_deadline, "at", None)
        if deadline is None:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline has passed")
        self.settimeout(left)

    def do_handshake(self, *args: Any, **kwargs: Any) -> None:
        self.live.add(self)
        self._arm()
        super().do_handshake(*args, **kwargs)

    def recv(self, *args: Any, **kwargs: Any) -> bytes:
        self._arm()
        return super().recv(*args, **kwargs)

    def recv_into(self, *args: Any, **kwargs: Any) -> int:
        self._arm()
        return super().recv_into(*args, **kwargs)

    def read(self, *args: Any, **kwargs: Any) -> Any:
        self._arm()
        return super().read(*args, **kwargs)

    def send(self, *args: Any, **kwargs: Any) -> int:
        self._arm()
        return super().send(*args, **kwargs)

    def sendall(self, *args: Any, **kwargs: Any) -> None:
        self._arm()
        super().sendall(*args, **kwargs)

    def write(self, *args: Any, **kwargs: Any) -> int:
        self._arm()
        return super().write(*args, **kwargs)


def _adapter_socket_class() -> type[_DeadlineSSLSocket]:
    class _AdapterSSLSocket(_DeadlineSSLSocket):
        live: ClassVar[weakref.WeakSet[ssl.SSLSocket]] = weakref.WeakSet()
        aborted: ClassVar[bool] = False

    return _AdapterSSLSocket


class _DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose TLS connections use `_DeadlineSSLSocket`. The TLS settings are requests' own (`verify`
    as True, a CA bundle path or False), built into a context here, as requests documents for a custom
    SSLContext (requests/adapters.py `HTTPAdapter.build_connection_pool_key_attributes`)."""

    def __init__(self) -> None:
        self._contexts: dict[object, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        self._socket_class = _adapter_socket_class()
        super().__init__(max_retries=0)

    def abort(self) -> None:
        """End every request under way: shutting a socket down wakes a thread blocked reading it (the read sees
        the end of the stream), so each request fails at once instead of at its deadline; and no later request
        of this adapter gets as far as its handshake."""
        self._socket_class.aborted = True
        for connection in list(self._socket_class.live):
            with contextlib.suppress(OSError):
                socket.socket.shutdown(connection, socket.SHUT_RDWR)

    def build_connection_pool_key_attributes(
        self, request: requests.PreparedRequest, verify: bool | str, cert: Any = None
    ) -> Any:
        host_params, pool_kwargs = super().build_connection_pool_key_attributes(request, verify, cert)
        if host_params.get("scheme") == "https":
            tls: dict[str, Any] = dict(pool_kwargs)
            for key in ("ca_certs", "ca_cert_dir", "cert_reqs"):
                tls.pop(key, None)
            tls["ssl_context"] = self._context(verify)
            return host_params, tls
        return host_params, pool_kwargs

    def _context(self, verify: object) -> ssl.SSLContext:
        with self._lock:
            if verify not in self._contexts:
                self._contexts[verify] = _tls_context(verify, self._socket_class)
            return self._contexts[verify]


def _tls_context(verify: object, socket_class: type[ssl.SSLSocket]) -> ssl.SSLContext:
    if verify is False:
        context = ssl.create_default_context()
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif isinstance(verify, str) and os.path.isdir(verify):
        context = ssl.create_default_context(capath=verify)
    elif isinstance(verify, str):
        context = ssl.create_default_context(cafile=verify)
    else:
        context = ssl.create_default_context(cafile=requests.utils.DEFAULT_CA_BUNDLE_PATH)
    context.sslsocket_class = socket_class
    return context


def deadline_session(session: requests.Session | None = None) -> requests.Session:
    """`session` (or a new one, reading REQUESTS_CA_BUNDLE and proxies from the environment like requests does)
    with the deadline adapter mounted for https; its other settings (verify, proxies, trust_env) are kept."""
    session = session or requests.Session()
    if not isinstance(session.adapters.get("https://"), _DeadlineAdapter):  # keep its pooled connections
        session.mount("https://", _DeadlineAdapter())
    return session


@contextlib.contextmanager
def deadline(at: float) -> Iterator[None]:
    """Every TLS socket operation of this thread ends by `at` (time.monotonic()) while the block runs: for HTTP
    that this module does not send itself, such as azure-identity's token requests through `session`."""
    previous = getattr(_deadline, "at", None)
    _deadline.at = at if previous is None else min(at, previous)
    try:
        yield
    finally:
        _deadline.at = previous


def abort_requests(session: requests.Session) -> None:
    """End the requests under way on `session` (from any thread): for Ctrl-C, which must not wait for them."""
    adapter = session.adapters.get("https://")
    if isinstance(adapter, _DeadlineAdapter):
        adapter.abort()


class OriginHttp:
    """Requests to one https origin (see the module's docstring): no redirect followed (a 3xx answer is returned
    as it is), one deadline for the whole of each request, at most `max_bytes` read. `deadline()` gives, at each
    request, the monotonic time by which that request must be done."""

    def __init__(
        self,
        session: requests.Session,
        origin: WebUrl,
        deadline: Callable[[], float],
        what: str,
        max_bytes: int = MAX_ANSWER_BYTES,
    ):
        self.session, self.origin, self.deadline, self.what = session, origin, deadline, what
        self.max_bytes = max_bytes
        self._allowed: set[str] = set()  # targets already checked (MSAL asks the same few URLs again and again)

    @classmethod
    def for_url(cls, session: requests.Session, url: str, deadline: Callable[[], float], what: str) -> Self:
        try:
            origin = parse_web_url(url)
        except UrlError as error:
            raise Refused(f"{what} {url[:120]!r} {error}") from None
        return cls(session, origin, deadline, what)

    def request(self, method: str, url: str, **kwargs: Any) -> Answer:
        self._check_target(url)
        deadline = self.deadline()
        left = deadline - time.monotonic()
        if left < MIN_REQUEST_TIME:
            raise DeadlinePassed("no time left for another request")
        previous, _deadline.at = getattr(_deadline, "at", None), deadline
        try:
            response = self.session.request(
                method, url, timeout=(left, left), allow_redirects=False, stream=True, **kwargs
            )
            try:
                content = self._read(response, deadline)
            finally:
                response.close()
        except requests.RequestException as error:
            if time.monotonic() >= deadline or isinstance(error, requests.Timeout):
                raise DeadlinePassed(f"no complete answer from {self.what} in time") from None
            raise _unreachable(error, self.what, self.origin) from None
        except TimeoutError:
            raise DeadlinePassed(f"no complete answer from {self.what} in time") from None
        except (FileNotFoundError, PermissionError, ssl.SSLError) as error:
            # Not the peer: this machine's TLS setup (a CA bundle named by REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or
            # SSL_CERT_FILE that is missing or holds no certificate), which no retry mends.
            raise Unreachable(
                f"TLS with {self.what} ({self.origin.origin_text}) cannot start here: the CA certificates "
                f"(REQUESTS_CA_BUNDLE, CURL_CA_BUNDLE or SSL_CERT_FILE) cannot be read ({error.strerror or error})",
                lasting=True,
            ) from None
        finally:
            _deadline.at = previous
        return Answer(response.status_code, CaseInsensitiveDict(response.headers), content, url)

    def close(self) -> None:
        pass

    def _check_target(self, url: str) -> None:
        if url in self._allowed:
            return
        if not same_origin(url, self.origin):
            try:
                target = request_origin(url).origin_text
            except UrlError as error:
                raise Refused(f"refusing to send a request to {url[:120]!r}: it {error}") from None
            raise Refused(f"refusing to send a request to {target}: it is not {self.what} ({self.origin.origin_text})")
        if len(self._allowed) < MAX_ALLOWED_TARGETS:
            self._allowed.add(url)

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(CHUNK_BYTES):
            body += chunk
            if len(body) > self.max_bytes:
                raise Malformed(f"{self.what} answered with more than {self.max_bytes} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError("the request's deadline has passed")
        return bytes(body)


class AuthorityHttp(OriginHttp):
    """MSAL's http_client for one origin, which refuses redirects. `last_post_done` is when the last POST (a
    token request) ended: verify spaces its token requests from there, so that the authority receives them at
    least that far apart, whatever the network's delays (the next request leaves after the answer to the last
    one arrived, which the authority sent after it received that request)."""

    def __init__(
        self,
        session: requests.Session,
        origin: WebUrl,
        deadline: Callable[[], float],
        what: str = "the authority",
        max_bytes: int = MAX_ANSWER_BYTES,
    ):
        super().__init__(session, origin, deadline, what, max_bytes)
        self.last_post_done: float | None = None

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> Answer:
        return self._refuse_redirect("GET", self.request("GET", url, params=params, headers=headers))

    def post(self, url: str, params: Any = None, headers: Any = None, data: Any = None, **_: Any) -> Answer:
        try:
            answer = self.request("POST", url, params=params, headers=headers, data=data)
        finally:
            self.last_post_done = time.monotonic()
        return self._refuse_redirect("POST", answer)

    def _check_target(self, url: str) -> None:
        try:
            super()._check_target(url)
        except Refused as refused:
            raise Refused(f"{refused.reason}, and verify sends the client secret to no one else") from None

    def _refuse_redirect(self, method: str, answer: Answer) -> Answer:
        if 300 <= answer.status_code < 400:
            target = answer.headers.get("location", "")
            raise Refused(
                f"{self.what} answered {method} with a redirect (HTTP {answer.status_code}"
                f"{' to ' + redirect_target(target, answer.url) if target else ''}); verify follows no redirects, "
                "so that the client secret goes to the authority only"
            )
        return answer


def json_object(answer: Answer, what: str) -> Mapping[str, Any]:
    """The answer's body as a JSON object, or Malformed naming what was expected."""
    try:
        document = json.loads(answer.content)
    except (ValueError, RecursionError):
        raise Malformed(f"{what} is not JSON (HTTP {answer.status_code})") from None
    if not isinstance(document, dict):
        raise Malformed(f"{what} is not a JSON object (HTTP {answer.status_code})")
    return document


def redirect_target(location: str, base: str) -> str:
    """Where a redirect points, as its origin only (the rest may quote the request), read as a browser would."""
    try:
        return shown_origin(urljoin(base, location))
    except ValueError:
        return "an address that is not a valid URL"


def _unreachable(error: requests.RequestException, what: str, origin: WebUrl) -> Unreachable:
    """A connection that failed before any answer, by kind, in one line without the request's details (requests'
    messages quote the request). Connection refused, an unknown host name and a TLS failure are `lasting`: no
    replication delay explains them, so verify stops asking after a few tries."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__ or _reason(link)
    where = f"{what} ({origin.origin_text})"
    if isinstance(error, requests.exceptions.SSLError) or any(isinstance(e, ssl.SSLError) for e in chain):
        return Unreachable(
            f"TLS with {where} failed: is its certificate trusted (REQUESTS_CA_BUNDLE) and for that host name?",
            lasting=True,
        )
    if any(isinstance(e, urllib3.exceptions.NameResolutionError | socket.gaierror) for e in chain):
        return Unreachable(f"the host name of {where} is not found (DNS)", lasting=True)
    if any(isinstance(e, ConnectionRefusedError) for e in chain):
        return Unreachable(f"{where} refused the connection: nothing listens on that port", lasting=True)
    return Unreachable(f"cannot reach {where} ({type(error).__name__})")


def _reason(error: BaseException) -> BaseException | None:
    """urllib3 keeps the cause of a failed connection in `reason` (MaxRetryError), requests the urllib3 error in
    its first argument (requests/adapters.py `HTTPAdapter.send`: `raise ConnectionError(e, request=request)`)."""
    for reason in (getattr(error, "reason", None), *error.args[:1]):
        if isinstance(reason, BaseException):
            return reason
    return None
