"""`keras-lstm train`, `predict` and `explain`: the CLI layer over `keras_lstm.pipeline`.

Both check what the user gave before they import Keras (seconds): a config error, or predicting
with a `.tflite` file, never loads Keras or TensorFlow.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from keras_lstm.config import load_config
from keras_lstm.errors import DataError
from keras_lstm.files import atomic_write_text, check_output_folder, missing_file
from keras_lstm.startup import import_keras_quietly


def run_train(args) -> int:
    """`keras-lstm train CONFIG --out DIR`."""
    from keras_lstm.training.prepare import prepare

    config = load_config(args.config)
    if args.epochs is not None:
        config = config.replace(**{"training.epochs": args.epochs})  # checked as the key is
    out = check_output_folder(args.out)
    prepared = prepare(config)  # data errors before Keras is imported
    import_keras_quietly()
    from keras_lstm.pipeline import check_run_folder, summary_table, train_and_save

    check_run_folder(config, out, overwrite=getattr(args, "overwrite", False))

    bundle = train_and_save(config, out, verbose=progress_verbosity(), prepared=prepared)
    print()
    print(summary_table(bundle.metrics, config.task))
    plots = ", ".join(str(p) for p in sorted((out / "bundle").glob("*.png")))
    print(f"\nBundle: {out / 'bundle'}\nMetrics: {out / 'metrics.json'}\nPlots: {plots}")
    return 0


def _check_input(path: str) -> None:
    problem = missing_file(path)
    if problem:
        raise DataError(f"Input file {path!r} {problem}. Check --input (a CSV file).")


def _times_as_written(predictions, source: str):
    """`predictions` with its times written the way the input CSV writes them (`1993Q1` stays
    `1993Q1`, not `1993-01-01 00:00:00`): `keras_lstm.data.outputs.format_times_like`."""
    import pandas as pd

    from keras_lstm.data.outputs import format_times_like

    name = predictions.index.name
    if not isinstance(predictions.index, pd.DatetimeIndex) or name is None:
        return predictions
    try:
        examples = pd.read_csv(source, usecols=[name], dtype=str, nrows=100)[name].dropna()
    except (ValueError, OSError):  # read before; a column it lacks leaves the times as they are
        return predictions
    out = predictions.copy()
    out.index = format_times_like(predictions.index, examples.tolist())
    return out


def progress_verbosity(stream=None) -> int:
    """Keras' `verbose` for `fit`: a live progress bar on a terminal (1), one plain line per
    epoch when the output goes to a file or a pipe (2), so logs hold no ANSI escapes."""
    stream = sys.stdout if stream is None else stream
    isatty = getattr(stream, "isatty", None)
    return 1 if isatty is not None and isatty() else 2


def run_predict(args) -> int:
    """`keras-lstm predict BUNDLE_OR_TFLITE --input CSV [--output CSV]`."""
    source = Path(args.model)
    _check_input(args.input)
    if source.suffix == ".tflite":
        from tflite_export.predictor import LitePredictor

        predictions = LitePredictor(source).predict_frame(args.input)
    else:
        import_keras_quietly()
        from keras_lstm.bundle import Bundle

        predictions = Bundle.load(source).predict(args.input)
    predictions = _times_as_written(predictions, args.input)
    # without the time column in the input, the index is the position of the row each
    # prediction is for: labelled so, not as a time
    text = predictions.to_csv(index_label=predictions.index.name or "row")
    if args.output:
        atomic_write_text(args.output, text)
        print(f"{len(predictions)} predictions written to {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def run_explain(args) -> int:
    """`keras-lstm explain BUNDLE [--input CSV] --out DIR [--repeats N] [--no-lags] [--shap
    [--per-forecast]]`."""
    if args.input is not None:
        _check_input(args.input)
    if args.repeats < 1:
        raise DataError(f"--repeats must be at least 1; received {args.repeats}.")
    if args.per_forecast and not args.shap:
        raise DataError("--per-forecast keeps each forecast's SHAP attributions: add --shap.")
    if args.shap and "keras" not in sys.modules:
        # SHAP's gradients are TensorFlow's: the bundle loads on either backend
        os.environ["KERAS_BACKEND"] = "tensorflow"
    import_keras_quietly()
    from keras_lstm.bundle import Bundle
    from keras_lstm.explanation import explain

    bundle = Bundle.load(args.bundle)
    result = explain(
        bundle,
        args.input,
        repeats=args.repeats,
        lags=not args.no_lags,
        shap=args.shap,
        per_forecast=args.per_forecast,
    )
    written = result.save(args.out)
    print(result.summary())
    print(f"Written: {', '.join(str(p) for p in written)}")
    return 0
