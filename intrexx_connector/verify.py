"""verify: prove each portal's registration works, the way Intrexx will use it, with MSAL.

Per portal: a confidential client gets a token for `<resource>/.default`; for application access without a
mailbox scope the token's `roles` must hold every role granted by admin consent. Entra's replication lag (new
application, secret or consent not visible yet) is waited out with capped exponential backoff and jitter, each
token request leaving at least `min_interval` seconds after the answer to the previous one arrived (so the
authority sees them at least that far apart), until `timeout`. What replication does not explain (connection
refused, unknown host, TLS failure) ends a portal after `UNREACHABLE_TRIES` tries in a row. With `device_code`,
delegated portals also sign a mailbox user in with the device code flow, read the inbox through the portal's API,
and try the confidential client's redemption of the refresh token. The offline plan's placeholder secrets are
refused before anything is sent.

The identity provider is untrusted too (transport.py): verify sends requests only to the authority's own https
origin, follows no redirect, gives each request one deadline for all of it, and removes the client secret from
anything an answer quotes before it becomes a message (secrets.py). `timeout` bounds the whole run: each portal
stops starting requests at its deadline, and a request under way ends by it (plus what a last socket operation
and the thread switch take, well under a second). The portals run in a ThreadPoolExecutor; Ctrl-C stops the
waiting ones at once, ends the requests under way (transport.abort_requests) and drops the ones not started.
"""

import functools
import random
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msal
import requests
from msal.exceptions import MsalServiceError

from components.catalogue import load_catalogue
from components.contract import PortalOutput
from components.facts import PLACEHOLDER_SECRET, is_placeholder_secret, token_payload
from components.urls import UrlError, WebUrl, parse_web_url, same_origin, shown_origin

from .errors import AuthorityError, TokenError, UsageError
from .secrets import contains_secret, scrub
from .stack_outputs import authority_for
from .transport import (
    MIN_REQUEST_TIME,
    Answer,
    AuthorityHttp,
    DeadlinePassed,
    Malformed,
    OriginHttp,
    Refused,
    TransportError,
    Unreachable,
    abort_requests,
    deadline_session,
    json_object,
)

# Authority hosts that serve Entra's instance discovery; any other host (a private endpoint, a test provider)
# is used as given, without a call to the public discovery endpoint.
MICROSOFT_AUTHORITY_HOSTS = frozenset(
    {
        "login.microsoftonline.com",
        "login.microsoftonline.us",
        "login.chinacloudapi.cn",
        "login.microsoft.com",
        "login.windows.net",
        "login.partner.microsoftonline.cn",
    }
)
# MSAL adds these itself and refuses them in `scopes`.
MSAL_RESERVED_SCOPES = frozenset({"openid", "profile", "offline_access"})

# AADSTS codes worth a sentence (learn.microsoft.com/entra/identity-platform/reference-error-codes).
GUIDANCE = {
    700016: "application not found in the directory: Entra has not replicated it yet, or tenantId/clientId "
    "do not belong together",
    7000215: "invalid client secret: render again from the current outputs (secrets rotate); a secret created "
    "minutes ago may not be replicated yet",
    7000222: "client secret expired: run `pulumi up` (it rotates the secrets), then render and update Intrexx",
    90002: "tenant not found: check tenantId and the cloud (authority host) of the stack",
    50011: "redirect URI mismatch: Intrexx must send exactly a registered redirect URI (https behind a TLS proxy, "
    "no trailing slash)",
    7000218: "public client flows are off: delegated portals need them for the device code flow; redeploy",
    65001: "consent missing: admin consent is not granted or not replicated yet",
    500011: "resource not found in the tenant: the API's service principal is missing",
    700024: "client assertion invalid",
}
RETRYABLE_CODES = frozenset({700016, 65001, 500011})
OPAQUE_TOKEN_WARNING = "roles not checkable (opaque token)"
# An invalid secret right after creation is replication; later it is a wrong secret. Retry it only this long.
INVALID_SECRET_GRACE = 120.0
# Connection refused, an unknown host name or a TLS failure: tries in a row before verify gives up on a portal.
UNREACHABLE_TRIES = 3


@dataclass(frozen=True)
class VerifyOptions:
    authority_host: str | None = None
    timeout: float = 300.0
    device_code: bool = False
    request_timeout: float = 10.0
    min_interval: float = 1.0
    max_interval: float = 1.8
    max_workers: int = 8
    http_client: requests.Session | None = None
    on_device_flow: Callable[[PortalOutput, dict], None] | None = None


@dataclass
class PortalResult:
    name: str
    ok: bool
    reason: str
    attempts: int = 0
    elapsed: float = 0.0
    roles: list = field(default_factory=list)
    codes: list = field(default_factory=list)
    inbox: dict | None = None
    warnings: list = field(default_factory=list)
    confidential_redemption: str | None = None  # --device-code: the refresh token redeemed with the secret?

    def as_dict(self) -> dict:
        return {
            "portal": self.name,
            "ok": self.ok,
            "reason": self.reason,
            "attempts": self.attempts,
            "elapsed": round(self.elapsed, 3),
            "roles": self.roles,
            "aadstsCodes": self.codes,
            "inbox": self.inbox,
            "warnings": self.warnings,
            "confidentialRedemption": self.confidential_redemption,
        }

    def summary_line(self) -> str:
        waited = f" (after {self.attempts} attempts, {self.elapsed:.1f} s)" if self.attempts > 1 else ""
        warned = "".join(f"; warning: {warning}" for warning in self.warnings)
        return f"{self.name}: {'ok' if self.ok else 'FAILED'}: {self.reason}{waited}{warned}"


class _EntraHttp(AuthorityHttp):
    """The authority's http_client for MSAL, which also checks the shape of what MSAL will parse: the discovery
    document's endpoints (on the authority's origin, or refused before anything is sent to them) and the type of
    every field of a token or device code answer that MSAL or verify reads (MSAL indexes and converts them
    without checking: a number for `error_codes` or a list for `error_description` would raise inside it)."""

    def get(self, url: str, params: Any = None, headers: Any = None, **kwargs: Any) -> Answer:
        answer = super().get(url, params=params, headers=headers, **kwargs)
        if urlsplit(url).path.endswith("/.well-known/openid-configuration") and answer.status_code == 200:
            _check_discovery(json_object(answer, "the discovery document"), self.origin)
        return answer

    def post(self, url: str, params: Any = None, headers: Any = None, data: Any = None, **kwargs: Any) -> Answer:
        answer = super().post(url, params=params, headers=headers, data=data, **kwargs)
        if answer.status_code < 500:  # MSAL raises for 5xx itself, without parsing the body
            _check_fields(json_object(answer, "the token endpoint's answer"), "the token endpoint's answer")
        return answer


# What the discovery document and the token and device code answers must hold where they hold it: the fields
# MSAL reads (msal/authority.py, msal/oauth2cli/oauth2.py, msal/token_cache.py) and verify reads.
_TEXT, _NUMBER, _CODES = "a string", "a number", "a list of numbers"
_ANSWER_FIELDS = {
    "access_token": _TEXT,
    "token_type": _TEXT,
    "refresh_token": _TEXT,
    "id_token": _TEXT,
    "scope": _TEXT,
    "error": _TEXT,
    "error_description": _TEXT,
    "error_uri": _TEXT,
    "error_codes": _CODES,
    "expires_in": _NUMBER,
    "ext_expires_in": _NUMBER,
    "refresh_in": _NUMBER,
    "device_code": _TEXT,
    "user_code": _TEXT,
    "verification_uri": _TEXT,
    "message": _TEXT,
    "interval": _NUMBER,
}


def _check_fields(document: Mapping[str, Any], what: str) -> None:
    for key, kind in _ANSWER_FIELDS.items():
        if key in document and not _is(document[key], kind):
            raise Malformed(f"{what} has '{key}' that is not {kind}")


def _is(value: object, kind: str) -> bool:
    if kind == _TEXT:
        return isinstance(value, str)
    if kind == _NUMBER:  # digit strings too: MSAL converts with int() ("Some IdP returns string", oauth2.py)
        return (isinstance(value, int) and not isinstance(value, bool)) or (isinstance(value, str) and value.isdigit())
    return isinstance(value, list) and all(isinstance(code, int) and not isinstance(code, bool) for code in value)


def _check_discovery(document: Mapping[str, Any], origin: WebUrl) -> None:
    for key in ("token_endpoint", "authorization_endpoint"):
        if not isinstance(document.get(key), str):
            raise Malformed(f"the discovery document has no '{key}' string")
    for key in ("token_endpoint", "device_authorization_endpoint"):
        endpoint = document.get(key)
        if endpoint is None and key != "token_endpoint":
            continue
        if not isinstance(endpoint, str):
            raise Malformed(f"the discovery document's '{key}' is not a string")
        if not same_origin(endpoint, origin):
            raise Refused(
                f"the discovery document names the {key.replace('_', ' ')} {shown_origin(endpoint)}, which is not the "
                f"authority ({origin.origin_text}); verify sends the client secret to the authority only"
            )


class _Retry(Exception):
    """A failure that replication, consent lag or a passing outage explains: worth another request. `lasting`:
    one that none of those explains (connection refused, unknown host, TLS), retried only `UNREACHABLE_TRIES`
    times in a row, in case the network itself blinked."""

    def __init__(self, reason: str, codes: tuple[int, ...] = (), lasting: bool = False):
        super().__init__(reason)
        self.reason = reason
        self.codes = codes
        self.lasting = lasting


@dataclass(frozen=True)
class Progress:
    """A portal that waits: `state` is why (it changes only when the reason does), `line` adds when the next
    request goes out."""

    portal: str
    state: str
    line: str

    def __str__(self) -> str:
        return self.line


def verify_portals(
    portals: list[PortalOutput], options: VerifyOptions, progress: Callable[[Progress], None] = lambda event: None
) -> list[PortalResult]:
    placeholders = [portal.name for portal in portals if is_placeholder_secret(portal.client_secret)]
    if placeholders:
        raise UsageError(
            f"portal(s) {', '.join(placeholders)}: the client secret is the offline plan's placeholder "
            f"({PLACEHOLDER_SECRET}), not a real one; verify the outputs of `pulumi up` (nothing was sent)"
        )
    for portal in portals:
        _check_authority(authority_for(portal, options.authority_host))
    session = deadline_session(options.http_client)
    secrets = [portal.client_secret for portal in portals]
    lock = threading.Lock()
    stop = threading.Event()

    def report(event: Progress) -> None:
        with lock:
            progress(Progress(event.portal, scrub(event.state, secrets), scrub(event.line, secrets)))

    # One deadline for the whole run: a portal that waits for a free worker gets less time, not more.
    deadline = time.monotonic() + options.timeout
    pool = ThreadPoolExecutor(max(1, min(options.max_workers, len(portals))), thread_name_prefix="verify")
    try:
        futures = [
            pool.submit(_portal_result, portal, options, session, report, stop, secrets, deadline) for portal in portals
        ]
        results = [future.result() for future in futures]
    except BaseException:
        # Ctrl-C (or SIGTERM): waiting portals stop at once, requests under way are ended, queued ones dropped.
        stop.set()
        abort_requests(session)
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()
    return results


def _portal_result(
    portal: PortalOutput,
    options: VerifyOptions,
    session: requests.Session,
    report: Callable[[Progress], None],
    stop: threading.Event,
    secrets: list[str | None],
    deadline: float,
) -> PortalResult:
    """One portal's result, whatever happens: an unexpected error is that portal's failure, secret-free."""
    try:
        result = _verify_portal(portal, options, session, report, stop, deadline)
    except Exception as error:  # noqa: BLE001 - a hostile answer must not end the other portals' checks
        result = PortalResult(portal.name, ok=False, reason=f"unexpected error: {_first_line(error)}")
    result.reason = scrub(result.reason, secrets)
    result.roles = [scrub(role, secrets) for role in result.roles]  # claims are the provider's words too
    return result


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return f"{type(error).__name__}: {text.splitlines()[0][:200]}" if text else type(error).__name__


def _instance_discovery(authority: str) -> bool:
    return _check_authority(authority).host in MICROSOFT_AUTHORITY_HOSTS


@functools.lru_cache(maxsize=256)
def _check_authority(authority: str) -> WebUrl:
    """The authority as a browser reads it (asked several times per attempt: parsed once per process)."""
    try:
        return parse_web_url(authority)
    except UrlError as error:
        raise UsageError(
            f"authority {authority!r} {error}: it must be an https URL (MSAL and Entra require TLS); check "
            "--authority-host"
        ) from None


def _verify_portal(
    portal: PortalOutput,
    options: VerifyOptions,
    session: requests.Session,
    report: Callable[[Progress], None],
    stop: threading.Event,
    deadline: float,
) -> PortalResult:
    started = time.monotonic()
    result = PortalResult(portal.name, ok=False, reason="")
    authority = authority_for(portal, options.authority_host)
    http = _EntraHttp(
        session,
        _check_authority(authority),
        lambda: 0.0 if stop.is_set() else min(time.monotonic() + options.request_timeout, deadline),
    )
    attempt = lasting = 0
    while True:
        attempt += 1
        request_started = time.monotonic()
        retry = _attempt(portal, options, http, deadline, result)
        if retry is None:
            break
        reason = retry.reason
        lasting = lasting + 1 if retry.lasting else 0
        now = time.monotonic()
        if stop.is_set():
            result.reason = f"interrupted: {reason}"
            break
        if lasting >= UNREACHABLE_TRIES:
            result.reason = f"{reason} (gave up after {lasting} tries: no replication delay explains this)"
            break
        if now >= deadline:
            result.reason = f"gave up after {options.timeout:g} s: {reason}"
            break
        wait = max(
            0.0, min(deadline - now, (http.last_post_done or request_started) + _backoff(attempt, options) - now)
        )
        line = f"{portal.name}: {reason}; retrying in {wait:.1f} s ({now - started:.0f}/{options.timeout:g} s)"
        report(Progress(portal.name, reason, line))
        if stop.wait(wait):
            result.reason = f"interrupted: {reason}"
            break
        if deadline - time.monotonic() < MIN_REQUEST_TIME:
            result.reason = f"gave up after {options.timeout:g} s: {reason}"
            break
    result.attempts, result.elapsed = attempt, time.monotonic() - started
    if result.ok and options.device_code and not stop.is_set():
        _verify_mailbox(portal, options, session, result, deadline)
    return result


def _attempt(
    portal: PortalOutput, options: VerifyOptions, http: _EntraHttp, deadline: float, result: PortalResult
) -> _Retry | None:
    """One token request and its checks: None when `result` is final (ok or failed), else the reason to retry."""
    try:
        token = _client_token(portal, options, http, deadline)
        claims = token_payload(token)
        if claims is None and _required_roles(portal):
            # Waiting would not help: no later token of this kind shows its roles either.
            result.warnings = [OPAQUE_TOKEN_WARNING]
        else:
            result.roles = _roles(claims or {})
            _check_roles(portal, result.roles)
        result.ok, result.reason = True, _success_reason(portal, result.roles)
    except _Retry as retry:
        result.codes = list(retry.codes)
        return retry
    except (TokenError, AuthorityError) as error:
        result.reason, result.codes = str(error), list(getattr(error, "codes", ()))
    return None


def _backoff(attempt: int, options: VerifyOptions) -> float:
    """Capped exponential growth with jitter, never below min_interval: at most one request per interval."""
    ceiling = min(options.max_interval, options.min_interval * 2 ** (attempt - 1))
    return options.min_interval + random.random() * (ceiling - options.min_interval)  # noqa: S311 - jitter


def _confidential_client(portal: PortalOutput, authority: str, http: _EntraHttp) -> msal.ConfidentialClientApplication:
    """The portal's confidential client, with a cache of its own and verify's transport."""
    return msal.ConfidentialClientApplication(
        portal.client_id,
        client_credential=portal.client_secret,
        authority=authority,
        http_client=http,
        token_cache=msal.TokenCache(),
        instance_discovery=_instance_discovery(authority),
    )


def _client_token(portal: PortalOutput, options: VerifyOptions, http: _EntraHttp, deadline: float) -> str:
    authority = authority_for(portal, options.authority_host)
    try:
        # A new application each attempt: MSAL replays a cached error answer (400 for 60 s, 5xx for 5 s).
        app = _confidential_client(portal, authority, http)
        answer = app.acquire_token_for_client(scopes=[f"{portal.resource}/.default"])
    except DeadlinePassed as error:
        raise _Retry(error.reason) from None
    except Unreachable as error:
        raise _Retry(error.reason, lasting=error.lasting) from None
    except TransportError as error:
        raise AuthorityError(error.reason) from None
    except (requests.RequestException, MsalServiceError, ValueError, OSError) as error:
        raise _transport_error(error, [portal.client_secret]) from None
    except Exception as error:  # noqa: BLE001 - MSAL parses the provider's answer and may raise anything on it
        raise AuthorityError(f"malformed answer from the identity provider ({type(error).__name__})") from None
    if not isinstance(answer, dict):
        raise AuthorityError("malformed answer from the identity provider")
    if "access_token" in answer:
        token = answer["access_token"]
        if not isinstance(token, str):
            raise AuthorityError("the token endpoint's answer has 'access_token' that is not a string")
        return token
    raise _token_error(answer, time.monotonic() - (deadline - options.timeout), [portal.client_secret])


def _transport_error(error: Exception, secrets: list[str | None]) -> Exception:
    """MSAL raises, instead of answering a dict, for timeouts, TLS and connection errors, 5xx, bodies that are not
    JSON, and a failed discovery (whose cause may be an Entra error such as AADSTS90002)."""
    chain: list[BaseException] = []
    link: BaseException | None = error
    while link is not None and link not in chain:
        chain.append(link)
        link = link.__cause__ or link.__context__
    text = " ".join(str(e) for e in chain)
    for code in (90002, 700016):
        if f"AADSTS{code}" in text:
            return _token_error(
                {"error": "invalid_request", "error_codes": [code], "error_description": f"AADSTS{code}"}, 0.0, []
            )
    first = chain[0]
    if any(isinstance(e, requests.Timeout) or "timed out" in str(e).lower() for e in chain):
        return _Retry("no answer from the identity provider in time")
    if isinstance(first, requests.ConnectionError):
        return _Retry(f"cannot reach the identity provider ({type(first).__name__})")
    line = str(first).splitlines()[0][:200] if str(first) else type(first).__name__
    return _Retry(f"identity provider error: {scrub(line, secrets)}")


def _token_error(answer: dict, elapsed: float, secrets: list[str | None]) -> Exception:
    """The one place where MSAL's error dicts become this package's errors (or a reason to retry). Every field is
    the provider's: its type is checked, and a description that quotes the request (with the secret) is dropped."""
    raw_codes = answer.get("error_codes")
    codes = (
        tuple(c for c in raw_codes if isinstance(c, int) and not isinstance(c, bool))
        if isinstance(raw_codes, list)
        else ()
    )
    error = answer.get("error")
    error = error if isinstance(error, str) and error.isprintable() and len(error) <= 64 else "error"
    description = answer.get("error_description")
    description = description if isinstance(description, str) else ""
    if contains_secret(description, secrets):
        first = "(the identity provider's description quoted the request, client secret included: not shown)"
    else:
        first = (description.splitlines() or [""])[0][:300]
    code = codes[0] if codes else None
    fallback = f"{error}: {first}" if first else str(error)
    sentence = GUIDANCE.get(code, fallback) if code is not None else fallback
    label = f"AADSTS{code}: " if code else ""
    if code in RETRYABLE_CODES or (code == 7000215 and elapsed < INVALID_SECRET_GRACE):
        return _Retry(f"{label}{sentence}", codes)
    return TokenError(f"{label}{sentence}", error, codes)


def _roles(claims: dict) -> list[str]:
    roles = claims.get("roles", [])
    if not isinstance(roles, list) or not all(isinstance(role, str) for role in roles):
        raise AuthorityError("the token's 'roles' claim is not a list of strings")
    return sorted(roles)


def _required_roles(portal: PortalOutput) -> list[str]:
    """The roles the token for `<resource>/.default` must carry: those consented tenant-wide on that resource."""
    if portal.delegated or portal.scoped:
        return []
    resource_key = load_catalogue().connectors[portal.connector]
    return sorted(p.name for p in portal.consented_roles if p.resource == resource_key)


def _check_roles(portal: PortalOutput, roles: list[str]) -> None:
    missing = [role for role in _required_roles(portal) if role not in roles]
    if missing:
        raise _Retry(f"role missing from the token: {', '.join(missing)} (admin consent not replicated yet)")


def _success_reason(portal: PortalOutput, roles: list[str]) -> str:
    if portal.scoped:
        return "token issued; mailbox access is scoped by Exchange RBAC (check with exchange-rbac.ps1)"
    if roles:
        return f"token issued with roles {', '.join(roles)}"
    return "token issued (client credentials)"


def _verify_mailbox(
    portal: PortalOutput, options: VerifyOptions, session: requests.Session, result: PortalResult, deadline: float
) -> None:
    if not portal.delegated:
        result.reason += "; device code flow skipped (application access)"
        return
    if not portal.public_client:
        result.reason += (
            "; device code flow skipped (user accounts sign in through the browser; publicClientFlows is off)"
        )
        return
    authority = authority_for(portal, options.authority_host)
    # MSAL adds openid, profile and offline_access to every sign-in itself. For the Exchange connector that is
    # exactly what its MediaGateway asks for: EWS.AccessAsUser.All and offline_access (a refresh token).
    scopes = [s for s in portal.scopes if s not in MSAL_RESERVED_SCOPES]

    def request_deadline() -> float:
        return min(time.monotonic() + options.request_timeout, deadline)

    try:
        app = msal.PublicClientApplication(
            portal.client_id,
            authority=authority,
            http_client=_EntraHttp(session, _check_authority(authority), request_deadline),
            token_cache=msal.TokenCache(),
            instance_discovery=_instance_discovery(authority),
        )
        flow = app.initiate_device_flow(scopes=scopes)
        if "user_code" not in flow:
            raise _token_error(flow, float("inf"), [portal.client_secret])
        if options.on_device_flow:
            options.on_device_flow(portal, flow)
        answer = app.acquire_token_by_device_flow(flow, exit_condition=lambda f: time.monotonic() > deadline)
        if "access_token" not in answer:
            raise _token_error(answer, float("inf"), [portal.client_secret])
        access_token, signed_in = answer["access_token"], "mailbox user signed in"
        if portal.uses_ews:
            answer = _redeem_refresh_token(app, answer, scopes, portal)
            access_token, signed_in = answer["access_token"], "mailbox user signed in, refresh token redeemed"
        api = portal.ews_url if portal.uses_ews and portal.ews_url else portal.resource
        mailbox_api = OriginHttp.for_url(session, api, request_deadline, "the mailbox API")
        result.inbox = _read_inbox(portal, access_token, mailbox_api)
        result.reason += f"; {signed_in}, inbox '{result.inbox.get('displayName')}' read"
        result.confidential_redemption = _confidential_redemption(
            portal, authority, _EntraHttp(session, _check_authority(authority), request_deadline), answer, scopes
        )
        result.reason += f"; {result.confidential_redemption}"
    except TransportError as error:
        result.ok = False
        result.reason += f"; device code sign-in failed: {error.reason}"
    except (TokenError, _Retry, requests.RequestException, MsalServiceError, ValueError) as error:
        result.ok = False
        result.reason += f"; device code sign-in failed: {error}"
    except Exception as error:  # noqa: BLE001 - MSAL parses the provider's answers and may raise anything on them
        result.ok = False
        result.reason += f"; device code sign-in failed: malformed answer ({type(error).__name__})"


def _redeem_refresh_token(
    app: msal.ClientApplication, answer: dict[str, Any], scopes: list[str], portal: PortalOutput
) -> dict[str, Any]:
    """What the Exchange connector lives on: Intrexx keeps each mailbox user's refresh token ("Request MS365
    Refresh Token", valid for about three months) and redeems it for EWS tokens. So the device code sign-in must
    return a refresh token (offline_access consented), and that token must give a new EWS access token."""
    refresh_token = answer.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        raise TokenError(
            "no refresh token came back: Intrexx's MediaGateway needs offline_access, consented for all users "
            "(redeploy, or check the permissions in the outputs)"
        )
    redeemed = app.acquire_token_by_refresh_token(refresh_token, scopes=scopes)
    if "access_token" not in redeemed:
        # The refresh token is a credential too: an answer that quotes it is scrubbed like one quoting the secret.
        raise _token_error(redeemed, float("inf"), [portal.client_secret, refresh_token])
    return redeemed


def _confidential_redemption(
    portal: PortalOutput, authority: str, http: _EntraHttp, answer: dict[str, Any], scopes: list[str]
) -> str:
    """Whether the mailbox user's refresh token is also redeemed by the confidential client, with the client
    secret. Public client flows are on because Intrexx's "Request MS365 Refresh Token" is a device code sign-in,
    and Entra answers AADSTS7000218 to one redeemed without the secret; whether Intrexx sends the secret, no
    Intrexx page says (an assumption: README "Public client flows"). If the secret works here, an app registration
    with `publicClientFlows: false` serves Intrexx as long as Intrexx sends it: worth trying, as that setting lets
    anyone holding the client id sign users in with the consented scopes without the secret."""
    refresh_token = answer.get("refresh_token")
    if not isinstance(refresh_token, str) or not refresh_token:
        return "confidential redemption not tried (no refresh token came back)"
    app = _confidential_client(portal, authority, http)
    redeemed = app.acquire_token_by_refresh_token(refresh_token, scopes=scopes)
    if "access_token" in redeemed:
        return (
            "the refresh token is redeemed with the client secret too: publicClientFlows: false would do if Intrexx "
            "sends its secret when it redeems (unconfirmed; try it on a test portal)"
        )
    refused = _token_error(redeemed, float("inf"), [portal.client_secret, refresh_token])
    return f"not redeemed with the client secret ({refused}): keep publicClientFlows: true"


EWS_GET_INBOX = """<?xml version="1.0" encoding="utf-8"?>
<soap:Envelope xmlns:soap="http://schemas.xmlsoap.org/soap/envelope/"
  xmlns:t="http://schemas.microsoft.com/exchange/services/2006/types"
  xmlns:m="http://schemas.microsoft.com/exchange/services/2006/messages">
  <soap:Header><t:RequestServerVersion Version="Exchange2016"/></soap:Header>
  <soap:Body>
    <m:GetFolder>
      <m:FolderShape><t:BaseShape>Default</t:BaseShape></m:FolderShape>
      <m:FolderIds><t:DistinguishedFolderId Id="inbox"/></m:FolderIds>
    </m:GetFolder>
  </soap:Body>
</soap:Envelope>"""


def _read_inbox(portal: PortalOutput, access_token: str, api: OriginHttp) -> dict[str, Any]:
    """The call Intrexx makes: Graph `me/mailFolders/inbox`, or EWS GetFolder for the inbox (through transport.py:
    the API's origin only, no redirect followed, one deadline)."""
    headers = {"Authorization": f"Bearer {access_token}"}
    if portal.uses_ews and portal.ews_url:
        answer = api.request(
            "POST",
            portal.ews_url,
            data=EWS_GET_INBOX.encode(),
            headers={**headers, "Content-Type": "text/xml; charset=utf-8"},
        )
        _check_status(answer)
        import xml.etree.ElementTree as ET

        root = ET.fromstring(answer.content)
        ns = {
            "m": "http://schemas.microsoft.com/exchange/services/2006/messages",
            "t": "http://schemas.microsoft.com/exchange/services/2006/types",
        }
        message = root.find(".//m:GetFolderResponseMessage", ns)
        if message is None or message.get("ResponseClass") != "Success":
            raise ValueError("EWS GetFolder did not succeed")
        return {
            "displayName": root.findtext(".//t:DisplayName", default="", namespaces=ns),
            "totalItemCount": int(root.findtext(".//t:TotalCount", default="0", namespaces=ns)),
        }
    answer = api.request("GET", f"{portal.resource}/v1.0/me/mailFolders/inbox", headers=headers)
    _check_status(answer)
    body = json_object(answer, "the mailbox API's answer")
    return {"displayName": body.get("displayName"), "totalItemCount": body.get("totalItemCount")}


def _check_status(answer: Answer) -> None:
    if answer.status_code != 200:
        raise ValueError(f"the mailbox API answered HTTP {answer.status_code} ({shown_origin(answer.url)})")
