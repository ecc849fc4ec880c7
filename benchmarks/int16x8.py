"""int16x8 against int8 for TFLite Micro: three all-integer models (global scaler, no linear
path; two LSTMs and a GRU), each exported `--quantize int16x8` and `int8-full`; the int16x8
report holds both the 16x8 file's and the all-integer int8 file's relative RMSE against Keras
in TFLite Micro's reference interpreter; LSTM models also as streaming step models
(`streaming=True`), fed one step per `invoke()` in the same interpreter.

Run from the repository root (needs the `micro` extra):
    python benchmarks/int16x8.py                     # every model
    python benchmarks/int16x8.py "synthetic, 2 x GRU"  # the models whose name starts so
"""

from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd


def synthetic(n=800, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = np.zeros(n)
    y[2:] = 2 * x[:-2] + 0.5 * x[1:-1]
    return pd.DataFrame({"y": y + 0.1 * rng.standard_normal(n), "x": x})


def cases():
    from keras_lstm.quickstart import quickstart_config

    integer = {"data.scaler": "standard", "model.linear_path": False}
    yield (
        "synthetic, 2 x LSTM(32)",
        {
            "seed": 0,
            "data": {"targets": ["y"], "lookback": 8, "scaler": "standard"},
            "model": {"units": [32, 32], "linear_path": False},
            "training": {"epochs": 20, "cv_splits": 2},
        },
        synthetic(),
    )
    yield "seattle, LSTM(64) -> LSTM(32)", quickstart_config(100).replace(**integer), None
    yield (
        "synthetic, 2 x GRU(32) (unrolled for int16x8)",
        {
            "seed": 0,
            "data": {"targets": ["y"], "lookback": 8, "scaler": "standard"},
            "model": {"units": [32, 32], "linear_path": False, "cell": "gru"},
            "training": {"epochs": 20, "cv_splits": 2},
        },
        synthetic(),
    )


def only(names):
    """`cases()` whose model name starts with one of `names` (all when empty)."""
    return [case for case in cases() if not names or case[0].startswith(tuple(names))]


def main() -> None:
    from keras_lstm.training import fit
    from tflite_export import export

    for name, config, data in only(sys.argv[1:]):
        bundle = fit(config, data, verbose=0)
        with tempfile.TemporaryDirectory() as folder:
            started = time.perf_counter()
            r16 = export(bundle, "int16x8", Path(folder) / "m16.tflite")
            seconds = time.perf_counter() - started
            r8 = export(bundle, "int8-full", Path(folder) / "m8.tflite")
            stream = None
            if bundle.config.model.cell == "lstm":  # the step model, one step per invoke()
                stream = export(bundle, "int16x8", Path(folder) / "s16.tflite", streaming=True)
        row = {
            "model": name,
            "int16x8_micro": r16["relative_rmse"],
            "int8_all_integer_micro": r16["int8_relative_rmse"],
            "int8_full_litert": r8["relative_rmse"],
            "int8_full_recipe": r8["recipe"],
            "int16x8_bytes": r16["size_bytes"],
            "int8_full_bytes": r8["size_bytes"],
            "int16x8_export_seconds": seconds,
            "streaming_int16x8_micro": stream and stream["relative_rmse"],
            "streaming_int8_all_integer_micro": stream and stream["int8_relative_rmse"],
            "streaming_int16x8_bytes": stream and stream["size_bytes"],
        }
        print(json.dumps(row), flush=True)


if __name__ == "__main__":
    sys.exit(main())
