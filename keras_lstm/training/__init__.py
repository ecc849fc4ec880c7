"""Training: walk-forward cross-validation, the refit and the held-out test."""

from keras_lstm.training.loop import (
    CVResult,
    FoldResult,
    cross_validate,
    evaluate,
    fit,
    refit_epochs,
    train_model,
)
from keras_lstm.training.prepare import FoldData, Prepared, prepare
from keras_lstm.training.runtime import resolve_strategy, seed_everything

__all__ = [
    "CVResult",
    "FoldData",
    "FoldResult",
    "Prepared",
    "cross_validate",
    "evaluate",
    "fit",
    "prepare",
    "refit_epochs",
    "resolve_strategy",
    "seed_everything",
    "train_model",
]
