"""Seeding and the distribution strategy: process-wide settings a fit depends on."""

from __future__ import annotations

from keras_lstm.config import Config
from keras_lstm.errors import ConfigError

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
    import keras
    import tensorflow as tf

    keras.utils.set_random_seed(seed)
    tf.config.experimental.enable_op_determinism()


def resolve_strategy(config: Config):
    """The `tf.distribute` strategy `training.strategy` asks for.

    `auto`: `MirroredStrategy` over every GPU when more than one is visible, else the default
    strategy. `mirrored`: `MirroredStrategy` over every GPU, or over every logical CPU device
    when there is no GPU. `default`: no distribution. `batch_size` is the global batch, split
    across replicas.

    Raises:
        ConfigError: `multi_worker` (see `MULTI_WORKER_UNSUPPORTED`).
    """
    import tensorflow as tf

    name = config.training.strategy
    gpus = tf.config.list_logical_devices("GPU")
    if name == "multi_worker":
        raise ConfigError(MULTI_WORKER_UNSUPPORTED)
    if name == "default" or (name == "auto" and len(gpus) < 2):
        return tf.distribute.get_strategy()
    devices = [d.name for d in gpus] or [d.name for d in tf.config.list_logical_devices("CPU")]
    return tf.distribute.MirroredStrategy(devices=devices)
