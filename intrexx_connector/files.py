"""Writing files so that a reader sees the old content or the new one, never half of either.

`write_atomic` replaces one file; `write_set_atomic` replaces a set of files that belong together (a portal's
connector JSON, sheet and om.cfg block): every file is written to a temporary file beside its target first, and
only when all of them are on disk are they renamed into place, with SIGINT and SIGTERM held back for those few
renames. A failure while writing (a full disk, an interrupt) leaves every old file as it was and no temporary
file. Temporary files are named `.<name>.<12 hex digits>.tmp`; a process killed outright (SIGKILL, power loss) can
still leave some, and `remove_stale_temporaries` clears them on the next run. Directories that hold secrets are
made 0700 whatever the umask.
"""

import contextlib
import os
import re
import secrets
import signal
import stat
import threading
from collections.abc import Iterator, Mapping
from datetime import datetime
from pathlib import Path

from .errors import FileError

PRIVATE_DIRECTORY_MODE = 0o700


def write_atomic(path: Path, data: bytes | str, mode: int, owner_of: Path | None = None) -> None:
    """Replace `path` with `data`, created with `mode` from the first byte on; on error the old file stays.

    The new file keeps the owner and group of the file it replaces (or of `owner_of`, e.g. the file a backup is
    a copy of) where the process may set them: both as root, the group alone as a member of it. So an Intrexx
    portal server running as its own user and group can still read it.
    """
    write_set_atomic({Path(path): (data, mode)}, owner_of={Path(path): Path(owner_of)} if owner_of else None)


def write_set_atomic(
    files: Mapping[Path, tuple[bytes | str, int]], owner_of: Mapping[Path, Path] | None = None
) -> None:
    """Replace every file of `files` (path -> (data, mode)), all or none: see the module's docstring. Each file
    keeps the owner of the file it replaces, or takes that of `owner_of[path]`."""
    for path in files:
        _refuse_special_file(Path(path))
    written: dict[Path, Path] = {}
    current = Path()
    try:
        for current, (data, mode) in files.items():
            like = (owner_of or {}).get(Path(current), Path(current))
            written[Path(current)] = _write_temporary(Path(current), data, mode, like)
        with _signals_deferred():
            for current, temporary in list(written.items()):
                os.replace(temporary, current)
                del written[current]
        for directory in {Path(path).parent for path in files}:
            _fsync_directory(directory)
    except BaseException as error:
        for temporary in written.values():
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temporary)
        if isinstance(error, OSError):
            raise FileError(f"cannot write {current}: {error.strerror or error}") from None
        raise


def temporary_name(name: str) -> str:
    return f".{name}.{secrets.token_hex(6)}.tmp"


_TEMPORARY = re.compile(r"\..+\.[0-9a-f]{12}\.tmp")


def remove_stale_temporaries(directory: Path) -> list[Path]:
    """Remove the temporary files (`temporary_name`) an earlier, killed run left in `directory`. Only for a
    directory this program owns (render's portal directories): it removes every file named that way."""
    removed = []
    try:
        entries = list(Path(directory).iterdir())
    except FileNotFoundError:
        return []
    except OSError as error:
        raise FileError(f"cannot read {directory}: {error.strerror}") from None
    for entry in entries:
        if _TEMPORARY.fullmatch(entry.name) and not entry.is_symlink() and entry.is_file():
            try:
                entry.unlink()
            except FileNotFoundError:
                continue
            except OSError as error:
                raise FileError(f"cannot remove the stale temporary file {entry}: {error.strerror}") from None
            removed.append(entry)
    return removed


def _refuse_special_file(path: Path) -> None:
    """A device, FIFO, socket or folder at `path` (or where its link points) is not replaced: `--out /dev/null` or
    `--out /dev/stdout` run as root would otherwise put a regular file in place of the device for everyone."""
    try:
        status = path.stat()  # follows a link: /dev/stdout is one, to the process's own stdout
    except (FileNotFoundError, NotADirectoryError):
        return
    except OSError as error:
        raise FileError(f"cannot write {path}: {error.strerror or error}") from None
    if not stat.S_ISREG(status.st_mode):
        kind = "a folder" if stat.S_ISDIR(status.st_mode) else "a device, pipe or socket"
        raise FileError(f"cannot write {path}: it is {kind}, not a regular file; name a file to write")


def make_private_directory(directory: Path) -> None:
    """Create `directory` and its missing parents as 0700 whatever the umask, and make `directory` itself 0700.

    Parents that exist already keep their mode: they are the user's. `directory` must not be a symbolic link:
    the secrets written into it would land wherever the link points.
    """
    directory = Path(directory)
    missing = []
    for candidate in (directory, *directory.parents):
        if candidate.exists() or candidate.is_symlink():
            break
        missing.append(candidate)
    try:
        for candidate in reversed(missing):
            with contextlib.suppress(FileExistsError):
                os.mkdir(candidate, PRIVATE_DIRECTORY_MODE)
            os.chmod(candidate, PRIVATE_DIRECTORY_MODE)  # mkdir's mode is narrowed by the umask, never widened
        if directory.is_symlink() or not directory.is_dir():
            raise FileError(f"{directory} is not a directory (a symbolic link or a file); refusing to write into it")
        if stat.S_IMODE(directory.stat().st_mode) != PRIVATE_DIRECTORY_MODE:
            os.chmod(directory, PRIVATE_DIRECTORY_MODE)
    except OSError as error:
        raise FileError(f"cannot create {directory}: {error.strerror}") from None


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


def _write_temporary(path: Path, data: bytes | str, mode: int, like: Path) -> Path:
    payload = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    temporary = path.with_name(temporary_name(path.name))
    owner = _owner_of(like)
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0), mode)
    try:
        with os.fdopen(descriptor, "wb") as stream:
            os.fchmod(stream.fileno(), mode)
            if owner is not None:
                give_owner(stream.fileno(), *owner)
            stream.write(payload)
            stream.flush()
            os.fsync(stream.fileno())
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    return temporary


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """Hold SIGINT and SIGTERM back while a set of renames runs, so that an interrupt comes before or after them,
    never between two (POSIX only; elsewhere the renames simply run)."""
    if not hasattr(signal, "pthread_sigmask") or threading.current_thread() is not threading.main_thread():
        yield
        return
    held = {signal.SIGINT, signal.SIGTERM}
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, held)
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _owner_of(path: Path) -> tuple[int, int] | None:
    """`path`'s (uid, gid), to give a file written in its place (None where there is no such file, or no owners:
    Windows)."""
    if not hasattr(os, "fchown"):
        return None
    try:
        status = path.stat()
    except OSError:
        return None
    return status.st_uid, status.st_gid


def give_owner(descriptor: int, uid: int, gid: int) -> None:
    """Give the open file `uid` and `gid` as far as the process may: both as root; otherwise the group alone when
    the process belongs to it (chown(2): "the owner of the file may change the group of the file to any group of
    which that owner is a member"). What it may not do is left as it is: the file then keeps the process's owner."""
    status = os.fstat(descriptor)
    if (status.st_uid, status.st_gid) == (uid, gid):
        return
    if os.geteuid() == 0:
        os.fchown(descriptor, uid, gid)
    elif status.st_gid != gid and gid in (os.getegid(), *os.getgroups()):
        with contextlib.suppress(PermissionError):
            os.fchown(descriptor, -1, gid)


def _fsync_directory(directory: Path) -> None:
    descriptor = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)
