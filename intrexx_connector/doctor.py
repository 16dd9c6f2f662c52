"""doctor: read-only checks of the tenant against a stack file, before `pulumi up`.

`run_doctor` reads Pulumi.<stack>.yaml through the program's own validation, gets a Microsoft Graph token
(INTREXX_GRAPH_TOKEN, else azure-identity's DefaultAzureCredential), and runs the checks of `doctor_checks`
with a GET-only, bounded Graph client. A Graph failure fails the check it happened in, with one line and what
doctor needs to read it; it never stops the other checks. Bad usage or configuration raises UsageError or
ConfigError (exit 2). Nothing here prints.
"""

import functools
import logging
import os
import re
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import requests

from components import stack_file
from components.config import StackSettings
from components.facts import is_guid
from components.urls import UrlError, parse_web_url

from .doctor_checks import (
    FAIL,
    PASS,
    READS,
    WARN,
    Check,
    DoctorContext,
    check_app_management_policies,
    check_conditional_access,
    check_deployer,
    check_display_name,
    check_ews,
    display_name_targets,
)
from .errors import UsageError
from .graph import (
    GraphAuthError,
    GraphClient,
    GraphError,
    GraphForbidden,
    GraphLimits,
    GraphProtocolError,
    GraphThrottled,
    GraphTokenError,
    GraphUnreachable,
    one_line,
)
from .transport import deadline, deadline_session

TOKEN_VARIABLE = "INTREXX_GRAPH_TOKEN"
MAX_VERBOSE_LINES = 40
CLIENT_ID_VARIABLES = ("ARM_CLIENT_ID", "AZURE_CLIENT_ID")
# RFC 6750 b64token characters; anything else (white space, control characters) is not a bearer token.
_TOKEN_PATTERN = re.compile(r"[A-Za-z0-9\-._~+/]+=*")


@dataclass(frozen=True)
class DoctorOptions:
    stack: str
    today: date
    project_dir: Path | None = None
    graph_endpoint: str | None = None  # a bare origin such as https://graph.microsoft.com
    deployer_client_id: str | None = None
    portal: str | None = None
    limits: GraphLimits = field(default_factory=GraphLimits)
    token_timeout: float = 30.0
    verbose: bool = False  # the token failure with each credential's own answer (azure-identity's chain)


@dataclass
class DoctorReport:
    stack: str
    today: date
    graph_endpoint: str
    checks: list = field(default_factory=list)
    identity: dict = field(default_factory=dict)
    graph_requests: int = 0

    @property
    def counts(self) -> dict:
        return {status: sum(c.status == status for c in self.checks) for status in (PASS, WARN, FAIL)}

    @property
    def ok(self) -> bool:
        return not any(c.status == FAIL for c in self.checks)

    def as_dict(self) -> dict:
        return {
            "stack": self.stack,
            "date": self.today.isoformat(),
            "graphEndpoint": self.graph_endpoint,
            "ok": self.ok,
            "identity": self.identity,
            "summary": self.counts,
            "graphRequests": self.graph_requests,
            "checks": [c.as_dict() for c in self.checks],
        }


def load_stack_settings(stack: str, project_dir: Path | None, today: date) -> StackSettings:
    """The stack's settings, checked by the program's own validation: components.stack_file, the loader `plan`
    uses."""
    project_dir = project_dir or stack_file.default_project_dir()
    try:
        return stack_file.load_stack_settings(stack, project_dir, today)
    except FileNotFoundError:
        path = stack_file.stack_file_path(stack, project_dir)
        raise UsageError(f"--stack {stack}: no stack file {path.name} in {project_dir}") from None


def graph_origin(value: str) -> str:
    """--graph-endpoint: a bare https origin, read as a browser reads it (components/urls.py); doctor adds the
    version (/v1.0)."""
    try:
        return parse_web_url(value.rstrip("/"), allow_path=False).origin_text
    except UrlError as error:
        raise UsageError(
            f"--graph-endpoint must be a bare https origin such as https://graph.microsoft.com ({error}; doctor "
            f"adds /v1.0), got {value!r}"
        ) from None


def deployer_client_id(explicit: str | None, environ: Mapping[str, str]) -> tuple[str | None, str]:
    """The deploying service principal's client id: --deployer-client-id, else ARM_CLIENT_ID (the azuread
    provider's variable), else AZURE_CLIENT_ID (azure-identity's)."""
    candidates = [("--deployer-client-id", explicit)] + [(name, environ.get(name)) for name in CLIENT_ID_VARIABLES]
    for source, value in candidates:
        if value:
            if not is_guid(value.strip()):
                raise UsageError(f"{source} must be a client id (a GUID), got {one_line(value, 60)!r}")
            return value.strip().lower(), source
    return None, ""


def acquire_token(
    origin: str,
    settings: StackSettings,
    environ: Mapping[str, str],
    timeout: float,
    session: requests.Session | None = None,
    verbose: bool = False,
) -> tuple[str, str]:
    """(token, where it came from). The token is for `<origin>/.default`; it is never printed. azure-identity's
    HTTP goes through transport.py on `session`, in this thread: its https requests end by `timeout`, the managed
    identity endpoint's plain http gets `timeout` per socket operation, and a credential that runs a tool (az, azd,
    pwsh) gets `timeout` as its process timeout."""
    given = environ.get(TOKEN_VARIABLE)
    if given is not None:
        token = given.strip()
        if not _TOKEN_PATTERN.fullmatch(token):
            raise UsageError(
                f"{TOKEN_VARIABLE} is set but holds no bearer token (empty, or white space or other "
                "characters a token cannot have); unset it to sign in with azure-identity"
            )
        return token, TOKEN_VARIABLE
    try:
        from azure.core.pipeline.transport import RequestsTransport
        from azure.identity import DefaultAzureCredential
    except ImportError:
        raise GraphTokenError(
            f"azure-identity is not installed (pip install -r requirements.txt), and {TOKEN_VARIABLE} is not set"
        ) from None
    # azure-core's transport on our session: "session_owner: Decide if the session provided by user is owned by
    # this transport" (azure/core/pipeline/transport/_requests_basic.py); with False it never closes it.
    transport = RequestsTransport(
        session=deadline_session(session), session_owner=False, connection_timeout=timeout, read_timeout=timeout
    )
    with _azure_log() as logged, deadline(time.monotonic() + timeout):
        try:
            # authority: the cloud's login host (azure-identity: "AzureAuthorityHosts defines authorities for other
            # clouds"; learn.microsoft.com/python/api/azure-identity/azure.identity.defaultazurecredential).
            credential = DefaultAzureCredential(
                authority=settings.cloud.login, process_timeout=max(1, int(timeout)), transport=transport
            )
            return credential.get_token(f"{origin}/.default").token, "azure-identity (DefaultAzureCredential)"
        except Exception as error:  # noqa: BLE001 - azure-identity raises several types; all mean "no token"
            raise GraphTokenError(_no_token(error, logged, verbose)) from None


def _no_token(error: BaseException, logged: list[str], verbose: bool) -> str:
    """One line; with `verbose`, each further line of the error and of what azure-identity logged (each
    credential's own answer), every line cut to one line of at most 240 characters."""
    lines = str(error).strip().splitlines() or [""]
    text = f"azure-identity found no usable credential ({type(error).__name__}: {one_line(lines[0], 240)})"
    if not verbose:
        return text + "; --verbose shows each credential's answer"
    details = [one_line(line, 240) for line in [*lines[1:], *logged] if line.strip()]
    return "\n".join([text, *dict.fromkeys(details)][:MAX_VERBOSE_LINES])


@contextmanager
def _azure_log() -> Iterator[list[str]]:
    """azure-identity logs its whole credential chain at WARNING; without a handler Python's `logging.lastResort`
    writes that to stderr (docs.python.org/3/library/logging.html#logging.lastResort). Here it is collected
    instead, for --verbose, and nothing of it reaches the terminal on its own."""
    logged: list[str] = []
    handler = _Collect(logged)
    logger = logging.getLogger("azure")
    logger.addHandler(handler)
    previous, logger.propagate = logger.propagate, False
    try:
        yield logged
    finally:
        logger.removeHandler(handler)
        logger.propagate = previous


class _Collect(logging.Handler):
    def __init__(self, into: list[str]):
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        with suppress(Exception):  # a log record that cannot be formatted is left out
            self.into.extend(record.getMessage().splitlines())


def run_doctor(options: DoctorOptions, environ: Mapping[str, str] = os.environ) -> DoctorReport:
    settings = load_stack_settings(options.stack, options.project_dir, options.today)
    portals = tuple(p for p in settings.portals if options.portal in (None, p.name))
    if not portals:
        raise UsageError(f"--portal {options.portal}: no such portal in Pulumi.{options.stack}.yaml")
    origin = graph_origin(options.graph_endpoint) if options.graph_endpoint else settings.cloud.graph
    client_id, client_id_source = deployer_client_id(options.deployer_client_id, environ)
    report = DoctorReport(options.stack, options.today, origin)
    # One session for the token request and every Graph read (transport.py), closed when doctor is done.
    with deadline_session() as session:
        _check_tenant(options, environ, settings, portals, report, session, (client_id, client_id_source))
    return report


def _check_tenant(
    options: DoctorOptions,
    environ: Mapping[str, str],
    settings: StackSettings,
    portals: tuple[Any, ...],
    report: DoctorReport,
    session: requests.Session,
    client: tuple[str | None, str],
) -> None:
    origin, title = report.graph_endpoint, "A Microsoft Graph token"
    try:
        token, token_source = acquire_token(origin, settings, environ, options.token_timeout, session, options.verbose)
    except GraphTokenError as error:
        report.checks.append(
            Check(
                "graph-access",
                FAIL,
                title,
                str(error),
                "sign in with `az login` (a person), run in a pipeline with workload identity or a "
                f"managed identity, or set {TOKEN_VARIABLE} to a token for {origin}",
            )
        )
        return
    report.checks.append(Check("graph-access", PASS, title, f"token from {token_source} for {origin}"))
    graph = GraphClient(origin, token, options.limits, session=session)
    ctx = DoctorContext(settings, portals, graph, token, options.today, options.stack, *client)
    report.checks.append(
        _guarded(ctx, "deployer-permissions", "The deploying identity may do what pulumi up will do", check_deployer)
    )
    report.checks.append(
        _guarded(
            ctx,
            "conditional-access",
            "Conditional Access lets mailbox users sign in with the device code flow",
            check_conditional_access,
        )
    )
    report.checks.append(
        _guarded(
            ctx,
            "app-management-policy",
            "App management policies allow our client secrets",
            check_app_management_policies,
        )
    )
    for index, portal in display_name_targets(ctx):
        report.checks.append(
            _guarded(
                ctx,
                f"display-name/{portal.name}",
                "No application has the display name yet",
                functools.partial(check_display_name, index=index, portal=portal),
            )
        )
    report.checks.extend(check_ews(ctx))
    report.identity = ctx.identity
    report.graph_requests = graph.request_count


def _guarded(ctx: DoctorContext, check_id: str, title: str, check: Callable[[DoctorContext], Check]) -> Check:
    """Run one check; a Graph failure becomes that check's failure with one line and what to do."""
    try:
        return check(ctx)
    except GraphError as error:
        failed = Check(
            check_id,
            FAIL,
            title,
            f"could not read Microsoft Graph: {error}",
            _remedy(error, check_id, ctx.graph.origin),
        )
    except (TypeError, LookupError, AttributeError, ValueError, ArithmeticError, RecursionError) as error:
        # A shape the checks did not foresee (a number too large for a date or a duration, an index past the end,
        # nesting deeper than Python recurses): one line, never a traceback.
        failed = Check(
            check_id,
            FAIL,
            title,
            f"could not read Microsoft Graph's answer ({type(error).__name__})",
            "run doctor again; if it persists, Graph answered in a shape doctor does not know",
        )
    return failed


def _remedy(error: GraphError, check_id: str, origin: str) -> str:
    if isinstance(error, GraphForbidden):
        needed = READS[check_id.split("/")[0]]
        return (
            f"doctor needs {needed} to read this: grant it to the identity doctor runs as (a signed-in user also "
            "needs a directory role that may read it, e.g. Global Reader), or run doctor as one that has it"
        )
    if isinstance(error, GraphAuthError):
        return (
            f"Graph refused the token: sign in again (az login) or renew {TOKEN_VARIABLE}; the token must be for "
            f"{origin}"
        )
    if isinstance(error, GraphThrottled):
        return "Graph is throttling this client: run doctor again in a few minutes"
    if isinstance(error, GraphUnreachable):
        return (
            f"check the network path to {origin} (proxy, REQUESTS_CA_BUNDLE) or give doctor more time "
            "(--timeout, --request-timeout)"
        )
    if isinstance(error, GraphProtocolError):
        return f"the answer was not what Microsoft Graph sends: check that {origin} is Microsoft Graph"
    return "see Graph's message above"


__all__ = [
    "FAIL",
    "PASS",
    "WARN",
    "DoctorOptions",
    "DoctorReport",
    "graph_origin",
    "load_stack_settings",
    "run_doctor",
]
