"""`keras-lstm tune CONFIG [--out DIR] [--overwrite] [--chief HOST:PORT [--worker ID]]`.

Alone, the command runs the whole search in this process. With `--chief HOST:PORT` it runs
Keras Tuner's chief (the oracle, serving trials over gRPC on HOST:PORT and writing the results
when every trial is done); with `--worker ID --chief HOST:PORT` it runs trials for that chief.
Every process of one search uses the same `--out` folder (shared storage across machines).
Only the launcher may clean that folder: `--overwrite` is refused in distributed mode, because
several processes deleting it at once race. Each distributed process uses one CPU thread so
that a chief and workers share a small machine fairly.
"""

from __future__ import annotations

import os

from keras_lstm.config import load_config
from keras_lstm.errors import ConfigError
from keras_lstm.files import check_output_folder

DEFAULT_HOST = "127.0.0.1"


def add_command(commands) -> None:
    """Declare `keras-lstm tune` and its arguments on the CLI's subcommands.

    Example:
        >>> import argparse
        >>> commands = argparse.ArgumentParser().add_subparsers(dest="command")
        >>> add_command(commands)
    """
    tune = commands.add_parser(
        "tune",
        help="Keras Tuner search scored by walk-forward CV",
        description="Search the config's tuning.search_space with Keras Tuner; the objective is "
        "the mean validation loss over the walk-forward folds. Writes the trials table, the "
        "best config and (by default) the refitted bundle.",
    )
    tune.add_argument("config", help="YAML or JSON config file")
    tune.add_argument("--out", default="tune", help="output folder (default: %(default)s)")
    tune.add_argument("--overwrite", action="store_true", help="start afresh instead of resuming")
    tune.add_argument(
        "--chief",
        metavar="HOST:PORT",
        help="distributed tuning: the chief's address (run the chief with this flag alone)",
    )
    tune.add_argument("--worker", metavar="ID", help="distributed tuning: run as worker ID")
    tune.set_defaults(run=run_tune)


def parse_address(address: str) -> tuple[str, int]:
    """`HOST:PORT` (or `:PORT`, `PORT`: host 127.0.0.1) as `(host, port)`.

    Raises:
        ConfigError: no valid port.
    """
    host, _, port = address.rpartition(":")
    host = host.strip("[]") or DEFAULT_HOST
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(
            f"--chief must be HOST:PORT with a port in 1-65535, e.g. 127.0.0.1:8000. "
            f"Received: --chief {address}"
        )
    return host, int(port)


def distributed_environment(chief: str, worker: str | None) -> dict[str, str]:
    """The Keras Tuner environment variables of a chief (`worker` None) or of worker `worker`."""
    host, port = parse_address(chief)
    if worker is not None and (not str(worker) or not str(worker).replace("-", "").isalnum()):
        raise ConfigError(
            f"--worker must be a short id of letters and digits, e.g. 0. Received: --worker "
            f"{worker!r}"
        )
    return {
        "KERASTUNER_TUNER_ID": "chief" if worker is None else f"tuner{worker}",
        "KERASTUNER_ORACLE_IP": host,
        "KERASTUNER_ORACLE_PORT": str(port),
    }


def one_thread() -> None:
    """Give TensorFlow one intra-op and one inter-op thread (before it runs any op)."""
    import tensorflow as tf

    try:
        tf.config.threading.set_intra_op_parallelism_threads(1)
        tf.config.threading.set_inter_op_parallelism_threads(1)
    except RuntimeError:  # TensorFlow already ran ops in this process: keep its setting
        pass


def run_tune(args) -> int:
    """Run `keras-lstm tune` from parsed arguments."""
    config = load_config(args.config)
    if args.worker is not None and not args.chief:
        raise ConfigError("--worker ID needs the chief's address: add --chief HOST:PORT.")
    if args.chief:
        if args.overwrite:
            raise ConfigError(
                "--overwrite is refused in a distributed search: several processes would delete "
                f"{args.out!r} at once. Remove the folder before starting the chief and workers."
            )
        os.environ.update(distributed_environment(args.chief, args.worker))
        one_thread()
    # Keras Tuner and TensorFlow take seconds to import (not for `--help`), and a distributed
    # process must set its environment and threads above before they load
    from tuning.tuner import tune

    role = "worker" if args.worker is not None else "chief" if args.chief else None
    if role:
        print(
            f"Tuning as {role} ({os.environ['KERASTUNER_TUNER_ID']}) with the oracle on "
            f"{args.chief}; output in {args.out}",
            flush=True,
        )
    out = check_output_folder(args.out)
    result = tune(config, out_dir=out, overwrite=args.overwrite, verbose=1)
    if result is None:
        print(f"Worker {args.worker}: no trials left; the chief writes the results.")
        return 0
    print(f"\n{closing_line(result.files)}")
    return 0


def closing_line(files: dict) -> str:
    """The last line of `keras-lstm tune`: where the best model is, ready for `predict` and
    `export` (or, without `tuning.refit`, the config to train it with).

    Example:
        >>> closing_line({"best_config": "tune/best_config.yaml", "bundle": "tune/best/bundle"})
        'Best bundle: tune/best/bundle (keras-lstm predict / export take it as it is)'
        >>> closing_line({"best_config": "tune/best_config.yaml"})
        'Best config: tune/best_config.yaml (tuning.refit is off: keras-lstm train it)'
    """
    if "bundle" in files:
        return f"Best bundle: {files['bundle']} (keras-lstm predict / export take it as it is)"
    return f"Best config: {files['best_config']} (tuning.refit is off: keras-lstm train it)"
