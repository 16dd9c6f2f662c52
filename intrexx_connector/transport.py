"""verify's HTTP: requests only to the authority, no redirects, and a deadline for the whole of each request.

MSAL does its HTTP through the `http_client` it is given: `get(url, params=, headers=)` and
`post(url, params=, headers=, data=)`, reading `status_code`, `text` and `headers` of the answer
(msal/authority.py `tenant_discovery`, msal/oauth2cli/oauth2.py `_obtain_token`, msal/throttled_http_client.py
`NormalizedResponse`). `AuthorityHttp` is that client, bound to one origin:

* every request must go to an https URL on the authority's own scheme, host and port, or it is refused before a
  byte is sent (`Refused`): a discovery document that names a token or device code endpoint elsewhere cannot
  make verify send the client secret there;
* redirects are never followed: requests follows them by default for every method but HEAD, and for 307 and
  308 sends the same method with the same body again, secret included, to wherever `Location` points, plain
  http too (requests/sessions.py `Session.request` and `SessionRedirectMixin.rebuild_method`; RFC 9110
  section 15.4.8). Here a 3xx answer is a refusal;
* a request has one deadline for connecting, the TLS handshake, sending, the headers and the body: requests'
  and urllib3's timeouts apply to each socket operation ("the maximum amount of time to wait between consecutive
  read operations", urllib3 `Timeout`), so a server that sends a byte of its headers every half second never
  trips them. Here every TLS socket operation gets the time left until the deadline as its timeout, through a
  subclass of `ssl.SSLSocket` set as the context's `sslsocket_class` (docs.python.org/3/library/ssl.html
  #ssl.SSLContext.sslsocket_class). One such operation ends within its timeout however the peer drips: the
  handshake's timeout "is now the maximum total duration of the handshake" (ssl docs, changed in 3.5), and
  CPython's Modules/_ssl.c sets one deadline per read and write call too. Name resolution is left to the
  system resolver's own limits;
* the answer is read up to `MAX_ANSWER_BYTES` (an Entra discovery document or token answer is a few KB) and
  must be JSON (an object) where MSAL will parse it, so that MSAL never logs a body it could not parse (it logs
  `resp.text` with `logger.exception`, msal/oauth2cli/oauth2.py `_obtain_token`, and without a configured
  handler Python's `logging.lastResort` prints that to stderr).
"""

from __future__ import annotations

import json
import os
import ssl
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urljoin, urlsplit

import requests
from requests.adapters import HTTPAdapter
from requests.structures import CaseInsensitiveDict

from components.urls import UrlError, WebUrl, parse_web_url

MAX_ANSWER_BYTES = 1_000_000
CHUNK_BYTES = 64 * 1024
# How long a request may still start before the deadline: below this, verify does not send another one.
MIN_REQUEST_TIME = 0.05

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
    """Each handshake, read and write may take only the time left until this thread's request deadline."""

    def _arm(self) -> None:
        deadline = getattr(_deadline, "at", None)
        if deadline is None:
            return
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("the request's deadline has passed")
        self.settimeout(left)

    def do_handshake(self, *args: Any, **kwargs: Any) -> None:
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


class _DeadlineAdapter(HTTPAdapter):
    """An HTTPAdapter whose TLS connections use `_DeadlineSSLSocket`. The TLS settings are requests' own (`verify`
    as True, a CA bundle path or False), built into a context here, as requests documents for a custom
    SSLContext (requests/adapters.py `HTTPAdapter.build_connection_pool_key_attributes`)."""

    def __init__(self) -> None:
        self._contexts: dict[object, ssl.SSLContext] = {}
        self._lock = threading.Lock()
        super().__init__(max_retries=0)

    def build_connection_pool_key_attributes(self, request, verify, cert=None):
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
                self._contexts[verify] = _tls_context(verify)
            return self._contexts[verify]


def _tls_context(verify: object) -> ssl.SSLContext:
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
    context.sslsocket_class = _DeadlineSSLSocket
    return context


def deadline_session(session: requests.Session | None = None) -> requests.Session:
    """`session` (or a new one, reading REQUESTS_CA_BUNDLE and proxies from the environment like requests does)
    with the deadline adapter mounted for https; its other settings (verify, proxies, trust_env) are kept."""
    session = session or requests.Session()
    if not isinstance(session.adapters.get("https://"), _DeadlineAdapter):  # keep its pooled connections
        session.mount("https://", _DeadlineAdapter())
    return session


class AuthorityHttp:
    """MSAL's http_client for one origin (see the module's docstring). `deadline()` gives, at each request, the
    monotonic time by which the whole request must be done."""

    def __init__(self, session: requests.Session, origin: WebUrl, deadline: Any, what: str = "the authority"):
        self.session, self.origin, self.deadline, self.what = session, origin, deadline, what
        self.last_post: float | None = None

    @classmethod
    def for_url(cls, session: requests.Session, url: str, deadline: Any, what: str) -> AuthorityHttp:
        try:
            origin = parse_web_url(url)
        except UrlError as error:
            raise Refused(f"{what} {url[:120]!r} {error}") from None
        return cls(session, origin, deadline, what)

    def get(self, url: str, params: Any = None, headers: Any = None, **_: Any) -> Answer:
        return self._send("GET", url, params=params, headers=headers)

    def post(self, url: str, params: Any = None, headers: Any = None, data: Any = None, **_: Any) -> Answer:
        self.last_post = time.monotonic()
        return self._send("POST", url, params=params, headers=headers, data=data)

    def close(self) -> None:
        pass

    def _send(self, method: str, url: str, **kwargs: Any) -> Answer:
        self._check_target(url)
        deadline = self.deadline()
        left = deadline - time.monotonic()
        if left < MIN_REQUEST_TIME:
            raise DeadlinePassed("no time left for another request")
        _deadline.at = deadline
        try:
            response = self.session.request(
                method, url, timeout=(left, left), allow_redirects=False, stream=True, **kwargs
            )
            try:
                content = self._read(response, deadline)
            finally:
                response.close()
        except requests.RequestException as error:
            if time.monotonic() >= deadline:
                raise DeadlinePassed(f"no complete answer from {self.what} in time") from None
            raise _without_request_details(error) from None
        except TimeoutError:
            raise DeadlinePassed(f"no complete answer from {self.what} in time") from None
        finally:
            _deadline.at = None
        answer = Answer(response.status_code, CaseInsensitiveDict(response.headers), content, url)
        if 300 <= answer.status_code < 400:
            target = answer.headers.get("location", "")
            raise Refused(
                f"{self.what} answered {method} with a redirect (HTTP {answer.status_code}"
                f"{' to ' + _origin_text(target, url) if target else ''}); verify follows no redirects, so that "
                "the client secret goes to the authority only"
            )
        return answer

    def _check_target(self, url: str) -> None:
        try:
            target = parse_web_url(url)
        except UrlError as error:
            raise Refused(f"refusing to send a request to {url[:120]!r}: it {error}") from None
        if target.origin != self.origin.origin:
            raise Refused(
                f"refusing to send a request to {target.origin_text}: it is not {self.what} "
                f"({self.origin.origin_text}), and verify sends the client secret to no one else"
            )

    def _read(self, response: requests.Response, deadline: float) -> bytes:
        body = bytearray()
        for chunk in response.iter_content(CHUNK_BYTES):
            body += chunk
            if len(body) > MAX_ANSWER_BYTES:
                raise Malformed(f"{self.what} answered with more than {MAX_ANSWER_BYTES} bytes")
            if time.monotonic() > deadline:
                raise TimeoutError("the request's deadline has passed")
        return bytes(body)


def json_object(answer: Answer, what: str) -> Mapping[str, Any]:
    """The answer's body as a JSON object, or Malformed naming what was expected."""
    try:
        document = json.loads(answer.content)
    except (ValueError, RecursionError):
        raise Malformed(f"{what} is not JSON (HTTP {answer.status_code})") from None
    if not isinstance(document, dict):
        raise Malformed(f"{what} is not a JSON object (HTTP {answer.status_code})")
    return document


def _origin_text(location: str, base: str) -> str:
    """Where a redirect points, as scheme://host:port only (the rest may quote the request)."""
    try:
        parts = urlsplit(urljoin(base, location))
        return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}"[:120]
    except ValueError:
        return "an address that is not a valid URL"


def _without_request_details(error: requests.RequestException) -> requests.RequestException:
    """The same kind of error, its message shortened to the first line (requests' messages quote the request)."""
    text = str(error).splitlines()[0][:200] if str(error) else type(error).__name__
    return type(error)(text)
