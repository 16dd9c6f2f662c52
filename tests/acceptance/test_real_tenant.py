"""Opt-in acceptance test against a REAL Entra ID tenant.

Skipped unless INTREXX_ACCEPTANCE_TENANT_ID is set. When it is set, the test
fails at once (it does not skip) if the credentials or the Pulumi CLI are
missing, so a half-configured acceptance run cannot pass silently.

    export INTREXX_ACCEPTANCE_TENANT_ID=<tenant GUID>
    export ARM_CLIENT_ID=<pipeline identity>            # see docs/pipeline-identity.md
    export ARM_CLIENT_SECRET=...  or  export ARM_USE_OIDC=true (+ its token variables)
    venv/bin/python -m pytest tests/acceptance -q

What it does: a throwaway stack `acctest-<6 hex>` in a local backend inside a
temporary directory (random passphrase) with one portal of the same name
(baseUrl https://acctest.invalid), `pulumi up`, then
`python -m intrexx_connector verify --outputs <0600 file> --timeout 600`,
and always `pulumi destroy` + `pulumi stack rm`. Test apps are recognisable by
their display name `Intrexx acctest-... (acctest-...)`; a failed destroy
leaves the state under the pytest temp directory for a manual destroy.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
TENANT_VARIABLE = "INTREXX_ACCEPTANCE_TENANT_ID"

pytestmark = pytest.mark.skipif(
    not os.environ.get(TENANT_VARIABLE),
    reason=f"acceptance test against a real tenant: set {TENANT_VARIABLE} to run it",
)


def _require_prerequisites() -> None:
    missing = []
    if not os.environ.get("ARM_CLIENT_ID"):
        missing.append("ARM_CLIENT_ID")
    if not (os.environ.get("ARM_CLIENT_SECRET") or os.environ.get("ARM_USE_OIDC", "").lower() == "true"):
        missing.append("ARM_CLIENT_SECRET or ARM_USE_OIDC=true")
    if shutil.which("pulumi") is None:
        missing.append("the pulumi CLI on PATH")
    if missing:
        pytest.fail(f"{TENANT_VARIABLE} is set but this is missing: {', '.join(missing)}")


def test_up_verify_destroy(tmp_path):
    _require_prerequisites()
    from pulumi import automation as auto

    name = f"acctest-{secrets.token_hex(3)}"
    state_dir = tmp_path / "state"
    state_dir.mkdir()
    workspace_options = auto.LocalWorkspaceOptions(
        env_vars={
            "PULUMI_BACKEND_URL": state_dir.as_uri(),
            "PULUMI_CONFIG_PASSPHRASE": secrets.token_urlsafe(32),
        },
    )
    stack = auto.create_or_select_stack(stack_name=name, work_dir=str(ROOT), opts=workspace_options)
    outputs_file = tmp_path / "outputs.json"
    try:
        stack.set_all_config(
            {
                "azuread:tenantId": auto.ConfigValue(os.environ[TENANT_VARIABLE]),
                "intrexx-exchange:portals": auto.ConfigValue(
                    json.dumps([{"name": name, "baseUrl": "https://acctest.invalid"}])
                ),
            }
        )
        stack.up(on_output=print)

        outputs = {key: item.value for key, item in stack.outputs().items()}
        assert name in outputs["portals"], outputs["portals"].keys()
        # The outputs hold the client secret: owner-only from the first byte.
        fd = os.open(outputs_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(outputs, fh)

        verify = subprocess.run(
            [sys.executable, "-m", "intrexx_connector", "verify", "--outputs", str(outputs_file), "--timeout", "600"],
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=900,
        )
        assert verify.returncode == 0, f"verify exited {verify.returncode}:\n{verify.stdout}\n{verify.stderr}"
    finally:
        outputs_file.unlink(missing_ok=True)
        try:
            stack.destroy(on_output=print)
            stack.workspace.remove_stack(name)
        finally:
            # `stack rm` deletes Pulumi.<name>.yaml; after a failed destroy keep it
            # (it holds the encryption salt) next to the state, out of the repository.
            settings = ROOT / f"Pulumi.{name}.yaml"
            if settings.exists():
                shutil.move(str(settings), str(tmp_path / settings.name))
                print(f"stack {name} NOT removed: state and settings kept in {tmp_path}")
