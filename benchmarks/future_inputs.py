"""Known future inputs: day-ahead electricity demand with and without calendar features.

`taylor.csv` (half-hourly demand, England and Wales, summer 2000): the next 48 half-hours are
forecast at once from the last 96 (`data.horizon: 48`, `data.lookback: 96`), once with the
defaults and once with `data.calendar: [hour, day_of_week]` (known for the forecast day), side
by side in one run. Test RMSE is shown beside the seasonal naive of a week back
(`data.season: 336`). Both runs also calibrate 0.8 and 0.9 prediction intervals
(`training.interval`) and report their test coverage and width.

Run from the repository root:
    python benchmarks/future_inputs.py --threads 1
    python benchmarks/future_inputs.py --only calendar --jsonl future.jsonl
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from accuracy import add_run_arguments, collect, read_jsonl, series_config, set_threads  # noqa: E402

from keras_lstm.training import fit  # noqa: E402

VARIANTS = {"defaults": {}, "calendar": {"data.calendar": ["hour", "day_of_week"]}}


def run_one(variant: str, seed: int, data_dir: Path) -> dict:
    """Fit the day-ahead config of one variant; its test figures."""
    overrides = {**VARIANTS[variant], "training.interval": [0.8, 0.9]}
    raw = series_config("taylor_day_ahead", seed, data_dir, overrides)
    start = time.perf_counter()
    bundle = fit(raw, verbose=0)
    metrics = bundle.metrics
    return {
        "variant": variant,
        "seed": seed,
        "rmse": metrics["test"]["rmse"],
        "mase": metrics["test"]["mase"],
        "snaive_rmse": metrics["baselines"]["seasonal_naive"]["test"]["rmse"],
        "snaive_mase": metrics["baselines"]["seasonal_naive"]["test"]["mase"],
        "coverage": {k: v["demand_mw"] for k, v in metrics["test"]["interval_coverage"].items()},
        "width": {k: v["demand_mw"] for k, v in metrics["test"]["interval_width"].items()},
        "refit_epochs": metrics["refit_epochs"],
        "seconds": round(time.perf_counter() - start, 1),
    }


def table(rows: list[dict]) -> str:
    head = (
        "| variant | keras-lstm RMSE | seasonal naive (a week back) | MASE | s. naive MASE | "
        "0.8 coverage / width | 0.9 coverage / width | seconds |"
    )
    lines = [head, "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        bands = [f"{r['coverage'][k]:.3f} / {r['width'][k]:.0f}" for k in ("0.8", "0.9")]
        lines.append(
            f"| {r['variant']} | {r['rmse']:.1f} | {r['snaive_rmse']:.1f} | {r['mase']:.3f} | "
            f"{r['snaive_mase']:.3f} | {bands[0]} | {bands[1]} | {r['seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", choices=list(VARIANTS), help="run one variant")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--from-jsonl", type=Path, help="only print the table of these rows")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    if args.from_jsonl:
        print(table(read_jsonl(args.from_jsonl)))
        return 0
    set_threads(args.threads)
    rows = collect(
        [args.only] if args.only else list(VARIANTS),
        lambda variant: run_one(variant, args.seed, args.data),
        lambda row: f"{row['variant']}: rmse {row['rmse']:.1f}, {row['seconds']:.0f} s",
        args.jsonl,
    )
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
