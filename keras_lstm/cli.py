"""The `keras-lstm` command line.

Every command validates its input first. A problem the user can fix (a `KerasLSTMError`) is
printed as one line on stderr with exit code 2; anything else exits with 1. `--debug` shows the
Python traceback.
"""

from __future__ import annotations

import argparse
import os
import sys

import tflite_export.cli as tflite_cli
import tuning.cli as tuning_cli
from keras_lstm.errors import KerasLSTMError
from keras_lstm.startup import import_tensorflow_quietly

# commands that always import TensorFlow (to convert to TFLite, or through Keras Tuner)
TENSORFLOW_COMMANDS = ("quickstart", "tune", "export")

# commands that resume from their output folder when run again
RESUMABLE_COMMANDS = ("quickstart", "train", "tune")

EXIT_BAD_INPUT = 2
EXIT_FAILURE = 1
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as a shell reports Ctrl-C
EXIT_TERMINATED = 143  # 128 + SIGTERM


class _Parser(argparse.ArgumentParser):
    """An `ArgumentParser` whose usage errors are one line on stderr (exit code 2), as the
    contract asks of every error; `--help` still prints the full usage."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(EXIT_BAD_INPUT, f"{self.prog}: error: {message}. See `{self.prog} --help`.\n")


def _parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog="keras-lstm",
        description="Train, tune and export Keras LSTM models for time series.",
    )
    parser.add_argument("--debug", action="store_true", help="show Python tracebacks on errors")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    quick = commands.add_parser(
        "quickstart",
        help="the main job on shipped data: cross-validate, test, refit, export int8, summarise",
        description="Forecast tomorrow's maximum temperature in Seattle from daily weather "
        "(data shipped with the package): walk-forward CV, held-out test beside naive "
        "baselines, refit, float32 and int8 TFLite export, and a summary.",
    )
    quick.add_argument(
        "--out", default="quickstart-run", help="output folder (default: %(default)s)"
    )
    quick.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="cap on epochs per fit (default 30; the KERAS_LSTM_QUICKSTART_EPOCHS "
        "environment variable also sets it)",
    )
    quick.add_argument(
        "--verbose",
        action="store_true",
        help="print Keras' line per epoch (default: one line per fit)",
    )

    train = commands.add_parser(
        "train",
        help="walk-forward CV, held-out test and refit; writes a bundle and metrics.json",
        description="Cross-validate the config's model walk-forward, evaluate once on the "
        "held-out test part beside naive baselines, refit on everything but the test part and "
        "write the bundle, metrics.json and plots to --out.",
    )
    train.add_argument("config", help="YAML or JSON config file")
    train.add_argument("--out", default="run", help="output folder (default: %(default)s)")
    train.add_argument(
        "--epochs",
        type=int,
        default=None,
        help="cap on epochs per fit, for a quick first run (sets training.epochs; default: "
        "the config's)",
    )
    train.add_argument(
        "--overwrite",
        action="store_true",
        help="replace a finished run of another config in --out (without it, such a folder is "
        "refused and left as it is)",
    )

    predict = commands.add_parser(
        "predict",
        help="predictions in real units for every complete window of a CSV",
        description="Predict with a bundle folder or a .tflite file: one prediction per "
        "complete window of the input CSV, in the data's own units.",
    )
    predict.add_argument(
        "model",
        metavar="BUNDLE_OR_TFLITE",
        help="bundle folder (or its run folder) or .tflite file",
    )
    predict.add_argument("--input", required=True, help="CSV with the training feature columns")
    predict.add_argument("--output", help="CSV to write (default: print to stdout)")

    explain = commands.add_parser(
        "explain",
        help="which input columns and lags drive a bundle's predictions (permutation importance)",
        description="Score the bundle's model on the held-out test part of its training data, "
        "then again with each input column (and, for a series, each lag of each column) "
        "shuffled across the test samples; write explain.json, importance.png and lags.png "
        "to --out and print the most important columns and lags.",
    )
    explain.add_argument("bundle", metavar="BUNDLE", help="bundle folder (or its run folder)")
    explain.add_argument("--input", help="the training data CSV (default: the config's data.path)")
    explain.add_argument("--out", required=True, help="folder to write the explanation into")
    explain.add_argument(
        "--repeats", type=int, default=5, help="shuffles per column (default: %(default)s)"
    )
    explain.add_argument(
        "--no-lags", action="store_true", help="skip the per-lag importance of a series"
    )
    explain.add_argument(
        "--shap",
        action="store_true",
        help="also SHAP attributions per (lag, column) of a series (shap.png; needs "
        "keras-lstm[explain]; runs Keras on the TensorFlow backend)",
    )
    explain.add_argument(
        "--per-forecast",
        action="store_true",
        help="with --shap, each test forecast's attributions in shap_per_forecast.csv",
    )

    quick.set_defaults(run=_run_quickstart)
    explain.set_defaults(run=_run_explain)
    train.set_defaults(run=_run_train)
    predict.set_defaults(run=_run_predict)
    # the packages above the core declare their own commands
    tuning_cli.add_command(commands)
    tflite_cli.add_command(commands)
    return parser


def help_markdown(width: int = 100) -> str:
    """Every command's `--help`, as Markdown (`docs/cli.md` holds it; a test keeps it equal)."""
    import contextlib

    before = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(width)  # argparse wraps help text to this width
    try:
        parser = _parser()
        sections = [("keras-lstm", parser.format_help())]
        with contextlib.suppress(AttributeError):
            actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
            for name, sub in actions[0].choices.items():
                sections.append((f"keras-lstm {name}", sub.format_help()))
    finally:
        if before is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = before
    return "".join(f"## `{title}`\n\n```text\n{text.rstrip()}\n```\n\n" for title, text in sections)


# The commands below import Keras and TensorFlow, which take seconds: loaded when a command
# runs, so `keras-lstm --help` and argument errors answer at once. `train` and `predict` check
# their config and input first and import Keras only then (`keras_lstm.commands`).
def _run_quickstart(args) -> int:
    from keras_lstm.quickstart import run_quickstart

    return run_quickstart(args)


def _run_train(args) -> int:
    from keras_lstm.commands import run_train

    return run_train(args)


def _run_predict(args) -> int:
    from keras_lstm.commands import run_predict

    return run_predict(args)


def _run_explain(args) -> int:
    from keras_lstm.commands import run_explain

    return run_explain(args)


class _Terminated(KeyboardInterrupt):
    """SIGTERM, raised where the program is, so that cleanup runs (temporary files removed,
    fold workers ended) and the run can resume from its last checkpoint."""


def _on_sigterm(signum, frame):
    workers = sys.modules.get("keras_lstm.training.workers")  # only if folds run in workers
    if workers is not None:
        workers.stop_workers()
    raise _Terminated()


def _catch_sigterm() -> None:
    import signal
    import threading

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _on_sigterm)


def main(argv: list[str] | None = None) -> int:
    """Entry point of the `keras-lstm` console script."""
    args = _parser().parse_args(argv)
    _catch_sigterm()
    # TensorFlow's C++ runtime logs harmless notices at every level below 3; Python errors are
    # still raised and reported below.
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    if not args.debug and args.command in TENSORFLOW_COMMANDS:
        import_tensorflow_quietly()
    try:
        return args.run(args) or 0
    except KerasLSTMError as err:
        if args.debug:
            raise
        message = " ".join(str(err).split())
        print(f"keras-lstm {args.command}: error: {message}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt as err:
        terminated = isinstance(err, _Terminated)
        resume = (
            " Finished folds and the last checkpoint are kept: run the same command to resume."
            if args.command in RESUMABLE_COMMANDS
            else ""
        )
        print(
            f"keras-lstm {args.command}: {'terminated (SIGTERM)' if terminated else 'interrupted'}."
            + resume,
            file=sys.stderr,
        )
        return EXIT_TERMINATED if terminated else EXIT_INTERRUPTED
    except Exception as err:  # anything unexpected: one line, no traceback unless --debug
        if args.debug:
            raise
        print(
            f"keras-lstm {args.command}: unexpected error ({type(err).__name__}): {err}. "
            "Run again with --debug for the traceback.",
            file=sys.stderr,
        )
        return EXIT_FAILURE


if __name__ == "__main__":
    sys.exit(main())
