"""Walk-forward cross-validation, the refit, and the once-only test evaluation."""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import keras
import numpy as np
from sklearn.utils.class_weight import compute_class_weight

from keras_lstm.bundle import Bundle, preprocessing_dict
from keras_lstm.config import Config, load_config
from keras_lstm.data import intervals
from keras_lstm.data.preprocessing import Preprocessing
from keras_lstm.data.splits import Fold
from keras_lstm.data.windows import window_spread_weights
from keras_lstm.errors import ConfigError, TrainingError
from keras_lstm.factory import build_model
from keras_lstm.files import atomic_write_text, folder_lock
from keras_lstm.metrics import (
    baseline_comparison,
    classification_metrics,
    hard_label_metrics,
    metric_notes,
    naive_forecast,
    nearest_neighbour_labels,
    regression_metrics,
    seasonal_naive_scale,
    summarize,
)
from keras_lstm.normalization import WINDOW_FLOOR
from keras_lstm.training.backup import FitBackup
from keras_lstm.training.batches import WindowBatches, as_tf_dataset
from keras_lstm.training.budget import Budget, cosine_rate, fit_budget
from keras_lstm.training.prepare import FoldData, Prepared, prepare
from keras_lstm.training.runtime import (
    fold_jobs,
    resolve_strategy,
    seed_everything,
    use_compilation_cache,
)
from keras_lstm.training.workers import fit_folds_in_workers


@dataclass
class FoldResult:
    """What one fold's fit and validation gave.

    Attributes:
        index: fold number (0 = earliest).
        metrics: validation metrics in real units.
        baselines: the same metrics of the naive and seasonal-naive forecasts (regression) or
            of the majority class and, for whole sequences, 1NN-Euclidean (classification) on
            the same validation windows.
        val_loss: the model's loss on the validation windows without regularization (MSE of
            scaled targets, or log loss): the tuning objective.
        best_epoch: the epoch (1-based) whose weights were kept by early stopping.
        epochs_run: epochs trained before early stopping ended the fit.
        history: Keras' per-epoch history (`loss`, `val_loss`, ...).
        calibration: with `training.interval`, the validation forecasts' absolute errors
            `residuals` `(n, horizon, targets)` and their windows' `spreads` `(n, targets)`, for
            at most `intervals.SCORES_PER_FOLD` windows evenly spread (nested lists).
    """

    index: int
    metrics: dict
    baselines: dict
    val_loss: float
    best_epoch: int
    epochs_run: int
    history: dict = field(default_factory=dict)
    calibration: dict | None = None


@dataclass
class CVResult:
    """Per-fold results with their mean and standard deviation."""

    folds: list[FoldResult]

    @property
    def mean(self) -> dict:
        return summarize([f.metrics for f in self.folds])[0]

    @property
    def std(self) -> dict:
        return summarize([f.metrics for f in self.folds])[1]

    @property
    def mean_val_loss(self) -> float:
        return float(np.mean([f.val_loss for f in self.folds]))

    @property
    def best_epochs(self) -> list[int]:
        return [f.best_epoch for f in self.folds]

    def to_dict(self) -> dict:
        folds = [
            {"fold": f.index, **f.metrics, "val_loss": f.val_loss, "best_epoch": f.best_epoch}
            for f in self.folds
        ]
        return {"folds": folds, "mean": self.mean, "std": self.std}


def _fingerprint(config: Config) -> str:
    return hashlib.sha256(json.dumps(config.to_dict(), sort_keys=True).encode()).hexdigest()[:16]


def _callbacks(
    config: Config, budget: Budget, validation: bool, tag: str, out_dir: Path | None, batches
):
    """The fit's callbacks; the last is its `FitBackup` (None without a backup folder), which
    keeps the history of every epoch, also across a resume."""
    monitor = "val_loss" if validation else "loss"
    training = config.training
    plateau = schedule = None
    if budget.schedule == "cosine":
        rate, epochs = budget.learning_rate, budget.epochs
        schedule = keras.callbacks.LearningRateScheduler(
            lambda epoch: cosine_rate(rate, epoch, epochs)
        )
    else:
        plateau = keras.callbacks.ReduceLROnPlateau(
            monitor=monitor, factor=0.5, patience=budget.reduce_lr_patience, min_lr=1e-6
        )
    early_stopping = None
    if validation:
        early_stopping = keras.callbacks.EarlyStopping(
            monitor="val_loss", patience=budget.patience, restore_best_weights=True
        )
    callbacks = [_StopOnNaN(_fit_name(tag)), plateau or schedule]
    callbacks += [early_stopping] if early_stopping else []
    if out_dir and training.tensorboard:
        callbacks.append(keras.callbacks.TensorBoard(log_dir=str(out_dir / "logs" / tag)))
    if out_dir and training.csv_log:
        (out_dir / "logs").mkdir(parents=True, exist_ok=True)
        callbacks.append(keras.callbacks.CSVLogger(str(out_dir / "logs" / f"{tag}.csv")))
    backup_dir = _backup_dir(config, out_dir)
    backup = None
    if backup_dir:
        # after early stopping and the schedule: it restores their state after they reset it
        backup = FitBackup(
            os.path.join(backup_dir, tag),
            training.backup_seconds,
            batches=batches,
            early_stopping=early_stopping,
            plateau=plateau,
            fingerprint=_fingerprint(config),
        )
    return callbacks + [backup], backup


class _StopOnNaN(keras.callbacks.Callback):
    """Raises `TrainingError` at the end of an epoch whose loss is NaN or infinite, naming the
    fit (`fold 2`, `the refit`) and the epoch, before a checkpoint of that epoch is written.

    Keras' `TerminateOnNaN` reads the loss after every batch, which makes Keras wait for each
    step to finish and copy its logs to Python; at the epoch's end the loop keeps dispatching
    steps ahead (JAX runs them asynchronously). A diverged epoch is at most one epoch late.
    A diverged fit is an error, not a stop: its weights are not worth a bundle.

    Example:
        >>> model.fit(x, y, callbacks=[_StopOnNaN("fold 1")])  # doctest: +SKIP
        keras_lstm.errors.TrainingError: fold 1 diverged at epoch 3: ...
    """

    def __init__(self, name: str = "the fit"):
        super().__init__()
        self.name = name

    def on_epoch_end(self, epoch, logs=None):
        loss = (logs or {}).get("loss")
        if loss is not None and not np.isfinite(float(loss)):
            self.model.stop_training = True
            raise TrainingError(
                f"Training diverged: the loss of {self.name} is {float(loss)} at epoch "
                f"{epoch + 1}. Lower training.learning_rate (now "
                f"{_learning_rate(self.model):.3g}) or check the data for extreme values "
                "(a scaler such as data.scaler: standard or robust tames a wide range)."
            )


def _learning_rate(model) -> float:
    try:
        return float(keras.ops.convert_to_numpy(model.optimizer.learning_rate))
    except Exception:  # an optimizer without a plain rate
        return float("nan")


def _fit_name(tag: str) -> str:
    """`fold-1` -> `fold 2` (as the progress lines count), `refit` -> `the refit`."""
    if tag.startswith("fold-"):
        return f"fold {int(tag.split('-', 1)[1]) + 1}"
    return f"the {tag}"


def _target_fn(prepared: Prepared):
    if prepared.classes is None:
        return None
    return lambda y: y[:, 0, :]


def train_model(
    prepared: Prepared,
    fold: Fold,
    fold_data: FoldData,
    *,
    epochs: int,
    validation: bool,
    tag: str,
    out_dir: Path | None = None,
    verbose="auto",
    schedule: str | None = None,
):
    """Build a fresh model and fit it on `fold.train` (validating on `fold.validation` when
    `validation`) with the batch size, patiences and learning-rate schedule of `fit_budget`
    (`schedule` overrides `training.schedule`: the refit follows its folds'); returns
    `(model, history)`."""
    config = prepared.config
    training = config.training
    strategy = resolve_strategy(config)
    use_compilation_cache()
    with strategy.scope():
        model = _build(prepared)
    seed = None if config.seed is None else config.seed + 1
    # cross-validation fits may take `training.min_steps` (training/budget.py); the refit
    # trains exactly as long as they found best
    min_steps = training.min_steps if validation else 0
    budget = fit_budget(training, len(fold.train), epochs, min_steps, schedule=schedule)
    weights = _window_loss_weights(prepared, fold, fold_data)
    batches = WindowBatches(
        fold_data.windows,
        fold.train,
        budget.batch_size,
        shuffle=training.shuffle,
        seed=seed,
        target_fn=_target_fn(prepared),
        weights=weights,
    )
    val = None
    if validation:
        val = WindowBatches(
            fold_data.windows,
            fold.validation,
            max(budget.batch_size, 256),
            target_fn=_target_fn(prepared),
            weights=weights,
        )
    callbacks, backup = _callbacks(config, budget, validation, tag, out_dir, batches)
    callbacks = [c for c in callbacks if c is not None]
    if strategy.num_replicas_in_sync > 1:
        batches = as_tf_dataset(batches)
        if val is not None:
            callbacks.insert(0, _ReplicaSafeValidation(val))
            val = None
    elif (
        getattr(fold_data.windows, "lengths", None) is not None
        and keras.backend.backend() == "tensorflow"
    ):
        # batches cut to their longest sequence change shape: on TensorFlow, tf.data takes a
        # None time axis where Keras' PyDataset adapter fixes the shape of the first batches;
        # JAX takes the NumPy batches as they come (one compilation per shape)
        batches = as_tf_dataset(batches)
        val = None if val is None else as_tf_dataset(val)
    history = model.fit(
        batches,
        validation_data=val,
        epochs=budget.epochs,
        callbacks=callbacks,
        class_weight=_class_weight(prepared, fold),
        shuffle=False,  # WindowBatches reshuffles the windows itself (training.shuffle)
        verbose=0 if verbose == FIT_LINES else verbose,
    )
    history = (
        backup.history  # every epoch, those before a resume too
        if backup is not None
        else {k: [float(v) for v in vals] for k, vals in history.history.items()}
    )
    if verbose == FIT_LINES:
        _say(verbose, f"  {tag}: {fit_line(history)}")
    return model, history


FIT_LINES = "fits"  # a `verbose` of keras-lstm's own: one line per fit instead of per epoch


def fit_line(history: dict) -> str:
    """One fit in one line: its epochs and its best loss (validation loss where it has one).

    Example:
        >>> fit_line({"loss": [0.5, 0.3, 0.4], "val_loss": [0.6, 0.45, 0.5]})
        '3 epochs, best val_loss 0.45 at epoch 2'
    """
    name = "val_loss" if history.get("val_loss") else "loss"
    losses = history.get(name) or []
    if not losses:
        return "no epochs"
    best = _best_epoch(history)  # the epoch the refit rule reads, counted from 1
    epochs = f"{len(losses)} epoch" + ("s" if len(losses) != 1 else "")
    return f"{epochs}, best {name} {losses[best - 1]:.4g} at epoch {best}"


def _build(prepared: Prepared):
    """A fresh compiled model for `prepared`'s shapes, kind and scaler."""
    config = prepared.config
    return build_model(
        config.model,
        prepared.input_shape,
        prepared.output_shape,
        config.task,
        config.training,
        mask_value=prepared.mask_value,
        window_channels=prepared.window_channels,
        sequence_standardized=prepared.scaler == "sequence",
        sequence_length=prepared.sequence_length,
        season=config.data.season if config.model.seasonal_base else 1,
    )


def _class_weight(prepared: Prepared, fold: Fold) -> dict | None:
    """With `training.class_weight: balanced`, each class weighted by its inverse frequency
    among `fold`'s training samples; else None."""
    if prepared.classes is None or prepared.config.training.class_weight != "balanced":
        return None
    seen = prepared.labels[fold.train]
    present = np.unique(seen)
    weights = compute_class_weight("balanced", classes=present, y=seen)
    return {int(c): float(w) for c, w in zip(present, weights, strict=True)}


def _window_loss_weights(prepared: Prepared, fold: Fold, fold_data: FoldData):
    """With `training.window_loss` and window scaling: per window `1 / spread**2` of its target
    channels (mean over targets), scaled to a mean of 1 over the training windows, so the loss
    is each window's squared error in its own units."""
    channels = prepared.window_channels
    if not prepared.config.training.window_loss or not channels:
        return None
    features = fold_data.windows.features
    lookback = prepared.config.data.lookback
    weights = np.mean(
        [window_spread_weights(features[:, c], lookback, WINDOW_FLOOR) for c in channels], axis=0
    )
    return (weights / weights[fold.train].mean()).astype(np.float32)


def _validation_callback_base():
    return keras.callbacks.Callback


class _ReplicaSafeValidation(_validation_callback_base()):
    """Computes `val_loss` at each epoch end with `predict`, for multi-replica strategies.

    Keras 3's `evaluate` under `MirroredStrategy` fails when the last validation batch does not
    split evenly across replicas ("Inputs to operation AddN ... must have the same size"), while
    `predict` works. Placed first among the callbacks, it fills `logs["val_loss"]` (data loss plus
    regularization, as Keras reports it) before early stopping and the LR schedule read it.
    """

    def __init__(self, batches: WindowBatches):
        super().__init__()
        parts = [batches[i] for i in range(len(batches))]
        self.x = np.concatenate([p[0] for p in parts])
        self.y = np.concatenate([p[1] for p in parts])

    def on_epoch_end(self, epoch, logs=None):
        pred = self.model.predict(self.x, batch_size=1024, verbose=0)
        loss_fn = keras.losses.get(self.model.loss)
        loss = float(keras.ops.mean(loss_fn(self.y, pred)))
        loss += float(sum(float(keras.ops.sum(term)) for term in self.model.losses))
        if logs is not None:
            logs["val_loss"] = loss


def evaluate(prepared: Prepared, fold: Fold, fold_data: FoldData, model) -> dict:
    """Score `model` on `fold.validation` (or the test windows) in real units.

    Returns a dict with `metrics`, `baselines`, `val_loss`, and the real-unit `true` and
    `pred` arrays.
    """
    x, y = fold_data.windows.gather(fold.validation)
    raw = np.asarray(model.predict(x, batch_size=1024, verbose=0), dtype=np.float64)
    return score_outputs(prepared, fold, fold_data, x, y, raw)


def score_outputs(
    prepared: Prepared,
    fold: Fold,
    fold_data: FoldData,
    x: np.ndarray,
    y: np.ndarray,
    raw: np.ndarray,
    *,
    baselines: bool = True,
) -> dict:
    """`evaluate`'s scores of raw model outputs `raw` for the inputs `x` and scaled targets
    `y` of `fold.validation` (`fold_data.windows.gather`); `baselines=False` skips the
    baselines (`metrics`, `val_loss`, `true` and `pred` only: what `keras_lstm.explain`
    rescores shuffled inputs with).

    Example:
        >>> x, y = fold_data.windows.gather(fold.validation)  # doctest: +SKIP
        >>> raw = model.predict(x)  # doctest: +SKIP
        >>> score_outputs(prepared, fold, fold_data, x, y, raw)["metrics"]  # doctest: +SKIP
    """
    raw = np.asarray(raw, dtype=np.float64)
    # outputs to real units through the fold's preprocessing object, as a bundle would do
    pre = Preprocessing.from_dict(preprocessing_dict(prepared, fold_data), "the fold")
    if prepared.classes is not None:
        return _score_classes(prepared, fold, fold_data, y, pre.real(raw), baselines)
    rows = fold.validation
    val_loss = float(np.mean((raw - y) ** 2))
    pred = pre.real(raw)
    # each window's spread per target in real units: what interval offsets are scaled by
    channels = interval_channels(prepared)
    spreads = pre.spreads(x, channels)
    if fold_data.series_scalers:  # each series back to its own units
        series = prepared.row_series(rows).astype(str)
        for key in np.unique(series):
            chosen = series == key
            one = pre.one_series(key)
            pred[chosen] = one.real(raw[chosen])
            spreads[chosen] = one.spreads(x[chosen], channels)
    if prepared.kind != "series":  # one value per whole sequence
        scored = _score_sample_values(prepared, fold, pred, baselines)
    else:
        scored = _score_windows(prepared, fold, pred, baselines)
    return {**scored, "val_loss": val_loss, "spreads": spreads}


def _score_classes(
    prepared: Prepared, fold: Fold, fold_data: FoldData, y, probabilities, baselines
):
    """Classification: accuracy and log loss beside the majority class and, for whole
    sequences, 1NN-Euclidean."""
    rows = fold.validation
    labels = y[:, 0, 0].astype(int)
    metrics = classification_metrics(labels, probabilities)
    result = {
        "metrics": metrics,
        "baselines": {},
        "val_loss": metrics["log_loss"],
        "true": labels,
        "pred": probabilities,
    }
    if not baselines:
        return result
    counts = np.bincount(prepared.labels[fold.train], minlength=len(prepared.classes))
    majority = np.tile(counts / counts.sum(), (len(labels), 1))
    result["baselines"]["majority"] = classification_metrics(labels, majority)
    if prepared.kind == "sequences":
        # the classic baseline of labelled sequences: each validation sequence takes the
        # label of its nearest training sequence (scaled by the fold's scaler, zero-padded)
        inputs = fold_data.windows.inputs
        guess = nearest_neighbour_labels(
            inputs[fold.train], prepared.labels[fold.train], inputs[rows]
        )
        result["baselines"]["1nn_euclidean"] = hard_label_metrics(
            labels, guess, len(prepared.classes)
        )
    return result


def _score_sample_values(prepared: Prepared, fold: Fold, pred, baselines: bool) -> dict:
    """Regression of one value per whole sequence or text, beside the training mean."""
    rows = fold.validation
    true = prepared.labels[rows][:, None, None]
    mean = np.full_like(true, prepared.labels[fold.train].mean())
    names, scale = prepared.target_names, np.array([np.nan])
    return {
        "metrics": regression_metrics(true, pred.reshape(true.shape), names, scale),
        "baselines": {"mean": regression_metrics(true, mean, names, scale)} if baselines else {},
        "true": true,
        "pred": pred.reshape(true.shape),
    }


def _score_windows(prepared: Prepared, fold: Fold, pred, baselines: bool) -> dict:
    """Forecasts of windows over one or many series, beside the naive and seasonal-naive
    forecasts (and per series for many)."""
    rows = fold.validation
    data, table = prepared.config.data, prepared.table
    true = table.targets[rows[:, None] + np.arange(data.horizon)].astype(np.float64)
    starts = prepared.row_starts(rows)
    scale = _mase_scale(prepared, fold)
    names = table.target_names
    forecasts = {}
    if baselines:
        forecasts = {
            "naive": naive_forecast(table.targets, rows, data.horizon, 1, starts),
            "seasonal_naive": naive_forecast(
                table.targets, rows, data.horizon, data.season, starts
            ),
        }
    metrics = regression_metrics(true, pred, names, scale)
    if prepared.starts is not None and baselines:  # many series: metrics of each series too
        series = prepared.row_series(rows)
        metrics["per_series"] = {
            str(key): regression_metrics(true[series == key], pred[series == key], names, scale)
            for key in dict.fromkeys(series)
        }
    return {
        "metrics": metrics,
        "baselines": {
            name: regression_metrics(true, values, names, scale)
            for name, values in forecasts.items()
        },
        "true": true,
        "pred": pred,
    }


def interval_channels(prepared: Prepared) -> tuple[int, ...] | None:
    """The input channel of each target whose window spread scales the intervals: the window
    channels of a window-normalized series model, else None (absolute intervals)."""
    if prepared.kind != "series" or prepared.classes is not None:
        return None
    return prepared.window_channels or None


def _mase_scale(prepared: Prepared, fold: Fold) -> np.ndarray:
    """MASE's denominator: the in-sample seasonal-naive MAE over the fold's training rows,
    within each series (differences never span two series)."""
    targets, season = prepared.table.targets, prepared.config.data.season
    if prepared.starts is None:
        return seasonal_naive_scale(targets[: fold.train_rows], season)
    fit = np.zeros(len(targets), bool)
    fit[fold.scaler_rows()] = True
    diffs = []
    for first, end in zip(prepared.starts[:-1], prepared.starts[1:], strict=True):
        rows = np.arange(first, end)[fit[first:end]]
        if len(rows) > season:
            diffs.append(np.abs(targets[rows[season:]] - targets[rows[:-season]]))
    if not diffs:
        return np.full(targets.shape[1], np.nan)
    return np.concatenate(diffs).mean(axis=0)


def _best_epoch(history: dict) -> int:
    losses = history.get("val_loss") or history.get("loss") or [0.0]
    return int(np.argmin(losses)) + 1


def cross_validate(
    config, data=None, *, out_dir=None, verbose="auto", first_target=None, prepared=None
) -> CVResult:
    """Walk-forward cross-validation of the config's model.

    For each fold (scikit-learn `TimeSeriesSplit` over the windows before the test part): a
    fresh model, scalers fitted on the fold's training rows only, `EarlyStopping` (best weights
    restored) and `ReduceLROnPlateau` on the fold's validation windows. The held-out test part
    is never touched. A finished fold is recorded under `training.backup_dir` (default
    `OUT/backup`), so a killed run started again skips it; an unfinished fit resumes from its
    last checkpoint with its whole state (`keras_lstm.training.backup`), to the same result.
    With `training.fold_workers: always` the folds are fitted in short-lived worker processes
    (see `keras_lstm.training.workers`), which keeps this process's memory flat however many
    folds it runs; with `training.fold_jobs` (auto: one per core on a CPU,
    `keras_lstm.training.runtime.fold_jobs`) several such workers run at once.
    The results are the same either way.

    Args:
        config: a `Config`, a dict or a path to a YAML/JSON config.
        data: a DataFrame or CSV path; default `config.data.path`.
        out_dir: run folder for backups and logs; None keeps nothing on disk (unless
            `training.backup_dir` is set).
        verbose: Keras' `verbose` for `fit` (`"auto"`, 0, 1, 2), or `"fits"`: one line per
            fit (its epochs and best loss) instead of a line or a bar per epoch.
        first_target: earliest row a validation window may predict (tuning uses this).
        prepared: an already prepared dataset (skips loading).

    Returns:
        A `CVResult` with per-fold metrics in real units, mean and std.

    Raises:
        ConfigError, DataError: bad config or data.

    Example:
        >>> result = cross_validate("config.yaml")  # doctest: +SKIP
        >>> result.mean["rmse"], result.best_epochs  # doctest: +SKIP
    """
    config = load_config(config)
    prepared = prepared or prepare(config, data, first_target)
    if prepared.config != config:
        prepared = dataclasses.replace(prepared, config=config)
    out_dir = Path(out_dir) if out_dir else None
    with _run_folder(out_dir):
        return _cross_validate(prepared, out_dir, verbose)


def _cross_validate(prepared: Prepared, out_dir: Path | None, verbose) -> CVResult:
    config = prepared.config
    backup_dir = _backup_dir(config, out_dir)
    fingerprint = _fingerprint(config)
    count = len(prepared.plan.folds)
    results: dict[int, FoldResult] = {}
    for index in range(count):
        done = _done_file(backup_dir, index)
        if done and done.is_file():
            saved = json.loads(done.read_text())
            if saved.get("fingerprint") == fingerprint:
                results[index] = FoldResult(**saved["result"])
                _say(verbose, f"fold {index + 1}/{count}: done earlier")
    todo = [index for index in range(count) if index not in results]
    # each fold's cost: the time steps its fit may pass through the model
    steps = prepared.sequence_length or config.data.lookback
    costs = [_fold_window_passes(config, len(prepared.plan.folds[i].train)) * steps for i in todo]
    jobs = fold_jobs(config, sum(costs), len(todo)) if todo else 1
    if todo and (config.training.fold_workers == "always" or jobs > 1):
        fitted = fit_folds_in_workers(
            fit_fold,
            FoldResult,
            prepared,
            todo,
            out_dir=out_dir,
            verbose=verbose,
            jobs=jobs,
            weights=costs,
        )
    else:
        fitted = [fit_fold(prepared, index, out_dir=out_dir, verbose=verbose) for index in todo]
        keras.backend.clear_session()
    results.update((result.index, result) for result in fitted)
    return CVResult([results[index] for index in range(count)])


def _fold_window_passes(config: Config, windows: int) -> int:
    """The most windows a cross-validation fit on `windows` windows may pass through the
    model: its most epochs times its windows."""
    budget = fit_budget(config.training, windows, min_steps=config.training.min_steps)
    return budget.epochs * windows


def _backup_dir(config: Config, out_dir: Path | None) -> str | None:
    """`training.backup_dir`, else `OUT/backup`; None keeps nothing on disk."""
    return config.training.backup_dir or (str(out_dir / "backup") if out_dir else None)


def _done_file(backup_dir: str | None, index: int) -> Path | None:
    return Path(backup_dir, f"fold-{index}.json") if backup_dir else None


def fit_fold(prepared: Prepared, index: int, *, out_dir=None, verbose="auto") -> FoldResult:
    """Fit and score fold `index` of `prepared`'s plan, in this process.

    The fold is seeded with `seed + index` (the same result whichever process fits it), and a
    finished fold is recorded under the backup folder so a restarted run skips it.

    Example:
        >>> result = fit_fold(prepare(config, frame), 0)  # doctest: +SKIP
        >>> result.val_loss, result.metrics["rmse"]  # doctest: +SKIP
    """
    config = prepared.config
    out_dir = Path(out_dir) if out_dir else None
    fold = prepared.plan.folds[index]
    keras.backend.clear_session()
    seed_everything(None if config.seed is None else config.seed + index)
    _say(
        verbose,
        f"fold {index + 1}/{len(prepared.plan.folds)}: {len(fold.train)} training windows, "
        f"{len(fold.validation)} validation windows",
    )
    fold_data = prepared.fold_data(fold)
    model, history = train_model(
        prepared,
        fold,
        fold_data,
        epochs=config.training.epochs,
        validation=True,
        tag=f"fold-{index}",
        out_dir=out_dir,
        verbose=verbose,
    )
    scored = evaluate(prepared, fold, fold_data, model)
    calibration = None
    if config.training.interval is not None:
        keep = intervals.spread_rows(len(scored["true"]))
        calibration = {
            "residuals": np.abs(scored["true"] - scored["pred"])[keep].tolist(),
            "spreads": scored["spreads"][keep].tolist(),
        }
    result = FoldResult(
        index=index,
        metrics=scored["metrics"],
        baselines=scored["baselines"],
        val_loss=scored["val_loss"],
        best_epoch=_best_epoch(history),
        epochs_run=len(history.get("loss", [])),
        history=history,
        calibration=calibration,
    )
    done = _done_file(_backup_dir(config, out_dir), index)
    if done:
        payload = {"fingerprint": _fingerprint(config), "result": asdict(result)}
        atomic_write_text(done, json.dumps(payload))
    return result


def _say(verbose, message: str) -> None:
    if verbose not in (0, False):
        print(message, flush=True)


REFIT_RULE = (
    "max(median of the folds' best epochs, the last fold's best epoch), "
    "and at least training.min_steps gradient steps"
)


def refit_epochs(cv: CVResult) -> int:
    """Epochs for the refit: the larger of the median of the folds' best epochs and the last
    fold's best epoch (at least 1).

    The refit has no validation part to stop on (the test part must stay unseen), so it trains
    for as long as early stopping found best on the folds. Early folds are small and often peak
    at once; the last fold is the closest in size to the refit, so the refit never stops before
    it did.
    """
    median = int(round(float(np.median(cv.best_epochs))))
    return max(1, median, int(cv.best_epochs[-1]))


def fit(
    config,
    data=None,
    *,
    out_dir=None,
    verbose="auto",
    cv: CVResult | None = None,
    prepared: Prepared | None = None,
):
    """Cross-validate, refit on everything before the test part, and test once.

    The refit trains for `refit_epochs(cv)` epochs on every window before the held-out test
    part, with scalers fitted on those rows; then each target time of the test part is predicted
    once, from the true history before it, and scored beside the naive and seasonal-naive
    baselines (or the majority class).

    Args:
        config: a `Config`, a dict or a path to a YAML/JSON config.
        data: a DataFrame or CSV path; default `config.data.path`.
        out_dir: run folder for backups and logs.
        verbose: Keras' `verbose` for `fit`.
        cv: a finished `cross_validate` result to reuse.
        prepared: the config's data, already prepared (`prepare(config, data)`; skips loading).

    Returns:
        A `keras_lstm.Bundle` with the model, preprocessing, config and metrics.

    Example:
        >>> bundle = fit("config.yaml", out_dir="run")  # doctest: +SKIP
        >>> bundle.metrics["test"]["rmse"]  # doctest: +SKIP
    """
    config = load_config(config)
    prepared = prepared or prepare(config, data)
    with _run_folder(out_dir):
        return _fit(config, prepared, out_dir, verbose, cv)


def _run_folder(out_dir):
    """The run folder's lock (`keras_lstm.files.folder_lock`): one run writes into it at once."""
    return folder_lock(out_dir) if out_dir else contextlib.nullcontext()


SCALER_RULE = (
    "data.scaler cv on whole sequences whose levels or spreads differ: the candidate with the "
    "best cross-validation score (accuracy, then validation loss; RMSE for regression), the "
    "first on a tie"
)


def choose_scaler(prepared: Prepared, out_dir, verbose) -> tuple[Prepared, CVResult, dict | None]:
    """Cross-validate each of `prepared.scaler_candidates` and keep the best.

    Returns the data prepared for the chosen scaler, its `CVResult`, and the choice as
    recorded in `metrics.json` under `training.scaler_choice` (None unless `data.scaler` is
    `cv`, on whole sequences). Each candidate's folds
    are backed up in their own `OUT/scaler-NAME/backup` folder, so a resumed run skips the
    candidates it finished.

    Example:
        >>> prepared, cv, choice = choose_scaler(prepare(config, frame), "run", 0)  # doctest: +SKIP
        >>> choice["chosen"], choice["cv"]  # doctest: +SKIP
        ('standard', {'sequence': {'accuracy': 0.80, ...}, 'standard': {'accuracy': 0.97, ...}})
    """
    candidates = prepared.scaler_candidates
    config = prepared.config
    if len(candidates) == 1:
        cv = cross_validate(config, out_dir=out_dir, verbose=verbose, prepared=prepared)
        choice = None
        if config.data.scaler == "cv" and prepared.kind == "sequences":
            choice = {
                "chosen": prepared.scaler,
                "cv": {prepared.scaler: _cv_score(cv)},
                "rule": "the training sequences are alike in level and spread per channel, so "
                "either scaler gives the model the same values: the per-sequence one",
            }
        return prepared, cv, choice
    results = {}
    for name in candidates:
        candidate = prepared.with_scaler(name)
        _say(verbose, f"data.scaler cv: cross-validating the {name!r} scaler")
        sub = Path(out_dir) / f"scaler-{name}" if out_dir else None
        results[name] = (
            candidate,
            cross_validate(candidate.config, out_dir=sub, verbose=verbose, prepared=candidate),
        )
    scores = {name: _cv_score(cv) for name, (_, cv) in results.items()}
    chosen = min(candidates, key=lambda name: _cv_rank(scores[name]))
    _say(verbose, f"data.scaler cv: {chosen!r} (cross-validation {scores})")
    choice = {"chosen": chosen, "cv": scores, "rule": SCALER_RULE}
    return (*results[chosen], choice)


def _cv_score(cv: CVResult) -> dict:
    """The figures `choose_scaler` ranks by: the CV mean accuracy (classification) or RMSE,
    and the mean validation loss."""
    score = {k: cv.mean[k] for k in ("accuracy", "rmse") if cv.mean.get(k) is not None}
    return {**score, "val_loss": cv.mean_val_loss}


def _cv_rank(score: dict) -> tuple:
    if "accuracy" in score:
        return (-score["accuracy"], score["val_loss"])
    return (score.get("rmse", score["val_loss"]), score["val_loss"])


def _fit(config: Config, prepared: Prepared, out_dir, verbose, cv: CVResult | None):
    choice = None
    if cv is None:
        prepared, cv, choice = choose_scaler(prepared, out_dir, verbose)
    final = prepared.plan.final
    model, history, fold_data, budget = _refit(prepared, cv, out_dir, verbose)
    scored = evaluate(prepared, final, fold_data, model)
    metrics = _fit_metrics(prepared, cv, scored, budget, choice)
    preprocessing = preprocessing_dict(prepared, fold_data)
    test_bounds = None
    if config.training.interval is not None:
        test_bounds = _add_intervals(prepared, cv, scored, preprocessing, metrics)
    bundle = Bundle(
        model=model,
        preprocessing=preprocessing,
        config=config,
        metrics=metrics,
    )
    bundle.prepared = prepared
    bundle.report = {
        "cv": cv,
        "refit_history": history,
        "test_true": scored["true"],
        "test_pred": scored["pred"],
        "test_index": prepared.sample_index(final.validation),
        "test_bounds": test_bounds,
        "test_spreads": scored.get("spreads"),
    }
    return bundle


def _refit(prepared: Prepared, cv: CVResult, out_dir, verbose):
    """Train the refit on every window before the test part for `refit_epochs(cv)` epochs
    (at least `training.min_steps` steps; the last fold's learning-rate schedule); returns
    `(model, history, fold_data, budget)`."""
    config = prepared.config
    keras.backend.clear_session()
    seed_everything(config.seed)
    final = prepared.plan.final
    training = config.training
    # the refit may take `training.min_steps` too (whole-sequence classifiers: the folds' best
    # epoch on a few validation sequences undertrains it), and follows the last fold's
    # learning-rate schedule (`training.schedule: auto`)
    last = prepared.plan.folds[-1]
    schedule = fit_budget(training, len(last.train), training.epochs, training.min_steps).schedule
    budget = fit_budget(
        training, len(final.train), refit_epochs(cv), training.min_steps, schedule=schedule
    )
    epochs = budget.epochs
    _say(verbose, f"refit: {len(final.train)} windows, {epochs} epochs; then the test part")
    fold_data = prepared.fold_data(final)
    model, history = train_model(
        prepared,
        final,
        fold_data,
        epochs=epochs,
        validation=False,
        tag="refit",
        out_dir=Path(out_dir) if out_dir else None,
        verbose=verbose,
        schedule=schedule,
    )
    return model, history, fold_data, budget


def _fit_metrics(prepared: Prepared, cv: CVResult, scored: dict, budget: Budget, choice) -> dict:
    """`metrics.json` of a fit: CV and test metrics beside the baselines, the refit's budget
    and how it was chosen."""
    config = prepared.config
    cv_baselines = {
        name: summarize([f.baselines[name] for f in cv.folds])[0] for name in scored["baselines"]
    }
    comparison = {
        "cv": baseline_comparison(cv.mean, cv_baselines),
        "test": baseline_comparison(scored["metrics"], scored["baselines"]),
    }
    metrics = {
        "cv": cv.to_dict(),
        "test": scored["metrics"],
        "baselines": {
            name: {"test": values, "cv": cv_baselines[name]}
            for name, values in scored["baselines"].items()
        },
        "beats_baselines": all(c is None or c["beats"] for c in comparison.values()),
        "baseline_comparison": comparison,
        "refit_epochs": budget.epochs,
        "training": {
            "refit_rule": REFIT_RULE,
            "fold_best_epochs": cv.best_epochs,
            "refit_budget": budget.to_dict(),
            "scaler": prepared.scaler,
        },
    }
    if choice is not None:
        metrics["training"]["scaler_choice"] = choice
    if config.task == "regression":
        metrics["notes"] = metric_notes(
            [f.metrics for f in cv.folds],
            scored["metrics"],
            config.data.season,
            [prepared.plan.folds[f.index].train_rows for f in cv.folds],
        )
    return metrics


def _add_intervals(
    prepared: Prepared, cv: CVResult, scored: dict, preprocessing: dict, metrics: dict
) -> dict:
    """Calibrate the intervals on the CV residuals into `preprocessing`, score them on the
    test part into `metrics`; returns the test part's bounds per level."""
    record = calibrate_intervals(prepared, cv)
    preprocessing["intervals"] = record
    test_bounds = {
        level: intervals.bounds(scored["pred"], scored["spreads"], record, level)
        for level in prepared.config.training.interval
    }
    metrics["test"].update(interval_metrics(scored["true"], test_bounds, prepared))
    metrics["intervals"] = {k: v for k, v in record.items() if k != "offsets"}
    return test_bounds


def calibrate_intervals(prepared: Prepared, cv: CVResult) -> dict:
    """The interval record (`intervals.calibrate`) of the folds' pooled validation scores.

    Raises:
        ConfigError: a fold has no calibration residuals (it was fitted without
            `training.interval`).
    """
    parts = [f.calibration for f in cv.folds]
    if any(part is None for part in parts):
        raise ConfigError(
            "training.interval needs each fold's validation residuals, and a cross-validation "
            "result without them was given: run cross_validate with training.interval set."
        )
    pooled = np.concatenate([intervals.scores(p["residuals"], p["spreads"]) for p in parts])
    return intervals.calibrate(
        pooled, prepared.config.training.interval, interval_channels(prepared)
    )


def interval_metrics(true: np.ndarray, bounds: dict, prepared: Prepared) -> dict:
    """`interval_coverage` and `interval_width` per level and target of real-unit forecasts'
    `bounds` (`{level: (lower, upper)}`) against `true` `(n, horizon, targets)`."""
    names = prepared.target_names
    coverage, width = {}, {}
    for level, (lower, upper) in bounds.items():
        key = intervals.level_key(level)
        shares = intervals.coverage(true, lower, upper)
        widths = (upper - lower).reshape(-1, len(names)).mean(axis=0)
        coverage[key] = {n: float(v) for n, v in zip(names, shares, strict=True)}
        width[key] = {n: float(v) for n, v in zip(names, widths, strict=True)}
    return {"interval_coverage": coverage, "interval_width": width}
