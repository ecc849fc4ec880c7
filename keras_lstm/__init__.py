"""keras-lstm: from a table of time series to a tuned, cross-validated Keras LSTM and a
quantized LiteRT file.

Example:
    >>> import keras_lstm
    >>> config = keras_lstm.load_config({"data": {"targets": ["y"]}})
    >>> config.model.cell
    'lstm'
"""

from keras_lstm.config import Config, load_config
from keras_lstm.errors import (
    BundleError,
    ConfigError,
    DataError,
    ExportError,
    KerasLSTMError,
    WorkerError,
)
from keras_lstm.startup import choose_keras_backend

__version__ = "0.1.0"

# the Keras backend is fixed when Keras is first imported: choose it before anything does
choose_keras_backend()

# Keras and TensorFlow take seconds to import: load the modules that need them on first use, so
# `keras-lstm --help` and config errors answer at once.
_LAZY = {
    "build_model": "keras_lstm.factory",
    "cross_validate": "keras_lstm.training",
    "fit": "keras_lstm.training",
    "Bundle": "keras_lstm.bundle",
    "explain": "keras_lstm.explanation",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_lstm' has no attribute {name!r}")


__all__ = [
    "Bundle",
    "BundleError",
    "Config",
    "ConfigError",
    "DataError",
    "ExportError",
    "KerasLSTMError",
    "WorkerError",
    "build_model",
    "cross_validate",
    "explain",
    "fit",
    "load_config",
]
