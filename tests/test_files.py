"""keras_lstm.files: writes that leave the old file whole when the disk fills, the permissions
of new files, and the lock that keeps two runs out of one folder."""

import errno
import os
import subprocess
import sys

import pytest

from keras_lstm import files
from keras_lstm.errors import OutputError, TrainingError


def _disk_full_after(half: bool = True):
    """A `_write_all` that writes part of the bytes, then fails as a full disk does."""

    def write(fd, content):
        with os.fdopen(fd, "wb") as handle:
            handle.write(content[: len(content) // 2] if half else b"")
            handle.flush()
            raise OSError(errno.ENOSPC, "No space left on device")

    return write


def test_a_full_disk_keeps_the_old_file_and_names_the_path(tmp_path, monkeypatch):
    path = tmp_path / "metrics.json"
    files.atomic_write_text(path, '{"old": 1}')
    monkeypatch.setattr(files, "_write_all", _disk_full_after())
    with pytest.raises(OutputError, match=r"metrics\.json.*No space left on device.*disk space"):
        files.atomic_write_text(path, '{"new": 2, "padding": "' + "x" * 1000 + '"}')
    assert path.read_text() == '{"old": 1}'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["metrics.json"]  # no temporary left


def test_a_full_disk_while_a_folder_is_written_keeps_the_old_folder(tmp_path):
    folder = tmp_path / "bundle"
    with files.atomic_folder(folder) as tmp:
        (tmp / "a.txt").write_text("old")
    with pytest.raises(OutputError, match=r"'.*bundle'.*No space left"):
        with files.atomic_folder(folder) as tmp:
            (tmp / "a.txt").write_text("new")
            raise OSError(errno.ENOSPC, "No space left on device")
    assert (folder / "a.txt").read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bundle"]


def test_new_files_and_folders_get_the_umask_permissions_not_0600(tmp_path):
    previous = os.umask(0o022)
    try:
        files.atomic_write_text(tmp_path / "a.json", "{}")
        with files.atomic_folder(tmp_path / "bundle") as tmp:
            (tmp / "b.txt").write_text("b")
    finally:
        os.umask(previous)
    assert (tmp_path / "a.json").stat().st_mode & 0o777 == 0o644
    assert (tmp_path / "bundle").stat().st_mode & 0o777 == 0o755


HOLD_LOCK = """
import sys, time
from keras_lstm.files import folder_lock
with folder_lock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(60)
"""


@pytest.mark.skipif(sys.platform == "win32", reason="fcntl locks are POSIX")
def test_a_folder_locked_by_another_process_is_refused_and_freed_when_it_dies(tmp_path):
    folder = tmp_path / "run"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(TrainingError, match=rf"process {holder.pid}\) is writing to .*run"):
            with files.folder_lock(folder):
                pass
    finally:
        holder.kill()  # like kill -9: the kernel drops the lock, the file stays
        holder.wait()
    assert (folder / files.LOCK_FILE).exists()
    with files.folder_lock(folder):  # a resumed run is not locked out
        with files.folder_lock(folder):  # and the same process may take it again
            pass
    assert not (folder / files.LOCK_FILE).exists()  # a run that ends removes it


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    with pytest.raises(ValueError), files.folder_lock(tmp_path):
        raise ValueError("training failed")
    take = (
        "import sys; from keras_lstm.files import folder_lock\nwith folder_lock(sys.argv[1]): pass"
    )
    other = subprocess.run([sys.executable, "-c", take, str(tmp_path)], capture_output=True)
    assert other.returncode == 0, other.stderr.decode()[-500:]
