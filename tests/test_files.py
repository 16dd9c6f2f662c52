import os
from datetime import UTC, datetime

import pytest

from intrexx_connector.errors import FileError
from intrexx_connector.files import backup_path, write_atomic

NOW = datetime(2026, 11, 24, 21, 53, 0, tzinfo=UTC)


@pytest.fixture
def umask():
    def set_umask(value: int) -> None:
        os.umask(value)

    previous = os.umask(0o022)
    yield set_umask
    os.umask(previous)


def mode_of(path) -> int:
    return path.stat().st_mode & 0o777


@pytest.mark.parametrize("mode, mask", [(0o600, 0o000), (0o644, 0o077), (0o600, 0o022), (0o640, 0o002)])
def test_write_atomic_sets_the_mode_whatever_the_umask(tmp_path, umask, mode, mask):
    umask(mask)
    target = tmp_path / "secret.json"
    write_atomic(target, "{}", mode)
    assert mode_of(target) == mode
    assert target.read_text() == "{}"


def test_write_atomic_creates_the_temporary_file_exclusively_with_the_mode(tmp_path, monkeypatch):
    calls = []
    real_open = os.open

    def recording_open(path, flags, mode=0o777, *args, **kwargs):
        calls.append((str(path), flags, mode))
        return real_open(path, flags, mode, *args, **kwargs)

    monkeypatch.setattr(os, "open", recording_open)
    write_atomic(tmp_path / "om.cfg", b"<configuration/>", 0o600)
    temporary = [c for c in calls if c[0].endswith(".tmp")]
    assert len(temporary) == 1
    _, flags, mode = temporary[0]
    assert flags & os.O_CREAT and flags & os.O_EXCL
    assert mode == 0o600
    assert os.path.dirname(temporary[0][0]) == str(tmp_path)


def test_write_atomic_replaces_bytes_and_text(tmp_path):
    target = tmp_path / "file"
    target.write_bytes(b"old")
    write_atomic(target, b"\x00new\xff", 0o600)
    assert target.read_bytes() == b"\x00new\xff"
    write_atomic(target, "grüße", 0o644)
    assert target.read_bytes() == "grüße".encode()
    assert mode_of(target) == 0o644
    assert sorted(p.name for p in tmp_path.iterdir()) == ["file"]


def test_a_crash_before_the_rename_keeps_the_old_file_and_leaves_no_temporary_file(tmp_path, monkeypatch):
    target = tmp_path / "om.cfg"
    target.write_bytes(b"old content")
    os.chmod(target, 0o640)

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(FileError, match="No space left on device") as caught:
        write_atomic(target, b"new secret content", 0o600)
    assert "new secret content" not in str(caught.value)
    assert target.read_bytes() == b"old content"
    assert mode_of(target) == 0o640
    assert [p.name for p in tmp_path.iterdir()] == ["om.cfg"]


def test_a_failed_fsync_keeps_the_old_file(tmp_path, monkeypatch):
    target = tmp_path / "om.cfg"
    target.write_bytes(b"old")

    def failing_fsync(descriptor):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    with pytest.raises(FileError):
        write_atomic(target, b"new", 0o600)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["om.cfg"]


def test_an_interrupt_is_reraised_after_cleaning_up(tmp_path, monkeypatch):
    target = tmp_path / "om.cfg"
    target.write_bytes(b"old")

    def interrupted(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        write_atomic(target, b"new", 0o600)
    assert target.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["om.cfg"]


def test_writing_into_a_missing_directory_is_a_file_error(tmp_path):
    with pytest.raises(FileError, match="cannot write"):
        write_atomic(tmp_path / "missing" / "file", b"x", 0o600)
    assert list(tmp_path.iterdir()) == []


def test_backup_path_is_timestamped_beside_the_file(tmp_path):
    target = tmp_path / "om.cfg"
    assert backup_path(target, NOW) == tmp_path / "om.cfg.20261124T215300Z.bak"


def test_backup_path_never_names_an_existing_backup(tmp_path):
    target = tmp_path / "om.cfg"
    first = backup_path(target, NOW)
    first.write_bytes(b"first")
    second = backup_path(target, NOW)
    assert second == tmp_path / "om.cfg.20261124T215300Z.1.bak"
    second.write_bytes(b"second")
    third = backup_path(target, NOW)
    assert third == tmp_path / "om.cfg.20261124T215300Z.2.bak"
    assert first.read_bytes() == b"first"
    assert second.read_bytes() == b"second"
