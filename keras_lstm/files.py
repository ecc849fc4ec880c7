"""Writing files so that a reader never sees half of one, and two runs never share a folder.

Every file and folder keras-lstm writes goes to a temporary name in the target folder first and
is renamed into place, so what was there before stays whole until the new one is complete (a
full disk, a kill or an error leaves the old one, and no temporary name behind). New files get
the permissions the user's umask gives any new file (`0o666 & ~umask`), not the 0600 of a
temporary file. A write that fails with an `OSError` (ENOSPC, EACCES) raises `OutputError`,
naming the path.

Example:
    >>> import tempfile, pathlib
    >>> path = pathlib.Path(tempfile.mkdtemp()) / "metrics.json"
    >>> atomic_write_text(path, "{}")
    >>> path.read_text()
    '{}'
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import shutil
import tempfile
import threading
from pathlib import Path

from keras_lstm.errors import OutputError, TrainingError

LOCK_FILE = ".lock"

_held_locks: dict[str, int] = {}  # resolved folder -> how many times this process holds it
_locks_guard = threading.Lock()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def public_mode(path: str | os.PathLike, folder: bool = False) -> None:
    """Give `path` the permissions a newly created file (or folder) gets under the umask."""
    os.chmod(path, (0o777 if folder else 0o666) & ~_umask())


def missing_file(path: str | os.PathLike) -> str | None:
    """What keeps `path` from being read as a file, in words for an error message: None when
    it is a file.

    Example:
        >>> missing_file("/")
        'is a folder, not a file'
        >>> missing_file("/no/such/file.csv")
        'does not exist'
    """
    path = Path(path)
    if path.is_file():
        return None
    return "is a folder, not a file" if path.is_dir() else "does not exist"


def check_output_folder(folder: str | os.PathLike, option: str = "--out") -> Path:
    """`folder` as a `Path`, or `OutputError` when a file (not a folder) has that name, before
    any work is done: a run folder is created where it is missing, and a file is never replaced
    by one.

    Example:
        >>> check_output_folder("/tmp/no-such-run")
        PosixPath('/tmp/no-such-run')
    """
    folder = Path(folder)
    if folder.exists() and not folder.is_dir():
        raise OutputError(
            f"{option} {str(folder)!r} is a file, not a folder: name a folder for the run "
            "(it is created if missing). The file was left as it is."
        )
    return folder


def output_error(path: str | os.PathLike, err: OSError) -> OutputError:
    """The `OutputError` for a failed write of `path`: what failed, and what to do."""
    reason = err.strerror or str(err)
    hint = (
        "Free some disk space, or write elsewhere"
        if err.errno in (errno.ENOSPC, errno.EDQUOT)
        else "Check that the folder exists and is writable, or write elsewhere"
    )
    return OutputError(
        f"Could not write {str(path)!r}: {reason}. {hint}; what was there before is unchanged."
    )


def temporary_file(path: Path, content: bytes) -> Path:
    """`content` written to a new temporary file beside `path` (not yet renamed); the caller
    renames it with `os.replace`. Nothing is left behind if the write fails."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        _write_all(fd, content)
        public_mode(tmp)
    except OSError as err:
        Path(tmp).unlink(missing_ok=True)
        raise output_error(path, err) from err
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return Path(tmp)


def _write_all(fd: int, content: bytes) -> None:
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)


def atomic_write_bytes(path: str | os.PathLike, content: bytes) -> None:
    """Write bytes to `path` through a temporary file in the same folder, then rename."""
    path = Path(path)
    tmp = temporary_file(path, content)
    try:
        os.replace(tmp, path)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        raise output_error(path, err) from err


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Write text (UTF-8) to `path` through a temporary file in the same folder, then rename."""
    atomic_write_bytes(path, text.encode("utf-8"))


@contextlib.contextmanager
def atomic_folder(directory: str | os.PathLike):
    """Yield a temporary folder beside `directory`; on success it replaces `directory`.

    On any error (an `OSError` becomes `OutputError`) the temporary folder is removed and a
    `directory` that was there before is left as it was.

    Example:
        >>> with atomic_folder("run/bundle") as tmp:  # doctest: +SKIP
        ...     (tmp / "model.keras").write_bytes(data)
    """
    directory = Path(directory)
    try:
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    except OSError as err:
        raise output_error(directory, err) from err
    try:
        yield tmp
        public_mode(tmp, folder=True)
        old = None
        if directory.exists():
            old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
            os.replace(directory, old)
        os.replace(tmp, directory)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(err, OutputError):
            raise
        raise output_error(directory, err) from err
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


@contextlib.contextmanager
def folder_lock(folder: str | os.PathLike):
    """Hold `folder/.lock` for a run writing into `folder`: a second run (another process) is
    refused with `TrainingError`, never interleaved. The operating system drops the lock when
    the process ends, also after `kill -9` (the file stays, unlocked, and the resumed run takes
    it); a run that ends removes it. Re-entrant in one process. Without `fcntl` (Windows)
    nothing is locked.

    Example:
        >>> with folder_lock("run"):  # doctest: +SKIP
        ...     train_into("run")
    """
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX
        yield
        return
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    key = str(folder.resolve())
    with _locks_guard:
        if key in _held_locks:
            _held_locks[key] += 1
            reentered = True
        else:
            reentered = False
    if reentered:
        try:
            yield
        finally:
            with _locks_guard:
                _held_locks[key] -= 1
        return
    path = folder / LOCK_FILE
    fd = _locked_file(path, folder, fcntl)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        with _locks_guard:
            _held_locks[key] = 1
        try:
            yield
        finally:
            with _locks_guard:
                _held_locks.pop(key, None)
            path.unlink(missing_ok=True)  # still held: no other run has it open and locked
    finally:
        os.close(fd)  # releases the lock


def _locked_file(path: Path, folder: Path, fcntl) -> int:
    """An open descriptor of `path`, exclusively locked; refused when another process holds it.
    Retried when the file was removed by the previous holder between our open and our lock."""
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            os.close(fd)
            raise TrainingError(
                f"Another keras-lstm run (process {holder}) is writing to {str(folder)!r}. "
                "Wait for it to finish, or choose another --out. (A killed run's folder is "
                "not locked: the same command resumes it.)"
            ) from None
        try:
            same = os.fstat(fd).st_ino == os.stat(path).st_ino
        except FileNotFoundError:
            same = False
        if same:
            return fd
        os.close(fd)


def file_sha256(path: str | os.PathLike) -> str:
    """The SHA-256 of a file's bytes, read in blocks of 1 MiB, as hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
