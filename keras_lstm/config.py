"""The one `Config` object that flows through the whole pipeline.

A config has five sections (`data`, `model`, `training`, `tuning`, `export`) plus `task` and
`seed`. Each section is a frozen dataclass with the documented defaults; every value is checked
when the object is built, so a bad config fails here with a `ConfigError` that names the key,
never later inside Keras or TensorFlow.

Example:
    >>> from keras_lstm.config import load_config
    >>> config = load_config({"data": {"targets": ["load"], "lookback": 48}})
    >>> config.data.lookback, config.model.units
    (48, (64, 32))
"""

from __future__ import annotations

import dataclasses
import difflib
import math
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from keras_lstm.errors import ConfigError
from keras_lstm.files import atomic_write_text, missing_file

TASKS = ("regression", "classification")
AUTO = "auto"
# `model.conv_kernel_size: auto`: these, then 3 for any further layer
AUTO_KERNELS = (8, 5, 3)
CALENDAR_FEATURES = ("hour", "day_of_week", "day_of_month", "month", "day_of_year")
# what one sample is: windows over one series, over many series of one long table (`series_id`),
# one labelled whole sequence (`label`), one labelled text (`model.embedding`)
KINDS = ("series", "panel", "sequences", "text")
SCALERS = ("auto", "window", "sequence", "cv", "standard", "minmax", "robust", "none")
MISSING_POLICIES = ("error", "ffill", "interpolate", "drop")
CELLS = ("lstm", "gru")
MERGE_MODES = ("concat", "sum", "mul", "ave")
POOLINGS = ("last", "mean", "attention")
STRATEGIES = ("auto", "default", "mirrored", "multi_worker")
FOLD_WORKERS = ("auto", "always", "never")
LOSSES = ("mse", "mae", "huber")
SCHEDULES = ("plateau", "cosine", "auto")
ALGORITHMS = ("random", "bayesian", "hyperband")
QUANTIZE_MODES = ("float32", "float16", "dynamic", "int8", "int8-full", "int16x8")


# --- value checks -------------------------------------------------------------------------------
# Each check takes the dotted key and the value, returns the value in its canonical form (tuples
# for lists, floats for numbers) or raises a ConfigError naming the key.


def _fail(key: str, value: Any, expected: str, hint: str = "") -> None:
    raise ConfigError(f"Config key `{key}` must be {expected}. Received: {key}={value!r}{hint}")


def _int(key, value, minimum=None, maximum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        else:
            _fail(key, value, "an integer")
    if minimum is not None and value < minimum:
        _fail(key, value, f"an integer >= {minimum}")
    if maximum is not None and value > maximum:
        _fail(key, value, f"an integer <= {maximum}")
    return value


def _float(key, value, low=None, high=None, low_open=False, high_open=False):
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        _fail(key, value, "a finite number")
    value = float(value)
    too_low = low is not None and (value < low or (low_open and value == low))
    too_high = high is not None and (value > high or (high_open and value == high))
    if too_low or too_high:
        if low is not None and high is not None:
            allowed = (
                f"a number in {'(' if low_open else '['}{low}, {high}{')' if high_open else ']'}"
            )
        elif low is not None:
            allowed = f"a number {'>' if low_open else '>='} {low}"
        else:
            allowed = f"a number {'<' if high_open else '<='} {high}"
        _fail(key, value, allowed)
    return value


def _choice(key, value, choices):
    if value not in choices:
        hint = difflib.get_close_matches(str(value), choices, n=1)
        extra = f". Did you mean {hint[0]!r}?" if hint else ""
        _fail(key, value, f"one of {', '.join(map(repr, choices))}", extra)
    return value


def _optional_str(key, value):
    if value is not None and (not isinstance(value, str) or not value):
        _fail(key, value, "a non-empty string or null")
    return value


def _str_list(key, value, allow_none=True):
    if value is None and allow_none:
        return None
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) and v for v in value):
        _fail(key, value, "a list of column names")
    if len(set(value)) != len(value):
        _fail(key, value, "a list without repeated names")
    return tuple(value)


def _int_list(key, value, minimum=1, allow_empty=True):
    if isinstance(value, int) and not isinstance(value, bool):
        value = [value]
    if not isinstance(value, (list, tuple)):
        _fail(key, value, "a list of integers")
    if not value and not allow_empty:
        _fail(key, value, "a non-empty list of integers")
    return tuple(_int(f"{key}[{i}]", v, minimum=minimum) for i, v in enumerate(value))


def _levels(key, value):
    """Nominal coverage levels in (0, 1), sorted, as a tuple; None stays None."""
    if value is None:
        return None
    values = value if isinstance(value, (list, tuple)) else [value]
    if not values:
        _fail(key, value, "a level in (0, 1), a list of levels, or null")
    levels = [_float(f"{key}", v, low=0.0, high=1.0, low_open=True, high_open=True) for v in values]
    if len(set(levels)) != len(levels):
        _fail(key, value, "a list of levels without repeats")
    return tuple(sorted(levels))


def _set(obj, name, value):
    object.__setattr__(obj, name, value)


# --- sections -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class DataConfig:
    """Where the data is and how it becomes windows.

    Args:
        path: CSV file (relative paths are taken from the config file's folder), or None when a
            DataFrame or arrays are passed in Python.
        time_column: optional column that must parse as times, be unique and increasing.
        features: input columns; default every numeric column. A text model: the one text
            column.
        targets: regression: one or more columns to forecast; classification: the label column.
        lookback: time steps in one input window (a text model: tokens kept per text). For
            seasonal data give it about four seasons (48 for monthly, 16 for quarterly data):
            the window statistics and the linear path then see each season several times
            (two seasons measured worse on three of four seasonal series, BENCHMARKS.md).
        horizon: steps predicted at once (direct multi-step).
        stride: step between consecutive training windows.
        scaler: `window`: a standard scaler fitted on training rows, then, inside the model,
            each input window centred on its own last value and divided by its own spread and
            the forecast mapped back, so a trending series may leave the training range
            (series only); `sequence`: a standard scaler fitted on training rows, then, inside
            the model, each whole sequence standardized per channel by its own valid steps,
            with each channel's log spread and signed log level kept as extra channels
            (whole sequences only); `standard`, `minmax`, `robust` or `none`, fitted on
            training rows only; `cv` (whole sequences): `sequence` or `standard`, chosen by the
            cross-validation where the training sequences differ in level or spread per
            channel (each candidate's CV score in `metrics.json`); `auto`: `window` for
            forecasting series, `sequence` for whole sequences, `standard` for classification
            of a series and text (chosen by `benchmarks/accuracy.py`).
        test_size: fraction (0-1) or row count of the held-out tail.
        test_path: a separate CSV holding the test data instead of the tail.
        season: seasonal period for the seasonal-naive baseline and MASE.
        missing: `error`, `ffill`, `interpolate` or `drop`.
        series_id: column that splits a long table into many series (one global forecaster),
            or, with `label`, into one sample per sequence.
        scale_per_series: with many series, fit the scalers on each series' own training rows
            (for series of very different sizes) instead of on all series together.
        label: per-series label column for whole-sequence tasks (constant within a series).
        kind: what one sample is: `series` (windows over one series), `panel` (windows over
            the many series of one long table, `series_id`), `sequences` (one labelled whole
            sequence per `series_id`, or arrays `(x, y)` in Python), `text` (one labelled text,
            `model.embedding`), or `auto` (the default): read from those settings
            (`keras_lstm.config.data_kind`, the one place that decides it).
        future_features: columns whose values over the forecast horizon are known when the
            forecast is made (calendar flags, holidays, planned prices, weather forecasts). Each
            enters the model `horizon` rows ahead, so a window's last `horizon` steps carry the
            values of the steps it forecasts; at prediction time the input's last `horizon`
            rows hold them (targets empty). Every other column stays past-only.
        calendar: calendar features derived from `time_column` and encoded cyclically (sin
            and cos), known in advance like `future_features`: any of `hour`, `day_of_week`,
            `day_of_month`, `month`, `day_of_year`.
    """

    path: str | None = None
    time_column: str | None = None
    features: tuple[str, ...] | None = None
    targets: tuple[str, ...] | None = None
    lookback: int = 24
    horizon: int = 1
    stride: int = 1
    scaler: str = "auto"
    test_size: float = 0.2
    test_path: str | None = None
    season: int = 1
    missing: str = "error"
    series_id: str | None = None
    label: str | None = None
    kind: str = "auto"
    scale_per_series: bool = False
    future_features: tuple[str, ...] | None = None
    calendar: tuple[str, ...] | None = None

    def __post_init__(self):
        _set(self, "path", _optional_str("data.path", self.path))
        _set(self, "time_column", _optional_str("data.time_column", self.time_column))
        _set(self, "features", _str_list("data.features", self.features))
        _set(self, "targets", _str_list("data.targets", self.targets))
        if self.features is not None and not self.features:
            _fail("data.features", self.features, "a non-empty list of column names or null")
        _set(self, "lookback", _int("data.lookback", self.lookback, minimum=1))
        _set(self, "horizon", _int("data.horizon", self.horizon, minimum=1))
        _set(self, "stride", _int("data.stride", self.stride, minimum=1))
        _choice("data.scaler", self.scaler, SCALERS)
        size = _float("data.test_size", self.test_size, low=0.0, low_open=True)
        if size >= 1 and not size.is_integer():
            _fail("data.test_size", self.test_size, "a fraction in (0, 1) or a whole row count")
        _set(self, "test_size", size)
        _set(self, "test_path", _optional_str("data.test_path", self.test_path))
        _set(self, "season", _int("data.season", self.season, minimum=1))
        _choice("data.missing", self.missing, MISSING_POLICIES)
        _set(self, "series_id", _optional_str("data.series_id", self.series_id))
        _set(self, "label", _optional_str("data.label", self.label))
        _choice("data.kind", self.kind, ("auto", *KINDS))
        if not isinstance(self.scale_per_series, bool):
            _fail("data.scale_per_series", self.scale_per_series, "true or false")
        _set(self, "future_features", _str_list("data.future_features", self.future_features))
        _set(self, "calendar", _str_list("data.calendar", self.calendar))
        for name in self.calendar or ():
            _choice("data.calendar", name, CALENDAR_FEATURES)
        known = set(self.future_features or ()) & set(self.targets or ())
        if known:
            raise ConfigError(
                f"Column {sorted(known)[0]!r} is both a target and in `data.future_features`: a "
                "target is what is not known in advance. Remove it from data.future_features."
            )
        if self.calendar and not self.time_column:
            raise ConfigError(
                "`data.calendar` derives features from the time column: set `data.time_column` "
                "to the column of dates and times."
            )


@dataclass(frozen=True)
class ModelConfig:
    """The recurrent network the factory builds.

    Args:
        cell: `lstm` or `gru`.
        units: one recurrent layer per entry, e.g. `[64, 32]`.
        bidirectional: wrap each recurrent layer in `Bidirectional`.
        merge_mode: how `Bidirectional` merges directions: `concat`, `sum`, `mul`, `ave`.
        embedding: `{vocab_size, dim}` for token inputs, or None.
        dropout: `Dropout` rate after each recurrent layer, in [0, 1).
        recurrent_dropout: dropout inside the recurrent cells, in [0, 1).
        l2: L2 penalty on the kernel and recurrent kernel of every recurrent layer.
        conv_filters: a convolutional front: one causal `Conv1D` (ReLU) per entry, with this
            many filters, before the recurrent layers; `0` or `[]` for none.
        conv_kernel_size: kernel size of each `Conv1D`: one number for all, one per entry
            of `conv_filters`, or `auto`: 8, 5, 3 (3 for any further layer).
        batch_norm: put `BatchNormalization` after each `Conv1D` (before its ReLU), as fully
            convolutional time-series classifiers do.
        conv_pool: with a convolutional front, max-pool its output over runs of this many
            steps, so the recurrent layers read a sequence this many times shorter (long
            sequences train faster); `1` for none; `auto` (whole-sequence classifiers): 8 in all,
            and when the median training length L is 256 steps or more, the largest power of two
            up to L / 128 of it right after the first `Conv1D`, so the later ones run on at most
            about 128 steps (`keras_lstm.factory.conv_front`).
        pooling: how the recurrent outputs become one vector: `last` (the last step's state),
            `mean` (the average over the valid steps) or `attention` (a learnt softmax-weighted
            sum over the steps). Whole sequences and windows alike.
        dense_units: hidden `Dense` layers (ReLU) before the output layer.
        linear_path: regression: add a linear map of the whole input window to the recurrent
            stack's forecast (LSTNet's highway), so seasonal and autoregressive structure is
            learnt from few windows and the LSTM models what is left.
        seasonal_base: with `data.scaler: window`, map the forecast back onto the seasonal
            naive forecast (`data.season` steps back, when the window is that long) instead of
            the last value: a model that has learnt nothing forecasts like seasonal naive.
    """

    cell: str = "lstm"
    units: tuple[int, ...] = (64, 32)
    bidirectional: bool = False
    merge_mode: str = "concat"
    embedding: dict | None = None
    dropout: float = 0.2
    recurrent_dropout: float = 0.0
    l2: float = 1.0e-4
    conv_filters: tuple[int, ...] = ()
    conv_kernel_size: tuple[int, ...] | str = (3,)
    batch_norm: bool = False
    conv_pool: int | str = 1
    pooling: str = "last"
    dense_units: tuple[int, ...] = ()
    linear_path: bool = True
    seasonal_base: bool = False

    def __post_init__(self):
        _choice("model.cell", self.cell, CELLS)
        _set(self, "units", _int_list("model.units", self.units, allow_empty=False))
        for name in ("bidirectional", "linear_path", "seasonal_base", "batch_norm"):
            if not isinstance(getattr(self, name), bool):
                _fail(f"model.{name}", getattr(self, name), "true or false")
        _choice("model.merge_mode", self.merge_mode, MERGE_MODES)
        if self.embedding is not None:
            if not isinstance(self.embedding, Mapping) or set(self.embedding) != {
                "vocab_size",
                "dim",
            }:
                _fail("model.embedding", self.embedding, "null or a mapping {vocab_size, dim}")
            _set(
                self,
                "embedding",
                {
                    "vocab_size": _int(
                        "model.embedding.vocab_size", self.embedding["vocab_size"], minimum=2
                    ),
                    "dim": _int("model.embedding.dim", self.embedding["dim"], minimum=1),
                },
            )
        _set(self, "dropout", _float("model.dropout", self.dropout, 0.0, 1.0, high_open=True))
        _set(
            self,
            "recurrent_dropout",
            _float("model.recurrent_dropout", self.recurrent_dropout, 0.0, 1.0, high_open=True),
        )
        _set(self, "l2", _float("model.l2", self.l2, low=0.0))
        filters = self.conv_filters
        if filters == 0 and not isinstance(filters, bool):
            filters = ()
        _set(self, "conv_filters", _int_list("model.conv_filters", filters))
        kernels = self.conv_kernel_size
        if isinstance(kernels, str) and kernels != AUTO:
            _fail("model.conv_kernel_size", kernels, "`auto`, a kernel size or a list of them")
        if kernels != AUTO:
            kernels = _int_list("model.conv_kernel_size", kernels, allow_empty=False)
        if kernels != AUTO and len(kernels) != 1 and len(kernels) != len(self.conv_filters):
            _fail(
                "model.conv_kernel_size",
                self.conv_kernel_size,
                f"one kernel size or one per `model.conv_filters` entry ({len(self.conv_filters)})",
            )
        _set(self, "conv_kernel_size", kernels)
        if isinstance(self.conv_pool, str) and self.conv_pool != AUTO:
            _fail("model.conv_pool", self.conv_pool, "`auto` or a whole number >= 1")
        if self.conv_pool != AUTO:
            _set(self, "conv_pool", _int("model.conv_pool", self.conv_pool, minimum=1))
        if self.conv_pool != AUTO and self.conv_pool > 1 and not self.conv_filters:
            _fail(
                "model.conv_pool",
                self.conv_pool,
                "1 without a convolutional front",
                ". Pooling follows the `Conv1D` layers: set `model.conv_filters` too.",
            )
        _choice("model.pooling", self.pooling, POOLINGS)
        _set(self, "dense_units", _int_list("model.dense_units", self.dense_units))

    @property
    def conv_layers(self) -> tuple[tuple[int, int], ...]:
        """`(filters, kernel_size)` of each `Conv1D` of the convolutional front (`auto`
        kernels: 8, 5, 3, then 3)."""
        kernels = self.conv_kernel_size
        if kernels == AUTO:
            kernels = tuple(AUTO_KERNELS[min(i, 2)] for i in range(len(self.conv_filters)))
        if len(kernels) == 1:
            kernels = kernels * len(self.conv_filters)
        return tuple(zip(self.conv_filters, kernels, strict=True))


@dataclass(frozen=True)
class TrainingConfig:
    """How models are fitted and cross-validated.

    Args:
        epochs: the most epochs per fit; early stopping usually ends sooner.
        batch_size: global batch size (split across replicas under a distribution strategy).
        learning_rate: Adam's initial learning rate.
        clipnorm: gradient norm clipping (0 turns it off).
        early_stopping_patience: epochs without validation improvement before stopping.
        reduce_lr_patience: epochs without improvement before the learning rate is halved.
        cv_splits: walk-forward folds (scikit-learn `TimeSeriesSplit`).
        cv_gap: rows left out between the last training target and the first validation
            target of each fold.
        strategy: `auto`, `default`, `mirrored` or `multi_worker`.
        backup_dir: folder of the checkpoints of fits in progress and of finished folds
            (`keras_lstm.training.backup`); default `backup/` inside the run's output folder.
        backup_seconds: the least seconds between two checkpoints of a fit (written at an
            epoch's end, the first epoch always): a run killed loses at most this much training.
            `0` writes one every epoch, which can cost more than small data's epochs themselves.
        shuffle: shuffle training windows each epoch (windows are independent samples).
        class_weight: `balanced` or null, for classification.
        tensorboard: write TensorBoard logs under the run folder.
        csv_log: write a CSVLogger file per fit under the run folder.
        auto_budget: size each fit's batch and patience by its number of windows, so small
            data still gets enough gradient steps (rule in `keras_lstm.training.budget`);
            false uses `batch_size` and the patiences exactly as given.
        window_loss: with window scaling, weight each window's squared error by
            `1 / spread**2` of its target channels, so the loss is measured in each window's own
            units and high-level windows of a growing series do not dominate it.
        loss: the regression loss on the scaled targets: `mse`, `mae` or `huber` (Keras'
            `Huber`, delta 1, quadratic near zero and linear for large errors, so outliers
            pull less). Classification always uses cross-entropy.
        min_steps: with `auto_budget`, a cross-validation fit may run past `epochs` until it
            could take this many gradient steps (early stopping still ends it): small sets of
            whole sequences get only a few steps per epoch. `0` turns it off; whole-sequence
            classifiers that leave `training.epochs` unset get 1500.
        max_steps: with `auto_budget`, the most gradient steps of one fit: a fit on many
            windows stops after `ceil(max_steps / steps_per_epoch)` epochs if `epochs` would
            take it further (large data takes many steps per epoch and learns in fewer epochs).
            `0` (the default) turns it off; at least `min_steps` when both are set. A cap
            costs accuracy (BENCHMARKS.md, Speed): a fast first look on large data.
        schedule: the learning rate over a fit: `plateau` (the default: Keras'
            `ReduceLROnPlateau` halves it after `reduce_lr_patience` epochs without
            improvement), `cosine` (from `learning_rate * sqrt(batch / 8)` down to near zero
            over the fit's epochs, a cosine; early stopping still ends a fit), or `auto`
            (cosine for the fits that `max_steps` cuts short, and their refit; plateau
            otherwise). With `max_steps: 2000`, `auto` learned taylor's one-step forecast
            better than the uncapped default and its day-ahead forecast far worse
            (BENCHMARKS.md, Speed). Rule in `keras_lstm.training.budget`.
        fold_workers: fit cross-validation folds in short-lived worker processes, so the memory
            TensorFlow keeps for every fitted model is handed back when a worker exits:
            `always`, `never`, or `auto` (workers during tuning, where one process fits
            hundreds of models; in-process for a single `train` unless `fold_jobs` runs folds
            in parallel).
        fold_jobs: cross-validation folds fitted at the same time, each in its own worker
            process; the results are the same as one at a time. `0` (auto): one per CPU core
            this process may use, when there is no GPU and the folds are worth a worker's
            start (rule in `keras_lstm.training.runtime.fold_jobs`); `1`: one at a time.
            `fold_workers: never` keeps every fold in this process, one at a time.
        interval: prediction intervals of a regression forecast: the nominal coverage (e.g.
            `0.9`) or a list of levels; null (the default) turns them off. They are calibrated
            on the cross-validation residuals (split conformal, per horizon step and target,
            scaled by each window's spread when the model is window-normalized), so they cost no
            extra fit; `Bundle.predict` adds `{target}_lower` / `{target}_upper` columns.
    """

    epochs: int = 100
    batch_size: int = 64
    learning_rate: float = 1.0e-3
    clipnorm: float = 1.0
    early_stopping_patience: int = 10
    reduce_lr_patience: int = 5
    cv_splits: int = 5
    cv_gap: int = 0
    strategy: str = "auto"
    backup_dir: str | None = None
    backup_seconds: float = 10.0
    shuffle: bool = True
    class_weight: str | None = None
    tensorboard: bool = False
    csv_log: bool = False
    fold_workers: str = "auto"
    fold_jobs: int = 0
    auto_budget: bool = True
    window_loss: bool = False
    loss: str = "mse"
    min_steps: int = 0
    max_steps: int = 0
    schedule: str = "plateau"
    interval: tuple[float, ...] | None = None

    def __post_init__(self):
        _set(self, "interval", _levels("training.interval", self.interval))
        _set(self, "epochs", _int("training.epochs", self.epochs, minimum=1))
        _set(self, "min_steps", _int("training.min_steps", self.min_steps, minimum=0))
        _set(self, "max_steps", _int("training.max_steps", self.max_steps, minimum=0))
        _set(self, "batch_size", _int("training.batch_size", self.batch_size, minimum=1))
        _set(
            self,
            "learning_rate",
            _float("training.learning_rate", self.learning_rate, low=0.0, low_open=True),
        )
        _set(self, "clipnorm", _float("training.clipnorm", self.clipnorm, low=0.0))
        _set(
            self,
            "early_stopping_patience",
            _int("training.early_stopping_patience", self.early_stopping_patience, minimum=0),
        )
        _set(
            self,
            "reduce_lr_patience",
            _int("training.reduce_lr_patience", self.reduce_lr_patience, minimum=0),
        )
        _set(self, "cv_splits", _int("training.cv_splits", self.cv_splits, minimum=2))
        _set(self, "cv_gap", _int("training.cv_gap", self.cv_gap, minimum=0))
        _choice("training.strategy", self.strategy, STRATEGIES)
        _choice("training.fold_workers", self.fold_workers, FOLD_WORKERS)
        _set(self, "fold_jobs", _int("training.fold_jobs", self.fold_jobs, minimum=0))
        _choice("training.loss", self.loss, LOSSES)
        _choice("training.schedule", self.schedule, SCHEDULES)
        _set(self, "backup_dir", _optional_str("training.backup_dir", self.backup_dir))
        _set(
            self,
            "backup_seconds",
            _float("training.backup_seconds", self.backup_seconds, low=0.0),
        )
        for name in ("shuffle", "tensorboard", "csv_log", "auto_budget", "window_loss"):
            if not isinstance(getattr(self, name), bool):
                _fail(f"training.{name}", getattr(self, name), "true or false")
        if self.class_weight is not None:
            _choice("training.class_weight", self.class_weight, ("balanced",))


@dataclass(frozen=True)
class TuningConfig:
    """The Keras Tuner search.

    Args:
        algorithm: `random`, `bayesian` or `hyperband`.
        max_trials: the most trials (random and bayesian).
        search_space: keys of the `data`, `model` and `training` sections (dotted, e.g.
            `model.units`) mapped to a list of choices or a range `{min, max, step, sampling}`.
        refit: fit the best config at the end so the search ends with a bundle.
    """

    algorithm: str = "bayesian"
    max_trials: int = 20
    search_space: dict = field(default_factory=dict)
    refit: bool = True

    def __post_init__(self):
        _choice("tuning.algorithm", self.algorithm, ALGORITHMS)
        _set(self, "max_trials", _int("tuning.max_trials", self.max_trials, minimum=1))
        if not isinstance(self.search_space, Mapping):
            _fail("tuning.search_space", self.search_space, "a mapping of keys to choices")
        _set(self, "search_space", dict(self.search_space))
        if not isinstance(self.refit, bool):
            _fail("tuning.refit", self.refit, "true or false")


@dataclass(frozen=True)
class ExportConfig:
    """TFLite export.

    Args:
        quantize: `float32`, `float16`, `dynamic`, `int8` (float in/out), `int8-full` or
            `int16x8` (int16 activations for TFLite Micro).
        representative_windows: calibration windows drawn from the training data for int8.
        max_error: parity threshold (relative RMSE against Keras); null uses the mode's default.
        calibration_margin: int8: widen each calibrated range by this fraction of its span on
            each side, so new data a little beyond the calibration windows (a warmer year, a
            trend) is not clipped; 0 keeps the exact calibration ranges (0.1 measured best
            across architectures and series, BENCHMARKS.md).
    """

    quantize: str = "int8"
    representative_windows: int = 1000
    max_error: float | None = None
    calibration_margin: float = 0.1

    def __post_init__(self):
        _choice("export.quantize", self.quantize, QUANTIZE_MODES)
        _set(
            self,
            "representative_windows",
            _int("export.representative_windows", self.representative_windows, minimum=1),
        )
        if self.max_error is not None:
            _set(self, "max_error", _float("export.max_error", self.max_error, low=0.0))
        _set(
            self,
            "calibration_margin",
            _float("export.calibration_margin", self.calibration_margin, low=0.0),
        )


SECTIONS = {
    "data": DataConfig,
    "model": ModelConfig,
    "training": TrainingConfig,
    "tuning": TuningConfig,
    "export": ExportConfig,
}


@dataclass(frozen=True)
class Config:
    """The whole configuration: `task`, `seed` and the five sections.

    Build one with `load_config` (from a YAML/JSON file or a dict) rather than by hand.

    Args:
        task: `regression` or `classification`.
        seed: seeds Python, NumPy and Keras and turns on TensorFlow op determinism; null for none.
        data, model, training, tuning, export: the sections.
    """

    task: str = "regression"
    seed: int | None = 42
    data: DataConfig = field(default_factory=DataConfig)
    model: ModelConfig = field(default_factory=ModelConfig)
    training: TrainingConfig = field(default_factory=TrainingConfig)
    tuning: TuningConfig = field(default_factory=TuningConfig)
    export: ExportConfig = field(default_factory=ExportConfig)

    def __post_init__(self):
        _choice("task", self.task, TASKS)
        if self.seed is not None:
            _set(self, "seed", _int("seed", self.seed, minimum=0))
        for name, cls in SECTIONS.items():
            if not isinstance(getattr(self, name), cls):
                _fail(name, getattr(self, name), f"a {cls.__name__}")
        data_kind(self)  # a declared `data.kind` that contradicts the other settings fails now
        if self.training.interval is not None and self.task != "regression":
            raise ConfigError(
                "Config key `training.interval` gives prediction intervals of a regression "
                f"forecast; task is {self.task!r}. Remove training.interval (a classifier's "
                "`p(CLASS)` columns already say how sure it is)."
            )

    def to_dict(self) -> dict:
        """The config as plain YAML-able data (lists, not tuples)."""
        return _plain(dataclasses.asdict(self))

    def replace(self, **changes: Any) -> Config:
        """A copy with dotted keys changed, e.g. `config.replace(**{"model.units": [16]})`."""
        raw = self.to_dict()
        for dotted, value in changes.items():
            _assign(raw, dotted, value)
        return from_dict(raw)

    def save(self, path: str | os.PathLike) -> Path:
        """Write the config as YAML, atomically (temporary file, then rename)."""
        path = Path(path)
        import yaml  # only to read or write a file: the device side imports this module

        text = yaml.safe_dump(self.to_dict(), sort_keys=False)
        atomic_write_text(path, text)
        return path


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _assign(raw: dict, dotted: str, value: Any) -> None:
    parts = dotted.split(".")
    target = raw
    for part in parts[:-1]:
        if part not in target or not isinstance(target[part], dict):
            raise ConfigError(f"Unknown config key `{dotted}`.")
        target = target[part]
    if parts[-1] not in target:
        prefix = dotted[: -len(parts[-1])]
        raise ConfigError(f"Unknown config key `{dotted}`.{_suggest(parts[-1], target, prefix)}")
    target[parts[-1]] = value


def _suggest(key: str, valid, prefix: str = "") -> str:
    hint = difflib.get_close_matches(key, list(valid), n=1, cutoff=0.5)
    if hint:
        return f" Did you mean `{prefix}{hint[0]}`?"
    return f" Valid keys: {', '.join(prefix + v for v in valid)}."


def _check_keys(mapping: Mapping, valid, where: str) -> None:
    prefix = f"{where}." if where else ""
    for key in mapping:
        if not isinstance(key, str) or key not in valid:
            raise ConfigError(
                f"Unknown config key `{prefix}{key}`.{_suggest(str(key), valid, prefix)}"
            )


# The `training.min_steps` of a whole-sequence classifier that leaves `training.epochs` unset
# (training/budget.py).
SEQUENCE_CLASSIFIER_MIN_STEPS = 1500

# The `model` defaults of a whole-sequence classifier (`task: classification` with
# `data.series_id` and `data.label`), chosen on the UCR sets of the development suite
# (BENCHMARKS.md, Accuracy, classification). Keys given in the config win; the forecasting
# defaults are the dataclass defaults above.
SEQUENCE_CLASSIFIER_MODEL = {
    "units": [64],
    "bidirectional": True,
    "conv_filters": [64, 64, 64],
    "conv_kernel_size": AUTO,
    "batch_norm": False,
    "conv_pool": AUTO,
    "pooling": "attention",
    "dropout": 0.0,
}


def _sequence_classifier_model(section: Mapping) -> dict:
    """The classifier defaults that fit the user's own `model` keys: with their own
    `conv_filters`, the default kernel sizes (one per default layer) do not apply, nor the
    pooling when they turn the front off."""
    defaults = dict(SEQUENCE_CLASSIFIER_MODEL)
    if "conv_filters" in section:
        defaults.pop("conv_kernel_size")
        if not section["conv_filters"]:
            defaults.pop("conv_pool")
    return defaults


def data_kind(config: Config, data=None) -> str:
    """What one sample of `config`'s data is (`KINDS`): `data.kind`, or with `auto` read from
    the settings: `model.embedding` makes texts, `data.label` (or arrays `(x, y)` passed as
    `data`) whole sequences, `data.series_id` many series, else one series. Loading
    (`keras_lstm.training.prepare`) and the config's defaults ask this function; a declared
    kind that contradicts the settings is a `ConfigError`.

    Example:
        >>> data_kind(load_config({"data": {"series_id": "shop"}}))
        'panel'
    """
    d = config.data
    return _kind(d.kind, d.label, d.series_id, config.model.embedding, isinstance(data, tuple))


_KIND_NEEDS = {
    "series": "none of `data.series_id`, `data.label` and `model.embedding`",
    "panel": "`data.series_id` without `data.label` or `model.embedding`",
    "sequences": "`data.label` (with `data.series_id`) or arrays `(x, y)`",
    "text": "`model.embedding`",
}


def _kind(declared: str, label, series_id, embedding, arrays: bool = False) -> str:
    if embedding:
        found = "text"
    elif label or arrays:
        found = "sequences"
    elif series_id:
        found = "panel"
    else:
        found = "series"
    if declared in ("auto", found):
        return found
    if declared == "sequences" and found == "series":  # arrays given later, in Python
        return declared
    raise ConfigError(
        f"`data.kind: {declared}` needs {_KIND_NEEDS[declared]}, but the settings describe "
        f"{found} data. Set `data.kind: {found}` or `auto`, or change the settings."
    )


def is_sequence_classifier(raw: Mapping) -> bool:
    """Whether a raw config asks for a whole-sequence classifier: classification of data
    whose kind (`data_kind`, read from the raw sections) is `sequences`."""
    data, model = raw.get("data") or {}, raw.get("model") or {}
    if raw.get("task") != "classification":
        return False
    declared = data.get("kind", "auto")
    try:
        kind = _kind(declared, data.get("label"), data.get("series_id"), model.get("embedding"))
    except ConfigError:  # reported when the config is built
        return False
    # a label without `series_id` is refused when the data is loaded
    return kind == "sequences" and bool(data.get("series_id") or declared == "sequences")


def from_dict(raw: Mapping) -> Config:
    """Build a validated `Config` from plain data, raising `ConfigError` for anything wrong.

    A whole-sequence classifier gets `SEQUENCE_CLASSIFIER_MODEL` for the `model` keys it does
    not set."""
    if raw is None:
        raw = {}
    if not isinstance(raw, Mapping):
        raise ConfigError(f"A config must be a mapping of sections; received {type(raw).__name__}.")
    top = {f.name for f in fields(Config)}
    _check_keys(raw, top, "")
    kwargs: dict[str, Any] = {k: raw[k] for k in ("task", "seed") if k in raw}
    sequence_classifier = (
        isinstance(raw.get("data"), Mapping)
        and isinstance(raw.get("model") or {}, Mapping)
        and is_sequence_classifier(raw)
    )
    for name, cls in SECTIONS.items():
        section = raw.get(name) or {}
        if name == "model" and sequence_classifier:
            section = {**_sequence_classifier_model(section), **section}
        if name == "training" and sequence_classifier and isinstance(section, Mapping):
            if "epochs" not in section:
                section = {"min_steps": SEQUENCE_CLASSIFIER_MIN_STEPS, **section}
        if not isinstance(section, Mapping):
            raise ConfigError(
                f"Config section `{name}` must be a mapping of keys; "
                f"received {type(section).__name__}."
            )
        _check_keys(section, [f.name for f in fields(cls)], name)
        try:
            kwargs[name] = cls(**section)
        except TypeError as err:  # a value Python could not even pass (should not happen)
            raise ConfigError(f"Config section `{name}`: {err}") from None
    return Config(**kwargs)


def load_config(source: str | os.PathLike | Mapping | Config | None = None) -> Config:
    """Load and validate a config from a YAML/JSON file, a dict, or return a `Config` as is.

    Relative paths in `data.path` and `data.test_path` are taken from the config file's folder
    and stored absolute, so the config means the same thing wherever it is used from.

    Args:
        source: a path to a `.yaml`/`.yml`/`.json` file, a mapping, a `Config`, or None for the
            defaults.

    Returns:
        A validated, immutable `Config`.

    Raises:
        ConfigError: the file is missing or unreadable, or a key or value is invalid.

    Example:
        >>> config = load_config({"task": "regression", "data": {"targets": ["y"]}})
        >>> config.training.cv_splits
        5
    """
    if isinstance(source, Config):
        return source
    if source is None or isinstance(source, Mapping):
        return from_dict(source or {})
    if not isinstance(source, (str, os.PathLike)):
        raise ConfigError(
            "A config must be a mapping of sections, a file path or a Config; "
            f"received {type(source).__name__}."
        )
    path = Path(source)
    problem = missing_file(path)
    if problem:
        raise ConfigError(f"Config file {str(path)!r} {problem}. Check the path.")
    import yaml  # see Config.save

    try:
        raw = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as err:
        raise ConfigError(
            f"Config file {str(path)!r} is not valid YAML or JSON{_yaml_problem(err)}"
        ) from None
    if raw is not None and not isinstance(raw, Mapping):
        raise ConfigError(f"Config file {str(path)!r} must hold a mapping of sections.")
    raw = dict(raw or {})
    data = raw.get("data")
    if isinstance(data, Mapping):
        data = dict(data)
        for key in ("path", "test_path"):
            if isinstance(data.get(key), str) and data[key]:
                data[key] = str((path.parent / data[key]).resolve())
        raw["data"] = data
    return from_dict(raw)


def _yaml_problem(err: Exception) -> str:
    """Where and what a YAML parser's error is, as an editor counts (line and column from 1):
    `" at line 3, column 12: expected ',' or ']', but got '<scalar>' (while parsing a flow
    sequence)"`."""
    mark = getattr(err, "problem_mark", None)
    where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    problem = getattr(err, "problem", None)
    context = getattr(err, "context", None)
    if problem:
        what = f"{problem} ({context})" if context else str(problem)
    else:
        what = str(err).splitlines()[0] if str(err) else type(err).__name__
    return f"{where}: {what}"


def _field_docs(cls) -> dict[str, str]:
    """`name: description` pairs from the `Args:` block of a section's docstring."""
    docs, name = {}, None
    in_args = False
    for line in (cls.__doc__ or "").splitlines():
        stripped = line.strip()
        if stripped == "Args:":
            in_args = True
            continue
        if not in_args or not stripped:
            continue
        head, sep, rest = stripped.partition(": ")
        if sep and line.startswith(" " * 8) and not line.startswith(" " * 12):
            for key in head.split(", "):
                docs[key] = rest
            name = head
        elif name:
            for key in name.split(", "):
                docs[key] += " " + stripped
    return docs


def reference_markdown() -> str:
    """The config reference (every key, its default and meaning) as Markdown, built from the
    config classes themselves; `docs/config.md` holds it and a test keeps the two equal."""
    lines = []
    top = _field_docs(Config)
    lines += ["## Top level", "", "| key | default | meaning |", "| --- | --- | --- |"]
    for name in ("task", "seed"):
        default = getattr(Config(), name)
        lines.append(f"| `{name}` | `{json_default(default)}` | {top.get(name, '')} |")
    for section, cls in SECTIONS.items():
        docs = _field_docs(cls)
        instance = cls()
        lines += ["", f"## `{section}`", "", "| key | default | meaning |", "| --- | --- | --- |"]
        for f in fields(cls):
            default = json_default(_plain(getattr(instance, f.name)))
            lines.append(f"| `{section}.{f.name}` | `{default}` | {docs.get(f.name, '')} |")
    return "\n".join(lines) + "\n"


def json_default(value) -> str:
    """A default value written as it would appear in YAML/JSON."""
    import json

    return json.dumps(value)
