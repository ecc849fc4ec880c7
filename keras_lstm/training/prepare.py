"""Turn a config and its data into per-fold, leak-free window data."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from keras_lstm.config import Config
from keras_lstm.data import Fold, Scaler, SplitPlan, Table, WindowData, load_table, plan_splits
from keras_lstm.errors import ConfigError, DataError


@dataclass(frozen=True)
class FoldData:
    """The windows and fitted scalers of one fold."""

    windows: WindowData
    feature_scaler: Scaler
    target_scaler: Scaler | None


@dataclass(frozen=True)
class Prepared:
    """A loaded, checked series with its split plan.

    Attributes:
        config: the config it was prepared for.
        table: the checked data (training history followed by the test part).
        plan: walk-forward folds, the refit split and the test windows.
        classes: class labels in index order (classification), else None.
        labels: class index of every row (classification), else None.
    """

    config: Config
    table: Table
    plan: SplitPlan
    classes: tuple | None = None
    labels: np.ndarray | None = None

    @property
    def input_shape(self) -> tuple[int, int]:
        return (self.config.data.lookback, len(self.table.feature_names))

    @property
    def output_shape(self):
        if self.classes is not None:
            return len(self.classes)
        return (self.config.data.horizon, len(self.table.target_names))

    def fold_data(self, fold: Fold) -> FoldData:
        """Fit the scalers on `fold`'s training rows only and window the scaled series."""
        rows = fold.train_rows
        kind = self.config.data.scaler
        feature_scaler = Scaler.fit(kind, self.table.features[:rows])
        features = feature_scaler.transform(self.table.features)
        if self.classes is not None:
            targets, target_scaler = self.labels[:, None].astype(np.float32), None
        else:
            target_scaler = Scaler.fit(kind, self.table.targets[:rows])
            targets = target_scaler.transform(self.table.targets)
        windows = WindowData(features, targets, self.config.data.lookback, self.config.data.horizon)
        return FoldData(windows, feature_scaler, target_scaler)


def _concat(train: Table, test: Table) -> Table:
    if test.feature_names != train.feature_names:
        raise DataError(
            f"The test file's feature columns {list(test.feature_names)} differ from the training "
            f"data's {list(train.feature_names)}. Use the same columns in `data.test_path`."
        )
    index = train.index.append(test.index)
    if isinstance(index, pd.DatetimeIndex) and not index.is_monotonic_increasing:
        raise DataError(
            "The test file (`data.test_path`) must start after the training data ends: its "
            f"first time {test.index[0]} is not after {train.index[-1]}."
        )
    return Table(
        features=np.concatenate([train.features, test.features]),
        targets=np.concatenate([train.targets, test.targets]),
        feature_names=train.feature_names,
        target_names=train.target_names,
        index=index,
    )


def prepare(config: Config, data=None, first_target: int | None = None) -> Prepared:
    """Load the config's data (or `data`), check it and plan its splits.

    Args:
        config: the whole config.
        data: a DataFrame or CSV path; default `config.data.path`.
        first_target: the earliest row a window may predict (default `data.lookback`); tuning
            sets it to the longest lookback searched so every trial scores the same targets.

    Returns:
        A `Prepared`.

    Raises:
        ConfigError: settings that contradict each other.
        DataError: the data cannot be used.
    """
    if config.data.series_id or config.data.label:
        raise ConfigError(
            "`data.series_id` and `data.label` (many series, whole sequences) are not supported "
            "yet. Remove them to train on a single series."
        )
    if config.task == "classification" and config.data.horizon != 1:
        raise ConfigError(
            "Classification predicts the label of the next step: set `data.horizon` to 1. "
            f"Received: data.horizon={config.data.horizon}"
        )
    if config.task == "classification" and len(config.data.targets or ()) != 1:
        raise ConfigError(
            "Classification needs exactly one label column in `data.targets`. "
            f"Received: data.targets={list(config.data.targets or ())}"
        )
    table = load_table(data, config.data, config.task)
    test_start = None
    if config.data.test_path:
        test = load_table(config.data.test_path, config.data, config.task)
        test_start = len(table)
        table = _concat(table, test)
    plan = plan_splits(len(table), config.data, config.training, test_start, first_target)
    if config.task != "classification":
        return Prepared(config, table, plan)
    raw = pd.Series(table.targets[:, 0])
    if raw.isna().any():
        raise DataError(
            f"Label column {table.target_names[0]!r} has a missing value at row "
            f"{int(np.flatnonzero(raw.isna())[0])}. Fill or drop it."
        )
    classes = tuple(sorted(raw.unique().tolist(), key=str))
    if len(classes) < 2:
        raise DataError(
            f"Label column {table.target_names[0]!r} holds one class only ({classes[0]!r}); "
            "classification needs at least two."
        )
    lookup = {c: i for i, c in enumerate(classes)}
    labels = raw.map(lookup).to_numpy(dtype=np.int64)
    return Prepared(config, table, plan, classes, labels)
