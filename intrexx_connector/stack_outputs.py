"""Reading the stack outputs (`pulumi stack output --json --show-secrets`) into checked `PortalOutput` records.

An outputs file is untrusted input: it is read by the tool's one file reader (components/text.py: a size limit,
UTF-8 with or without a byte order mark or UTF-16 with one, what Windows PowerShell 5.1's `>` writes), and every
field is checked against the output contract (components/contract.py) before anything uses it.
"""

import json
import shutil
import subprocess
import sys

from components.contract import CLIENT_SECRETS, ContractError, PortalOutput, StackOutputs
from components.text import MAX_FILE_BYTES, TextFileError, decode_text, read_text_file

from .errors import OutputsError, UsageError
from .secrets import scrub

MAX_OUTPUTS_BYTES = MAX_FILE_BYTES


def read_outputs_file(path: str, option: str, missing_ok: bool = False) -> str:
    """An outputs document named by a command line option (`--outputs`, `--before`, `--compare`); `-` is stdin.
    With `missing_ok`, a file that does not exist reads as empty (no earlier run)."""
    if path == "-":
        stdin = getattr(sys.stdin, "buffer", None)  # None when the descriptor is closed (`<&-`)
        if stdin is None:
            raise OutputsError(f"{option} -: stdin is closed; pipe the outputs in or name a file")
        try:
            data = stdin.read(MAX_OUTPUTS_BYTES + 1)
        except OSError as error:
            raise OutputsError(f"{option} -: cannot read stdin: {error.strerror or error}") from None
        return decode_outputs(data, "stdin")
    try:
        return read_text_file(path, f"{option} {path}", MAX_OUTPUTS_BYTES)
    except FileNotFoundError:
        if missing_ok:
            return ""
        raise OutputsError(f"cannot read {option} {path}: No such file or directory") from None
    except TextFileError as error:
        raise OutputsError(str(error)) from None


def read_outputs_text(outputs: str | None, stack: str | None) -> str:
    """The JSON text from a file, from stdin (`-`), or from `pulumi stack output` when no file is named."""
    if outputs:
        return read_outputs_file(outputs, "--outputs")
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise OutputsError(
            "no --outputs file given and the pulumi CLI is not on PATH; where it is, run "
            "`intrexx-connector outputs --stack <stack> --out outputs.json` (mode 0600) and pass --outputs outputs.json"
        )
    command = [pulumi, "stack", "output", "--json", "--show-secrets"] + (["--stack", stack] if stack else [])
    result = subprocess.run(command, capture_output=True, check=False, stdin=subprocess.DEVNULL)
    if result.returncode != 0:
        # pulumi's stderr never holds output values; keep its last line as the reason.
        reason = (result.stderr.decode("utf-8", "replace").strip().splitlines() or ["no error output"])[-1]
        raise OutputsError(f"`pulumi stack output` failed (exit {result.returncode}): {reason[:300]}")
    return decode_outputs(result.stdout, "`pulumi stack output`")


def decode_outputs(data: bytes, source: str) -> str:
    try:
        return decode_text(data, f"the stack outputs from {source}", MAX_OUTPUTS_BYTES)
    except TextFileError as error:
        raise OutputsError(str(error)) from None


class _RepeatedKey(ValueError):
    def __init__(self, key: str):
        super().__init__(key)
        self.key = key


def _without_repeated_keys(pairs: list[tuple[str, object]]) -> dict[str, object]:
    document: dict[str, object] = {}
    for key, value in pairs:
        if key in document:
            raise _RepeatedKey(key)
        document[key] = value
    return document


def parse_outputs(text: str, portal: str | None = None, need_secrets: bool = True) -> list[PortalOutput]:
    """Check the outputs JSON and return the selected portals (all when `portal` is None), sorted by name."""
    try:
        document = json.loads(text, object_pairs_hook=_without_repeated_keys)
    except RecursionError:
        raise OutputsError("the stack outputs are nested too deeply to be intrexx-exchange outputs") from None
    except _RepeatedKey as error:
        # Pulumi writes each key once; a key given twice is an edit, and JSON readers differ on which one wins.
        raise OutputsError(f"the stack outputs give the key {error.key[:80]!r} twice in one object") from None
    except ValueError:
        raise OutputsError(
            "the stack outputs are not JSON; expected what `pulumi stack output --json --show-secrets` prints"
        ) from None
    try:
        outputs = StackOutputs.from_output(document, need_secrets=need_secrets)
    except ContractError as error:
        # A field's value is quoted in the message: never a secret, wherever the file put one.
        raise OutputsError(scrub(str(error), _secret_values(document))) from None
    except RecursionError:
        raise OutputsError("the stack outputs are nested too deeply to be intrexx-exchange outputs") from None
    if portal is not None and portal not in outputs.portals:
        known = ", ".join(sorted(outputs.portals)) or "none"
        raise UsageError(f"--portal {portal}: no such portal in the stack outputs (portals: {known})")
    return [outputs.portals[name] for name in sorted(outputs.portals) if portal in (None, name)]


def _secret_values(document: object) -> list[str]:
    secrets = document.get(CLIENT_SECRETS) if isinstance(document, dict) else None
    return [value for value in secrets.values() if isinstance(value, str)] if isinstance(secrets, dict) else []


def read_portals(
    outputs: str | None, stack: str | None, portal: str | None, need_secrets: bool = True
) -> list[PortalOutput]:
    return parse_outputs(read_outputs_text(outputs, stack), portal, need_secrets=need_secrets)


def authority_for(portal: PortalOutput, authority_host: str | None = None) -> str:
    host = (authority_host or portal.authority_host).rstrip("/")
    return f"{host}/{portal.tenant_id}"
