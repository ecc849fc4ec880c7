"""Peak memory over many consecutive folds in one process (the tuner's and a long CV's case).

Runs `cross_validate` repeatedly on a small series (5 folds each) and prints the resident set
size after each fold; the goal is that RSS after 50 folds stays within 10% of its value after
the first few.

Run from the repository root:  python benchmarks/memory.py [--folds 50]
"""

from __future__ import annotations

import argparse
import os
import resource

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from keras_lstm.config import load_config  # noqa: E402
from keras_lstm.training import cross_validate, prepare  # noqa: E402


def rss_mib() -> float:
    with open("/proc/self/statm") as handle:
        pages = int(handle.read().split()[1])
    return pages * os.sysconf("SC_PAGE_SIZE") / 2**20


def main(argv=None):
    parser = argparse.ArgumentParser()
    parser.add_argument("--folds", type=int, default=50)
    args = parser.parse_args(argv)
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
            "training": {"epochs": 2, "cv_splits": 5, "batch_size": 64},
        }
    )
    prepared = prepare(config, frame)
    folds, sizes = 0, []
    while folds < args.folds:  # RSS after every cross_validate of 5 folds
        folds += len(cross_validate(config, verbose=0, prepared=prepared).folds)
        sizes.append((folds, rss_mib()))
        print(f"after {folds:3d} folds: RSS {sizes[-1][1]:7.1f} MiB", flush=True)
    early, last = sizes[0][1], sizes[-1][1]
    per_fold = (last - early) / max(1, sizes[-1][0] - sizes[0][0])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"\nRSS after {sizes[0][0]} folds {early:.0f} MiB, after {folds} folds {last:.0f} MiB "
        f"({last / early:.2f}x; goal <= 1.10x); {per_fold:.1f} MiB per fold; "
        f"peak RSS {peak:.0f} MiB"
    )


if __name__ == "__main__":
    main()
