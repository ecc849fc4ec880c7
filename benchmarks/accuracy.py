"""Forecast accuracy of keras-lstm's defaults on real series, beside naive baselines and
Holt-Winters, side by side in one run.

For every forecasting series of the development suite (`../shared/data/`, see its README) and
the shipped Seattle weather, `keras_lstm.training.fit` runs with the defaults and only the
settings a user must give (`path`, `time_column`, `targets`, `lookback`, `season`): walk-forward
CV, refit, and the held-out last 20% predicted one step ahead from the true history. Its test
RMSE and MASE are shown beside:

- naive (the last value) and seasonal naive (one season back), from the same `metrics.json`;
- Holt-Winters (`statsmodels` `ExponentialSmoothing`, damped additive trend, additive or
  multiplicative season chosen by AIC), fitted on the rows before the test part, then run over
  the test part with fixed parameters so each forecast also uses the true history.

A multi-step row adds day-ahead electricity demand (48 half-hours at once, `taylor.csv`) against
the seasonal naive of a week back.

statsmodels and aeon are benchmark-only dependencies: `pip install -e ".[bench]"`.

Run from the repository root:
    python benchmarks/accuracy.py                      # every series, 3 seeds
    python benchmarks/accuracy.py --series nile --seeds 1 --set data.scaler=standard
    python benchmarks/accuracy.py --classifiers                # every sequence set, 3 seeds
    python benchmarks/accuracy.py --classifiers gunpoint --seeds 1 --set model.pooling=last

Classification (`--classifiers`): for each UCR set of the development suite the defaults train
on its train file and are tested once on its official test file (`data.test_path`); the test
accuracy is shown beside MiniRocket (aeon's `MiniRocketClassifier`, the strongest cheap peer:
random convolutional features and a ridge classifier, same files, same seed), the 1NN-DTW
accuracy (published in the data's README, or computed with aeon where none is), one-nearest-
neighbour with the Euclidean distance and the majority class (both baselines of the run itself,
`metrics.json`).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from keras_lstm.config import load_config  # noqa: E402
from keras_lstm.data import load_table  # noqa: E402
from keras_lstm.data.splits import test_start_row  # noqa: E402
from keras_lstm.quickstart import dataset_path  # noqa: E402
from keras_lstm.training import fit  # noqa: E402

SHARED = Path(__file__).resolve().parents[2] / "shared" / "data"

# name: (file, time column, target, season, lookback, horizon, seasonal-naive season)
# Lookbacks follow the guidance in docs/config.md (`data.lookback`): four seasons for monthly
# and quarterly series (two seasons measured worse on three of these four: BENCHMARKS.md).
SERIES = {
    "wineind": ("wineind.csv", "date", "sales", 12, 48, 1, None),
    "ausbeer": ("ausbeer.csv", "quarter", "megalitres", 4, 16, 1, None),
    "macro_realgdp": ("macrodata.csv", "quarter", "realgdp", 4, 16, 1, None),
    "elnino": ("elnino.csv", "date", "sst", 12, 48, 1, None),
    "nile": ("nile.csv", "year", "volume", 1, 10, 1, None),
    "taylor": ("taylor.csv", "time", "demand_mw", 48, 96, 1, None),
    "seattle": (None, "date", "temp_max", 365, 14, 1, None),
    "taylor_day_ahead": ("taylor.csv", "time", "demand_mw", 336, 96, 48, 336),
}
ONE_STEP = [name for name, spec in SERIES.items() if spec[5] == 1]

# Sequence classification: UCR train/test files (`NAME_train.csv`, `NAME_test.csv`) and the
# published 1NN-DTW test accuracy (the development data's README); None: none is published, so
# the table computes it (`dtw_nearest_neighbour`).
CLASSIFIERS = {
    "gunpoint": 0.91,
    "arrowhead": 0.70,
    "osuleaf": 0.59,
    "plaid": 0.84,
    "pickupgesture": None,
}


def series_config(name: str, seed: int, data_dir: Path, overrides: dict) -> dict:
    """The config a user would write: only path, time column, target, lookback and season."""
    file, time_column, target, season, lookback, horizon, _ = SERIES[name]
    path = str(dataset_path()) if file is None else str(data_dir / file)
    raw = {
        "seed": seed,
        "data": {
            "path": path,
            "time_column": time_column,
            "targets": [target],
            "lookback": lookback,
            "horizon": horizon,
            "season": season,
        },
    }
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        raw.setdefault(section, {})[key] = value
    return raw


def holt_winters(name: str, data_dir: Path) -> dict | None:
    """One-step test RMSE and MAE of Holt-Winters with parameters fitted before the test part."""
    file, time_column, target, season, lookback, horizon, _ = SERIES[name]
    if horizon != 1:
        return None
    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    config = load_config(series_config(name, 0, data_dir, {}))
    table = load_table(config.data.path, config.data)
    y = table.targets[:, 0].astype(np.float64)
    start = test_start_row(len(y), config.data)
    season = season if 1 < season <= len(y[:start]) // 2 else None
    if season and season > 100:  # a year of days: the weekly-free daily model is the fair one
        season = None
    kinds = ["add", "mul"] if season and (y > 0).all() else ["add"] if season else [None]
    best = None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for kind in kinds:
            model = ExponentialSmoothing(
                y[:start],
                trend="add",
                damped_trend=True,
                seasonal=kind,
                seasonal_periods=season,
                initialization_method="estimated",
            )
            result = model.fit()
            if best is None or result.aic < best[1].aic:
                best = (kind, result)
        kind, result = best
        params = result.params
        known = {
            "initialization_method": "known",
            "initial_level": params["initial_level"],
            "initial_trend": params["initial_trend"],
        }
        if kind:
            known["initial_seasonal"] = params["initial_seasons"]
        full = ExponentialSmoothing(
            y, trend="add", damped_trend=True, seasonal=kind, seasonal_periods=season, **known
        ).fit(
            smoothing_level=params["smoothing_level"],
            smoothing_trend=params["smoothing_trend"],
            smoothing_seasonal=params.get("smoothing_seasonal") if kind else None,
            damping_trend=params["damping_trend"],
            optimized=False,
        )
    pred = np.asarray(full.fittedvalues)[start:]
    true = y[start:]
    return {
        "rmse": float(np.sqrt(np.mean((pred - true) ** 2))),
        "mae": float(np.mean(np.abs(pred - true))),
        "season": kind or "none",
    }


def _timed_fit(raw: dict):
    """`fit` with the defaults plus `raw`; returns the bundle and the seconds it took."""
    config = load_config(raw)
    start = time.perf_counter()
    bundle = fit(config, verbose=0)
    return bundle, time.perf_counter() - start


def run_one(name: str, seed: int, data_dir: Path, overrides: dict) -> dict:
    bundle, seconds = _timed_fit(series_config(name, seed, data_dir, overrides))
    metrics = bundle.metrics
    test = metrics["test"]
    baselines = {key: value["test"] for key, value in metrics["baselines"].items()}
    return {
        "series": name,
        "seed": seed,
        "overrides": overrides,
        "rmse": test["rmse"],
        "mae": test["mae"],
        "mase": test["mase"],
        "naive_rmse": baselines["naive"]["rmse"],
        "naive_mase": baselines["naive"]["mase"],
        "snaive_rmse": baselines["seasonal_naive"]["rmse"],
        "snaive_mase": baselines["seasonal_naive"]["mase"],
        "cv_rmse": metrics["cv"]["mean"]["rmse"],
        "refit_epochs": metrics.get("refit_epochs"),
        "training": metrics.get("training"),
        "seconds": seconds,
    }


def classifier_config(name: str, seed: int, data_dir: Path, overrides: dict) -> dict:
    """The defaults plus what a user must give: the two files and the id and label columns."""
    config = {
        "task": "classification",
        "seed": seed,
        "data": {
            "path": str(data_dir / f"{name}_train.csv"),
            "test_path": str(data_dir / f"{name}_test.csv"),
            "series_id": "series",
            "label": "label",
            "time_column": "step",
        },
    }
    for dotted, value in overrides.items():
        section, _, key = dotted.partition(".")
        config.setdefault(section, {})[key] = value
    return config


def labelled_sequences(name: str, data_dir: Path) -> dict:
    """`{"train": (sequences, labels), "test": ...}` of a UCR set, each sequence a
    `(steps, channels)` array in its own length."""
    parts = {}
    for part in ("train", "test"):
        frame = pd.read_csv(data_dir / f"{name}_{part}.csv")
        dims = [c for c in frame.columns if c.startswith("dim_")]
        groups = list(frame.groupby("series", sort=False))
        parts[part] = (
            [g[dims].to_numpy(np.float64) for _, g in groups],
            np.asarray([g["label"].iloc[0] for _, g in groups]),
        )
    return parts


def _padded_channels_first(parts: dict) -> dict:
    """`(n, channels, longest)` arrays, zero-padded after each sequence's end (aeon's
    MiniRocket takes equal lengths, channels first)."""
    longest = max(len(s) for s in parts["train"][0] + parts["test"][0])
    out = {}
    for part, (seqs, labels) in parts.items():
        arrays = np.zeros((len(seqs), seqs[0].shape[1], longest))
        for i, seq in enumerate(seqs):
            arrays[i, :, : len(seq)] = seq.T
        out[part] = (arrays, labels)
    return out


def minirocket(name: str, seed: int, data_dir: Path) -> dict:
    """Test accuracy and seconds of aeon's `MiniRocketClassifier` (MiniRocket features and a
    ridge classifier, its defaults) on the same official train and test files; sequences of
    different lengths are zero-padded to the longest, as MiniRocket needs equal lengths."""
    from aeon.classification.convolution_based import MiniRocketClassifier

    parts = _padded_channels_first(labelled_sequences(name, data_dir))
    started = time.perf_counter()
    model = MiniRocketClassifier(random_state=seed).fit(*parts["train"])
    predicted = model.predict(parts["test"][0])
    return {
        "minirocket": float(np.mean(predicted == parts["test"][1])),
        "minirocket_seconds": time.perf_counter() - started,
    }


def dtw_nearest_neighbour(name: str, data_dir: Path) -> float:
    """Test accuracy of one-nearest-neighbour with the full-window DTW distance (aeon), for
    sets whose README publishes none; sequences are compared in their own lengths."""
    from aeon.classification.distance_based import KNeighborsTimeSeriesClassifier

    parts = labelled_sequences(name, data_dir)

    def channels_first(seqs):
        return [seq.T for seq in seqs]

    model = KNeighborsTimeSeriesClassifier(n_neighbors=1, distance="dtw")
    model.fit(channels_first(parts["train"][0]), parts["train"][1])
    predicted = model.predict(channels_first(parts["test"][0]))
    return float(np.mean(predicted == parts["test"][1]))


def run_classifier(name: str, seed: int, data_dir: Path, overrides: dict) -> dict:
    bundle, seconds = _timed_fit(classifier_config(name, seed, data_dir, overrides))
    metrics = bundle.metrics
    peer = minirocket(name, seed, data_dir) if _has_aeon() else {}
    return {
        **peer,
        "series": name,
        "seed": seed,
        "overrides": overrides,
        "accuracy": metrics["test"]["accuracy"],
        "f1_macro": metrics["test"]["f1_macro"],
        "majority": metrics["baselines"]["majority"]["test"]["accuracy"],
        # computed by the run itself on the training file (keras_lstm.metrics)
        "nn_euclidean": metrics["baselines"]["1nn_euclidean"]["test"]["accuracy"],
        "cv_accuracy": metrics["cv"]["mean"]["accuracy"],
        "refit_epochs": metrics.get("refit_epochs"),
        "training": metrics.get("training"),
        "seconds": seconds,
    }


def _has_aeon() -> bool:
    import importlib.util

    return importlib.util.find_spec("aeon") is not None


def dtw_accuracy(name: str, data_dir: Path) -> tuple[float, str]:
    """1NN-DTW test accuracy and where it comes from: the README's published figure, else
    computed here (needs aeon, in the `bench` extra), else NaN."""
    published = CLASSIFIERS[name]
    if published is not None:
        return published, "published"
    if _has_aeon():
        return dtw_nearest_neighbour(name, data_dir), "computed"
    return math.nan, "not computed (pip install aeon)"


def classifier_table(rows: list[dict], data_dir: Path) -> str:
    """Markdown: per data set the mean test accuracy over seeds beside MiniRocket (same
    seeds and files) and the baselines."""
    frame = pd.DataFrame(rows)
    lines = [
        "| data set | keras-lstm accuracy | MiniRocket | 1NN-DTW | 1NN-Euclidean | majority "
        "| beats 1NN-DTW | within 0.01 of MiniRocket | seconds per run | MiniRocket seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | --- | ---: | ---: |",
    ]
    for name, group in frame.groupby("series", sort=False):
        mean = group.mean(numeric_only=True)
        dtw, source = dtw_accuracy(name, data_dir)
        peer = mean.get("minirocket", math.nan)
        close = "-" if math.isnan(peer) else "yes" if mean["accuracy"] >= peer - 0.01 else "**no**"
        lines.append(
            f"| {name} | {mean['accuracy']:.3f} (± {group['accuracy'].std(ddof=0):.3f}) "
            f"| {peer:.3f} | {dtw:.3f} ({source}) | {mean.get('nn_euclidean', math.nan):.3f} "
            f"| {mean['majority']:.3f} | {'yes' if mean['accuracy'] > dtw else '**no**'} "
            f"| {close} | {mean['seconds']:.0f} | {mean.get('minirocket_seconds', math.nan):.1f} |"
        )
    return "\n".join(lines)


def _parse_overrides(items) -> dict:
    out = {}
    for item in items or []:
        key, _, value = item.partition("=")
        try:
            out[key] = json.loads(value)
        except json.JSONDecodeError:
            out[key] = value
    return out


def table(rows: list[dict], data_dir: Path, with_hw: bool = True) -> str:
    """Markdown: per series the mean over seeds, the baselines and Holt-Winters."""
    frame = pd.DataFrame(rows)
    lines = [
        "| series | keras-lstm RMSE | naive | seasonal naive | Holt-Winters | MASE | naive MASE "
        "| s. naive MASE | RMSE / HW | wins | seconds |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    ratios = []
    for name, group in frame.groupby("series", sort=False):
        mean = group.mean(numeric_only=True)
        hw = holt_winters(name, data_dir) if with_hw else None
        ratio = mean["rmse"] / hw["rmse"] if hw else math.nan
        if hw:
            ratios.append(ratio)
        wins = mean["mase"] < mean["naive_mase"] and mean["mase"] < mean["snaive_mase"]
        hw_cell = f"{hw['rmse']:.4g} ({hw['season']})" if hw else "-"
        lines.append(
            f"| {name} | {mean['rmse']:.4g} (± {group['rmse'].std(ddof=0):.2g}) "
            f"| {mean['naive_rmse']:.4g} | {mean['snaive_rmse']:.4g} | {hw_cell} "
            f"| {mean['mase']:.3f} | {mean['naive_mase']:.3f} | {mean['snaive_mase']:.3f} "
            f"| {ratio:.3f} | {'yes' if wins else '**no**'} | {mean['seconds']:.0f} |"
        )
    if ratios:
        geo = float(np.exp(np.mean(np.log(ratios))))
        lines.append(f"\nGeometric mean of RMSE / Holt-Winters over one-step series: {geo:.3f}")
    return "\n".join(lines)


def set_threads(threads: int | None) -> None:
    """TensorFlow's intra- and inter-op threads (1 lets two runs share two cores)."""
    if threads:
        import tensorflow as tf

        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options every suite benchmark takes: `--data`, `--jsonl`, `--threads`."""
    parser.add_argument("--data", type=Path, default=SHARED, help="the development data folder")
    parser.add_argument("--jsonl", type=Path, help="append each run's figures to this file")
    parser.add_argument(
        "--threads", type=int, help="TensorFlow threads (1 lets two runs share two cores)"
    )


def collect(jobs, run, describe, jsonl: Path | None) -> list[dict]:
    """`run(job)` for each job: a line printed (`describe(row)`) and a JSON line appended to
    `jsonl` as each finishes, so a stopped benchmark keeps what it measured."""
    rows = []
    for job in jobs:
        row = run(job)
        rows.append(row)
        print(describe(row), flush=True)
        if jsonl:
            with open(jsonl, "a") as handle:
                handle.write(json.dumps(row) + "\n")
    return rows


def read_jsonl(path: Path) -> list[dict]:
    """The rows a benchmark appended with `--jsonl`."""
    return [json.loads(line) for line in path.read_text().splitlines() if line]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--series", nargs="*", default=list(SERIES), choices=list(SERIES))
    parser.add_argument(
        "--classifiers",
        nargs="*",
        choices=list(CLASSIFIERS),
        help="sequence classification sets to run instead of the series (none given: all)",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--first-seed", type=int, default=0, help="seeds run from this one")
    parser.add_argument("--set", action="append", help="config override, e.g. data.scaler=window")
    parser.add_argument("--no-hw", action="store_true", help="skip Holt-Winters")
    add_run_arguments(parser)
    args = parser.parse_args(argv)
    set_threads(args.threads)
    overrides = _parse_overrides(args.set)
    if args.classifiers is not None:
        rows = _run_all(args.classifiers or list(CLASSIFIERS), run_classifier, args, overrides)
        print()
        print(classifier_table(rows, args.data))
        return 0
    rows = _run_all(args.series, run_one, args, overrides)
    print()
    print(table(rows, args.data, with_hw=not args.no_hw))
    return 0


def _describe(row: dict) -> str:
    if "accuracy" in row:
        peer = row.get("minirocket")
        return (
            f"accuracy {row['accuracy']:.3f} (majority {row['majority']:.3f}, MiniRocket "
            f"{'-' if peer is None else f'{peer:.3f}'})"
        )
    return (
        f"rmse {row['rmse']:.4g} (naive {row['naive_rmse']:.4g}, seasonal naive "
        f"{row['snaive_rmse']:.4g}) mase {row['mase']:.3f}"
    )


def _run_all(names: list[str], runner, args, overrides: dict) -> list[dict]:
    """Every name and seed through `runner`, a line printed (and a JSON line written) each."""
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    return collect(
        [(name, seed) for name in names for seed in seeds],
        lambda job: runner(*job, args.data, overrides),
        lambda row: (
            f"{row['series']} seed {row['seed']}: {_describe(row)}, refit "
            f"{row['refit_epochs']} epochs, {row['seconds']:.0f} s"
        ),
        args.jsonl,
    )


if __name__ == "__main__":
    sys.exit(main())
