"""The training budget of one fit, sized by its data.

A fixed batch of 64 and a patience of 10 epochs starve small data: a fold of 40 windows takes one
gradient step per epoch and early stopping ends it after about 11 steps. With
`training.auto_budget` (the default) each fit gets:

- `batch_size = min(training.batch_size, max(8, ceil(windows / 16)))`: at least 16 steps per
  epoch until batches would drop below 8 windows;
- `patience = max(training.early_stopping_patience, ceil(400 / steps_per_epoch))`: early
  stopping waits at least 400 gradient steps, never more than `training.epochs`;
- `reduce_lr_patience` scaled by the same factor as the patience.

`training.epochs` stays the most epochs per fit, except that `training.max_steps` cuts a fit on
many windows to about that many gradient steps, and a cross-validation fit may run
until it could take `training.min_steps` gradient steps: labelled data sets are often a few
dozen sequences, and a fold of 29 sequences gets only 4 steps per epoch (whole-sequence
classifiers get 1500 unless `training.epochs` is set; measured on the UCR sets of the development
suite, BENCHMARKS.md). With `auto_budget: false` the configured values are used as they are.

`training.schedule` names the fit's learning-rate schedule: `plateau` (the default,
`ReduceLROnPlateau`), `cosine` (`cosine_rate` over the fit's epochs, from
`learning_rate * sqrt(batch_size / 8)`: the square-root rule for Adam's rate with the batch),
or `auto`: cosine where `max_steps` cut the fit's epochs, plateau otherwise. The refit takes
the schedule of the last fold, whose size is closest to it. Neither a cap nor the cosine is
a default: measured on taylor's one-step and day-ahead forecasts, no setting of them won on
both (BENCHMARKS.md, Speed).

Example:
    >>> from keras_lstm.config import TrainingConfig
    >>> fit_budget(TrainingConfig(), 40).batch_size, fit_budget(TrainingConfig(), 40).patience
    (8, 80)
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from keras_lstm.config import TrainingConfig

MIN_STEPS_PER_EPOCH = 16
MIN_BATCH = 8
MIN_PATIENCE_STEPS = 400


@dataclass(frozen=True)
class Budget:
    """Batch size, epochs and patiences of one fit."""

    batch_size: int
    epochs: int
    patience: int
    reduce_lr_patience: int
    steps_per_epoch: int
    schedule: str = "plateau"
    learning_rate: float = 1e-3

    def to_dict(self) -> dict:
        return asdict(self)


def fit_budget(
    training: TrainingConfig,
    windows: int,
    epochs: int | None = None,
    min_steps: int = 0,
    schedule: str | None = None,
) -> Budget:
    """The budget of a fit on `windows` training windows (see the module docstring).

    Args:
        training: the `training` section.
        windows: training windows of this fit.
        epochs: epochs of this fit; default `training.epochs` (the refit passes its own).
        min_steps: with `auto_budget`, raise the epochs until the fit may take this many
            gradient steps (cross-validation fits pass `training.min_steps`).
        schedule: the learning-rate schedule to use whatever `training.schedule` says (the
            refit passes its folds'); default: `training.schedule`, `auto` resolved here.

    Returns:
        A `Budget`.
    """
    epochs = training.epochs if epochs is None else epochs
    windows = max(1, int(windows))
    if not training.auto_budget:
        steps = math.ceil(windows / training.batch_size)
        return Budget(
            training.batch_size,
            epochs,
            training.early_stopping_patience,
            training.reduce_lr_patience,
            steps,
            schedule or ("cosine" if training.schedule == "cosine" else "plateau"),
            training.learning_rate,
        )
    batch = min(training.batch_size, max(MIN_BATCH, math.ceil(windows / MIN_STEPS_PER_EPOCH)))
    steps = math.ceil(windows / batch)
    epochs = max(epochs, math.ceil(min_steps / steps))
    capped = False
    if training.max_steps:
        cap = max(training.max_steps, min_steps)
        capped = epochs > math.ceil(cap / steps)
        epochs = min(epochs, max(1, math.ceil(cap / steps)))
    if schedule is None:
        schedule = training.schedule
        if schedule == "auto":
            schedule = "cosine" if capped else "plateau"
    patience = max(training.early_stopping_patience, math.ceil(MIN_PATIENCE_STEPS / steps))
    factor = patience / max(1, training.early_stopping_patience)
    reduce_lr = max(training.reduce_lr_patience, round(training.reduce_lr_patience * factor))
    rate = training.learning_rate
    if schedule == "cosine":  # the square-root scaling rule for Adam's rate with the batch
        rate *= math.sqrt(batch / MIN_BATCH)
    return Budget(
        batch, epochs, min(patience, epochs), min(reduce_lr, epochs), steps, schedule, rate
    )


def cosine_rate(learning_rate: float, epoch: int, epochs: int) -> float:
    """The cosine schedule's learning rate at `epoch` (0-based) of `epochs`: `learning_rate`
    at the first epoch, falling along half a cosine to near zero at the last.

    Example:
        >>> [round(cosine_rate(1.0, e, 4), 3) for e in range(4)]
        [1.0, 0.854, 0.5, 0.146]
    """
    return learning_rate * 0.5 * (1.0 + math.cos(math.pi * epoch / max(1, epochs)))
