"""`keras-lstm train` and `keras-lstm predict`."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from keras_lstm.config import atomic_write_text, load_config
from keras_lstm.errors import DataError


def _fmt(value) -> str:
    if value is None:
        return "-"
    return f"{value:.4g}"


def summary_table(metrics: dict, task: str) -> str:
    """A plain-text table: each fold, mean ± std, test, and the baselines on the test part."""
    names = (
        ["rmse", "mae", "smape", "mase", "r2"]
        if task == "regression"
        else ["accuracy", "f1_macro", "auc", "log_loss"]
    )
    rows = [["", *names]]
    for fold in metrics["cv"]["folds"]:
        rows.append([f"fold {fold['fold'] + 1}", *[_fmt(fold.get(n)) for n in names]])
    mean, std = metrics["cv"]["mean"], metrics["cv"]["std"]
    rows.append(["cv mean ± std", *[f"{_fmt(mean.get(n))} ± {_fmt(std.get(n))}" for n in names]])
    rows.append(["test", *[_fmt(metrics["test"].get(n)) for n in names]])
    for name, values in metrics["baselines"].items():
        rows.append([f"{name} (test)", *[_fmt(values["test"].get(n)) for n in names]])
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    table = "\n".join(
        "  ".join(c.rjust(w) for c, w in zip(row, widths, strict=True)) for row in rows
    )
    return table + "\n" + verdict_line(metrics)


def verdict_line(metrics: dict) -> str:
    """One line saying plainly whether the model beats the best baseline on CV and test."""
    comparison = metrics.get("baseline_comparison") or {}
    parts, losing = [], []
    for part in ("cv", "test"):
        c = comparison.get(part)
        if c is None:
            continue
        relation = "beats" if c["beats"] else "LOSES TO"
        parts.append(
            f"{part}: {relation} {c['best_baseline']} ({c['metric']} {_fmt(c['model'])} vs "
            f"{_fmt(c['baseline'])})"
        )
        if not c["beats"]:
            losing.append(part)
    if not parts:
        return "No baseline to compare with."
    if losing:
        head = (
            f"WARNING: the model does not beat the best baseline on {' and '.join(losing)}; "
            "a baseline is the better forecaster here."
        )
    else:
        head = "The model beats every baseline on CV and test."
    return f"{head} {'; '.join(parts)}."


def train_and_save(config, out: Path, verbose="auto", data=None):
    """Fit a config (on `data`, default `config.data.path`), write the bundle, `metrics.json`
    and plots under `out`; return the bundle."""
    from keras_lstm.training import fit

    bundle = fit(config, data, out_dir=out, verbose=verbose)
    bundle.save(out / "bundle")
    atomic_write_text(out / "metrics.json", json.dumps(bundle.metrics, indent=2))
    return bundle


def run_train(args) -> int:
    """`keras-lstm train CONFIG --out DIR`."""
    config = load_config(args.config)
    out = Path(args.out)
    bundle = train_and_save(config, out, verbose=1)
    print()
    print(summary_table(bundle.metrics, config.task))
    print(f"\nBundle: {out / 'bundle'}\nMetrics: {out / 'metrics.json'}")
    return 0


def run_predict(args) -> int:
    """`keras-lstm predict BUNDLE_OR_TFLITE --input CSV [--output CSV]`."""
    source = Path(args.model)
    if not Path(args.input).is_file():
        raise DataError(f"Input file {args.input!r} does not exist. Check --input.")
    if source.suffix == ".tflite":
        from tflite_export import LitePredictor

        predictions = lite_predictions(LitePredictor(source), args.input)
    else:
        from keras_lstm.bundle import Bundle

        predictions = Bundle.load(source).predict(args.input)
    text = predictions.to_csv(index_label=predictions.index.name or "time")
    if args.output:
        atomic_write_text(args.output, text)
        print(f"{len(predictions)} predictions written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def lite_predictions(predictor, source):
    """`LitePredictor` output as the DataFrame `Bundle.predict` returns: one row per window,
    indexed by the time of the first predicted step, columns named after the targets."""
    import numpy as np
    import pandas as pd

    from keras_lstm.bundle import _times_after, prediction_frame
    from keras_lstm.data import read_frame
    from keras_lstm.data.loading import _parse_times

    frame = read_frame(source)
    pre = predictor.preprocessing
    values = predictor.predict(frame)
    time_column = pre.get("time_column")
    if time_column and time_column in frame.columns:
        index = pd.Index(_parse_times(frame, time_column), name=time_column)
    else:
        index = pd.RangeIndex(len(frame))
    times = _times_after(index, np.arange(predictor.lookback, len(frame) + 1))
    return prediction_frame(pre, values, times)
