"""Writing files so that a reader sees the old content or the new one, never half of either."""

import contextlib
import os
import secrets
from datetime import datetime
from pathlib import Path

from .errors import FileError


def write_atomic(path: Path, data: bytes | str, mode: int) -> None:
    """Replace `path` with `data`, created with `mode` from the first byte on; on error the old file stays.

    The new file keeps the owner and group of the file it replaces where the process may set them (as root),
    so that an Intrexx portal server running as its own user can still read it.
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    temporary = path.with_name(f".{path.name}.{secrets.token_hex(6)}.tmp")
    try:
        owner = _owner_of(path)
        descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    except OSError as error:
        raise FileError(f"cannot write {path}: {error.strerror}") from None
    try:
        with os.fdopen(descriptor, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            if owner is not None:
                os.fchown(stream.fileno(), *owner)
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
        os.replace(temporary, path)
        _fsync_directory(path.parent)
    except BaseException as error:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        if isinstance(error, OSError):
            raise FileError(f"cannot write {path}: {error.strerror or error}") from None
        raise


def backup_path(path: Path, now: datetime) -> Path:
    """A path beside `path` named after `now` (UTC), e.g. om.cfg.20261124T215300Z.bak, that does not exist yet."""
    path = Path(path)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    candidate = path.with_name(f"{path.name}.{stamp}.bak")
    counter = 1
    while candidate.exists() or candidate.is_symlink():
        candidate = path.with_name(f"{path.name}.{stamp}.{counter}.bak")
        counter += 1
    return candidate


def _owner_of(path: Path) -> tuple[int, int] | None:
    """The replaced file's (uid, gid) when the process may give a new file another owner (it runs as root)."""
    try:
        status = path.stat()
    except FileNotFoundError:
        return None
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        return None
    return status.st_uid, status.st_gid


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
