"""Tuning benchmark: trials per hour and memory over many trials.

A random search over `model.units`, `data.lookback` and `training.learning_rate` on the Seattle
weather data shipped with the package (forecast tomorrow's `temp_max`), 3 walk-forward folds,
a few epochs per fold. Measures:

- `single`: trials per hour of one process (one TensorFlow thread), and its resident memory
  (RSS, from /proc) after trial 1 and after the last trial, with the peak (VmHWM), beside the
  largest fold worker's peak RSS (`RUSAGE_CHILDREN`; trials fit in worker processes by
  default, `training.fold_workers: auto`); `--fold-workers never` fits in the process itself;
- `distributed`: trials per hour of a chief with two workers on this machine (one thread each),
  all started by this script as `keras-lstm tune --chief/--worker` processes.

Run (`--mode` is single, distributed or both):
    .venv/bin/python benchmarks/tuning.py [--trials 20] [--epochs 3] [--mode both]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
ROOT = Path(__file__).resolve().parents[1]

DATA = ROOT / "keras_lstm" / "datasets" / "seattle_weather.csv"


def bench_config(trials: int, epochs: int, fold_workers: str = "auto") -> dict:
    return {
        "seed": 7,
        "data": {
            "path": str(DATA),
            "time_column": "date",
            "features": ["temp_max", "temp_min", "precipitation", "wind"],
            "targets": ["temp_max"],
            "lookback": 14,
        },
        "model": {"units": [16], "dropout": 0.0},
        "training": {
            "epochs": epochs,
            "cv_splits": 3,
            "batch_size": 64,
            "fold_workers": fold_workers,
        },
        "tuning": {
            "algorithm": "random",
            "max_trials": trials,
            "refit": False,
            "search_space": {
                "model.units": [[8], [16], [32], [16, 8]],
                "data.lookback": [7, 14, 21],
                "training.learning_rate": {"min": 1e-3, "max": 1e-2, "sampling": "log"},
            },
        },
    }


def _memory_kib() -> dict:
    fields = {}
    for line in Path("/proc/self/status").read_text().splitlines():
        name, _, value = line.partition(":")
        if name in ("VmRSS", "VmHWM"):
            fields[name] = int(value.split()[0])
    return fields


def _workers_peak_mib() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def _import_tuning_package() -> None:
    """Import the repository's `tuning` package by its path. Run as a script, this file's folder
    leads the import path, so `import tuning` would find this file (`tuning.py`) instead."""
    import importlib.util

    if hasattr(sys.modules.get("tuning"), "__path__"):
        return
    init = ROOT / "tuning" / "__init__.py"
    spec = importlib.util.spec_from_file_location(
        "tuning", init, submodule_search_locations=[str(init.parent)]
    )
    module = importlib.util.module_from_spec(spec)
    sys.modules["tuning"] = module
    spec.loader.exec_module(module)


def single(trials: int, epochs: int, out: Path, fold_workers: str = "auto") -> dict:
    """One process, one thread: trials per hour and RSS after each trial."""
    _import_tuning_package()
    from tuning.cli import one_thread

    one_thread()
    import keras_lstm.training
    from tuning import tune

    real = keras_lstm.training.cross_validate
    memory = []

    def measured(*args, **kwargs):
        result = real(*args, **kwargs)
        memory.append({**_memory_kib(), "workers_mib": _workers_peak_mib()})
        return result

    import tuning.tuner

    # the tuner calls the name it imported; patch both, so the hook sees every trial
    keras_lstm.training.cross_validate = measured
    tuning.tuner.cross_validate = measured
    started = time.perf_counter()
    config = bench_config(trials, epochs, fold_workers)
    result = tune(config, out_dir=out, overwrite=True, verbose=0)
    seconds = time.perf_counter() - started
    keras_lstm.training.cross_validate = real
    tuning.tuner.cross_validate = real
    completed = int((result.trials["status"] == "COMPLETED").sum())
    return {
        "trials": completed,
        "seconds": round(seconds, 1),
        "trials_per_hour": round(completed / seconds * 3600, 1),
        "rss_mib_after_trial_1": round(memory[0]["VmRSS"] / 1024, 1),
        "rss_mib_after_last_trial": round(memory[-1]["VmRSS"] / 1024, 1),
        "peak_rss_mib_after_trial_1": round(memory[0]["VmHWM"] / 1024, 1),
        "peak_rss_mib_after_last_trial": round(memory[-1]["VmHWM"] / 1024, 1),
        "largest_worker_peak_mib_after_trial_1": round(memory[0]["workers_mib"], 1),
        "largest_worker_peak_mib_after_last_trial": round(memory[-1]["workers_mib"], 1),
        "rss_growth_percent": round(
            100 * (memory[-1]["VmRSS"] - memory[0]["VmRSS"]) / memory[0]["VmRSS"], 1
        ),
    }


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def distributed(trials: int, epochs: int, out: Path, workers: int = 2) -> dict:
    """A chief and `workers` workers on 127.0.0.1, one thread each."""
    import pandas as pd
    import yaml

    shutil.rmtree(out, ignore_errors=True)  # only the launcher cleans the folder
    out.mkdir(parents=True)
    config = out.parent / f"{out.name}-config.yaml"
    config.write_text(yaml.safe_dump(bench_config(trials, epochs)))
    address = f"127.0.0.1:{_free_port()}"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "keras_lstm.cli", "tune", str(config), "--out", str(out)]
    logs = [open(out.parent / f"{out.name}-{i}.log", "w") for i in range(workers + 1)]  # noqa: SIM115
    started = time.perf_counter()
    chief = subprocess.Popen(
        [*command, "--chief", address], env=env, stdout=logs[0], stderr=logs[0]
    )
    time.sleep(3)
    processes = [
        subprocess.Popen(
            [*command, "--chief", address, "--worker", str(i)],
            env=env,
            stdout=logs[i + 1],
            stderr=logs[i + 1],
        )
        for i in range(workers)
    ]
    codes = [p.wait() for p in processes]
    workers_done = time.perf_counter() - started
    codes.append(chief.wait())
    for log in logs:
        log.close()
    table = pd.read_csv(out / "trials.csv")
    completed = int((table["status"] == "COMPLETED").sum())
    return {
        "exit_codes": codes,
        "trials": completed,
        "seconds_until_workers_done": round(workers_done, 1),
        "trials_per_hour": round(completed / workers_done * 3600, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=20)
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--mode", choices=["single", "distributed", "both"], default="both")
    parser.add_argument("--out", default=None, help="work folder (default: a temporary one)")
    parser.add_argument("--fold-workers", choices=["auto", "never"], default="auto")
    args = parser.parse_args()
    root = Path(args.out or tempfile.mkdtemp(prefix="tuning-bench-"))
    report = {"trials": args.trials, "epochs": args.epochs, "cpus": os.cpu_count()}
    if args.mode in ("distributed", "both"):
        report["distributed"] = distributed(args.trials, args.epochs, root / "distributed")
        print(json.dumps(report["distributed"]), flush=True)
    if args.mode in ("single", "both"):
        report["single"] = single(args.trials, args.epochs, root / "single", args.fold_workers)
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
