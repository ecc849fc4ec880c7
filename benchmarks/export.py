"""Export benchmark: a trained ~67k-parameter stacked LSTM, every quantization mode.

Trains `LSTM(96) -> LSTM(48) -> Dense(1)` for a few epochs to forecast tomorrow's `temp_max` from
30 days of Seattle weather (shipped with the package), exports it in each mode with
`tflite_export.export` and prints, per mode: file size, op list, relative RMSE and max abs error
against Keras on held-out windows, and per-window latency of LiteRT against a compiled Keras call.

Then, side by side in the same run, one window through each runtime: LiteRT float32 (a window
per invoke), LiteRT float32 streaming (one step per invoke; the per-step figure and a whole
window fed step by step, on the same stack trained without the linear path, which cannot
stream), onnxruntime (if the `onnx` extra is installed), and Keras compiled with and without
XLA (`jit_compile=True`).

Run:
    .venv/bin/python benchmarks/export.py [--epochs 8] [--cell lstm] [--out /tmp/export-bench]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

DATA = Path(__file__).resolve().parents[1] / "keras_lstm" / "datasets" / "seattle_weather.csv"
FEATURES = ["temp_max", "temp_min", "precipitation", "wind"]
TARGET = "temp_max"
LOOKBACK = 30
MODES = ("float32", "float16", "dynamic", "int8", "int8-full")


class BenchBundle:
    """The parts of a `keras_lstm.Bundle` that `tflite_export.export` reads."""

    def __init__(self, model, preprocessing, train_windows, test_windows):
        self.model = model
        self.preprocessing = preprocessing
        self.config = None
        self._windows = {"train": train_windows, "test": test_windows}

    def sample_windows(self, n, part="train"):
        windows = self._windows[part]
        picks = np.unique(np.linspace(0, len(windows) - 1, min(n, len(windows))).astype(int))
        return windows[picks]


def trained_bundle(epochs: int = 8, cell: str = "lstm", units=(96, 48), seed: int = 0, **options):
    """Train the benchmark model; returns a `BenchBundle` and the parameter count.

    `options` are further `ModelConfig` fields (e.g. `bidirectional=True, conv_filters=8`).
    """
    import keras

    from keras_lstm.config import ModelConfig
    from keras_lstm.factory import build_model

    keras.utils.set_random_seed(seed)
    frame = pd.read_csv(DATA)
    values = frame[FEATURES].to_numpy(np.float64)
    split = int(len(values) * 0.8)
    center, scale = values[:split].mean(0), values[:split].std(0)
    scaled = ((values - center) / scale).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(scaled, LOOKBACK, axis=0)
    windows = np.ascontiguousarray(windows.transpose(0, 2, 1)[:-1])
    targets = scaled[LOOKBACK:, :1][:, None, :]
    first_test = split - LOOKBACK
    config = ModelConfig(cell=cell, units=units, dropout=0.1, **options)
    model = build_model(config, (LOOKBACK, len(FEATURES)), (1, 1), "regression")
    model.fit(
        windows[:first_test],
        targets[:first_test],
        epochs=epochs,
        batch_size=32,
        verbose=0,
        shuffle=True,
    )
    preprocessing = {
        "task": "regression",
        "feature_names": FEATURES,
        "target_names": [TARGET],
        "lookback": LOOKBACK,
        "horizon": 1,
        "feature_scaler": {"kind": "standard", "center": list(center), "scale": list(scale)},
        "target_scaler": {"kind": "standard", "center": [center[0]], "scale": [scale[0]]},
    }
    bundle = BenchBundle(model, preprocessing, windows[:first_test], windows[first_test:])
    return bundle, model.count_params()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=8)
    parser.add_argument("--cell", default="lstm", choices=["lstm", "gru"])
    parser.add_argument("--out", default=None, help="folder for the .tflite files")
    parser.add_argument("--modes", nargs="*", default=list(MODES))
    parser.add_argument(
        "--architectures",
        action="store_true",
        help="instead: int8 per factory architecture, with what each keeps in float",
    )
    parser.add_argument(
        "--only", nargs="*", choices=list(ARCHITECTURES), help="with --architectures: these"
    )
    parser.add_argument(
        "--calibration",
        nargs="*",
        metavar="SERIES",
        help="instead: the all-integer parity at several calibration margins, for each "
        "architecture (or --only) and for the defaults fitted on these suite series (or UCR "
        "classification sets, e.g. gunpoint)",
    )
    parser.add_argument("--margins", nargs="*", type=float, default=[0.0, 0.05, 0.1, 0.2])
    parser.add_argument("--data", default="../shared/data", help="the development data folder")
    args = parser.parse_args(argv)
    if args.architectures:
        out = Path(args.out or tempfile.mkdtemp(prefix="arch-"))
        return architectures(args.epochs, out, args.only)
    if args.calibration is not None:
        return calibration(args.epochs, args.only, args.calibration, args.margins, args.data)

    from tflite_export import export

    start = time.perf_counter()
    bundle, params = trained_bundle(args.epochs, args.cell)
    print(
        f"model: {args.cell.upper()}(96) -> {args.cell.upper()}(48) -> Dense(1), {params} "
        f"parameters, trained {args.epochs} epochs in {time.perf_counter() - start:.0f} s; "
        f"lookback {LOOKBACK}, {len(FEATURES)} features"
    )
    out = Path(args.out or tempfile.mkdtemp(prefix="export-bench-"))
    rows = []
    for mode in args.modes:
        begin = time.perf_counter()
        report = export(bundle, mode, out / f"model-{mode}.tflite", max_error=1.0)
        rows.append((mode, report, time.perf_counter() - begin))
    base = rows[0][1]["size_bytes"]
    print()
    print(
        "| mode | size (bytes) | x float32 | rel. RMSE | max abs err | LiteRT ms | Keras ms "
        "| speed-up | export s |"
    )
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for mode, report, seconds in rows:
        print(
            f"| {mode} | {report['size_bytes']} | {report['size_bytes'] / base:.2f} "
            f"| {report['relative_rmse']:.4f} | {report['max_abs_error']:.2e} "
            f"| {report['latency_ms_p50']:.3f} | {report['keras_latency_ms_p50']:.2f} "
            f"| {report['keras_latency_ms_p50'] / report['latency_ms_p50']:.0f}x "
            f"| {seconds:.1f} |"
        )
    print()
    for mode, report, _ in rows:
        ops = ", ".join(f"{name} {count}" for name, count in report["ops"].items())
        print(f"- {mode}: {ops}; builtin only: {report['builtin_only']}")
        print(f"  recipe: {report['recipe']}")
    print()
    runtimes(bundle, out, args.epochs, args.cell)
    return 0


# name -> ModelConfig options of `trained_bundle`
ARCHITECTURES = {
    "LSTM(32)": {"units": (32,)},
    "LSTM(32, 16)": {"units": (32, 16)},
    "LSTM(32, 32, 16)": {"units": (32, 32, 16)},
    "GRU(32, 16)": {"cell": "gru", "units": (32, 16)},
    "BiLSTM(32, 16)": {"units": (32, 16), "bidirectional": True},
    "Conv1D(16) + BiLSTM(64, 48) + Dense(16)": {
        "units": (64, 48),
        "bidirectional": True,
        "conv_filters": 16,
        "dense_units": (16,),
    },
    "Conv1D(16) + LSTM(32, 16)": {"units": (32, 16), "conv_filters": 16},
}


def architectures(epochs: int, out: Path, only=None) -> int:
    """int8 and int8-full of each architecture (or of those in `only`) beside its float32 file:
    parity, size, and what stayed in float."""
    from tflite_export import export

    print("| model | mode | rel. RMSE | size x float32 | recipe | kept in float (share of file) |")
    print("| --- | --- | ---: | ---: | --- | --- |")
    for name, options in ARCHITECTURES.items():
        if only and name not in only:
            continue
        options = dict(options)
        units = options.pop("units")
        cell = options.pop("cell", "lstm")
        bundle, _ = trained_bundle(epochs, cell, units=units, **options)
        base = export(bundle, "float32", out / "f32.tflite")["size_bytes"]
        for mode in ("int8", "int8-full"):
            report = export(bundle, mode, out / f"{mode}.tflite", max_error=1.0)
            kept = report["kept_float"]
            ops = ", ".join(f"{op} x{n}" for op, n in kept["ops"].items()) or "nothing"
            print(
                f"| {name} | {mode} | {report['relative_rmse']:.4f} "
                f"| {report['size_bytes'] / base:.2f} | {report['recipe'].split(':')[0]} "
                f"| {ops} ({kept['float_weights_share']:.0%}) |",
                flush=True,
            )
    return 0


def calibration(epochs: int, only, series, margins, data: str) -> int:
    """The all-integer relative RMSE at each margin (the first of `export`'s `recipes_tried`),
    then what `export` chose with the default margin (its recipe, how many LSTMs it kept in
    float, parity, size against float32): the Seattle architectures (or `only`), then the
    defaults fitted on each suite series (one seed)."""
    import accuracy

    from keras_lstm import fit
    from keras_lstm.config import load_config

    out = Path(tempfile.mkdtemp(prefix="calibration-"))
    print(
        "| model | "
        + " | ".join(f"margin {m:g}" for m in margins)
        + " | export chose | rel. RMSE | size x float32 | same class as Keras |"
    )
    print("| --- | " + " | ".join("---:" for _ in margins) + " | --- | ---: | ---: | ---: |")

    def row(label, bundle):
        from tflite_export import export
        from tflite_export.convert import CALIBRATION_MARGIN

        base = export(bundle, "float32", out / "f32.tflite")["size_bytes"]
        values, report = [], None
        extra = [] if CALIBRATION_MARGIN in margins else [CALIBRATION_MARGIN]
        for margin in [*margins, *extra]:
            path = out / f"int8-{margin:g}.tflite"
            tried = export(bundle, "int8", path, max_error=10.0, calibration_margin=margin)
            if margin in margins:
                values.append(tried["recipes_tried"][0]["relative_rmse"])
            if margin == CALIBRATION_MARGIN:
                report, default_path = tried, path
        floats = report["kept_float"]["ops"].get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0)
        recipe = report["recipe"].split(":")[0]
        recipe = f"{recipe}, {floats} LSTM(s) float" if floats else recipe
        same = "-"
        if bundle.preprocessing.get("task") == "classification":
            from tflite_export import runtime

            windows = bundle.sample_windows(256, "test")
            lite = runtime.interpreter(default_path.read_bytes())
            keras = bundle.model(windows, training=False).numpy()
            agree = runtime.run_windows(lite, windows).reshape(keras.shape).argmax(-1)
            same = f"{np.mean(agree == keras.argmax(-1)):.3f} of {len(windows)}"
        print(
            f"| {label} | "
            + " | ".join(f"{v:.4f}" for v in values)
            + f" | {recipe} | {report['relative_rmse']:.4f} | {report['size_bytes'] / base:.2f} "
            f"| {same} |",
            flush=True,
        )

    for name, options in ARCHITECTURES.items():
        if only is not None and name not in only:
            continue
        options = dict(options)
        units = options.pop("units")
        bundle, _ = trained_bundle(epochs, options.pop("cell", "lstm"), units=units, **options)
        row(f"seattle {name}", bundle)
    for name in series:
        make = (
            accuracy.classifier_config if name in accuracy.CLASSIFIERS else accuracy.series_config
        )
        row(f"{name}, defaults", fit(load_config(make(name, 0, Path(data), {})), verbose=0))
    return 0


def _keras_latency(model, window, jit: bool) -> float:
    import tensorflow as tf

    from tflite_export.runtime import latency_ms

    compiled = tf.function(lambda x: model(x, training=False), jit_compile=jit)
    one = tf.constant(window[None])
    return latency_ms(lambda: compiled(one).numpy(), repeats=100)


def runtimes(bundle, out: Path, epochs: int, cell: str) -> None:
    """Per-window latency of one window through each runtime, measured in one run."""
    import importlib.util

    from tflite_export import export
    from tflite_export.onnx_export import export_onnx

    window = bundle.sample_windows(1, part="test")[0]
    rows = []
    report = export(bundle, "float32", out / "rt-float32.tflite")
    rows.append(("LiteRT float32, one window per invoke", report["latency_ms_p50"], "-"))
    stream_bundle, _ = trained_bundle(epochs, cell, linear_path=False)
    report = export(stream_bundle, "float32", out / "rt-window.tflite")
    rows.append(("LiteRT float32, no linear path, one window", report["latency_ms_p50"], "-"))
    for mode in ("float32", "int8"):
        report = export(stream_bundle, mode, out / f"rt-stream-{mode}.tflite", streaming=True)
        rows.append(
            (
                f"LiteRT {mode} streaming, no linear path: one step "
                f"({LOOKBACK} steps one by one: {report['window_latency_ms_p50']:.3f} ms)",
                report["latency_ms_p50"],
                f"{report['max_abs_error']:.1e}",
            )
        )
    if all(importlib.util.find_spec(n) for n in ("onnx", "onnxruntime", "tf2onnx")):
        report = export_onnx(bundle, out / "rt.onnx")
        rows.append(
            (
                "onnxruntime float32, one window",
                report["latency_ms_p50"],
                f"{report['max_abs_error']:.1e}",
            )
        )
    else:
        rows.append(
            ("onnxruntime: not installed (pip install keras-lstm[onnx])", float("nan"), "-")
        )
    rows.append(("Keras, tf.function", _keras_latency(bundle.model, window, False), "-"))
    rows.append(
        (
            "Keras, tf.function(jit_compile=True) (XLA)",
            _keras_latency(bundle.model, window, True),
            "-",
        )
    )
    print("| runtime | ms | max abs err vs Keras |")
    print("| --- | ---: | ---: |")
    for name, ms, error in rows:
        print(f"| {name} | {ms:.3f} | {error} |")


if __name__ == "__main__":
    raise SystemExit(main())
