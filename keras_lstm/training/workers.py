"""Fitting folds in short-lived worker processes, so memory stays flat over many fits.

TensorFlow 2.21 keeps about 20 MiB for every model fitted in a process (the traced training
functions stay registered; `keras.backend.clear_session()` and `gc.collect()` do not free
them: tensorflow#61791, keras#17458). A tuner fits hundreds of models in one process, so its
memory would grow without bound. With `training.fold_workers: always` (the default during
tuning), `cross_validate` hands its folds to a fresh Python process instead, at most
`FOLDS_PER_WORKER` folds each; the memory goes back to the system when the worker exits.

This module knows nothing of how a fold is fitted: the caller passes its fold runner (a
module-level function `runner(prepared, index, out_dir=..., verbose=...)` returning a dataclass)
and the result class, and the worker calls the runner it finds in its task.

The worker is started as `python -m keras_lstm.training.workers TASK_DIR`, never by forking
(a forked TensorFlow process can deadlock) nor by re-importing the caller's `__main__` (so a
script without an `if __name__ == "__main__":` guard still works). The task (the prepared data
and the fold numbers) is pickled by this process into a private temporary folder that only
the worker reads; the worker answers in JSON. Every fold is seeded as in-process fitting is,
so the results are the same, and a finished fold is recorded for resume either way.
"""

from __future__ import annotations

import json
import os
import pickle
import subprocess
import sys
import tempfile
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from keras_lstm import errors
from keras_lstm.errors import WorkerError
from keras_lstm.files import atomic_write_text
from keras_lstm.startup import choose_keras_backend, import_tensorflow_quietly

FOLDS_PER_WORKER = 5
TASK_FILE = "task.pickle"
RESULT_FILE = "result.json"


def fit_folds_in_workers(
    runner,
    result_type,
    prepared,
    indices,
    *,
    out_dir=None,
    verbose="auto",
    jobs: int = 1,
    weights=None,
) -> list:
    """Fit folds `indices` of `prepared` in fresh worker processes, `FOLDS_PER_WORKER` each,
    `jobs` of them at a time.

    Args:
        runner: the fold runner, a module-level function (the worker imports it by name)
            called as `runner(prepared, index, out_dir=out_dir, verbose=verbose)`.
        result_type: the dataclass `runner` returns, rebuilt here from the worker's JSON.
        prepared: the prepared data (pickled into the worker's private task folder).
        indices: the folds to fit.
        out_dir, verbose: passed to `runner`.
        jobs: worker processes running at once (one per core is the fastest on a CPU).
        weights: the relative cost of each fold (for example its training windows), so that
            parallel workers get about the same work: the costliest fold goes first, each to
            the worker with the least work so far. Default: all equal.

    Returns the `result_type` objects in the order of `indices`. An error a user can fix (a
    `KerasLSTMError` subclass) is raised again here with its class and message; anything
    else becomes a `WorkerError` (the worker prints the traceback on stderr). With parallel
    workers, every worker finishes before the first error is raised.

    Example:
        >>> fit_folds_in_workers(fit_fold, FoldResult, prepared, [0, 1, 2])  # doctest: +SKIP
    """
    indices = list(indices)
    groups = share_out(indices, weights, max(1, min(int(jobs), len(indices))))
    results: dict[int, object] = {}
    failures: dict[int, Exception] = {}

    def run_group(number, group):
        try:
            for start in range(0, len(group), FOLDS_PER_WORKER):
                chunk = group[start : start + FOLDS_PER_WORKER]
                answers = _run_worker(runner, result_type, prepared, chunk, out_dir, verbose)
                results.update(zip(chunk, answers, strict=True))
        except Exception as err:  # raised in the calling thread once every worker is done
            failures[number] = err

    if len(groups) == 1:
        run_group(0, groups[0])
    else:
        threads = [threading.Thread(target=run_group, args=item) for item in enumerate(groups)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    if failures:
        raise failures[min(failures)]
    return [results[index] for index in indices]


def share_out(indices, weights, jobs: int) -> list[list]:
    """`indices` split into `jobs` groups of about equal total weight, costliest first
    (longest-processing-time first); each group in its original order.

    Example:
        >>> share_out([0, 1, 2, 3, 4], [1, 2, 3, 4, 5], 2)
        [[0, 1, 4], [2, 3]]
    """
    weights = [1.0] * len(indices) if weights is None else [float(w) for w in weights]
    groups = [[] for _ in range(max(1, jobs))]
    load = [0.0] * len(groups)
    for position in sorted(range(len(indices)), key=lambda i: -weights[i]):
        lightest = load.index(min(load))
        groups[lightest].append(position)
        load[lightest] += weights[position]
    return [[indices[i] for i in sorted(group)] for group in groups if group]


def _worker_env() -> dict:
    env = dict(os.environ)
    # the worker imports keras_lstm from wherever this process did (a source tree included)
    paths = [p for p in sys.path if p and os.path.isdir(p)]
    env["PYTHONPATH"] = os.pathsep.join(paths)
    env.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    return env


def _threads() -> tuple[int, int]:
    """This process's TensorFlow (intra-op, inter-op) thread counts (0: TensorFlow's choice),
    so a worker of a one-thread tuning process uses one thread too."""
    tf = sys.modules.get("tensorflow")
    if tf is None:
        return (0, 0)
    threading_config = tf.config.threading
    return (
        threading_config.get_intra_op_parallelism_threads(),
        threading_config.get_inter_op_parallelism_threads(),
    )


def _set_threads(threads) -> None:
    if any(threads):
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads[0])
        tf.config.threading.set_inter_op_parallelism_threads(threads[1])


def _command(folder: str) -> list[str]:
    if not sys.executable:  # some embedded interpreters do not know their own program
        raise WorkerError(
            "cannot start a fold worker: this Python does not know its executable "
            "(sys.executable is empty). Set `training.fold_workers: never`."
        )
    return [sys.executable, "-m", "keras_lstm.training.workers", folder]


def _run_worker(runner, result_type, prepared, indices, out_dir, verbose) -> list:
    with tempfile.TemporaryDirectory(prefix="keras-lstm-worker-") as folder:
        task = {
            "runner": runner,  # pickled by reference: the worker imports it by its name
            "prepared": prepared,
            "indices": indices,
            "out_dir": None if out_dir is None else str(out_dir),
            "verbose": verbose,
            "parent": os.getpid(),
            "threads": _threads(),
        }
        with open(Path(folder, TASK_FILE), "wb") as handle:
            pickle.dump(task, handle, protocol=pickle.HIGHEST_PROTOCOL)
        code = _run_process(_command(folder))
        answer_path = Path(folder, RESULT_FILE)
        if not answer_path.is_file():
            raise WorkerError(
                f"the worker process fitting folds {indices} exited with code {code} before "
                "it finished (killed, or out of memory?). Finished folds are kept when the run "
                "has an output folder: run the same command again to resume, or set "
                "`training.fold_workers: never` to fit in this process."
            )
        answer = json.loads(answer_path.read_text())
    if "error" in answer:
        raise _error_from(answer["error"])
    return [result_type(**result) for result in answer["results"]]


_running: set[subprocess.Popen] = set()
_running_guard = threading.Lock()


def _run_process(command: list[str]) -> int:
    """Run a worker to its end; its exit code. Tracked so `stop_workers` can end it."""
    with _running_guard:
        process = subprocess.Popen(command, env=_worker_env())
        _running.add(process)
    try:
        return process.wait()
    except BaseException:  # an interrupt here: the worker must not outlive the fit
        process.kill()
        process.wait()
        raise
    finally:
        with _running_guard:
            _running.discard(process)


def stop_workers() -> int:
    """Terminate every fold worker this process is running (on SIGTERM, before it exits): each
    leaves its last checkpoint, written atomically, for the resumed run. Returns how many."""
    with _running_guard:
        running = list(_running)
    for process in running:
        if process.poll() is None:
            process.terminate()
    return len(running)


def _error_from(error: dict) -> Exception:
    """The exception to raise here for a worker's `{"type", "message"}` answer."""
    cls = getattr(errors, error["type"], None)
    if isinstance(cls, type) and issubclass(cls, errors.KerasLSTMError):
        return cls(error["message"])
    return WorkerError(f"a worker process failed: {error['type']}: {error['message']}")


def _watch_parent(parent: int) -> bool:
    """Exit when the process that started this worker is gone (killed with -9, say).

    Returns False at once if it is gone already."""
    if os.getppid() != parent:
        return False

    def watch():
        while True:
            if os.getppid() != parent:
                os._exit(3)
            time.sleep(1.0)

    threading.Thread(target=watch, daemon=True, name="keras-lstm-parent-watch").start()
    return True


def main(argv=None) -> int:
    """Entry point of a worker process: `python -m keras_lstm.training.workers TASK_DIR`."""
    folder = Path((argv or sys.argv[1:])[0])
    # start-up notices of TensorFlow's C++ runtime, once per worker, unless asked for; a
    # worker on another backend (KERAS_BACKEND, set by the parent) does not import TensorFlow
    quiet = os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0") >= "2"
    if quiet and choose_keras_backend() == "tensorflow":
        import_tensorflow_quietly()
    task_path = folder / TASK_FILE
    with open(task_path, "rb") as handle:
        task = pickle.load(handle)  # written a moment ago by our parent, in a private folder
    task_path.unlink()  # the data does not outlive the worker, even if the parent was killed
    if not _watch_parent(task["parent"]):
        return 3
    _set_threads(task.get("threads", (0, 0)))
    try:
        runner = task["runner"]
        results = [
            asdict(
                runner(task["prepared"], index, out_dir=task["out_dir"], verbose=task["verbose"])
            )
            for index in task["indices"]
        ]
        answer = {"results": results}
        code = 0
    except Exception as err:  # reported to the parent, which raises it again
        if not isinstance(err, errors.KerasLSTMError):
            traceback.print_exc()
        answer = {"error": {"type": type(err).__name__, "message": str(err)}}
        code = 2 if isinstance(err, errors.KerasLSTMError) else 1
    atomic_write_text(folder / RESULT_FILE, json.dumps(answer))
    return code


if __name__ == "__main__":
    sys.exit(main())
