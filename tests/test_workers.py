"""Folds fitted in worker processes (`training.fold_workers`): same results, nothing kept here."""

import json
import subprocess
import sys
import tempfile

import numpy as np
import pandas as pd
import pytest
from tensorflow.python.eager import context

from keras_lstm.config import load_config
from keras_lstm.errors import ConfigError, DataError, WorkerError
from keras_lstm.training import cross_validate, prepare, workers
from keras_lstm.training.loop import FoldResult, fit_fold

TINY = {
    "seed": 5,
    "data": {"targets": ["y"], "lookback": 8, "test_size": 0.2},
    "model": {"units": [4], "dropout": 0.0},
    "training": {"epochs": 1, "cv_splits": 3, "batch_size": 32},
}


def _frame(n=300):
    rng = np.random.default_rng(1)
    t = np.arange(n)
    return pd.DataFrame(
        {"y": np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n), "x": rng.random(n)}
    )


def _functions() -> set:
    """Traced functions TensorFlow holds in this process (what grows with every fitted model)."""
    return set(context.context().list_function_names())


@pytest.fixture
def private_tmp(tmp_path, monkeypatch):
    """Worker task folders go under tmp_path, so a test can check nothing is left behind."""
    folder = tmp_path / "tmp"
    folder.mkdir()
    monkeypatch.setattr(tempfile, "tempdir", str(folder))
    return folder


def test_workers_give_the_in_process_results_and_keep_nothing_here(
    private_tmp, tmp_path, monkeypatch
):
    frame = _frame()
    here = load_config(TINY)
    away = here.replace(**{"training.fold_workers": "always"})
    expected = cross_validate(here, frame, verbose=0)
    monkeypatch.setattr(workers, "FOLDS_PER_WORKER", 2)
    started = []
    real_run = workers._run_process

    def counting_run(command):
        started.append(command)
        return real_run(command)

    monkeypatch.setattr(workers, "_run_process", counting_run)
    before = _functions()
    got = cross_validate(away, frame, verbose=0, out_dir=tmp_path / "run")
    assert _functions() - before == set()  # no model was traced in this process
    assert len(started) == 2  # folds [0, 1], then [2]: at most FOLDS_PER_WORKER each
    assert [f.index for f in got.folds] == [0, 1, 2]
    assert [f.val_loss for f in got.folds] == [f.val_loss for f in expected.folds]
    assert [f.metrics for f in got.folds] == [f.metrics for f in expected.folds]
    assert [f.history for f in got.folds] == [f.history for f in expected.folds]
    # finished folds are recorded for resume, by the worker, and nothing is left in tmp
    assert sorted(p.name for p in (tmp_path / "run" / "backup").glob("fold-*.json")) == [
        "fold-0.json",
        "fold-1.json",
        "fold-2.json",
    ]
    assert list(private_tmp.iterdir()) == []
    # a second run resumes from the records: no worker is started at all
    started.clear()
    again = cross_validate(away, frame, verbose=0, out_dir=tmp_path / "run")
    assert started == []
    assert [f.val_loss for f in again.folds] == [f.val_loss for f in got.folds]


def test_a_killed_worker_is_a_clear_error(monkeypatch, private_tmp):
    prepared = prepare(load_config(TINY), _frame())
    monkeypatch.setattr(
        workers, "_command", lambda folder: [sys.executable, "-c", "import sys; sys.exit(9)"]
    )
    with pytest.raises(WorkerError, match=r"folds \[0, 1\] exited with code 9.*fold_workers"):
        workers.fit_folds_in_workers(fit_fold, FoldResult, prepared, [0, 1], verbose=0)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize(
    "error, expected",
    [
        ({"type": "DataError", "message": "column 'y' is constant"}, DataError),
        ({"type": "ConfigError", "message": "training.epochs"}, ConfigError),
        ({"type": "ResourceExhaustedError", "message": "OOM"}, WorkerError),
        ({"type": "Exception", "message": "odd"}, WorkerError),  # not ours: never re-raised as is
    ],
)
def test_worker_errors_come_back_as_the_projects_own(error, expected):
    raised = workers._error_from(error)
    assert type(raised) is expected
    assert error["message"] in str(raised)


def test_an_error_in_a_worker_reaches_the_caller(private_tmp):
    # an unexpected error inside the worker comes back as a WorkerError that names it
    prepared = prepare(load_config(TINY), _frame())
    with pytest.raises(WorkerError, match="IndexError"):
        workers.fit_folds_in_workers(
            fit_fold, FoldResult, prepared, [7], verbose=0
        )  # there is no fold 7


def test_a_worker_whose_parent_is_gone_exits(tmp_path):
    folder = tmp_path / "task"
    folder.mkdir()
    with open(folder / workers.TASK_FILE, "wb") as handle:
        import pickle

        pickle.dump({"parent": -1, "prepared": None, "indices": [], "out_dir": None}, handle)
    env = workers._worker_env()
    done = subprocess.run(workers._command(str(folder)), env=env, timeout=120, check=False)
    assert done.returncode == 3
    assert not (folder / workers.TASK_FILE).exists()  # the pickled data is removed at once
    assert not (folder / workers.RESULT_FILE).exists()


def test_fold_workers_is_validated():
    with pytest.raises(ConfigError, match="training.fold_workers.*'always'"):
        load_config({**TINY, "training": {**TINY["training"], "fold_workers": "alway"}})
    assert load_config(TINY).training.fold_workers == "auto"
    assert json.loads(json.dumps(load_config(TINY).to_dict()))["training"]["fold_workers"] == "auto"


def _recordings(n=24):
    rng = np.random.default_rng(0)
    rows = []
    for i in range(n):
        cls = i % 2
        x = np.sin(np.arange(int(rng.integers(5, 10))) * (cls + 1) / 2)
        rows += [{"rec": f"r{i}", "x": v, "g": "ab"[cls]} for v in x]
    return pd.DataFrame(rows)


TASKS = {
    "sequences": (
        {
            "task": "classification",
            "data": {"series_id": "rec", "label": "g"},
            # no convolutional front: the worker path, not the classifier defaults, is tested
            "model": {"units": [4], "bidirectional": True, "conv_filters": []},
        },
        _recordings,
    ),
    "text": (
        {
            "task": "classification",
            "data": {"features": ["text"], "targets": ["label"], "lookback": 4},
            "model": {"units": [4], "embedding": {"vocab_size": 20, "dim": 4}},
        },
        lambda: pd.DataFrame({"text": ["good fine", "bad poor"] * 16, "label": ["p", "n"] * 16}),
    ),
}


@pytest.mark.parametrize(
    "kind",
    # text prepares like sequences (one sample per row) and takes 20 s more: slow-marked
    ["sequences", pytest.param("text", marks=pytest.mark.slow)],
)
def test_every_kind_of_task_fits_the_same_in_a_worker(kind, private_tmp):
    raw, make = TASKS[kind]
    frame = make()
    config = load_config({"seed": 2, **raw, "training": {"epochs": 1, "cv_splits": 2}})
    prepared = prepare(config, frame)
    here = cross_validate(config, verbose=0, prepared=prepared)
    away = cross_validate(
        config.replace(**{"training.fold_workers": "always"}), verbose=0, prepared=prepared
    )
    assert [f.val_loss for f in away.folds] == [f.val_loss for f in here.folds]
    assert [f.metrics for f in away.folds] == [f.metrics for f in here.folds]


def test_no_python_executable_is_a_clear_error(monkeypatch, private_tmp):
    prepared = prepare(load_config(TINY), _frame())
    monkeypatch.setattr(workers.sys, "executable", "")
    with pytest.raises(WorkerError, match="sys.executable.*fold_workers: never"):
        workers.fit_folds_in_workers(fit_fold, FoldResult, prepared, [0], verbose=0)
    assert list(private_tmp.iterdir()) == []


@pytest.mark.parametrize("backend", ["jax", "tensorflow"])
def test_a_worker_imports_tensorflow_only_on_the_tensorflow_backend(backend, monkeypatch):
    # a worker's start-up is paid per trial in a search: TensorFlow's import is seconds of it
    pytest.importorskip(backend)
    from _worker_probe import Imported, report_imports

    monkeypatch.setenv("KERAS_BACKEND", backend)
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    [got] = workers.fit_folds_in_workers(report_imports, Imported, None, [0])
    assert got.keras_backend == backend
    assert got.tensorflow is (backend == "tensorflow")


@pytest.mark.slow  # 30 s; workers' equality with in-process fits is tested above on every run
def test_parallel_fold_jobs_run_at_once_and_give_the_same_results(private_tmp, monkeypatch):
    import time

    frame = _frame()
    here = load_config(TINY)
    expected = cross_validate(here, frame, verbose=0)
    spans = []
    real_run = workers._run_process

    def timed_run(command):
        start = time.monotonic()
        answer = real_run(command)
        spans.append((start, time.monotonic()))
        return answer

    monkeypatch.setattr(workers, "_run_process", timed_run)
    got = cross_validate(here.replace(**{"training.fold_jobs": 2}), frame, verbose=0)
    assert len(spans) == 2
    (a_start, a_end), (b_start, b_end) = spans
    assert max(a_start, b_start) < min(a_end, b_end)  # the two workers overlapped
    assert [f.index for f in got.folds] == [0, 1, 2]
    assert [f.metrics for f in got.folds] == [f.metrics for f in expected.folds]
    assert [f.history for f in got.folds] == [f.history for f in expected.folds]
    assert list(private_tmp.iterdir()) == []


def test_auto_fold_jobs_follow_cores_work_and_devices(monkeypatch):
    from keras_lstm.training import runtime

    monkeypatch.setattr(runtime, "has_accelerator", lambda: False)
    monkeypatch.setattr(runtime, "available_cores", lambda: 2)
    auto = load_config(TINY)
    big = runtime.PARALLEL_MIN_STEP_PASSES
    assert runtime.fold_jobs(auto, big, 5) == 2
    assert runtime.fold_jobs(auto, big - 1, 5) == 1  # too little work to repay a worker
    assert runtime.fold_jobs(auto, big, 1) == 1
    monkeypatch.setattr(runtime, "available_cores", lambda: 16)
    assert runtime.fold_jobs(auto, big, 5) == 5  # at most one per fold
    never = auto.replace(**{"training.fold_workers": "never", "training.fold_jobs": 4})
    assert runtime.fold_jobs(never, big, 5) == 1
    assert runtime.fold_jobs(auto.replace(**{"training.fold_jobs": 3}), 0, 5) == 3
    monkeypatch.setattr(runtime, "has_accelerator", lambda: True)
    assert runtime.fold_jobs(auto, big, 5) == 1  # folds would share the GPU's memory


def test_share_out_balances_the_folds_and_keeps_each_once():
    rng = np.random.default_rng(0)
    for _ in range(50):
        weights = rng.integers(1, 100, size=int(rng.integers(1, 9))).tolist()
        indices = list(range(10, 10 + len(weights)))
        groups = workers.share_out(indices, weights, 2)
        assert sorted(i for g in groups for i in g) == indices
        loads = [sum(weights[i - 10] for i in g) for g in groups]
        # longest-processing-time first: the heavier worker carries at most the lighter
        # one's work plus one fold
        assert max(loads) - min(loads) <= max(weights) or len(groups) == 1


def test_stop_workers_ends_running_workers_at_once(monkeypatch, private_tmp):
    # what the CLI does on SIGTERM: no worker fits on after its parent stops
    import threading
    import time

    prepared = prepare(load_config(TINY), _frame())
    sleeper = [sys.executable, "-c", "import time; time.sleep(120)"]
    monkeypatch.setattr(workers, "_command", lambda folder: sleeper)
    raised = []

    def fit():
        try:
            workers.fit_folds_in_workers(fit_fold, FoldResult, prepared, [0, 1], verbose=0)
        except WorkerError as err:
            raised.append(err)

    thread = threading.Thread(target=fit)
    thread.start()
    deadline = time.monotonic() + 60
    while not workers._running and time.monotonic() < deadline:
        time.sleep(0.05)
    started = time.monotonic()
    assert workers.stop_workers() == 1
    thread.join(timeout=30)
    assert not thread.is_alive() and time.monotonic() - started < 30
    assert raised and "exited with code -15" in str(raised[0])
    assert workers._running == set()
