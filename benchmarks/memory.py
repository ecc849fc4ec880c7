"""Peak memory over many consecutive folds in one process (the tuner's and a long CV's case).

Runs `cross_validate` repeatedly on a small series (5 folds each) and records the resident set
size after each call, once with `training.fold_workers: never` (every fold fitted in this
process) and once with `always` (folds fitted in short-lived worker processes). Each mode runs
in its own fresh process, one after the other in one invocation, and the two are printed side
by side. With workers the figure is this process's RSS plus the largest worker's peak RSS
(`RUSAGE_CHILDREN`): the most the two use together, since one worker runs at a time. The goal
is that memory after 50 folds stays within 10% of its value after the first 5.

Run from the repository root:  python benchmarks/memory.py [--folds 50]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def children_peak_mib() -> float:
    return resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024


def measure(folds: int, mode: str) -> dict:
    """Run `cross_validate` until `folds` folds are done; memory after every call."""
    import numpy as np
    import pandas as pd

    from keras_lstm.config import load_config
    from keras_lstm.training import cross_validate, prepare

    rng = np.random.default_rng(0)
    t = np.arange(1200)
    frame = pd.DataFrame(
        {"y": np.sin(t / 8) + 0.1 * rng.standard_normal(1200), "x": rng.random(1200)}
    )
    config = load_config(
        {
            "seed": 0,
            "data": {"targets": ["y"], "lookback": 24},
            "model": {"units": [32, 16]},
            "training": {"epochs": 2, "cv_splits": 5, "batch_size": 64, "fold_workers": mode},
        }
    )
    prepared = prepare(config, frame)
    done, rows, started = 0, [], time.perf_counter()
    while done < folds:
        done += len(cross_validate(config, verbose=0, prepared=prepared).folds)
        # RUSAGE_CHILDREN also counts any short-lived child a library forks (its peak is
        # this process's size at the fork), so it is only added where workers run
        own = rss_mib()
        workers = children_peak_mib() if mode == "always" else 0.0
        rows.append({"folds": done, "own": own, "workers": workers, "total": own + workers})
        print(
            f"[{mode}] after {done:3d} folds: this process {own:6.0f} MiB, "
            f"largest worker {workers:6.0f} MiB",
            file=sys.stderr,
            flush=True,
        )
    return {"rows": rows, "seconds": time.perf_counter() - started}


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=50)
    parser.add_argument("--mode", choices=("never", "always"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.mode:  # one mode, in a fresh process started below
        print(json.dumps(measure(args.folds, args.mode)))
        return
    results = {}
    for mode in ("never", "always"):
        command = [sys.executable, __file__, "--folds", str(args.folds), "--mode", mode]
        out = subprocess.run(command, check=True, stdout=subprocess.PIPE, text=True).stdout
        results[mode] = json.loads(out.strip().splitlines()[-1])
    steps = [row["folds"] for row in results["never"]["rows"]]
    print("\n| after folds | " + " | ".join(str(s) for s in steps) + " |")
    print("| --- |" + " ---: |" * len(steps))
    for mode, label in (("never", "in-process MiB"), ("always", "with workers MiB")):
        cells = " | ".join(f"{row['total']:.0f}" for row in results[mode]["rows"])
        print(f"| {label} | {cells} |")
    print()
    for mode in ("never", "always"):
        rows = results[mode]["rows"]
        first, last = rows[0], rows[-1]
        per_fold = (last["total"] - first["total"]) / max(1, last["folds"] - first["folds"])
        ratio = last["total"] / first["total"]
        print(
            f"fold_workers={mode}: {first['total']:.0f} MiB after {first['folds']} folds, "
            f"{last['total']:.0f} MiB after {last['folds']} ({ratio:.2f}x; "
            f"goal <= 1.10x), {per_fold:+.1f} MiB per fold; "
            f"this process {first['own']:.0f} -> {last['own']:.0f} MiB; "
            f"{results[mode]['seconds']:.0f} s"
        )


if __name__ == "__main__":
    main()
