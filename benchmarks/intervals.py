"""Prediction-interval coverage of keras-lstm's defaults on the development suite.

For each forecasting series of `benchmarks/accuracy.py` (`../shared/data/` and the shipped
Seattle weather) the defaults are fitted with `training.interval: [0.8, 0.9]`; the intervals are
calibrated on the walk-forward CV residuals (split conformal) and scored once on the held-out
test part: the empirical coverage (share of test targets inside the interval) beside the
nominal level, and the mean width in the target's units beside the test RMSE.

The same run also scores two alternatives from the same residuals, with no extra fit:
- `absolute`: offsets not scaled by each window's spread (plain split conformal);
- `last folds`: only the later half of the folds calibrate (models closer to the refit's size).

Run from the repository root:
    python benchmarks/intervals.py                       # every series, 1 seed
    python benchmarks/intervals.py --series nile wineind --jsonl intervals.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import (
    SERIES,
    add_run_arguments,
    collect,
    read_jsonl,
    series_config,
    set_threads,
)  # noqa: E402

from keras_lstm.data import intervals  # noqa: E402
from keras_lstm.training import fit  # noqa: E402

LEVELS = (0.8, 0.9)


def _scored(true, pred, spreads, folds, scaled: bool) -> dict:
    """Coverage and mean width per level of offsets calibrated on `folds`' residuals."""
    residuals = np.concatenate([np.asarray(f.calibration["residuals"]) for f in folds])
    fold_spreads = np.concatenate([np.asarray(f.calibration["spreads"]) for f in folds])
    if not scaled:
        fold_spreads, spreads = np.ones_like(fold_spreads), np.ones_like(spreads)
    record = intervals.calibrate(residuals / fold_spreads[:, None, :], LEVELS, None)
    out = {}
    for level in LEVELS:
        lower, upper = intervals.bounds(pred, spreads, record, level)
        out[intervals.level_key(level)] = {
            "coverage": float(intervals.coverage(true, lower, upper).mean()),
            "width": float((upper - lower).mean()),
        }
    return out


def run_one(name: str, seed: int, data_dir: Path, overrides: dict) -> dict:
    """Fit one series with intervals on; its figures as a dict."""
    raw = series_config(name, seed, data_dir, overrides)
    raw.setdefault("training", {})["interval"] = list(LEVELS)
    start = time.perf_counter()
    bundle = fit(raw, verbose=0)
    seconds = time.perf_counter() - start
    report, folds = bundle.report, bundle.report["cv"].folds
    true, pred, spreads = report["test_true"], report["test_pred"], report["test_spreads"]
    scaled = bundle.preprocessing["intervals"]["spread_channels"] is not None
    target = bundle.preprocessing["target_names"][0]
    metrics = bundle.metrics["test"]
    row = {
        "series": name,
        "seed": seed,
        "rmse": metrics["rmse"],
        "test_windows": int(len(true)),
        "calibration_windows": bundle.preprocessing["intervals"]["calibration_windows"],
        "scaled": scaled,
        "default": {
            intervals.level_key(level): {
                "coverage": metrics["interval_coverage"][intervals.level_key(level)][target],
                "width": metrics["interval_width"][intervals.level_key(level)][target],
            }
            for level in LEVELS
        },
        "absolute": _scored(true, pred, spreads, folds, scaled=False),
        "last_folds": _scored(true, pred, spreads, folds[len(folds) // 2 :], scaled=scaled),
        "seconds": round(seconds, 1),
    }
    return row


def table(rows: list[dict]) -> str:
    """A Markdown table: per series, coverage and width at each level, for each variant."""
    head = ["series", "RMSE", "test windows", "s.e. at 0.8 / 0.9"]
    for variant in ("default", "absolute", "last_folds"):
        for level in LEVELS:
            head.append(f"{variant} {level:g}: coverage / width")
    lines = ["| " + " | ".join(head) + " |", "| --- " + "| ---: " * (len(head) - 1) + "|"]
    gaps = {v: {lv: [] for lv in LEVELS} for v in ("default", "absolute", "last_folds")}
    for row in rows:
        # the binomial standard error of an exactly calibrated interval's coverage: the gap
        # that the test part's size alone leaves (one-step test targets are one per window)
        n = row["test_windows"]
        se = " / ".join(f"{np.sqrt(level * (1 - level) / n):.3f}" for level in LEVELS)
        cells = [row["series"], f"{row['rmse']:.4g}", str(n), se]
        for variant in gaps:
            for level in LEVELS:
                got = row[variant][intervals.level_key(level)]
                gaps[variant][level].append(got["coverage"] - level)
                cells.append(f"{got['coverage']:.3f} / {got['width']:.4g}")
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    ses = {
        level: np.mean([np.sqrt(level * (1 - level) / r["test_windows"]) for r in rows])
        for level in LEVELS
    }
    lines.append(
        "- exactly calibrated intervals would still miss by about the standard error: mean "
        + ", ".join(f"{level:g}: {se:.3f}" for level, se in ses.items())
    )
    for variant, per_level in gaps.items():
        text = ", ".join(
            f"{level:g}: mean coverage {level + np.mean(g):.3f} "
            f"(mean |gap| {np.mean(np.abs(g)):.3f})"
            for level, g in per_level.items()
        )
        lines.append(f"- {variant}: {text}")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", nargs="*", default=list(SERIES), choices=list(SERIES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-jsonl", type=Path, help="only print the table of these rows")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    if args.from_jsonl:
        print(table(read_jsonl(args.from_jsonl)))
        return 0
    set_threads(args.threads)
    rows = collect(
        args.series,
        lambda name: run_one(name, args.seed, args.data, {}),
        lambda row: (
            f"{row['series']}: rmse {row['rmse']:.4g}, 0.8 coverage "
            f"{row['default']['0.8']['coverage']:.3f}, 0.9 coverage "
            f"{row['default']['0.9']['coverage']:.3f}, {row['seconds']:.0f} s"
        ),
        args.jsonl,
    )
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
