"""`keras-lstm quickstart`: the main job, start to finish, on data shipped with the package."""

from __future__ import annotations

import json
import os
import time
from importlib import resources
from pathlib import Path

from keras_lstm.config import load_config
from keras_lstm.errors import ConfigError
from keras_lstm.files import check_output_folder
from keras_lstm.pipeline import summary_table, train_and_save
from tflite_export import LitePredictor
from tflite_export.exporter import export

DEFAULT_EPOCHS = 30
EPOCHS_ENV = "KERAS_LSTM_QUICKSTART_EPOCHS"


def dataset_path(name: str = "seattle_weather.csv") -> Path:
    """Path of a data file shipped in `keras_lstm/datasets`."""
    return Path(str(resources.files("keras_lstm") / "datasets" / name))


def quickstart_config(epochs: int):
    """The quickstart's config: tomorrow's maximum temperature from 14 days of weather."""
    return load_config(
        {
            "task": "regression",
            "seed": 42,
            "data": {
                "path": str(dataset_path()),
                "time_column": "date",
                "targets": ["temp_max"],
                "lookback": 14,
                "horizon": 1,
                "test_size": 0.2,
                "season": 365,
            },
            "training": {"epochs": epochs, "cv_splits": 3},
            "export": {"quantize": "int8", "representative_windows": 500},
        }
    )


def _epochs(args) -> int:
    value = getattr(args, "epochs", None)
    if value is None:
        raw = os.environ.get(EPOCHS_ENV)
        if raw is None:
            return DEFAULT_EPOCHS
        try:
            value = int(raw)
        except ValueError:
            raise ConfigError(f"{EPOCHS_ENV} must be a whole number; received {raw!r}.") from None
    if value < 1:
        raise ConfigError(f"--epochs must be at least 1; received {value}.")
    return value


def run_quickstart(args) -> int:
    """Run the quickstart and print where everything was written."""
    start = time.perf_counter()
    epochs = _epochs(args)
    out = check_output_folder(args.out)
    config = quickstart_config(epochs)
    print(
        f"keras-lstm quickstart: forecasting tomorrow's temp_max from 14 days of Seattle weather "
        f"({config.data.path}).\nEpochs are capped at {epochs} per fit (early stopping may end "
        f"sooner; --epochs or {EPOCHS_ENV} changes the cap).\n",
        flush=True,
    )
    # one line per fit (six of them), unless --verbose asks for Keras' line per epoch
    bundle = train_and_save(config, out, verbose=2 if getattr(args, "verbose", False) else "fits")
    print()
    print(summary_table(bundle.metrics, config.task))

    reports = {}
    for mode in ("float32", "int8"):
        path = out / f"model-{mode}.tflite"
        reports[mode] = export(bundle, mode, path)
    predictions = LitePredictor(out / "model-int8.tflite").predict_frame(config.data.path)
    predictions.to_csv(out / "predictions-int8.csv", index_label="date")

    print("\nTFLite export (builtin ops only):")
    for mode, report in reports.items():
        print(
            f"  {mode:8s} {report['size_bytes'] / 1024:7.1f} KiB  relative RMSE vs Keras "
            f"{report['relative_rmse']:.4f}  latency {report['latency_ms_p50']:.3f} ms/window "
            f"(Keras {report['keras_latency_ms_p50']:.3f} ms)"
        )
    print(
        f"\nint8 model through LitePredictor: {len(predictions)} forecasts; the last one, for "
        f"{predictions.index[-1]:%Y-%m-%d}: temp_max {predictions.iloc[-1, 0]:.1f} °C"
    )
    summary = {
        "bundle": str(out / "bundle"),
        "metrics": str(out / "metrics.json"),
        "plots": sorted(str(p) for p in (out / "bundle").glob("*.png")),
        "tflite": {mode: str(out / f"model-{mode}.tflite") for mode in reports},
        "predictions": str(out / "predictions-int8.csv"),
        "seconds": round(time.perf_counter() - start, 1),
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2))
    print("\nWritten:")
    for key, value in summary.items():
        if key != "seconds":
            print(f"  {key:12s} {value}")
    print(f"\nDone in {summary['seconds']:.0f} s.")
    return 0
