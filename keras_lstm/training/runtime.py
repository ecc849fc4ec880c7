"""Seeding, the distribution strategy and the compilation cache: process-wide settings a fit
depends on.

Training runs on the process's Keras backend (`keras_lstm.startup.choose_keras_backend`: JAX
when installed, unless `KERAS_BACKEND` says otherwise). TensorFlow's distribution strategies
apply on the TensorFlow backend only.
"""

from __future__ import annotations

import contextlib
import os
import sys
from pathlib import Path

from keras_lstm.config import Config
from keras_lstm.errors import ConfigError
from keras_lstm.startup import import_tensorflow_quietly, tensorflow_installed

MULTI_WORKER_UNSUPPORTED = (
    "`training.strategy: multi_worker` is not supported: Keras 3's model.fit under "
    "MultiWorkerMirroredStrategy fails ('Attempt to convert a value (PerReplica...)', keras#20585, "
    "tensorflow#72388) and we do not patch Keras' private code. To use several machines, run a "
    "distributed search with `keras-lstm tune CONFIG --chief HOST:PORT` and `--worker ID`; on one "
    "machine with several GPUs use `mirrored`."
)


def seed_everything(seed: int | None) -> None:
    """Seed Python, NumPy and Keras, and make TensorFlow ops deterministic.

    Two runs of the same config with the same seed then give identical metrics. Op determinism
    is process-wide and stays on once set.
    """
    if seed is None:
        return
    if "tensorflow" not in sys.modules and tensorflow_installed():
        # Keras seeds TensorFlow too on every backend, importing it: without its notices
        import_tensorflow_quietly()
    import keras

    keras.utils.set_random_seed(seed)
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()


def resolve_strategy(config: Config):
    """The `tf.distribute` strategy `training.strategy` asks for.

    `auto`: `MirroredStrategy` over every GPU when more than one is visible, else the default
    strategy. `mirrored`: `MirroredStrategy` over every GPU, or over every logical CPU device
    when there is no GPU. `default`: no distribution. `batch_size` is the global batch, split
    across replicas.

    On another Keras backend (JAX) `auto` and `default` train on one device without a strategy
    (an object with `scope()` and `num_replicas_in_sync == 1`).

    Raises:
        ConfigError: `multi_worker` (see `MULTI_WORKER_UNSUPPORTED`), or `mirrored` on a
            backend other than TensorFlow.
    """
    import keras

    name = config.training.strategy
    if keras.backend.backend() != "tensorflow":
        if name == "multi_worker":
            raise ConfigError(MULTI_WORKER_UNSUPPORTED)
        if name == "mirrored":
            raise ConfigError(
                "`training.strategy: mirrored` is TensorFlow's MirroredStrategy, and this "
                f"process trains on Keras' {keras.backend.backend()!r} backend. Run with "
                "KERAS_BACKEND=tensorflow (and a TensorFlow build that sees your GPUs), or "
                "set `training.strategy: auto`."
            )
        return OneDevice()
    import tensorflow as tf

    gpus = tf.config.list_logical_devices("GPU")
    if name == "multi_worker":
        raise ConfigError(MULTI_WORKER_UNSUPPORTED)
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)


# `training.fold_jobs: 0` runs folds in parallel workers when the cross-validation would run at
# least this many time steps of training windows through the model (epochs x windows x steps
# per window, summed over the folds): about 40 s of fitting on the 2-core machine. Measured
# there (BENCHMARKS.md, Speed, "Folds in parallel"): taylor (78M) 338 s in parallel against
# 443 s one at a time, Seattle (4M) 23.6 s against 19.1 s (workers' start and compilation
# cost more than they save on small data)
PARALLEL_MIN_STEP_PASSES = 10_000_000


def available_cores() -> int:
    """CPU cores this process may run on (its affinity mask where the system has one)."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)


def has_accelerator() -> bool:
    """Whether the Keras backend sees a GPU (or another accelerator) to train on."""
    import keras

    if keras.backend.backend() == "jax":
        import jax

        return jax.default_backend() != "cpu"
    if keras.backend.backend() == "tensorflow":
        import tensorflow as tf

        return bool(tf.config.list_physical_devices("GPU"))
    return False


def fold_jobs(config: Config, step_passes: int, folds: int) -> int:
    """How many folds to fit at once (`training.fold_jobs`).

    A number given is used (at most one per fold). `0` (auto): one per available core, at
    most one per fold, when nothing speaks against it: `fold_workers: never`, a GPU (the folds
    would share its memory) or a distribution strategy, or folds too small to repay a
    worker's start (under `PARALLEL_MIN_STEP_PASSES` time steps through the model).

    Example:
        >>> from keras_lstm.config import load_config
        >>> fold_jobs(load_config({"training": {"fold_jobs": 3}}), 10, 2)
        2
    """
    training = config.training
    if training.fold_workers == "never" or folds <= 1:
        return 1
    if training.fold_jobs:
        return min(training.fold_jobs, folds)
    if step_passes < PARALLEL_MIN_STEP_PASSES or training.strategy not in ("auto", "default"):
        return 1
    if has_accelerator():
        return 1
    return min(available_cores(), folds)


class OneDevice:
    """No distribution: what `resolve_strategy` gives on backends without `tf.distribute`."""

    num_replicas_in_sync = 1

    def scope(self):
        return contextlib.nullcontext()


CACHE_VARIABLE = "KERAS_LSTM_COMPILATION_CACHE"


def use_compilation_cache() -> Path | None:
    """On the JAX backend, keep compiled training, validation and prediction steps on disk, so
    the six fits of a run (and later runs) of one architecture and batch shape compile once.

    The folder is `KERAS_LSTM_COMPILATION_CACHE` when set (`off` turns the cache off), else
    `keras-lstm/jax-<version>` in the user's cache folder (`XDG_CACHE_HOME`, default
    `~/.cache`). It holds only XLA executables keyed by the program's hash, never data.
    Returns the folder, or None when there is no cache (another backend, or `off`).
    """
    import keras

    if keras.backend.backend() != "jax":
        return None
    import jax

    chosen = os.environ.get(CACHE_VARIABLE, "")
    if chosen.lower() == "off":
        return None
    if chosen:
        folder = Path(chosen)
    else:
        base = Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache")
        folder = base / "keras-lstm" / f"jax-{jax.__version__}"
    if jax.config.jax_compilation_cache_dir != str(folder):
        jax.config.update("jax_compilation_cache_dir", str(folder))
        # LSTM steps compile in 0.3-3 s each: keep every one, however quick
        jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
        jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder
