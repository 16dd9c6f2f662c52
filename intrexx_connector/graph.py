"""A read-only Microsoft Graph client for `doctor`: GET only, and bounded in every dimension.

Graph's answers are treated as hostile input. Every request goes through transport.py (the one HTTP layer, one
session for the client, in the calling thread) and has its own timeout (enforced on the whole exchange, so a
server that drips headers or body cannot stretch it) and shares one overall deadline; redirects are not
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
            +-- GraphProtocolError  not JSON (or nested too deeply), wrong shape, too large, a redirect, or
                                    paging that leaves the origin or does not end
"""

import email.utils
import json
import re
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote, urlsplit

import requests
from requests.structures import CaseInsensitiveDict

from components.urls import parse_web_url, same_origin

from .errors import CheckFailed
from .transport import DeadlinePassed, Malformed, OriginHttp, TransportError, Unreachable, deadline_session

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

    def __call__(self, request: Any) -> Any:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


@dataclass
class _Answer:
    status: int
    headers: CaseInsensitiveDict
    body: bytes


class GraphClient:
    """GET requests against `<origin>/<version>/...` (`origin` a bare https origin, as `doctor.graph_origin`
    returns it), through transport.py on one session; `request_count` counts them."""

    def __init__(
        self,
        origin: str,
        token: str,
        limits: GraphLimits = GraphLimits(),
        version: str = "v1.0",
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
        session: requests.Session | None = None,
    ):
        self._origin = parse_web_url(origin.rstrip("/"), allow_path=False)
        self.origin = self._origin.origin_text
        self.version = version
        self.limits = limits
        self._token = token
        self._clock, self._sleep = clock, sleep
        self._deadline = clock() + limits.deadline
        # One session for every GET (trust_env, the default, honours REQUESTS_CA_BUNDLE and the proxy variables).
        self._session = deadline_session(session)
        self._http = OriginHttp(
            self._session,
            self._origin,
            lambda: time.monotonic() + min(self.limits.request_timeout, self._remaining()),
            "Microsoft Graph",
            max_bytes=limits.max_bytes,
        )
        self.request_count = 0

    # public --------------------------------------------------------------------------------------------------

    def url(self, path: str, params: dict[str, Any] | None = None) -> str:
        query = "&".join(f"{key}={quote(str(value), safe=chr(39) + '(),')}" for key, value in (params or {}).items())
        return f"{self.origin}/{self.version}{path}" + (f"?{query}" if query else "")

    def get(self, path: str, params: dict[str, Any] | None = None) -> dict[str, Any]:
        return self._get_json(self.url(path, params))

    def get_collection(self, path: str, params: dict[str, Any] | None = None) -> list[Any]:
        """Every object of a collection, following `@odata.nextLink`. Graph: "You can retrieve the next page of
        results by sending the URL value of the @odata.nextLink property to Microsoft Graph"
        (learn.microsoft.com/graph/paging)."""
        url, items, pages = self.url(path, params), list[Any](), 0
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
            if not isinstance(next_link, str) or not same_origin(next_link, self._origin):
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

    def _remaining(self) -> float:
        return self._deadline - self._clock()

    def _get_json(self, url: str) -> dict[str, Any]:
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

    def _parse(self, path: str, answer: _Answer) -> dict[str, Any]:
        try:
            document = json.loads(answer.body.decode("utf-8"))
        except RecursionError:
            raise GraphProtocolError(f"{path}: the answer's JSON is nested too deeply to read") from None
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
        except (UnicodeDecodeError, ValueError, AttributeError, RecursionError):
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
        """One GET through transport.py, in this thread: it ends by the request timeout or the overall deadline,
        whichever comes first, whatever the peer does."""
        remaining = self._remaining()
        if remaining <= 0:
            raise GraphUnreachable(f"doctor's overall time limit of {self.limits.deadline:g} s is used up")
        timeout = min(self.limits.request_timeout, remaining)
        path = urlsplit(url).path
        self.request_count += 1
        try:
            answer = self._http.request(
                "GET", url, auth=_Bearer(self._token), headers={"Accept": "application/json", "User-Agent": USER_AGENT}
            )
        except DeadlinePassed:
            raise GraphUnreachable(f"{path}: no complete answer within {timeout:g} s") from None
        except Malformed:
            raise GraphProtocolError(
                f"{path}: the answer is larger than {self.limits.max_bytes} bytes; not read"
            ) from None
        except Unreachable as error:
            raise GraphUnreachable(f"{path}: {error.reason}") from None
        except TransportError as error:
            raise GraphProtocolError(f"{path}: {error.reason}") from None
        return _Answer(answer.status_code, answer.headers, answer.content)

    def close(self) -> None:
        self._session.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()


def _retry_after(value: object, attempt: int) -> float:
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


def _kind(value: object) -> str:
    return {dict: "an object", list: "a list", str: "a string", type(None): "missing"}.get(
        type(value), type(value).__name__
    )
