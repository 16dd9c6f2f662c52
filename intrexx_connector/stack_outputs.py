"""Reading the stack outputs (`pulumi stack output --json --show-secrets`) into checked per-portal records."""

import json
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

from components.names import CLIENT_SECRETS, PORTALS, REQUIRED_FIELDS, Field

from .errors import OutputsError, UsageError

# What `pulumi stack output --json` prints for a secret when --show-secrets is missing.
HIDDEN_SECRET = "[secret]"


@dataclass(frozen=True)
class PortalOutputs:
    name: str
    fields: dict  # the `portals` entry: see components.names.Field
    client_secret: str | None  # None when the caller did not need secrets (plan placeholders use a string)

    def __getitem__(self, key: str):
        return self.fields[key]

    def get(self, key: str, default=None):
        return self.fields.get(key, default)

    def __repr__(self) -> str:  # never show the secret
        return f"PortalOutputs(name={self.name!r}, client_secret=<hidden>)"


def read_outputs_text(outputs: str | None, stack: str | None) -> str:
    """The JSON text from a file, from stdin (`-`), or from `pulumi stack output` when no file is named."""
    if outputs == "-":
        return sys.stdin.read()
    if outputs:
        try:
            return Path(outputs).read_text(encoding="utf-8")
        except OSError as error:
            raise OutputsError(f"cannot read --outputs {outputs}: {error.strerror}") from None
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise OutputsError("no --outputs file given and the pulumi CLI is not on PATH; run "
                           "`pulumi stack output --json --show-secrets > outputs.json` and pass --outputs outputs.json")
    command = [pulumi, "stack", "output", "--json", "--show-secrets"] + (["--stack", stack] if stack else [])
    result = subprocess.run(command, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        # pulumi's stderr never holds output values; keep its last line as the reason.
        reason = (result.stderr.strip().splitlines() or ["no error output"])[-1]
        raise OutputsError(f"`pulumi stack output` failed (exit {result.returncode}): {reason}")
    return result.stdout


def parse_outputs(text: str, portal: str | None = None, need_secrets: bool = True) -> list[PortalOutputs]:
    """Check the outputs JSON and return the selected portals (all when `portal` is None)."""
    try:
        document = json.loads(text)
    except ValueError:
        raise OutputsError("the stack outputs are not JSON; expected what `pulumi stack output --json "
                           "--show-secrets` prints") from None
    if not isinstance(document, dict) or not isinstance(document.get(PORTALS), dict):
        raise OutputsError(f"the stack outputs have no '{PORTALS}' object; is this the intrexx-exchange stack?")
    portals = document[PORTALS]
    secrets = document.get(CLIENT_SECRETS)
    if need_secrets:
        if secrets == HIDDEN_SECRET or (isinstance(secrets, dict) and HIDDEN_SECRET in secrets.values()):
            raise OutputsError(f"'{CLIENT_SECRETS}' reads {HIDDEN_SECRET}: run `pulumi stack output --json "
                               "--show-secrets`")
        if not isinstance(secrets, dict):
            raise OutputsError(f"the stack outputs have no '{CLIENT_SECRETS}' object")
    if portal is not None and portal not in portals:
        known = ", ".join(sorted(portals)) or "none"
        raise UsageError(f"--portal {portal}: no such portal in the stack outputs (portals: {known})")
    selected = []
    for name in sorted(portals) if portal is None else [portal]:
        fields = portals[name]
        if not isinstance(fields, dict):
            raise OutputsError(f"{PORTALS}.{name} is not an object")
        missing = [key for key in REQUIRED_FIELDS if key not in fields]
        if missing:
            raise OutputsError(f"{PORTALS}.{name} lacks {', '.join(missing)}; redeploy with this version of "
                               "the program")
        secret = None
        if need_secrets:
            secret = secrets.get(name)
            if not isinstance(secret, str) or not secret:
                raise OutputsError(f"{CLIENT_SECRETS}.{name} is missing")
        selected.append(PortalOutputs(name, fields, secret))
    return selected


def authority_for(portal: PortalOutputs, authority_host: str | None = None) -> str:
    host = (authority_host or portal[Field.AUTHORITY_HOST]).rstrip("/")
    return f"{host}/{portal[Field.TENANT_ID]}"
