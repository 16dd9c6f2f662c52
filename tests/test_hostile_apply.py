"""Attack cases against apply (issue 13, part 3): parallel applies, someone else editing om.cfg between our read
and our replace, a read-only om.cfg, an empty <configuration>, an unknown declared encoding."""

import json
import os
import subprocess
import sys
import threading
import time
import xml.etree.ElementTree as ElementTree
from datetime import UTC, datetime
from pathlib import Path

import filelock
import pytest
from helpers import ROOT
from outputs_fixtures import HR, stack_outputs

from intrexx_connector import omcfg
from intrexx_connector.cli import main
from intrexx_connector.errors import FileError
from intrexx_connector.omcfg import OM_CFG, apply_sign_in
from intrexx_connector.stack_outputs import parse_outputs

NOW = datetime(2026, 11, 24, 21, 53, 0, tzinfo=UTC)
SALES = {"name": "sales", "baseUrl": "https://sales.example.com", "signIn": True}
OM_CFG_TEXT = """<?xml version="1.0" encoding="UTF-8"?>
<configuration>
   <!-- edited by hand -->
   <authentication>
      <binding scope="web" auth-type="IntrexxAuth"/>
   </authentication>
   <security/>
</configuration>
"""


@pytest.fixture(scope="module")
def portals():
    return {p.name: p for p in parse_outputs(json.dumps(stack_outputs([HR, SALES])))}


def om_cfg(portal_dir: Path, content: bytes | str = OM_CFG_TEXT, mode: int = 0o600) -> Path:
    path = portal_dir / OM_CFG
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    os.chmod(path, mode)
    return path


def providers(path: Path) -> list[str]:
    return sorted(e.get("name") for e in ElementTree.fromstring(path.read_bytes()).findall("oauth2"))


def backups(path: Path) -> list[Path]:
    return sorted(path.parent.glob("om.cfg.*.bak"))


@pytest.fixture
def slow_merge(monkeypatch):
    """Widen the window between reading om.cfg and replacing it, as a slow disk or a busy machine would."""
    real = omcfg.merged

    def slow(*args, **kwargs):
        time.sleep(0.05)
        return real(*args, **kwargs)

    monkeypatch.setattr(omcfg, "merged", slow)


def test_two_parallel_applies_for_different_portals_keep_both_providers(portals, tmp_path, slow_merge):
    for trial in range(20):
        portal_dir = tmp_path / str(trial)
        path = om_cfg(portal_dir)
        start = threading.Barrier(2)
        errors = []

        def apply(name, portal_dir=portal_dir, start=start, errors=errors):
            start.wait()
            try:
                apply_sign_in(portals[name], portal_dir)
            except Exception as error:  # noqa: BLE001 - reported by the assertion below
                errors.append(error)

        threads = [threading.Thread(target=apply, args=(name,)) for name in ("hr", "sales")]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(10)
        assert not errors, errors
        assert providers(path) == ["entra-hr", "entra-sales"], f"trial {trial}: a provider was dropped"
        assert "<!-- edited by hand -->" in path.read_text()


def test_an_apply_in_another_process_waits_for_the_lock(portals, tmp_path):
    path = om_cfg(tmp_path / "portal")
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack_outputs([HR, SALES])))
    with filelock.FileLock(str(path) + ".lock"):
        process = subprocess.Popen(
            [
                *(sys.executable, "-m", "intrexx_connector", "apply", "--outputs", str(outputs)),
                *("--portal", "sales", "--portal-dir", str(tmp_path / "portal")),
            ],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )
        time.sleep(1.5)
        assert process.poll() is None, process.communicate()
        assert providers(path) == []
    _, err = process.communicate(timeout=30)
    assert process.returncode == 0, err
    assert providers(path) == ["entra-sales"]


def test_an_edit_between_our_read_and_our_replace_is_kept(portals, tmp_path, monkeypatch):
    path = om_cfg(tmp_path)
    real, calls = omcfg.merged, []

    def someone_edits_meanwhile(original, portal, where):
        result = real(original, portal, where)
        if not calls:
            path.write_text(OM_CFG_TEXT.replace("<security/>", '<security audit="on"/>'))
        calls.append(1)
        return result

    monkeypatch.setattr(omcfg, "merged", someone_edits_meanwhile)
    result = apply_sign_in(portals["hr"], tmp_path, now=NOW)
    assert result.changed and len(calls) == 2
    text = path.read_text()
    assert '<security audit="on"/>' in text and providers(path) == ["entra-hr"]
    assert [b.read_text() for b in backups(path)] == [OM_CFG_TEXT.replace("<security/>", '<security audit="on"/>')]


def test_an_om_cfg_that_keeps_changing_is_left_to_its_editor(portals, tmp_path, monkeypatch):
    path = om_cfg(tmp_path)
    real, edits = omcfg.merged, []

    def always_edited(original, portal, where):
        result = real(original, portal, where)
        edits.append(1)
        path.write_text(OM_CFG_TEXT.replace("edited by hand", f"edit {len(edits)}"))
        return result

    monkeypatch.setattr(omcfg, "merged", always_edited)
    with pytest.raises(FileError, match="changed 3 times while this command merged into it"):
        apply_sign_in(portals["hr"], tmp_path, now=NOW)
    assert path.read_text() == OM_CFG_TEXT.replace("edited by hand", "edit 3")
    assert backups(path) == []


def test_a_read_only_om_cfg_is_refused_not_replaced(portals, tmp_path, capsys):
    path = om_cfg(tmp_path / "portal", mode=0o444)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack_outputs([HR, SALES])))
    code = main(["apply", "--outputs", str(outputs), "--portal", "hr", "--portal-dir", str(tmp_path / "portal")])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("FileError: ") and "is read-only (mode 0444)" in err
    assert path.read_text() == OM_CFG_TEXT and path.stat().st_mode & 0o777 == 0o444
    assert backups(path) == []


def test_an_empty_configuration_element_is_merged_once(portals, tmp_path):
    path = om_cfg(tmp_path, "<configuration></configuration>")
    first = apply_sign_in(portals["hr"], tmp_path, now=NOW)
    merged_once = path.read_bytes()
    second = apply_sign_in(portals["hr"], tmp_path, now=NOW)
    assert first.changed and not second.changed
    assert path.read_bytes() == merged_once and len(backups(path)) == 1
    assert providers(path) == ["entra-hr"]


def test_an_unknown_declared_encoding_is_a_clear_error(portals, tmp_path, capsys):
    content = b'<?xml version="1.0" encoding="x-bogus"?>\n<configuration>\n   <security/>\n</configuration>\n'
    path = om_cfg(tmp_path / "portal", content)
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(stack_outputs([HR, SALES])))
    code = main(["apply", "--outputs", str(outputs), "--portal", "hr", "--portal-dir", str(tmp_path / "portal")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("FileError: ") and "declares the encoding 'x-bogus', which is unknown" in err
    assert path.read_bytes() == content and backups(path) == []


def test_apply_with_the_offline_plans_outputs_is_one_line_exit_2_and_nothing_written(tmp_path, capsys):
    """`plan --save-outputs` writes placeholder secrets (components.facts): apply refuses them at once."""
    path = om_cfg(tmp_path / "portal")
    outputs = tmp_path / "planned.json"
    assert main(["plan", "--stack", "prod", "--save-outputs", str(outputs)]) == 0
    capsys.readouterr()
    code = main(["apply", "--outputs", str(outputs), "--portal", "intranet", "--portal-dir", str(tmp_path / "portal")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and "placeholder secret" in err
    assert path.read_text() == OM_CFG_TEXT and sorted(p.name for p in path.parent.iterdir()) == ["om.cfg"]
