"""`python -m intrexx_connector`: the only module that prints or exits.

Exit codes: 0 all good, 1 a check failed, 2 bad usage or input. No secret is ever printed.
"""

import argparse
import contextlib
import json
import math
import os
import shutil
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any, NoReturn, TextIO

from components.contract import Access, GrantedBy, PermissionType
from components.text import CiLog, describe_characters, for_terminal, unsafe_characters
from components.today import today
from components.urls import UrlError, parse_web_url

from . import __version__
from .errors import ConnectorError
from .secrets import scrub

if TYPE_CHECKING:
    from datetime import datetime

    from components.contract import PortalOutput

    from .handover import Comparison
    from .status import Fleet
    from .verify import Progress

DEFAULT_STACK = "dev"
# 128 + the signal's number, as POSIX shells report a command a signal ended (bash manual, "Exit Status").
EXIT_INTERRUPTED = 130  # SIGINT, Ctrl-C
EXIT_TERMINATED = 143  # SIGTERM


def main(argv: list[str] | None = None) -> int:
    stdout, stderr = sys.stdout, sys.stderr
    # Python leaves sys.stdout or sys.stderr None when the descriptor was closed (`2>&-`): write nowhere then.
    sys.stdout, sys.stderr = _SafeText(stdout or _nowhere()), _SafeText(stderr or _nowhere())
    restore_sigterm = _raise_on_sigterm()
    args = None
    try:
        args = _parser().parse_args(argv)
        _check_stack_names(args)
        return args.command(args)
    except _reported_errors() as error:
        code = getattr(error, "exit_code", 2)
        with contextlib.suppress(ConnectorError):  # stderr itself may be what cannot be written
            if getattr(args, "json", False):
                document = {"error": type(error).__name__, "message": str(error), "exitCode": code}
                print(json.dumps(document, sort_keys=True), file=sys.stderr)
            else:
                print(f"{type(error).__name__}: {error}", file=sys.stderr)
        return code
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        # The reader went away (`plan | head`): the rest of the output has nowhere to go. Point stdout at
        # /dev/null so that the interpreter's final flush does not fail again (docs.python.org, signal: "Note on
        # SIGPIPE").
        os.dup2(os.open(os.devnull, os.O_WRONLY), stdout.fileno())
        return 141
    except _Terminated:
        print("terminated", file=sys.stderr)
        return EXIT_TERMINATED
    finally:
        restore_sigterm()
        for safe, stream in ((sys.stdout, stdout), (sys.stderr, stderr)):
            try:
                safe.flush()
            except (ConnectorError, OSError):
                _discard(stream)
        sys.stdout, sys.stderr = stdout, stderr


def _nowhere() -> TextIO:
    return open(os.devnull, "w", encoding="utf-8")  # lives as long as the process


def _discard(stream: TextIO) -> None:
    """A stream that cannot be written (a full disk, a closed descriptor) is pointed at /dev/null, so that the
    interpreter's final flush does not end the process with a traceback after the one-line error."""
    with contextlib.suppress(OSError, ValueError, AttributeError):
        os.dup2(os.open(os.devnull, os.O_WRONLY), stream.fileno())


def _reported_errors() -> tuple[type[Exception], ...]:
    """The errors a command ends with in one line. Python evaluates an except clause's expression only when an
    exception reaches it, so the stack file's modules are imported only then: `verify` and `status`, which read no
    stack file, do not pay for them at every start (bench/run.py, "verify command")."""
    from components.config import ConfigError
    from components.stack_file import StackFileError

    return (ConnectorError, ConfigError, StackFileError)


class _SafeText:
    """stdout or stderr as this command writes them: control, bidirectional and invisible characters from outputs,
    stack files or an identity provider's answers are shown escaped, never sent to the terminal; no line can be read
    as a CI logging command (components/text.py, `for_ci_log`); a client secret read in this run never appears (a
    last net under every message; see intrexx_connector/secrets.py); and what the stream's encoding cannot hold is
    written as a backslash escape instead of failing (Windows gives a pipe cp1252)."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._ci_log = CiLog()
        self._encoding = getattr(stream, "encoding", None) or "utf-8"

    def write(self, text: str) -> int:
        safe = self._ci_log(scrub(for_terminal(text), _SECRETS))
        # Undecodable bytes of a path argument arrive as lone surrogates, which no encoding can write.
        try:
            writable = safe.encode(self._encoding, "backslashreplace").decode(self._encoding)
        except LookupError:
            writable = safe.encode("ascii", "backslashreplace").decode("ascii")
        try:
            self._stream.write(writable)
        except BrokenPipeError:
            raise
        except OSError as error:
            raise _unwritable(self._stream, error) from None
        return len(text)

    def flush(self) -> None:
        try:
            self._stream.flush()
        except BrokenPipeError:
            raise
        except OSError as error:
            raise _unwritable(self._stream, error) from None

    def write_document(self, data: bytes) -> None:
        """A file format whose line ends are part of it (iCalendar's CRLF), as it is: the values in it passed the
        output contract (no control characters); client secrets are removed and no line is a CI logging command."""
        self._stream.flush()
        buffer = getattr(self._stream, "buffer", None)
        text = CiLog()(scrub(data.decode("utf-8"), _SECRETS))
        if buffer is None:
            self._stream.write(text)
        else:
            buffer.write(text.encode("utf-8"))
            buffer.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._stream, name)


_SECRETS: set[str] = set()  # the client secrets read in this process, for _SafeText


def _unwritable(stream: TextIO, error: OSError) -> ConnectorError:
    from .errors import FileError

    return FileError(f"cannot write to {getattr(stream, 'name', 'the output')}: {error.strerror or error}")


class _Terminated(BaseException):
    """SIGTERM: unwinds like Ctrl-C, so that temporary files holding secrets are removed on the way out."""


def _raise_on_sigterm() -> Callable[[], object]:
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def terminate(signum: int, frame: FrameType | None) -> NoReturn:
        raise _Terminated

    previous = signal.signal(signal.SIGTERM, terminate)
    return lambda: signal.signal(signal.SIGTERM, previous)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intrexx-connector",
        description="Turn intrexx-exchange stack outputs into Intrexx connector "
        "configuration and check it against Entra ID. Also runs as "
        "`python -m intrexx_connector`.",
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(required=True, metavar="command")

    def command(
        name: str,
        handler: Callable[[argparse.Namespace], int],
        help_text: str,
        outputs: bool = True,
        portal_help: str = "only this portal (default: all)",
        fleet: bool = False,
    ) -> argparse.ArgumentParser:
        sub = commands.add_parser(name, help=help_text, description=help_text)
        sub.set_defaults(command=handler)
        many: dict = {"action": "append"} if fleet else {}
        again = " (repeatable: a fleet of stacks)" if fleet else ""
        sub.add_argument("--stack", help=f"Pulumi stack (default: the selected stack; plan: dev){again}", **many)
        sub.add_argument("--portal", metavar="NAME", help=portal_help)
        sub.add_argument("--json", action="store_true", help="machine-readable output on stdout")
        if outputs:
            sub.add_argument(
                "--outputs",
                metavar="FILE",
                help="JSON of `pulumi stack output --json --show-secrets` ('-' for stdin); "
                f"without it the tool runs that command{again}",
                **many,
            )
        return sub

    plan = command(
        "plan",
        _plan,
        "offline: evaluate the program for Pulumi.<stack>.yaml against the simulated "
        "tenant and show what `pulumi up` would create; writes nothing unless --out is "
        "given",
        outputs=False,
    )
    plan.add_argument(
        "--out", type=_path, metavar="DIR", help="also render the files, with placeholder secrets, under DIR/<portal>/"
    )
    plan.add_argument(
        "--save-outputs",
        type=Path,
        metavar="FILE",
        help="write the simulated outputs as `pulumi stack output --json --show-secrets` would (placeholder "
        "secrets, mode 0600), for trying render, status and apply offline",
    )
    plan.add_argument(
        "--compare",
        metavar="OUTPUTS",
        help="outputs of a previous run (`pulumi stack output --json`): list the portals added, removed, renamed "
        "and changed; exit 1 when `pulumi up` would delete or replace a registration (a removed portal, a rename "
        "without renamedFrom, an adopt of another application)",
    )
    outputs = commands.add_parser(
        "outputs",
        help="save the stack outputs with their client secrets to a file only you can read (0600)",
        description="Run `pulumi stack output --json --show-secrets --stack S` and write its JSON to FILE, mode 0600 "
        "from the first byte, replaced atomically; the safe way to keep outputs for --outputs. Nothing is printed "
        "but the file's name.",
    )
    outputs.set_defaults(command=_outputs)
    outputs.add_argument("--stack", required=True, help="Pulumi stack")
    outputs.add_argument("--out", type=_path, required=True, metavar="FILE", help="the file to write (mode 0600)")
    render = command("render", _render, "write the connector configuration per portal")
    render.add_argument("--out", type=_path, metavar="DIR", help="default: build/<stack>/ with --stack, else build/")
    verify = command("verify", _verify, "get a token per portal with MSAL and check its roles")
    verify.add_argument(
        "--authority-host",
        type=_authority_host,
        metavar="URL",
        help="override the authority host: an https origin such as https://login.microsoftonline.us",
    )
    verify.add_argument(
        "--timeout",
        type=_positive_float,
        default=300.0,
        metavar="S",
        help="end after S seconds (plus at most a second), whatever the identity provider does (default 300)",
    )
    verify.add_argument(
        "--device-code",
        action="store_true",
        help="also sign in a mailbox user with the device code flow and read the inbox",
    )
    apply = command(
        "apply",
        _apply,
        "merge the portal's sign-in provider into <portal-dir>/internal/cfg/om.cfg",
        portal_help="the portal whose sign-in provider to merge (required)",
    )
    apply.add_argument("--portal-dir", type=_path, required=True, metavar="DIR", help="the Intrexx portal folder")
    status = command(
        "status",
        _status,
        "secret expiry, rotation, EWS status and refresh-token reminders, for one stack or several (each "
        "--outputs FILE is named by the --stack at the same position, or by its file name)",
        fleet=True,
    )
    _status_arguments(status)
    notice = command(
        "rotation-notice",
        _rotation_notice,
        "after `pulumi up`: which portals got a new published secret, as Markdown for a job summary or an issue "
        "(nothing when none did); no secret is read or printed",
    )
    notice.add_argument(
        "--before",
        required=True,
        metavar="FILE",
        help="`pulumi stack output --json` saved before `pulumi up` (a missing file means a first run)",
    )
    doctor = command(
        "doctor",
        _doctor,
        "read-only checks of the tenant against Pulumi.<stack>.yaml before `pulumi up` (Microsoft Graph, GET only)",
        outputs=False,
    )
    doctor.add_argument(
        "--graph-endpoint",
        metavar="URL",
        help="Microsoft Graph origin, e.g. https://graph.microsoft.com (default: the stack's cloud)",
    )
    doctor.add_argument(
        "--deployer-client-id",
        metavar="GUID",
        help="client id of the service principal that runs `pulumi up` (default: ARM_CLIENT_ID, "
        "AZURE_CLIENT_ID, else the Graph token's claims)",
    )
    doctor.add_argument(
        "--project-dir",
        type=Path,
        metavar="DIR",
        help="folder holding Pulumi.<stack>.yaml (default: the current folder when it has a "
        "Pulumi.yaml, else this project)",
    )
    doctor.add_argument(
        "--timeout",
        type=_positive_float,
        default=60.0,
        metavar="S",
        help="give up on Graph after S seconds in all (default 60)",
    )
    doctor.add_argument(
        "--request-timeout",
        type=_positive_float,
        default=10.0,
        metavar="S",
        help="give up on one Graph request after S seconds (default 10)",
    )
    doctor.add_argument(
        "--verbose",
        action="store_true",
        help="when no Graph token can be had, show each azure-identity credential's answer",
    )
    return parser


def _positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = -1.0
    if not (value > 0 and math.isfinite(value)):
        raise argparse.ArgumentTypeError(f"must be a finite positive number of seconds, got {text!r}")
    return value


def _path(text: str) -> Path:
    """A path argument that can be printed and written into files: UTF-8 (Python holds undecodable bytes of argv
    as lone surrogates) and free of control characters."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise argparse.ArgumentTypeError(f"must be a UTF-8 path, got {text!r}") from None
    bad = unsafe_characters(text)
    if bad:
        raise argparse.ArgumentTypeError(f"must not contain control characters ({describe_characters(bad)})")
    return Path(text)


def _check_stack_names(args: argparse.Namespace) -> None:
    """--stack: a Pulumi stack name, as it goes into file names (Pulumi.<stack>.yaml, build/<stack>/) and into the
    commands the sheets, notices and reports print for people to run."""
    stacks = args.stack if isinstance(args.stack, list) else [args.stack] if args.stack is not None else []
    if not stacks:
        return
    from .errors import UsageError
    from .status import is_stack_name

    for stack in stacks:
        if not is_stack_name(stack):
            raise UsageError(
                f"--stack {stack[:120]!r}: not a Pulumi stack name ([org/][project/]stack of letters, digits, '-', "
                "'_', '.')"
            )


def _authority_host(text: str) -> str:
    try:
        return parse_web_url(text.rstrip("/"), allow_path=False).origin_text
    except UrlError as error:
        raise argparse.ArgumentTypeError(
            f"{error}; expected an https origin such as https://login.microsoftonline.us, got {text!r}"
        ) from None


def _non_negative_int(text: str) -> int:
    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"must be a whole number of days, got {text!r}")
    return int(text)


def _portals(args: argparse.Namespace, need_secrets: bool = True) -> "list[PortalOutput]":
    from .stack_outputs import read_portals

    portals = read_portals(args.outputs, args.stack, args.portal, need_secrets=need_secrets)
    _SECRETS.update(p.client_secret for p in portals if p.client_secret)
    return portals


def _render_files(portals: "list[PortalOutput]", out: Path, stack: str | None) -> dict[str, list[str]]:
    from .render import render_all

    rendered = render_all(portals, out, today(), stack)
    return {name: [str(path) for path in paths] for name, paths in rendered.items()}


def _emit_json(document: object) -> None:
    print(json.dumps(document, indent=2, sort_keys=True))


# plan -------------------------------------------------------------------------------------------------------


def _plan(args: argparse.Namespace) -> int:
    from .plan import plan_stack

    stack = args.stack or DEFAULT_STACK
    plan = plan_stack(stack, today())
    portals = [p for p in plan.portal_outputs() if args.portal in (None, p.name)]
    if args.portal and not portals:
        from .errors import UsageError

        raise UsageError(f"--portal {args.portal}: no such portal in Pulumi.{stack}.yaml")
    rendered = _render_files(portals, args.out, stack) if args.out else {}
    if args.save_outputs:
        from .files import write_atomic

        write_atomic(args.save_outputs, json.dumps(plan.outputs_document(), indent=2, sort_keys=True) + "\n", 0o600)
    comparison = None
    if args.compare:
        from .handover import compare
        from .stack_outputs import read_outputs_file

        comparison = compare(
            read_outputs_file(args.compare, "--compare"), plan.portal_outputs(), plan.settings, "--compare"
        )
    document = plan.as_dict()
    if args.json:
        document["rendered"] = rendered
        if comparison is not None:
            document["comparison"] = comparison.as_dict()
        _emit_json(document)
        return 1 if comparison is not None and comparison.problems else 0
    print(
        f"Plan for stack '{stack}' on {document['date']} against the simulated tenant: "
        f"{len(document['portals'])} portal(s), {document['resources']} resources to create."
    )
    for name, portal in document["portals"].items():
        if args.portal in (None, name):
            _print_planned_portal(name, portal, args.out)
    for warning in document["warnings"]:
        print(f"\nwarning: {warning}")
    for note in document["notes"]:
        print(f"\nnote: {note}")
    if args.save_outputs:
        print(
            f"\nsimulated outputs written to {args.save_outputs} (placeholder secrets): try "
            f"`intrexx-connector render --outputs {args.save_outputs}`"
        )
    if comparison is not None:
        _print_comparison(comparison)
        return 1 if comparison.problems else 0
    return 0


def _print_planned_portal(name: str, portal: dict, out: Path | None) -> None:
    print(
        f"\n{name}: {portal['displayName']}  (connector {portal['connector']}, {portal['api']}, "
        f"{portal['access']} access{', public client flows on' if portal['publicClient'] else ''})"
    )
    for resource in portal["resources"]:
        mark = "=" if resource["action"] == "adopt" else "+"
        line = f"  {mark} {resource['type']:<42} {resource['name']}{'  [protect]' if resource['protect'] else ''}"
        print(line + (f"  (adopt {resource['importId']})" if resource["importId"] else ""))
    print("  redirect URIs:" if portal["redirectUris"] else "  redirect URIs: none (no user signs in)")
    for uri in portal["redirectUris"]:
        print(f"    {uri}")
    print("  permissions:")
    for permission in portal["permissions"]:
        kind = Access.DELEGATED if permission["type"] == PermissionType.SCOPE else Access.APPLICATION
        print(f"    {permission['resource']:<9} {kind:<12} {permission['name']:<26} via {permission['grantedBy']}")
    for consent in portal["consent"]:
        print(f"  consent: {consent['kind']}: {' '.join(consent['claims'])}")
    if any(p["grantedBy"] == GrantedBy.EXCHANGE_RBAC for p in portal["permissions"]):
        print("  consent: none tenant-wide; Exchange RBAC for Applications scopes the mailboxes (exchange-rbac.ps1)")
    for secret in portal["secrets"]:
        print(f"  secret slot {secret['slot']}: expires {secret['expires'][:10]} ({secret['rotationKey']})")
    print(
        f"  published secret expires {portal['secretExpiresAt'][:10]}, next rotation {portal['secretRotatesAt'][:10]}"
    )
    if out:
        print(f"  rendered into {out / name}/ with a placeholder secret")


def _print_comparison(comparison: "Comparison") -> None:
    print("\nCompared with the previous outputs:")
    lines = [f"  + added: {name}" for name in comparison.added]
    lines += [f"  - removed: {name} (pulumi up deletes its registration)" for name in comparison.removed]
    lines += [
        f"  > renamed: {old} -> {new} (aliases keep the registration and its client id)"
        for old, new in comparison.renamed.items()
    ]
    lines += [f"  ~ changed: {name}: {', '.join(fields)}" for name, fields in comparison.changed.items()]
    print("\n".join(lines) if lines else "  no portal added, removed or changed")
    for hint in comparison.hints:
        print(f"  note: {hint}")
    for problem in comparison.problems:
        print(f"  PROBLEM: {problem}")


# outputs ----------------------------------------------------------------------------------------------------


def _outputs(args: argparse.Namespace) -> int:
    from .errors import OutputsError
    from .files import write_atomic
    from .stack_outputs import read_outputs_text

    text = read_outputs_text(None, args.stack)
    try:
        document = json.loads(text) if text.strip() else {}
    except (ValueError, RecursionError):
        raise OutputsError("`pulumi stack output` did not print JSON") from None
    if not isinstance(document, dict):
        raise OutputsError("`pulumi stack output` did not print a JSON object")
    secrets = document.get("clientSecrets")
    if isinstance(secrets, dict):
        _SECRETS.update(value for value in secrets.values() if isinstance(value, str) and value)
    write_atomic(args.out, text if text.endswith("\n") else text + "\n", 0o600)
    portals = document.get("portals")
    count = len(portals) if isinstance(portals, dict) else 0
    print(
        f"wrote {args.out} (mode 0600): the outputs of stack {args.stack}, {count} portal(s), with their client "
        "secrets; keep it out of version control and delete it when done"
    )
    return 0


# render -----------------------------------------------------------------------------------------------------


def _render(args: argparse.Namespace) -> int:
    from .render import left_behind

    out = args.out or (Path("build") / args.stack if args.stack else Path("build"))
    portals = _portals(args)
    written = _render_files(portals, out, args.stack)
    # With --portal the other portals' folders are not left behind, only not rendered this time.
    kept = [] if args.portal else [str(path) for path in left_behind(portals, out)]
    if args.json:
        _emit_json({"rendered": written, "leftBehind": kept})
        return 0
    for name, paths in written.items():
        print(f"{name}:")
        for path in paths:
            print(f"  {path}")
    for path in kept:
        print(
            f"left behind: {path}/ belongs to no portal of these outputs (removed or renamed); it still holds "
            "that portal's files and secret: delete it once nothing needs them"
        )
    return 0


# verify -----------------------------------------------------------------------------------------------------


def _verify(args: argparse.Namespace) -> int:
    from .verify import VerifyOptions, verify_portals

    progress = _ProgressLine(sys.stderr)

    def show_device_code(portal: "PortalOutput", flow: dict) -> None:
        progress.clear()
        print(f"{portal.name}: sign in as the mailbox user: {flow['message']}", file=sys.stderr, flush=True)

    options = VerifyOptions(
        authority_host=args.authority_host,
        timeout=args.timeout,
        device_code=args.device_code,
        on_device_flow=show_device_code,
    )
    try:
        results = verify_portals(_portals(args), options, progress)
    finally:
        progress.clear()
    if args.json:
        _emit_json({"ok": all(r.ok for r in results), "portals": [r.as_dict() for r in results]})
    else:
        for result in results:
            print(result.summary_line())
    return 0 if all(r.ok for r in results) else 1


class _ProgressLine:
    """verify's waiting: on a terminal one line, rewritten in place; elsewhere (CI logs) one line per portal each
    time the reason to wait changes, never one per retry."""

    def __init__(self, stream: TextIO) -> None:
        self._stream = stream
        self._tty = stream.isatty()
        self._states: dict[str, str] = {}
        self._shown = False

    def __call__(self, event: "Progress") -> None:
        if self._tty:
            width = shutil.get_terminal_size().columns - 1
            self._raw("\r\x1b[K")  # carriage return, erase to the end of the line (ECMA-48 EL)
            self._stream.write(for_terminal(" ".join(event.line.split()))[:width])
            self._stream.flush()
            self._shown = True
        elif self._states.get(event.portal) != event.state:
            self._states[event.portal] = event.state
            print(f"{event.portal}: waiting: {event.state}", file=self._stream, flush=True)

    def clear(self) -> None:
        if self._shown:
            self._raw("\r\x1b[K")
            self._shown = False

    def _raw(self, control: str) -> None:
        # The terminal's own control sequence, past _SafeText, which would show it escaped.
        stream = getattr(self._stream, "_stream", self._stream)
        stream.write(control)
        stream.flush()


# apply ------------------------------------------------------------------------------------------------------


def _apply(args: argparse.Namespace) -> int:
    from .errors import UsageError
    from .omcfg import apply_sign_in

    if not args.portal:
        raise UsageError("apply needs --portal NAME")
    (portal,) = _portals(args)
    if not portal.sign_in:
        raise UsageError(
            f"--portal {portal.name}: signIn is not enabled for this portal; set signIn: true and run pulumi up first"
        )
    result = apply_sign_in(portal, args.portal_dir)
    if args.json:
        _emit_json(
            {
                "changed": result.changed,
                "path": str(result.path),
                "backup": str(result.backup) if result.backup else None,
                "manualSteps": result.manual_steps,
            }
        )
        return 0
    if result.changed:
        print(f"updated {result.path} (backup: {result.backup})" if result.backup else f"updated {result.path}")
    else:
        print(f"{result.path} already holds this provider: nothing changed")
    print("Remaining manual steps:")
    for number, step in enumerate(result.manual_steps, 1):
        print(f"  {number}. {step}")
    return 0


# doctor -----------------------------------------------------------------------------------------------------


def _doctor(args: argparse.Namespace) -> int:
    from .doctor import DoctorOptions, run_doctor
    from .graph import GraphLimits

    if not args.stack:
        from .errors import UsageError

        raise UsageError("doctor needs --stack S (the stack file Pulumi.<S>.yaml to check the tenant against)")
    options = DoctorOptions(
        stack=args.stack,
        today=today(),
        project_dir=args.project_dir,
        graph_endpoint=args.graph_endpoint,
        deployer_client_id=args.deployer_client_id,
        portal=args.portal,
        limits=GraphLimits(request_timeout=args.request_timeout, deadline=args.timeout),
        verbose=args.verbose,
    )
    report = run_doctor(options)
    if args.json:
        _emit_json(report.as_dict())
        return 0 if report.ok else 1
    print(f"doctor: stack '{report.stack}' on {report.today.isoformat()}, Microsoft Graph at {report.graph_endpoint}")
    for check in report.checks:
        print(f"{check.status.upper():<5} {check.id}: {check.title}")
        for line in check.detail.splitlines():
            print(f"      {line}")
        if check.remedy and check.status != "pass":
            print(f"      to do: {check.remedy}")
    counts = report.counts
    print(f"{counts['fail']} failed, {counts['warn']} warning(s), {counts['pass']} passed")
    return 0 if report.ok else 1


# status -----------------------------------------------------------------------------------------------------


def _status_arguments(status: argparse.ArgumentParser) -> None:
    status.add_argument(
        "--warn-days",
        type=_non_negative_int,
        default=30,
        metavar="N",
        help="exit 1 when something is due within N days: the published secret expires, the Intrexx refresh "
        "tokens must be requested again, EWS is switched off; also warn when the previous secret, which Intrexx "
        "may still hold, stops working within N days (default 30)",
    )
    status.add_argument(
        "--format",
        choices=("text", "json", "ics", "prometheus", "html"),
        help="text (default), json (as --json), ics (an iCalendar file), prometheus (node_exporter textfile "
        "metrics), html (one self-contained report)",
    )
    status.add_argument(
        "--out", type=_path, metavar="FILE", help="write the report to FILE (atomically) instead of stdout"
    )
    status.add_argument(
        "--alarm-days",
        type=_alarm_days,
        default=None,
        metavar="N,N",
        help="ics: reminders this many days before each event (default 14,3)",
    )
    status.add_argument(
        "--notify",
        nargs="?",
        const="",
        metavar="URL",
        help="post one message to a Microsoft Teams (Workflows) or Slack incoming webhook when something is due; "
        "without URL, the URL is read from INTREXX_NOTIFY_WEBHOOK (keep it there: it is a secret)",
    )


def _alarm_days(value: str) -> tuple[int, ...]:
    try:
        days = tuple(int(part) for part in value.split(","))
    except ValueError:
        days = ()
    if not days or any(not 0 <= day <= 365 for day in days):
        raise argparse.ArgumentTypeError(f"must be days from 0 to 365, separated by commas, got {value!r}")
    return days


def _status_sources(args: argparse.Namespace) -> list[tuple[str | None, str | None]]:
    """(stack name, outputs file) per stack of the fleet: each --outputs FILE is named by the --stack at the same
    position, else by its file name; --stack alone reads `pulumi stack output` of each stack."""
    from .errors import UsageError

    # Each --stack is a Pulumi stack name: main() checked every one (_check_stack_names) before any command ran.
    stacks, files = args.stack or [], args.outputs or []
    if files.count("-") > 1:
        raise UsageError("--outputs -: stdin can be read once")
    if not files:
        return [(stack, None) for stack in stacks] or [(None, None)]
    if stacks and len(stacks) != len(files):
        raise UsageError(
            f"{len(files)} --outputs and {len(stacks)} --stack: give one --stack per --outputs (same order) to name "
            "them, or none (each file is then named by its file name)"
        )
    names = stacks or [None if path == "-" else Path(path).stem for path in files]
    return list(zip(names, files, strict=True))


def _status(args: argparse.Namespace) -> int:
    import os
    from datetime import UTC, datetime

    from .stack_outputs import read_portals
    from .status import fleet_status, stack_label

    webhook = None
    if args.notify is not None:
        from .notify import ENVIRONMENT_VARIABLE, parse_webhook

        url = args.notify or os.environ.get(ENVIRONMENT_VARIABLE, "")
        source = "--notify" if args.notify else ENVIRONMENT_VARIABLE
        if url:
            _SECRETS.add(url)  # never printed, whatever goes wrong
        if not url:
            from .errors import UsageError

            raise UsageError(f"--notify: no URL given and {ENVIRONMENT_VARIABLE} is not set")
        webhook = parse_webhook(url, source)
    stacks = [
        (stack_label(stack), read_portals(path, stack, args.portal, need_secrets=False))
        for stack, path in _status_sources(args)
    ]
    now = datetime.now(UTC).replace(microsecond=0)
    fleet = fleet_status(stacks, today(), args.warn_days)
    form = "json" if args.json else (args.format or "text")
    _write_report(_status_report(fleet, form, now, args.alarm_days), args.out, document=form not in ("text", "json"))
    if webhook is not None:
        from .notify import notify

        if notify(fleet, webhook):
            print(f"posted one message to the {webhook.kind.value} webhook", file=sys.stderr)
    return 1 if fleet.due else 0


def _status_report(fleet: "Fleet", form: str, now: "datetime", alarm_days: tuple[int, ...] | None) -> bytes:
    if form == "json":
        return (json.dumps(fleet.as_dict(), indent=2, sort_keys=True) + "\n").encode("utf-8")
    if form == "ics":
        from .status_ics import DEFAULT_ALARM_DAYS, fleet_calendar

        return fleet_calendar(fleet, now, alarm_days or DEFAULT_ALARM_DAYS)
    if form == "prometheus":
        from .status_metrics import fleet_metrics

        return fleet_metrics(fleet, now)
    if form == "html":
        from .status_report import fleet_report

        return fleet_report(fleet, now).encode("utf-8")
    lines = []
    for entry in fleet.entries:
        report = entry.status
        lines.append(
            f"{entry.stack}/{report.name}: published secret {report.secret_key_id} expires {report.secret_expires_at} "
            f"(in {report.days_left} days), next rotation {report.rotates_at}; the previous secret "
            f"{report.previous_secret_key_id}, which Intrexx may still hold, stops working on "
            f"{report.previous_secret_stops}"
            + (f"; MS365 refresh tokens due {report.refresh_tokens_due}" if report.refresh_tokens_due else "")
        )
        lines += [f"  {message}" for message in report.messages]
    due = sum(1 for entry in fleet.entries if entry.status.due)
    lines.append(f"{due} of {len(fleet.entries)} portal(s) due within {fleet.warn_days} days")
    return ("\n".join(lines) + "\n").encode("utf-8")


def _write_report(data: bytes, out: Path | None, document: bool) -> None:
    """To `out` atomically, or to stdout: text and JSON as every message is printed, the file formats (whose
    line ends belong to them) through `write_document`."""
    if out is None:
        write = getattr(sys.stdout, "write_document", None)
        if document and write:
            write(data)
        else:
            sys.stdout.write(data.decode("utf-8"))
        return
    from .files import write_atomic

    write_atomic(out, data, 0o644)  # no secret in any format: node_exporter and web servers may read it
    print(f"status written to {out}", file=sys.stderr)


# rotation-notice --------------------------------------------------------------------------------------------


def _rotation_notice(args: argparse.Namespace) -> int:
    from .handover import rotation_notice
    from .stack_outputs import read_outputs_file

    # A missing file is a first run: nothing was published before, so nothing was handed over.
    before = read_outputs_file(args.before, "--before", missing_ok=True)
    notice = rotation_notice(before, _portals(args, need_secrets=False), args.stack)
    if args.json:
        _emit_json(notice.as_dict())
    else:
        sys.stdout.write(notice.markdown())
    return 0


def run() -> None:
    """The `intrexx-connector` console script."""
    sys.exit(main())


if __name__ == "__main__":
    run()
