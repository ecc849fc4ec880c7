"""kill -9 in the middle of a run, start it again: nothing finished is lost, nothing half-written
is left. Subprocesses, as a user's killed job would be."""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml


def _start(args, cwd):
    return subprocess.Popen(
        [sys.executable, "-m", "keras_lstm.cli", *args],
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _wait_for(condition, process, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        if process.poll() is not None:
            return False
        time.sleep(0.02)
    return False


def _fold_workers(cwd: Path) -> list[str]:
    """Process ids of fold workers (`python -m keras_lstm.training.workers`) running in `cwd`."""
    found = []
    for pid in os.listdir("/proc"):
        try:
            command = Path("/proc", pid, "cmdline").read_bytes()
            where = Path(os.readlink(f"/proc/{pid}/cwd"))
        except OSError:  # not a process, gone, or not ours
            continue
        if b"keras_lstm.training.workers" in command and where == cwd:
            found.append(pid)
    return found


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A data file and config shared by the module's tests; each test trains into its own
    `--out` folder, and the uninterrupted run they compare with is trained once."""
    tmp_path = tmp_path_factory.mktemp("project")
    rng = np.random.default_rng(0)
    t = np.arange(400)
    pd.DataFrame({"y": np.sin(t / 4) + 0.1 * rng.standard_normal(400)}).to_csv(
        tmp_path / "data.csv", index=False
    )
    config = {
        "seed": 1,
        "data": {"path": "data.csv", "targets": ["y"], "lookback": 8},
        "model": {"units": [8]},
        "training": {
            "epochs": 40,
            "cv_splits": 2,
            "batch_size": 16,
            "early_stopping_patience": 100,
            "backup_seconds": 0,  # a checkpoint every epoch, so the kill finds one mid-fold
        },
        "tuning": {
            "algorithm": "random",
            "max_trials": 3,
            "refit": False,
            "search_space": {"model.units": [[4], [6], [8]]},
        },
    }
    (tmp_path / "config.yaml").write_text(yaml.safe_dump(config))
    return tmp_path


def _metrics(folder: Path) -> dict:
    return json.loads((folder / "metrics.json").read_text())


@pytest.fixture(scope="module")
def uninterrupted(project) -> dict:
    """`metrics.json` of one `train` of the project's config that nothing interrupted."""
    whole = _start(["train", "config.yaml", "--out", "whole"], project)
    _, err = whole.communicate(timeout=600)
    assert whole.returncode == 0, err[-2000:]
    return _metrics(project / "whole")


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGTERM], ids=["kill-9", "sigterm"])
def test_killed_training_resumes_to_the_uninterrupted_result(project, uninterrupted, sig):
    out_dir = f"run-{sig.name.lower()}"
    run = project / out_dir
    backup = run / "backup" / "fold-0"
    first = _start(["train", "config.yaml", "--out", out_dir], project)

    # stop it once fold 0 has checkpointed at least two epochs
    def two_epochs_saved():
        try:
            meta = json.loads((backup / "state.json").read_text())
        except (OSError, ValueError):  # not there yet, or being written
            return False
        return meta.get("epoch", 0) >= 2

    assert _wait_for(two_epochs_saved, first), first.communicate()[1][-2000:]
    first.send_signal(sig)
    _, err = first.communicate(timeout=120)
    if sig == signal.SIGTERM:  # cleaned up, said so, and exits as a shell expects
        assert first.returncode == 143, err[-2000:]
        assert "terminated (SIGTERM)" in err and "run the same command to resume" in err
        assert "Traceback" not in err
    assert not (run / "bundle").exists()  # nothing half-written
    assert not (run / "metrics.json").exists()
    second = _start(["train", "config.yaml", "--out", out_dir], project)
    out, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-2000:]
    epochs = [line for line in out.splitlines() if line.startswith("Epoch ")]
    assert not epochs[0].startswith("Epoch 1/")  # fold 0 went on from its saved epoch
    leftovers = [p.name for p in run.iterdir() if p.name.startswith(".")]
    assert leftovers == []
    resumed = _metrics(run)
    for key in ("cv", "test", "refit_epochs", "training"):
        assert resumed[key] == uninterrupted[key], key


def test_a_second_train_into_a_running_folder_is_refused_not_interleaved(project, uninterrupted):
    first = _start(["train", "config.yaml", "--out", "run-locked"], project)
    lock = project / "run-locked" / ".lock"
    assert _wait_for(lambda: (project / "run-locked" / "backup" / "fold-0").exists(), first)
    first.send_signal(signal.SIGSTOP)  # paused mid-fit, holding the folder
    try:
        assert lock.exists()
        second = _start(["train", "config.yaml", "--out", "run-locked"], project)
        _, err = second.communicate(timeout=120)
    finally:
        first.send_signal(signal.SIGCONT)
    assert second.returncode == 2, err[-2000:]
    assert re.search(
        rf"Another keras-lstm run \(process {first.pid}\) is writing to 'run-locked'", err
    )
    assert len(err.strip().splitlines()) == 1, err
    out, err = first.communicate(timeout=600)
    assert first.returncode == 0, err[-2000:]
    assert "fold 1/2: done earlier" not in out  # nobody else finished its folds
    assert not lock.exists()
    assert _metrics(project / "run-locked")["test"] == uninterrupted["test"]


@pytest.mark.slow  # about 100 s; tests/test_tuning.py resumes an interrupted search in-process
def test_killed_search_keeps_every_finished_trial(project):
    search = project / "tune"
    first = _start(["tune", "config.yaml", "--out", "tune"], project)

    def finished_trials():
        names = []
        for path in search.rglob("trial.json"):
            try:
                if json.loads(path.read_text()).get("status") == "COMPLETED":
                    names.append(path.parent.name)
            except (OSError, ValueError):
                pass
        return names

    assert _wait_for(lambda: len(finished_trials()) >= 1, first), first.communicate()[1][-2000:]
    first.send_signal(signal.SIGKILL)
    first.wait()
    if os.path.isdir("/proc"):  # the trial's fold worker, orphaned, stops too
        deadline = time.monotonic() + 30
        while _fold_workers(project.resolve()) and time.monotonic() < deadline:
            time.sleep(0.5)
        assert _fold_workers(project.resolve()) == []
    done = {}
    for path in search.rglob("trial.json"):
        state = json.loads(path.read_text())
        if state.get("status") == "COMPLETED":
            done[path.parent.name] = state["score"]
    assert done
    second = _start(["tune", "config.yaml", "--out", "tune"], project)
    _, err = second.communicate(timeout=600)
    assert second.returncode == 0, err[-2000:]
    trials = pd.read_csv(search / "trials.csv")
    assert len(trials) == 3 and set(trials["status"]) == {"COMPLETED"}
    for path in search.rglob("trial.json"):
        state = json.loads(path.read_text())
        if path.parent.name in done:  # finished before the kill: kept, not run again
            assert state["score"] == done[path.parent.name]
    assert not any(Path(p).name.endswith(".tmp") for p in os.listdir(search))
