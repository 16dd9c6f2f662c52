"""A read-only Microsoft Graph client for `doctor`: GET only, and bounded in every dimension.

Graph's answers are treated as hostile input. Every request has its own timeout (enforced on the whole exchange,
so a server that drips headers or body cannot stretch it) and shares one overall deadline; redirects are not
followed; a body larger than `max_bytes` is refused; `@odata.nextLink` is followed only to the same origin and
only `max_pages` times; 429 and 503/504 are retried after `Retry-After`, capped at `max_retry_wait` and
`max_attempts`. Every failure becomes one of these errors, each one line and never containing the token:

    ConnectorError (errors.py)
    +-- CheckFailed (errors.py)
        +-- GraphError              Graph could not answer a read; `status` and `code` when it answered
            +-- GraphTokenError     no token could be had (azure-identity, INTREXX_GRAPH_TOKEN)
            +-- GraphAuthError      401: token missing, expired or for another audience
            +-- GraphForbidden      403: the signed-in identity lacks a permission
            +-- GraphNotFound       404
            +-- GraphThrottled      429 / 503 / 504 still after the allowed attempts or wait
            +-- GraphUnreachable    timeout, TLS or connection failure, or the overall deadline used up
            +-- GraphProtocolError  not JSON, wrong shape, too large, a redirect, or paging that leaves the
                                    origin or does not end
"""

import email.utils
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import quote, urlsplit

import requests

from .errors import CheckFailed

USER_AGENT = "intrexx-connector-doctor"
# Throttling: "Microsoft Graph returns HTTP status code 429 (Too many requests) ... A suggested wait time is
# returned in the response header of the failed request" (learn.microsoft.com/graph/throttling); 503 and 504
# are the transient answers the same page lists next to 429.
RETRYABLE_STATUSES = frozenset({429, 503, 504})


class GraphError(CheckFailed):
    def __init__(self, message: str, status: int | None = None, code: str = ""):
        super().__init__(message)
        self.status = status
        self.code = code


class GraphTokenError(GraphError):
    pass


class GraphAuthError(GraphError):
    pass


class GraphForbidden(GraphError):
    pass


class GraphNotFound(GraphError):
    pass


class GraphThrottled(GraphError):
    pass


class GraphUnreachable(GraphError):
    pass


class GraphProtocolError(GraphError):
    pass


@dataclass(frozen=True)
class GraphLimits:
    request_timeout: float = 10.0  # seconds for one whole request, headers and body
    deadline: float = 60.0  # seconds for everything the client does, retries and waits included
    max_pages: int = 20  # pages per collection (Graph pages hold 100 objects by default, up to 999)
    max_bytes: int = 4 * 1024 * 1024  # per answer, after decompression
    max_attempts: int = 3  # per request, counting the first
    max_retry_wait: float = 10.0  # longest wait for one Retry-After


def odata_string(value: str) -> str:
    """An OData string literal. Graph: "if any parameter values also contain single quotes, those must be double
    escaped" (learn.microsoft.com/graph/query-parameters, "Escaping single quotes")."""
    return "'" + value.replace("'", "''") + "'"


def one_line(text: str, limit: int = 200) -> str:
    """The first line of a peer's text, without control characters, at most `limit` characters."""
    first = str(text).strip().splitlines()[0] if str(text).strip() else ""
    first = "".join(ch if ch.isprintable() else " " for ch in first)
    return first if len(first) <= limit else first[: limit - 3] + "..."


class _Bearer(requests.auth.AuthBase):
    """Passing auth= also keeps requests from replacing the header with ~/.netrc credentials."""

    def __init__(self, token: str):
        self.token = token

    def __call__(self, request):
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


@dataclass
class _Answer:
    status: int
    headers: requests.structures.CaseInsensitiveDict
    body: bytes


class GraphClient:
    """GET requests against `<origin>/<version>/...`; `requests` counts them."""

    def __init__(
        self,
        origin: str,
        token: str,
        limits: GraphLimits = GraphLimits(),
        version: str = "v1.0",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ):
        self.origin = origin.rstrip("/")
        self.version = version
        self.limits = limits
        self._token = token
        self._clock, self._sleep = clock, sleep
        self._deadline = clock() + limits.deadline
        self._origin_parts = urlsplit(self.origin)
        self.requests = 0

    # public --------------------------------------------------------------------------------------------------

    def url(self, path: str, params: dict | None = None) -> str:
        query = "&".join(f"{key}={quote(str(value), safe=chr(39) + '(),')}" for key, value in (params or {}).items())
        return f"{self.origin}/{self.version}{path}" + (f"?{query}" if query else "")

    def get(self, path: str, params: dict | None = None) -> dict:
        return self._get_json(self.url(path, params))

    def get_collection(self, path: str, params: dict | None = None) -> list:
        """Every object of a collection, following `@odata.nextLink`. Graph: "You can retrieve the next page of
        results by sending the URL value of the @odata.nextLink property to Microsoft Graph"
        (learn.microsoft.com/graph/paging)."""
        url, items, pages = self.url(path, params), [], 0
        while True:
            page = self._get_json(url)
            pages += 1
            value = page.get("value")
            if not isinstance(value, list):
                raise GraphProtocolError(f"{path}: the answer's 'value' is {_kind(value)}, not a list")
            items.extend(value)
            next_link = page.get("@odata.nextLink")
            if next_link is None:
                return items
            if not isinstance(next_link, str) or not self._same_origin(next_link):
                raise GraphProtocolError(
                    f"{path}: @odata.nextLink points away from {self.origin} "
                    f"({one_line(next_link, 80)!r}); not followed"
                )
            if pages >= self.limits.max_pages:
                raise GraphProtocolError(
                    f"{path}: still more after {pages} pages; stopped (doctor reads at most "
                    f"{self.limits.max_pages} pages per list)"
                )
            url = next_link

    # internals -----------------------------------------------------------------------------------------------

    def _same_origin(self, url: str) -> bool:
        try:
            parts = urlsplit(url)
            port, own_port = parts.port, self._origin_parts.port
        except ValueError:
            return False
        return (
            parts.scheme == "https"
            and parts.username is None
            and parts.password is None
            and (parts.hostname or "").lower() == (self._origin_parts.hostname or "").lower()
            and (port or 443) == (own_port or 443)
        )

    def _remaining(self) -> float:
        return self._deadline - self._clock()

    def _get_json(self, url: str) -> dict:
        path = urlsplit(url).path
        attempt = 0
        while True:
            attempt += 1
            answer = self._send(url)
            if answer.status == 200:
                return self._parse(path, answer)
            if answer.status in RETRYABLE_STATUSES:
                wait = _retry_after(answer.headers.get("Retry-After"), attempt)
                remaining = self._remaining()
                if attempt >= self.limits.max_attempts or min(wait, self.limits.max_retry_wait) >= remaining:
                    said = (
                        f"; Retry-After {answer.headers.get('Retry-After')}" if "Retry-After" in answer.headers else ""
                    )
                    raise GraphThrottled(
                        f"{path}: Graph answered HTTP {answer.status} {attempt} time(s){said}; "
                        "doctor stopped waiting (run it again later)",
                        answer.status,
                        self._error(answer)[0],
                    )
                self._sleep(min(wait, self.limits.max_retry_wait))
                continue
            raise self._status_error(path, answer)

    def _parse(self, path: str, answer: _Answer) -> dict:
        try:
            document = json.loads(answer.body.decode("utf-8"))
        except (UnicodeDecodeError, ValueError):
            content_type = one_line(answer.headers.get("Content-Type", "none"), 60)
            raise GraphProtocolError(f"{path}: the answer is not JSON (content type {content_type})") from None
        if not isinstance(document, dict):
            raise GraphProtocolError(f"{path}: the answer is {_kind(document)}, not a JSON object")
        return document

    def _error(self, answer: _Answer) -> tuple[str, str]:
        """Graph's error body {"error": {"code", "message"}}, read defensively."""
        try:
            error = json.loads(answer.body.decode("utf-8")).get("error")
            code, message = error.get("code", ""), error.get("message", "")
        except (UnicodeDecodeError, ValueError, AttributeError):
            return "", ""
        code = one_line(code, 60) if isinstance(code, str) else ""
        message = one_line(message) if isinstance(message, str) else ""
        return code, message.replace(self._token, "[token]") if self._token else message

    def _status_error(self, path: str, answer: _Answer) -> GraphError:
        code, message = self._error(answer)
        said = f" {code}" if code else ""
        said += f": {message}" if message else ""
        status = answer.status
        if 300 <= status < 400:
            return GraphProtocolError(
                f"{path}: HTTP {status} redirect to "
                f"{one_line(answer.headers.get('Location', '?'), 80)!r}; not followed",
                status,
            )
        error_type = {401: GraphAuthError, 403: GraphForbidden, 404: GraphNotFound}.get(status, GraphError)
        return error_type(f"{path}: HTTP {status}{said}", status, code)

    def _send(self, url: str) -> _Answer:
        """One GET in a worker thread: the caller waits at most the request timeout, whatever the peer does."""
        remaining = self._remaining()
        if remaining <= 0:
            raise GraphUnreachable(f"doctor's overall time limit of {self.limits.deadline:g} s is used up")
        timeout = min(self.limits.request_timeout, remaining)
        self.requests += 1
        outcome: dict = {}

        def work():
            try:
                outcome["answer"] = self._fetch(url, timeout)
            except BaseException as error:  # noqa: BLE001 - handed to the waiting thread
                outcome["error"] = error

        worker = threading.Thread(target=work, name="graph-get", daemon=True)
        worker.start()
        worker.join(timeout + 0.05)
        if worker.is_alive():
            raise GraphUnreachable(f"{urlsplit(url).path}: no complete answer within {timeout:g} s")
        if "error" in outcome:
            raise self._transport_error(url, outcome["error"], timeout)
        return outcome["answer"]

    def _fetch(self, url: str, timeout: float) -> _Answer:
        # A session per request: a worker abandoned on timeout keeps its connection to itself. trust_env (the
        # default) honours REQUESTS_CA_BUNDLE and the proxy variables.
        with requests.Session() as session:
            response = session.get(
                url,
                auth=_Bearer(self._token),
                timeout=(timeout, timeout),
                stream=True,
                allow_redirects=False,
                headers={"Accept": "application/json", "User-Agent": USER_AGENT},
            )
            try:
                body = bytearray()
                for chunk in response.iter_content(64 * 1024):
                    body += chunk
                    if len(body) > self.limits.max_bytes:
                        raise GraphProtocolError(
                            f"{urlsplit(url).path}: the answer is larger than {self.limits.max_bytes} bytes; not read"
                        )
            finally:
                response.close()
            return _Answer(response.status_code, requests.structures.CaseInsensitiveDict(response.headers), bytes(body))

    def _transport_error(self, url: str, error: BaseException, timeout: float) -> GraphError:
        path = urlsplit(url).path
        if isinstance(error, GraphError):
            return error
        if isinstance(error, requests.Timeout):
            return GraphUnreachable(f"{path}: no answer within {timeout:g} s")
        if isinstance(error, requests.exceptions.SSLError):
            return GraphUnreachable(
                f"{path}: TLS failed ({type(error).__name__}): is the server's CA trusted? (REQUESTS_CA_BUNDLE)"
            )
        if isinstance(error, requests.ConnectionError):
            return GraphUnreachable(f"cannot reach {self.origin} ({type(error).__name__})")
        if isinstance(error, requests.RequestException):
            return GraphUnreachable(f"{path}: request failed ({type(error).__name__})")
        return GraphProtocolError(f"{path}: unreadable answer ({type(error).__name__})")


def _retry_after(value, attempt: int) -> float:
    """Seconds to wait: Retry-After as seconds or an HTTP date; without one, 1, 2, 4 ... seconds."""
    if isinstance(value, str):
        text = value.strip()
        if re.fullmatch(r"\d{1,9}", text):
            return float(text)
        try:
            when = email.utils.parsedate_to_datetime(text)
            return max(0.0, when.timestamp() - time.time())
        except (TypeError, ValueError, IndexError, OverflowError):
            pass
    return float(2 ** (attempt - 1))


def _kind(value) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "missing"}.get(
        type(value), type(value).__name__
    )
