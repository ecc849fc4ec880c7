"""Training: walk-forward cross-validation, the refit and the held-out test.

`prepare` (loading, checks, splits, scalers, windows) needs no Keras, so the CLI finds data
errors before it imports Keras; the names that need Keras load on first use.
"""

import importlib

# imported here, not lazily: the function `prepare` must shadow its module's name
from keras_lstm.training.prepare import FoldData, Prepared, prepare  # noqa: F401

_LAZY = {
    "CVResult": "keras_lstm.training.loop",
    "FoldResult": "keras_lstm.training.loop",
    "cross_validate": "keras_lstm.training.loop",
    "evaluate": "keras_lstm.training.loop",
    "fit": "keras_lstm.training.loop",
    "refit_epochs": "keras_lstm.training.loop",
    "train_model": "keras_lstm.training.loop",
    "resolve_strategy": "keras_lstm.training.runtime",
    "seed_everything": "keras_lstm.training.runtime",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_lstm.training' has no attribute {name!r}")


__all__ = sorted([*_LAZY, "FoldData", "Prepared", "prepare"])
