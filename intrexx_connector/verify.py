"""verify: prove each portal's registration works, the way Intrexx will use it, with MSAL.

Per portal: a confidential client gets a token for `<resource>/.default`; for application access without a
mailbox scope the token's `roles` must hold every role granted by admin consent. Entra's replication lag (new
application, secret or consent not visible yet) is waited out with capped exponential backoff and jitter, never
more than one token request per `min_interval` seconds per portal, until `timeout`. With `device_code`, delegated
portals also sign a mailbox user in with the device code flow and read the inbox through the portal's API.
"""

import base64
import json
import random
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import msal
import requests
from msal.exceptions import MsalServiceError

from components.catalogue import load_catalogue
from components.contract import PortalOutput

from .errors import TokenError, UsageError
from .stack_outputs import authority_for

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
        }

    def summary_line(self) -> str:
        waited = f" (after {self.attempts} attempts, {self.elapsed:.1f} s)" if self.attempts > 1 else ""
        warned = "".join(f"; warning: {warning}" for warning in self.warnings)
        return f"{self.name}: {'ok' if self.ok else 'FAILED'}: {self.reason}{waited}{warned}"


class _TimedHttp:
    """MSAL ignores its `timeout` when it is given an http_client, so every request gets one here. Also notes
    when the last POST (the token request) left, so that retries are spaced from it, not from the discovery."""

    def __init__(self, session: requests.Session, timeout: float):
        self.session, self.timeout = session, timeout
        self.last_post: float | None = None

    def get(self, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        return self.session.get(url, **kwargs)

    def post(self, url, **kwargs):
        kwargs.setdefault("timeout", self.timeout)
        self.last_post = time.monotonic()
        return self.session.post(url, **kwargs)

    def close(self):
        pass


class _Retry(Exception):
    """A failure that replication, consent lag or a passing outage explains: worth another request."""

    def __init__(self, reason: str, codes: tuple = ()):
        super().__init__(reason)
        self.reason = reason
        self.codes = codes


def verify_portals(
    portals: list[PortalOutput], options: VerifyOptions, progress: Callable[[str], None] = lambda line: None
) -> list[PortalResult]:
    for portal in portals:
        _check_authority(authority_for(portal, options.authority_host))
    session = options.http_client or requests.Session()
    lock = threading.Lock()

    def report(line: str) -> None:
        with lock:
            progress(line)

    if len(portals) <= 1:
        return [_verify_portal(p, options, session, report) for p in portals]
    with ThreadPoolExecutor(max_workers=min(options.max_workers, len(portals))) as pool:
        return list(pool.map(lambda p: _verify_portal(p, options, session, report), portals))


def _instance_discovery(authority: str) -> bool:
    return urlsplit(authority).hostname in MICROSOFT_AUTHORITY_HOSTS


def _check_authority(authority: str) -> None:
    parts = urlsplit(authority)
    if parts.scheme != "https" or not parts.hostname:
        raise UsageError(
            f"authority {authority} must be an https URL (MSAL and Entra require TLS); check --authority-host"
        )


def _verify_portal(portal: PortalOutput, options: VerifyOptions, session, report) -> PortalResult:
    started = time.monotonic()
    deadline = started + options.timeout
    result = PortalResult(portal.name, ok=False, reason="")
    http = _TimedHttp(session, options.request_timeout)
    attempt = 0
    while True:
        attempt += 1
        request_started = time.monotonic()
        try:
            token = _client_token(portal, options, http, deadline)
            claims = _claims(token)
            if claims is None and _required_roles(portal):
                # Waiting would not help: no later token of this kind shows its roles either.
                result.warnings = [OPAQUE_TOKEN_WARNING]
            else:
                result.roles = sorted((claims or {}).get("roles", []))
                _check_roles(portal, result.roles)
            result.ok, result.reason = True, _success_reason(portal, result.roles)
            break
        except _Retry as retry:
            reason, result.codes = retry.reason, list(retry.codes)
        except TokenError as error:
            result.reason, result.codes = str(error), list(error.codes)
            break
        now = time.monotonic()
        if now >= deadline:
            result.reason = f"gave up after {options.timeout:g} s: {reason}"
            break
        delay = _backoff(attempt, options)
        wait = max(0.0, min(deadline - now, (http.last_post or request_started) + delay - now))
        report(f"{portal.name}: {reason}; retrying in {wait:.1f} s ({now - started:.0f}/{options.timeout:g} s)")
        time.sleep(wait)
    result.attempts, result.elapsed = attempt, time.monotonic() - started
    if result.ok and options.device_code:
        _verify_mailbox(portal, options, session, result, deadline)
    return result


def _backoff(attempt: int, options: VerifyOptions) -> float:
    """Capped exponential growth with jitter, never below min_interval: at most one request per interval."""
    ceiling = min(options.max_interval, options.min_interval * 2 ** (attempt - 1))
    return options.min_interval + random.random() * (ceiling - options.min_interval)  # noqa: S311 - jitter


def _client_token(portal: PortalOutput, options: VerifyOptions, http: _TimedHttp, deadline: float) -> str:
    authority = authority_for(portal, options.authority_host)
    http.timeout = max(0.1, min(options.request_timeout, deadline - time.monotonic()))
    try:
        # A new application each attempt: MSAL replays a cached error answer (400 for 60 s, 5xx for 5 s).
        app = msal.ConfidentialClientApplication(
            portal.client_id,
            client_credential=portal.client_secret,
            authority=authority,
            http_client=http,
            token_cache=msal.TokenCache(),
            instance_discovery=_instance_discovery(authority),
        )
        answer = app.acquire_token_for_client(scopes=[f"{portal.resource}/.default"])
    except (requests.RequestException, MsalServiceError, ValueError, OSError) as error:
        raise _transport_error(error) from None
    if "access_token" in answer:
        return answer["access_token"]
    raise _token_error(answer, time.monotonic() - (deadline - options.timeout))


def _transport_error(error: Exception) -> Exception:
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
                {"error": "invalid_request", "error_codes": [code], "error_description": f"AADSTS{code}"}, 0.0
            )
    first = chain[0]
    if any(isinstance(e, requests.Timeout) or "timed out" in str(e).lower() for e in chain):
        return _Retry("no answer from the identity provider in time")
    if isinstance(first, requests.ConnectionError):
        return _Retry(f"cannot reach the identity provider ({type(first).__name__})")
    line = str(first).splitlines()[0][:200] if str(first) else type(first).__name__
    return _Retry(f"identity provider error: {line}")


def _token_error(answer: dict, elapsed: float) -> Exception:
    """The one place where MSAL's error dicts become this package's errors (or a reason to retry)."""
    codes = tuple(int(code) for code in answer.get("error_codes") or ())
    error = answer.get("error", "error")
    first = (answer.get("error_description") or "").splitlines()[0][:300]
    code = codes[0] if codes else None
    fallback = f"{error}: {first}" if first else str(error)
    sentence = GUIDANCE.get(code, fallback) if code is not None else fallback
    label = f"AADSTS{code}: " if code else ""
    if code in RETRYABLE_CODES or (code == 7000215 and elapsed < INVALID_SECRET_GRACE):
        return _Retry(f"{label}{sentence}", codes)
    return TokenError(f"{label}{sentence}", error, codes)


def _claims(token: str) -> dict | None:
    """The token's claims, or None when it is not a JWT that can be decoded: "Tokens that a Microsoft API receives
    might not always be a JWT that can be decoded" (learn.microsoft.com/entra/identity-platform/access-tokens).
    It came straight from the token endpoint over TLS, so its signature is not re-checked."""
    try:
        payload = token.split(".")[1]
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
    except (IndexError, ValueError):
        return None
    return claims if isinstance(claims, dict) else None


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
    portal: PortalOutput, options: VerifyOptions, session, result: PortalResult, deadline: float
) -> None:
    if not portal.delegated:
        result.reason += "; device code flow skipped (application access)"
        return
    authority = authority_for(portal, options.authority_host)
    scopes = [s for s in portal.scopes if s not in MSAL_RESERVED_SCOPES]
    app = msal.PublicClientApplication(
        portal.client_id,
        authority=authority,
        http_client=_TimedHttp(session, options.request_timeout),
        token_cache=msal.TokenCache(),
        instance_discovery=_instance_discovery(authority),
    )
    try:
        flow = app.initiate_device_flow(scopes=scopes)
        if "user_code" not in flow:
            raise _token_error(flow, float("inf"))
        if options.on_device_flow:
            options.on_device_flow(portal, flow)
        answer = app.acquire_token_by_device_flow(flow, exit_condition=lambda f: time.monotonic() > deadline)
        if "access_token" not in answer:
            raise _token_error(answer, float("inf"))
        result.inbox = _read_inbox(portal, answer["access_token"], session, options.request_timeout)
        result.reason += f"; mailbox user signed in, inbox '{result.inbox.get('displayName')}' read"
    except (TokenError, _Retry, requests.RequestException, MsalServiceError, ValueError) as error:
        result.ok = False
        result.reason += f"; device code sign-in failed: {error}"


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


def _read_inbox(portal: PortalOutput, access_token: str, session, timeout: float) -> dict:
    """The call Intrexx makes: Graph `me/mailFolders/inbox`, or EWS GetFolder for the inbox."""
    headers = {"Authorization": f"Bearer {access_token}"}
    if portal.uses_ews and portal.ews_url:
        response = session.post(
            portal.ews_url,
            data=EWS_GET_INBOX.encode(),
            timeout=timeout,
            headers={**headers, "Content-Type": "text/xml; charset=utf-8"},
        )
        response.raise_for_status()
        import xml.etree.ElementTree as ET

        root = ET.fromstring(response.content)
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
    response = session.get(f"{portal.resource}/v1.0/me/mailFolders/inbox", headers=headers, timeout=timeout)
    response.raise_for_status()
    body = response.json()
    return {"displayName": body.get("displayName"), "totalItemCount": body.get("totalItemCount")}
