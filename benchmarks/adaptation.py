"""Adaptation on the device: a forecaster exported with `--adaptable`, adapted with
`LitePredictor.adapt` on the first part of a shifted series, scored on its later part,
beside the same file without adaptation and beside retraining the defaults in Keras on the
same first part.

Cases (each trained with the defaults on the original series, then moved to a new one):
- `seattle-fahrenheit`: the quickstart's Seattle weather, the temperatures in Fahrenheit (a
  different unit);
- `seattle-warmer`: the temperatures 5 degrees warmer (a level shift);
- `other-house`: a synthetic meter `y[t] = 2 x[t-2]` moved to a house where `y[t] = -1 x[t-2]
  + 1 x[t-1]` (other dynamics, which no normalization absorbs).

The new series' first 60% adapt (or retrain), the last 40% score (RMSE in the new units).

Run from the repository root:
    python benchmarks/adaptation.py
    python benchmarks/adaptation.py --cases other-house --jsonl adaptation.jsonl
    python benchmarks/adaptation.py --cases other-house seattle-warmer \
        --learning-rates 0.001 0.003 0.01 0.03 0.1
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

SPLIT = 0.6


def house(n=1500, seed=0, gains=(2.0, 0.0)) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = np.zeros(n)
    y[2:] = gains[0] * x[:-2] + gains[1] * x[1:-1]
    return pd.DataFrame({"y": y + 0.1 * rng.standard_normal(n), "x": x})


def case(name: str):
    """(config, original frame, new frame, target)."""
    if name == "other-house":
        config = {"seed": 0, "data": {"targets": ["y"], "lookback": 8}}
        return config, house(), house(seed=1, gains=(-1.0, 1.0)), "y"
    from keras_lstm.quickstart import dataset_path, quickstart_config

    config = quickstart_config(100).to_dict()
    config.pop("export", None)
    config["data"].pop("path")
    frame = pd.read_csv(dataset_path())
    new = frame.copy()
    for column in ("temp_max", "temp_min"):
        if name == "seattle-fahrenheit":
            new[column] = new[column] * 1.8 + 32
        else:
            new[column] = new[column] + 5.0
    return config, frame, new, "temp_max"


def later_rmse(forecasts: np.ndarray, frame: pd.DataFrame, target: str, lookback: int) -> float:
    """RMSE of one-step forecasts (one per window of `frame`) on the rows after `SPLIT`."""
    start = int(len(frame) * SPLIT)
    rows = np.arange(start, len(frame))
    pred = forecasts[rows - lookback, 0, 0]
    return float(np.sqrt(np.mean((pred - frame[target].to_numpy()[rows]) ** 2)))


def sweep(name: str, rates) -> list[dict]:
    """After-adaptation RMSE for each learning rate, one bundle for all."""
    from keras_lstm.training import fit
    from tflite_export import LitePredictor
    from tflite_export.adaptable import export_adaptable

    config, original, new, target = case(name)
    lookback = config["data"]["lookback"]
    bundle = fit(config, original, verbose=0)
    first = new.iloc[: int(len(new) * SPLIT)]
    rows = []
    for rate in rates:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(tmp) / "adaptable.tflite"
            export_adaptable(bundle, path, learning_rate=rate)
            predictor = LitePredictor(path)
            before = later_rmse(predictor.predict_array(new), new, target, lookback)
            predictor.adapt(first)
            after = later_rmse(predictor.predict_array(new), new, target, lookback)
        rows.append({"case": name, "learning_rate": rate, "before": before, "after": after})
    return rows


def run(name: str) -> dict:
    from keras_lstm.training import fit
    from tflite_export import LitePredictor
    from tflite_export.adaptable import export_adaptable

    config, original, new, target = case(name)
    lookback = config["data"]["lookback"]
    row = {"case": name}
    with tempfile.TemporaryDirectory() as tmp:
        bundle = fit(config, original, verbose=0)
        path = Path(tmp) / "adaptable.tflite"
        report = export_adaptable(bundle, path)
        predictor = LitePredictor(path)
        row["before"] = later_rmse(predictor.predict_array(new), new, target, lookback)
        first = new.iloc[: int(len(new) * SPLIT)]
        started = time.perf_counter()
        losses = predictor.adapt(first)
        row["adapt_seconds"] = time.perf_counter() - started
        row["adapt_steps"] = len(losses)
        row["after"] = later_rmse(predictor.predict_array(new), new, target, lookback)
        row["state_size"] = report["adaptation"]["state_size"]
        started = time.perf_counter()
        retrained = fit(
            {**config, "data": {**config["data"], "test_size": 1 - SPLIT}}, new, verbose=0
        )
        row["retrain_seconds"] = time.perf_counter() - started
        row["retrained"] = retrained.metrics["test"]["rmse"]
        naive = retrained.metrics["baselines"]["naive"]["test"]["rmse"]
        row["naive"] = naive
    return row


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--cases", nargs="*", default=["seattle-fahrenheit", "seattle-warmer", "other-house"]
    )
    parser.add_argument("--jsonl", type=Path, help="append each case's figures to this file")
    parser.add_argument(
        "--learning-rates", nargs="*", type=float, help="sweep these instead (after-RMSE each)"
    )
    args = parser.parse_args(argv)
    for name in args.cases:
        rows = sweep(name, args.learning_rates) if args.learning_rates else [run(name)]
        for row in rows:
            print(json.dumps(row), flush=True)
            if args.jsonl:
                with open(args.jsonl, "a") as handle:
                    handle.write(json.dumps(row) + "\n")


if __name__ == "__main__":
    main()
