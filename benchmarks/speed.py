"""Where `keras-lstm train`'s time goes, per fit, on each backend, beside one NeuralForecast fit.

For each series of the development suite (and the GunPoint and ArrowHead UCR sets), a fresh
process runs what `keras-lstm train CONFIG` runs (`keras_lstm.commands.run_train`) with the
defaults, once per Keras backend, and reports its wall time split into:

- `import`: process start to keras-lstm, Keras and the backend imported;
- `data`: loading, checks, splits, scalers and windows (`prepare`, `Prepared.fold_data`);
- `build`: building and compiling the Keras models;
- `compile`: the first training step and the first validation step of every fit (tracing and
  XLA / graph compilation);
- `steps`: every other training step (the forward and backward pass, the optimizer);
- `validation`: every other validation pass;
- `callbacks`: the epoch-end callbacks (early stopping, learning-rate schedule, backups);
- `loop`: the rest of `model.fit` (batches gathered from the window views, Keras' loop);
- `scoring`: validation and test predictions in real units, metrics, baselines;
- `other`: the rest (saving the bundle, plots, the summary).

With `--neuralforecast` (the `bench` extra: `pip install "torch==2.13.0" -e ".[bench]"`), one
NeuralForecast `LSTM(h=1, input_size=lookback, max_steps=1000)` fit on the same rows before the
test part runs in its own process beside each forecasting series, and the table shows the ratio.
Runs are sequential, so ratios in one table share the machine's load. The JAX backend keeps
compiled steps in a persistent cache (`keras_lstm.training.runtime.use_compilation_cache`), so
a second run of an architecture compiles less than the first: `--cold-cache` gives each run an
empty cache, as a user's first run has.

Run from the repository root:
    python benchmarks/speed.py                                    # everything, both backends
    python benchmarks/speed.py --series nile wineind --backends jax --neuralforecast
    python benchmarks/speed.py --series gunpoint --backends tensorflow jax --jsonl speed.jsonl
    python benchmarks/speed.py --series nile --backends jax --cold-cache     # a first run
    python benchmarks/speed.py --step                              # ms per step vs arithmetic
    python benchmarks/speed.py --cli run/model-int8.tflite rows.csv  # CLI answers, median of 5
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parent
FORECASTS = ["seattle", "wineind", "ausbeer", "macro_realgdp", "nile", "elnino", "taylor"]
UCR = ["gunpoint", "arrowhead"]
PARTS = [
    "import",
    "data",
    "build",
    "compile",
    "steps",
    "validation",
    "callbacks",
    "loop",
    "scoring",
    "other",
]


def _config(name: str, seed: int, overrides: dict) -> dict:
    sys.path.insert(0, str(BENCHMARKS))
    from accuracy import CLASSIFIERS, SHARED, classifier_config, series_config

    if name in CLASSIFIERS or name in UCR:
        return classifier_config(name, seed, SHARED, overrides)
    return series_config(name, seed, SHARED, overrides)


class _Clock:
    """Seconds per part, added up over the run."""

    def __init__(self):
        self.parts = dict.fromkeys(PARTS, 0.0)
        self.fits: list[dict] = []

    def timed(self, part: str, function):
        def wrapper(*args, **kwargs):
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.parts[part] += time.perf_counter() - start

        return wrapper


def _profilers(clock: _Clock, tag: str):
    """Two callbacks, put first and last in a fit's list: the first times steps and validation
    passes, the gap between the first's and the last's `on_epoch_end` is the callbacks' time."""
    import keras

    fit = {"tag": tag, "compile": 0.0, "steps": 0.0, "validation": 0.0, "callbacks": 0.0}
    fit.update(train_steps=0, epochs=0, fit_seconds=0.0)
    marks: dict = {}

    class First(keras.callbacks.Callback):
        def on_train_begin(self, logs=None):
            marks["fit"] = time.perf_counter()

        def on_train_batch_begin(self, batch, logs=None):
            marks["batch"] = time.perf_counter()

        def on_train_batch_end(self, batch, logs=None):
            seconds = time.perf_counter() - marks["batch"]
            fit["compile" if fit["train_steps"] == 0 else "steps"] += seconds
            fit["train_steps"] += 1

        def on_test_begin(self, logs=None):
            marks["test"] = time.perf_counter()
            marks["test_batches"] = 0

        def on_test_batch_begin(self, batch, logs=None):
            marks["test_batch"] = time.perf_counter()

        def on_test_batch_end(self, batch, logs=None):
            if not marks.get("test_compiled"):
                marks["test_compiled"] = True
                seconds = time.perf_counter() - marks["test_batch"]
                fit["compile"] += seconds
                fit["validation"] -= seconds

        def on_test_end(self, logs=None):
            fit["validation"] += time.perf_counter() - marks["test"]

        def on_epoch_end(self, epoch, logs=None):
            marks["epoch_end"] = time.perf_counter()

    class Last(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            fit["callbacks"] += time.perf_counter() - marks["epoch_end"]
            fit["epochs"] += 1

        def on_train_end(self, logs=None):
            fit["fit_seconds"] = time.perf_counter() - marks["fit"]
            fit["loop"] = fit["fit_seconds"] - sum(
                fit[k] for k in ("compile", "steps", "validation", "callbacks")
            )
            clock.fits.append(fit)

    return First(), Last()


def child(name: str, seed: int, overrides: dict, out: Path) -> None:
    """One `keras-lstm train` run of `name` in this process, profiled; writes JSON to `out`."""
    started = time.perf_counter()
    import keras

    import keras_lstm.training.loop as loop
    from keras_lstm.commands import run_train
    from keras_lstm.config import load_config
    from keras_lstm.training.prepare import Prepared

    clock = _Clock()
    clock.parts["import"] = time.perf_counter() - started
    loop.prepare = clock.timed("data", loop.prepare)
    Prepared.fold_data = clock.timed("data", Prepared.fold_data)
    loop.build_model = clock.timed("build", loop.build_model)
    loop.evaluate = clock.timed("scoring", loop.evaluate)
    callbacks = loop._callbacks

    def profiled_callbacks(config, budget, validation, tag, out_dir, *rest):
        first, last = _profilers(clock, tag)
        made, backup = callbacks(config, budget, validation, tag, out_dir, *rest)
        return [first, *made, last], backup

    loop._callbacks = profiled_callbacks
    with tempfile.TemporaryDirectory() as folder:
        config_path = Path(folder, "config.json")
        raw = _config(name, seed, overrides)
        config_path.write_text(json.dumps(raw))
        run = Path(folder, "run")
        with open(os.devnull, "w") as quiet:
            stdout, sys.stdout = sys.stdout, quiet
            try:
                run_train(argparse.Namespace(config=str(config_path), out=str(run), epochs=None))
            finally:
                sys.stdout = stdout
        metrics = json.loads((run / "metrics.json").read_text())
    wall = time.perf_counter() - started
    for part in ("compile", "steps", "validation", "callbacks", "loop"):
        clock.parts[part] = sum(fit[part] for fit in clock.fits)
    clock.parts["other"] = wall - sum(clock.parts.values())
    lookback = load_config(raw).data.lookback
    test = metrics["test"]
    out.write_text(
        json.dumps(
            {
                "series": name,
                "backend": keras.backend.backend(),
                "seed": seed,
                "wall": wall,
                "parts": clock.parts,
                "fits": clock.fits,
                "lookback": lookback,
                "score": test.get("rmse", test.get("accuracy")),
                "fold_best_epochs": metrics["training"]["fold_best_epochs"],
            }
        )
    )


def neuralforecast_child(name: str, out: Path) -> None:
    """One NeuralForecast LSTM fit on the rows before `name`'s test part; writes JSON."""
    started = time.perf_counter()
    import logging

    import pandas as pd
    from neuralforecast import NeuralForecast
    from neuralforecast.models import LSTM

    from keras_lstm.config import load_config
    from keras_lstm.data import load_table
    from keras_lstm.data.splits import test_start_row

    logging.getLogger("pytorch_lightning").setLevel(logging.ERROR)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)
    config = load_config(_config(name, 0, {}))
    table = load_table(config.data.path, config.data)
    values = table.targets[:, 0].astype("float64")
    start = test_start_row(len(values), config.data)
    frame = pd.DataFrame({"unique_id": name, "ds": range(start), "y": values[:start]})
    model = LSTM(
        h=1,
        input_size=config.data.lookback,
        max_steps=1000,
        enable_progress_bar=False,
        enable_model_summary=False,
        logger=False,
    )
    imported = time.perf_counter()
    NeuralForecast(models=[model], freq=1).fit(frame)
    fitted = time.perf_counter()
    out.write_text(json.dumps({"series": name, "fit": fitted - imported, "wall": fitted - started}))


def _spawn(arguments: list[str], env: dict) -> dict:
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder, "row.json")
        command = [sys.executable, __file__, *arguments, "--result", str(out)]
        done = subprocess.run(command, env=env, capture_output=True, text=True)
        if done.returncode != 0 or not out.is_file():
            raise RuntimeError(f"{' '.join(arguments)} failed:\n{done.stderr[-3000:]}")
        return json.loads(out.read_text())


def run(name: str, backend: str, seed: int, overrides: dict, cold: bool = False) -> dict:
    """One profiled `train` of `name` in a fresh process; `cold`: with an empty compilation
    cache (a user's first run of an architecture), else the user's cache as it is."""
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    arguments = ["--child", name, "--seed", str(seed), "--set-json", json.dumps(overrides)]
    with tempfile.TemporaryDirectory() as cache:
        if cold:
            env["KERAS_LSTM_COMPILATION_CACHE"] = cache
        started = time.perf_counter()
        row = _spawn(arguments, env)
        row["process"] = time.perf_counter() - started
    row["cache"] = "cold" if cold else "warm"
    return row


def run_neuralforecast(name: str) -> dict:
    return _spawn(["--neuralforecast-child", name], dict(os.environ))


def table(rows: list[dict]) -> str:
    head = ["series", "backend", "train (s)", *PARTS, "fits", "steps", "ms/step", "score"]
    head += ["NF fit (s)", "train / NF"]
    lines = ["| " + " | ".join(head) + " |", "| --- | --- |" + " ---: |" * (len(head) - 2)]
    for row in rows:
        steps = sum(fit["train_steps"] for fit in row["fits"])
        ms = 1000 * row["parts"]["steps"] / max(1, steps - len(row["fits"]))
        nf = row.get("neuralforecast")
        backend = row["backend"] + (", cold cache" if row.get("cache") == "cold" else "")
        cells = [row["series"], backend, f"{row['process']:.1f}"]
        cells += [f"{row['parts'][part]:.1f}" for part in PARTS]
        cells += [str(len(row["fits"])), str(steps), f"{ms:.2f}", f"{row['score']:.4g}"]
        cells += [f"{nf['fit']:.1f}", f"{row['process'] / nf['fit']:.2f}"] if nf else ["", ""]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def step_table(backends: list[str]) -> str:
    """ms per training step of the default forecaster's stack (LSTM(64) -> LSTM(32) ->
    Dense(1), lookback 24, batch 25, 400 windows) per backend, beside the arithmetic limit."""
    lines = ["| backend | compile (s) | ms per step | arithmetic limit (ms) | ratio |"]
    lines.append("| --- | ---: | ---: | ---: | ---: |")
    flops = step_flops(24, 1, (64, 32), 25)
    for backend in backends:
        env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
        row = _spawn(["--step-child"], env)
        limit = 1000 * flops / 30e9  # 20-40 GFLOP/s on one core: the middle
        lines.append(
            f"| {backend} | {row['compile']:.1f} | {row['ms']:.2f} | {limit:.1f} | "
            f"{row['ms'] / limit:.2f} |"
        )
    return "\n".join(lines)


def step_flops(lookback: int, features: int, units: tuple[int, ...], batch: int) -> float:
    """Forward-and-backward FLOPs of one step: per LSTM layer and time step, 4 gates of
    `(inputs + units) x units` multiply-adds; backward is twice the forward."""
    total, inputs = 0, features
    for size in units:
        total += lookback * 2 * 4 * (inputs + size) * size
        inputs = size
    return 3 * total * batch


def step_child(out: Path) -> None:
    """Time the default forecaster's training steps on the chosen backend."""
    import keras
    import numpy as np

    from keras_lstm.config import ModelConfig
    from keras_lstm.factory import build_model

    rng = np.random.default_rng(0)
    x = rng.normal(size=(400, 24, 1)).astype("float32")
    y = rng.normal(size=(400, 1, 1)).astype("float32")
    model = build_model(ModelConfig(linear_path=False), (24, 1), (1, 1), "regression")
    start = time.perf_counter()
    model.fit(x, y, batch_size=25, epochs=1, verbose=0)
    compiled = time.perf_counter() - start
    epochs = 10
    start = time.perf_counter()
    model.fit(x, y, batch_size=25, epochs=epochs, verbose=0)
    ms = 1000 * (time.perf_counter() - start) / (epochs * 16)
    out.write_text(json.dumps({"backend": keras.backend.backend(), "compile": compiled, "ms": ms}))


def cli_table(tflite: Path, rows: Path, repeats: int = 5) -> str:
    """Median seconds of `keras-lstm train` on a config with a misspelt key, on a config whose
    data file is missing, and of `keras-lstm predict model.tflite --input rows.csv`."""
    import statistics

    with tempfile.TemporaryDirectory() as folder:
        bad = Path(folder, "bad.yaml")
        bad.write_text("data:\n  targets: [y]\n  lookbak: 4\n")
        missing = Path(folder, "missing.yaml")
        missing.write_text("data:\n  path: nope.csv\n  targets: [y]\n")
        commands = {
            "train bad.yaml (misspelt key)": ["train", str(bad)],
            "train missing.yaml (no data file)": ["train", str(missing)],
            "predict model.tflite --input rows.csv": [
                "predict",
                str(tflite),
                "--input",
                str(rows),
                "--output",
                str(Path(folder, "p.csv")),
            ],
        }
        lines = ["| command | median of 5 (s) | exit code |", "| --- | ---: | ---: |"]
        for name, arguments in commands.items():
            seconds, code = [], None
            for _ in range(repeats):
                start = time.perf_counter()
                done = subprocess.run(
                    [sys.executable, "-m", "keras_lstm.cli", *arguments], capture_output=True
                )
                seconds.append(time.perf_counter() - start)
                code = done.returncode
            lines.append(f"| `keras-lstm {name}` | {statistics.median(seconds):.2f} | {code} |")
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", nargs="+", default=FORECASTS + UCR)
    parser.add_argument("--backends", nargs="+", default=["tensorflow", "jax"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE")
    parser.add_argument("--neuralforecast", action="store_true")
    parser.add_argument("--step", action="store_true", help="ms per step per backend only")
    parser.add_argument("--jsonl", type=Path, help="append each row to this file")
    parser.add_argument(
        "--cold-cache",
        action="store_true",
        help="each run with an empty compilation cache (a first run), not the user's",
    )
    parser.add_argument("--cli", nargs=2, type=Path, metavar=("TFLITE", "CSV"))
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--neuralforecast-child", help=argparse.SUPPRESS)
    parser.add_argument("--step-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--set-json", default="{}", help=argparse.SUPPRESS)
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child:
        child(args.child, args.seed, json.loads(args.set_json), args.result)
        return 0
    if args.neuralforecast_child:
        neuralforecast_child(args.neuralforecast_child, args.result)
        return 0
    if args.step_child:
        step_child(args.result)
        return 0
    if args.step:
        print(step_table(args.backends))
        return 0
    if args.cli:
        print(cli_table(*args.cli))
        return 0
    sys.path.insert(0, str(BENCHMARKS))
    from accuracy import _parse_overrides

    overrides = _parse_overrides(args.set)
    rows = []
    for name in args.series:
        nf = None
        if args.neuralforecast and name in FORECASTS:
            nf = run_neuralforecast(name)
        for backend in args.backends:
            row = run(name, backend, args.seed, overrides, cold=args.cold_cache)
            row["neuralforecast"] = nf
            rows.append(row)
            print(table([row]).splitlines()[-1], flush=True)
            if args.jsonl:
                with args.jsonl.open("a") as handle:
                    handle.write(json.dumps(row) + "\n")
    print()
    print(table(rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
