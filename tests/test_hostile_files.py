"""Attack cases against render's files (issue 13, parts 2 and 5): portal names that try to leave --out, a umask
that would open the secret folders, a disk that fills up mid-render, a SIGTERM mid-render."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from helpers import ROOT
from outputs_fixtures import HR, OPS, WIDE, stack_outputs

from intrexx_connector.cli import main
from intrexx_connector.errors import FileError
from intrexx_connector.render import CONNECTOR_FILE, SHEET_FILE, SIGN_IN_FILE, render_all
from intrexx_connector.stack_outputs import parse_outputs


@pytest.fixture
def umask():
    previous = os.umask(0o022)
    yield os.umask
    os.umask(previous)


def mode_of(path: Path) -> int:
    return path.stat().st_mode & 0o777


def tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*"))


def rename_portal(document: dict, old: str, new: str) -> dict:
    document["portals"][new] = document["portals"].pop(old)
    document["portals"][new]["portal"] = new
    document["clientSecrets"][new] = document["clientSecrets"].pop(old)
    return document


@pytest.mark.parametrize(
    "name",
    ["../../escaped", "/tmp/intrexx-absolute-escape", "hr/../../escaped", "..", ".", "hr\x00x", "HR", "hr\u202e"],
)
def test_a_portal_name_that_is_not_a_name_never_becomes_a_path(tmp_path, capsys, name):
    document = rename_portal(stack_outputs([HR]), "hr", name)
    outputs = tmp_path / "in" / "outputs.json"
    outputs.parent.mkdir()
    outputs.write_text(json.dumps(document))
    out = tmp_path / "work" / "a" / "b" / "out"
    out.mkdir(parents=True)
    (tmp_path / "work" / "escaped").mkdir()
    (tmp_path / "work" / "escaped" / CONNECTOR_FILE).write_text("not ours")
    before = tree(tmp_path)
    code = main(["render", "--outputs", str(outputs), "--out", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and err.startswith("OutputsError: portals: ") and "is not a portal name" in err
    assert tree(tmp_path) == before
    assert not Path("/tmp/intrexx-absolute-escape").exists()
    assert (tmp_path / "work" / "escaped" / CONNECTOR_FILE).read_text() == "not ours"


def test_directories_holding_secrets_are_0700_whatever_the_umask(tmp_path, umask):
    umask(0o000)
    portals = parse_outputs(json.dumps(stack_outputs([HR, OPS])))
    out = tmp_path / "new" / "build"
    render_all(portals, out)
    for directory in (tmp_path / "new", out, out / "hr", out / "ops"):
        assert mode_of(directory) == 0o700, directory
    assert mode_of(out / "hr" / CONNECTOR_FILE) == 0o600
    assert mode_of(out / "hr" / SIGN_IN_FILE) == 0o600
    assert mode_of(out / "hr" / SHEET_FILE) == 0o644


def test_a_world_writable_portal_directory_from_an_older_run_is_closed(tmp_path, umask):
    umask(0o000)
    out = tmp_path / "out"
    out.mkdir(mode=0o755)
    (out / "hr").mkdir(mode=0o777)
    render_all(parse_outputs(json.dumps(stack_outputs([HR]))), out)
    assert mode_of(out / "hr") == 0o700
    assert mode_of(out) == 0o755  # --out itself is the user's and keeps its mode


def test_a_symbolic_link_as_portal_directory_is_refused(tmp_path):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (tmp_path / "out").mkdir()
    (tmp_path / "out" / "hr").symlink_to(elsewhere)
    with pytest.raises(FileError, match="not a directory"):
        render_all(parse_outputs(json.dumps(stack_outputs([HR]))), tmp_path / "out")
    assert list(elsewhere.iterdir()) == []


def test_a_full_disk_mid_render_keeps_the_old_files_together(tmp_path, monkeypatch):
    """The new connector JSON must never sit beside the old sheet and om.cfg.xml (two secrets side by side)."""
    first = parse_outputs(json.dumps(stack_outputs([HR])))
    render_all(first, tmp_path)
    before = {p.name: p.read_bytes() for p in (tmp_path / "hr").iterdir()}
    rotated = [p.with_secret("rotated-secret-value-0123456789") for p in first]
    real_fsync, calls = os.fsync, []

    def full_disk_on_the_second_file(descriptor):
        calls.append(descriptor)
        if len(calls) == 2:
            raise OSError(28, "No space left on device")
        real_fsync(descriptor)

    monkeypatch.setattr(os, "fsync", full_disk_on_the_second_file)
    with pytest.raises(FileError, match="No space left on device"):
        render_all(rotated, tmp_path)
    monkeypatch.setattr(os, "fsync", real_fsync)
    assert {p.name: p.read_bytes() for p in (tmp_path / "hr").iterdir()} == before
    assert b"rotated-secret-value" not in b"".join(before.values())


def test_stale_temporary_files_of_a_killed_run_are_removed(tmp_path):
    portals = parse_outputs(json.dumps(stack_outputs([HR])))
    render_all(portals, tmp_path)
    stale = [
        tmp_path / "hr" / f".{CONNECTOR_FILE}.0123456789ab.tmp",
        tmp_path / "hr" / f".{SIGN_IN_FILE}.abcdef012345.tmp",
    ]
    for path in stale:
        path.write_text(portals[0].client_secret)
    keep = tmp_path / "hr" / "notes.tmp"
    keep.write_text("the administrator's")
    render_all(portals, tmp_path)
    assert not any(path.exists() for path in stale)
    assert keep.read_text() == "the administrator's"


SLOW_RENDER = """
import os, sys, time
sys.path.insert(0, sys.argv[1])
real_fsync = os.fsync
def slow_fsync(descriptor):
    print("writing", flush=True)
    time.sleep(30)
    real_fsync(descriptor)
os.fsync = slow_fsync
from intrexx_connector.cli import main
sys.exit(main(["render", "--outputs", sys.argv[2], "--out", sys.argv[3]]))
"""


def test_sigterm_mid_render_leaves_no_temporary_file_and_no_half_set(tmp_path):
    document = stack_outputs([HR, WIDE])
    outputs = tmp_path / "outputs.json"
    outputs.write_text(json.dumps(document))
    process = subprocess.Popen(
        [sys.executable, "-c", SLOW_RENDER, str(ROOT), str(outputs), str(tmp_path / "out")],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert process.stdout.readline() == b"writing\n"
        assert any(p.name.endswith(".tmp") for p in (tmp_path / "out" / "hr").iterdir())
        started = time.monotonic()
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=10)
    finally:
        process.kill()
    assert time.monotonic() - started < 2
    assert process.returncode == 143 and b"terminated" in err and b"Traceback" not in err
    assert [p.name for p in (tmp_path / "out" / "hr").iterdir()] == []


# Every file the tool reads: one size limit, one set of encodings (issue 17, class 6) ----------------------------

from components.text import MAX_FILE_BYTES, TextFileError, decode_text, read_text_file  # noqa: E402


def _encodings_of(text: str) -> dict[str, bytes]:
    return {
        "utf-8": text.encode("utf-8"),
        "utf-8 with BOM": text.encode("utf-8-sig"),
        "utf-16 LE with BOM": text.encode("utf-16"),  # what Windows PowerShell 5.1's `>` writes
        "utf-16 BE with BOM": b"\xfe\xff" + text.encode("utf-16-be"),
    }


def _rotation(tmp_path: Path, before: bytes, after: dict, *extra: str) -> int:
    (tmp_path / "before.json").write_bytes(before)
    (tmp_path / "after.json").write_text(json.dumps(after))
    return main(
        [
            "rotation-notice",
            "--stack",
            "prod",
            "--before",
            str(tmp_path / "before.json"),
            "--outputs",
            str(tmp_path / "after.json"),
            *extra,
        ]
    )


def _notice_documents() -> tuple[dict, dict]:
    before = stack_outputs([HR, OPS])
    after = json.loads(json.dumps(before))
    after["portals"]["hr"]["secretKeyId"] = "00000000-1111-4222-8333-444444444444"
    del before["clientSecrets"]
    return before, after


@pytest.mark.parametrize("encoding", list(_encodings_of("x")))
def test_rotation_notice_reads_before_in_every_encoding_outputs_accepts(tmp_path, capsys, encoding):
    before, after = _notice_documents()
    code = _rotation(tmp_path, _encodings_of(json.dumps(before))[encoding], after, "--json")
    out = capsys.readouterr().out
    assert code == 0 and [p["portal"] for p in json.loads(out)["portals"]] == ["hr"]


@pytest.mark.parametrize(
    "data, words",
    [
        (b"\xff\xfe\x00\x00" + "{}".encode("utf-32-le"), "UTF-32 text, which is not read"),
        (b"\x00\x00\xfe\xff" + "{}".encode("utf-32-be"), "UTF-32 text, which is not read"),
        (b'{"portals": "\xc3\x28"}', "not UTF-8 or UTF-16 text (line 1, byte 0xc3)"),
        (b"{}\n\n\xff", "not UTF-8 or UTF-16 text (line 3, byte 0xff)"),
        (b"\xff\xfe\x00\xd8" + b"x" * 9, "not UTF-8 or UTF-16 text (UTF-16 broken"),
        (b"\xed\xa0\x80", "not UTF-8 or UTF-16 text"),  # an encoded lone surrogate
    ],
    ids=["utf32-le", "utf32-be", "bad-utf8", "bad-utf8-line-3", "bad-utf16", "surrogate"],
)
def test_before_and_outputs_refuse_the_same_bytes_with_one_line(tmp_path, capsys, data, words):
    _, after = _notice_documents()
    code = _rotation(tmp_path, data, after)
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"--before {tmp_path / 'before.json'}: {words}" in err
    (tmp_path / "outputs.json").write_bytes(data)
    code = main(["status", "--outputs", str(tmp_path / "outputs.json")])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and words in err


def test_a_huge_before_file_is_refused_without_reading_it_whole(tmp_path, capsys):
    _, after = _notice_documents()
    huge = tmp_path / "before.json"
    with huge.open("wb") as stream:  # sparse: 100 MB on paper, nothing on disk
        stream.truncate(100_000_000)
    (tmp_path / "after.json").write_text(json.dumps(after))
    started = time.monotonic()
    code = main(["rotation-notice", "--before", str(huge), "--outputs", str(tmp_path / "after.json")])
    err = capsys.readouterr().err
    assert code == 2 and f"larger than {MAX_FILE_BYTES} bytes; not read" in err
    assert time.monotonic() - started < 10


@pytest.mark.parametrize("option", ["--before", "--compare"])
def test_a_directory_or_device_is_one_line(tmp_path, capsys, monkeypatch, option):
    monkeypatch.chdir(ROOT)  # plan reads Pulumi.dev.yaml from here
    _, after = _notice_documents()
    (tmp_path / "after.json").write_text(json.dumps(after))
    for path in (str(tmp_path), "/dev/zero"):
        if option == "--before":
            argv = ["rotation-notice", "--before", path, "--outputs", str(tmp_path / "after.json")]
        else:
            argv = ["plan", "--stack", "dev", "--compare", path]
        code = main(argv)
        err = capsys.readouterr().err
        assert code == 2 and err.count("\n") == 1 and f"{option} {path}" in err, err


def test_plan_compare_names_its_own_option_when_the_file_is_missing(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    code = main(["plan", "--stack", "dev", "--compare", str(tmp_path / "absent.json")])
    err = capsys.readouterr().err
    assert code == 2 and f"cannot read --compare {tmp_path / 'absent.json'}" in err


@pytest.mark.parametrize("encoding", list(_encodings_of("x")))
def test_the_one_reader_gives_the_same_text_for_every_encoding(tmp_path, encoding):
    text = '{"environment": "ESPAÑA 日本語 \U0001f680"}'
    path = tmp_path / "file.json"
    path.write_bytes(_encodings_of(text)[encoding])
    assert read_text_file(path, "file") == text
    assert decode_text(_encodings_of(text)[encoding], "stdin") == text


def test_the_one_reader_has_one_limit(tmp_path):
    path = tmp_path / "big"
    path.write_bytes(b" " * 101)
    with pytest.raises(TextFileError, match="big: larger than 100 bytes"):
        read_text_file(path, "big", limit=100)
    with pytest.raises(TextFileError, match="larger than 100 bytes"):
        decode_text(b" " * 101, "stdin", limit=100)
    with pytest.raises(FileNotFoundError):
        read_text_file(tmp_path / "absent", "absent")


@pytest.mark.parametrize("encoding", ["utf-8 with BOM", "utf-16 LE with BOM", "utf-16 BE with BOM"])
def test_a_stack_file_is_read_by_the_same_rules_as_go_yaml(tmp_path, capsys, monkeypatch, encoding):
    """go-yaml v3, which reads stack files for Pulumi, takes UTF-16 with a byte order mark too."""
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_bytes(_encodings_of((ROOT / "Pulumi.dev.yaml").read_text())[encoding])
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--stack", "dev", "--json"]) == 0
    planned = json.loads(capsys.readouterr().out)
    monkeypatch.chdir(ROOT)
    assert main(["plan", "--stack", "dev", "--json"]) == 0
    assert planned == json.loads(capsys.readouterr().out)


def test_a_utf32_stack_file_is_one_line(tmp_path, capsys, monkeypatch):
    (tmp_path / "Pulumi.yaml").write_text((ROOT / "Pulumi.yaml").read_text())
    (tmp_path / "Pulumi.dev.yaml").write_bytes((ROOT / "Pulumi.dev.yaml").read_text().encode("utf-32"))
    monkeypatch.chdir(tmp_path)
    assert main(["plan", "--stack", "dev"]) == 2
    expected = "StackFileError: Pulumi.dev.yaml: UTF-32 text, which is not read; save it as UTF-8\n"
    assert capsys.readouterr().err == expected
