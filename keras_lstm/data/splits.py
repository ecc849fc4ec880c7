"""Walk-forward folds and the held-out test part, in terms of windows.

A window (a *sample*) is named by the row of its first target, `r`: its inputs are rows
`[r - lookback, r)` and its targets rows `[r, r + horizon)`. Splitting by that row makes the
leakage rule easy to state and test: every target of a training window lies before every target
of the validation (or test) windows it is scored against. Inputs of a validation or test window
may reach back into earlier rows, as they would in production.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold, TimeSeriesSplit, train_test_split

from keras_lstm.config import DataConfig, TrainingConfig
from keras_lstm.errors import DataError


@dataclass(frozen=True)
class Fold:
    """One split: window rows to train on and to validate (or test) on.

    Attributes:
        train: first-target rows of the training windows.
        validation: first-target rows of the validation windows.
        train_rows: rows `[0, train_rows)` hold every input and target of the training windows;
            scalers are fitted on exactly these rows.
        fit_rows: for many series, the rows (of every series) before the fold's cut; scalers
            are fitted on these instead of `[0, train_rows)`.
    """

    train: np.ndarray
    validation: np.ndarray
    train_rows: int
    fit_rows: np.ndarray | None = None

    def scaler_rows(self) -> np.ndarray | slice:
        """The rows scalers of this fold are fitted on."""
        return slice(0, self.train_rows) if self.fit_rows is None else self.fit_rows


@dataclass(frozen=True)
class SplitPlan:
    """The walk-forward folds, the refit split and the held-out test windows of one series."""

    folds: tuple[Fold, ...]
    final: Fold
    test_start: int


def test_start_row(n_rows: int, config: DataConfig) -> int:
    """First row of the held-out test tail (`data.test_size` as a fraction or a row count)."""
    size = config.test_size
    count = int(round(n_rows * size)) if size < 1 else int(size)
    count = max(count, config.horizon)
    return n_rows - count


# the fewest training windows a walk-forward fold may have: below it a fold has nothing to learn
# from (40 rows with lookback 8 and 3 folds gave folds of 1 training window each) and its score
# is noise
MIN_FOLD_WINDOWS = 8


def _fold_windows(history: int, splits: int, gap: int, horizon: int, stride: int) -> list[int]:
    """Training windows of each fold of `TimeSeriesSplit(splits, gap)` over `history` windows."""
    positions = np.arange(history)
    sizes = []
    for train_pos, val_pos in TimeSeriesSplit(n_splits=splits, gap=gap).split(positions):
        train = train_pos[train_pos + horizon - 1 + gap < val_pos[0]][::-stride]
        sizes.append(len(train))
    return sizes


def _refuse_folds_too_small(history: int, data: DataConfig, training: TrainingConfig) -> None:
    def smallest(splits):
        return min(_fold_windows(history, splits, training.cv_gap, data.horizon, data.stride))

    if smallest(training.cv_splits) >= MIN_FOLD_WINDOWS:
        return
    workable = [k for k in range(training.cv_splits - 1, 1, -1) if smallest(k) >= MIN_FOLD_WINDOWS]
    fix = (
        f"set `training.cv_splits: {workable[0]}`, or provide more rows"
        if workable
        else "provide more rows, or lower `data.lookback` or `data.test_size`"
    )
    raise DataError(
        f"The first walk-forward fold would train on {smallest(training.cv_splits)} windows "
        f"({history} windows before the test part, {training.cv_splits} folds); a fold needs at "
        f"least {MIN_FOLD_WINDOWS} to learn anything: {fix}."
    )


def plan_splits(
    n_rows: int,
    data: DataConfig,
    training: TrainingConfig,
    test_start: int | None = None,
    first_target: int | None = None,
) -> SplitPlan:
    """Plan walk-forward folds (scikit-learn `TimeSeriesSplit`) and the test windows.

    Args:
        n_rows: rows in the series (training history plus the test part).
        data: the `data` section (lookback, horizon, stride, test_size).
        training: the `training` section (cv_splits, cv_gap).
        test_start: first test row; default from `data.test_size`.
        first_target: earliest row a window may predict; default `data.lookback`. Tuning passes
            its longest lookback so that every trial is scored on the same target rows.

    Returns:
        A `SplitPlan`. Its `final` fold trains on every window before the test part and
        "validates" on the test windows: each test target time predicted once (windows `horizon`
        rows apart; a remainder shorter than `horizon` at the very end is not scored).

    Raises:
        DataError: the series is too short for one window per fold and test part.

    Example:
        >>> plan = plan_splits(200, DataConfig(lookback=10), TrainingConfig(cv_splits=3))
        >>> len(plan.folds), plan.test_start
        (3, 160)
    """
    lookback, horizon = data.lookback, data.horizon
    first_target = lookback if first_target is None else max(first_target, lookback)
    if test_start is None:
        test_start = test_start_row(n_rows, data)
    needed_windows = training.cv_splits + 1 + training.cv_gap + horizon - 1
    needed_rows = first_target + horizon - 1 + needed_windows + (n_rows - test_start)
    if n_rows < lookback + horizon:
        raise DataError(
            f"The series has {n_rows} rows but one window needs lookback + horizon = "
            f"{lookback + horizon} rows. Provide more rows or lower `data.lookback`."
        )
    history = np.arange(first_target, test_start - horizon + 1)
    if len(history) < needed_windows:
        raise DataError(
            f"The series has {n_rows} rows but {training.cv_splits} walk-forward folds with "
            f"lookback {lookback}, horizon {horizon} and a test part of {n_rows - test_start} "
            f"rows need at least {needed_rows}. Provide more rows, or lower `data.lookback`, "
            "`training.cv_splits` or `data.test_size`."
        )
    _refuse_folds_too_small(len(history), data, training)
    splitter = TimeSeriesSplit(n_splits=training.cv_splits, gap=training.cv_gap)
    folds = []
    for train_pos, val_pos in splitter.split(history):
        validation = history[val_pos]
        train = history[train_pos]
        train = train[train + horizon - 1 + training.cv_gap < validation[0]][:: -data.stride][::-1]
        if len(train) == 0:
            raise DataError(
                f"A walk-forward fold has no training window left (horizon {horizon}, gap "
                f"{training.cv_gap}). Provide more rows or lower `training.cv_splits`."
            )
        folds.append(Fold(train, validation, int(train[-1] + horizon)))
    test = np.arange(test_start, n_rows - horizon + 1, horizon)
    if len(test) == 0:
        raise DataError(
            f"The test part ({n_rows - test_start} rows) is shorter than the horizon ({horizon}). "
            "Raise `data.test_size`."
        )
    final_train = history[::-1][:: data.stride][::-1]
    final = Fold(final_train, test, int(final_train[-1] + horizon))
    return SplitPlan(tuple(folds), final, int(test_start))


def plan_panel_splits(
    starts: np.ndarray,
    times: np.ndarray,
    data: DataConfig,
    training: TrainingConfig,
) -> SplitPlan:
    """Walk-forward folds over many series stacked in one array, cut at the same times.

    Args:
        starts: first row of each series in the stacked array, plus the total row count at the
            end (`starts[i]:starts[i + 1]` is series `i`).
        times: a comparable time of every row (the time column, or the position counted back from
            each series' end when there is none).
        data, training: the config sections.

    Returns:
        A `SplitPlan` whose windows never cross a series boundary. Every fold and the test part
        cut all series at the same times: training targets lie before the validation times
        (`cv_gap` distinct times between them), scalers see only rows before the cut.

    Raises:
        DataError: too few distinct times for the folds and the test part.
    """
    lookback, horizon = data.lookback, data.horizon
    unique = np.unique(times)
    rank = np.searchsorted(unique, times)  # position of each row's time among all times
    size = data.test_size
    count = max(int(round(len(unique) * size)) if size < 1 else int(size), horizon)
    test_rank = len(unique) - count
    candidates, test = [], []
    for first, end in zip(starts[:-1], starts[1:], strict=True):
        rows = np.arange(first + lookback, end - horizon + 1)
        candidates.append(rows)
        in_test = rows[rank[rows] >= test_rank]
        if len(in_test):
            test.append(np.arange(in_test[0], end - horizon + 1, horizon))
    rows = np.concatenate(candidates) if candidates else np.zeros(0, int)
    if len(rows) == 0:
        raise DataError(
            f"No series is long enough for one window of lookback + horizon = "
            f"{lookback + horizon} rows."
        )
    last = rank[rows + horizon - 1]
    history = rows[last < test_rank]
    history_ranks = np.unique(rank[history])
    needed = training.cv_splits + 1 + training.cv_gap
    if len(history_ranks) < needed or not test:
        raise DataError(
            f"The series share {len(unique)} distinct times; {training.cv_splits} walk-forward "
            f"folds with lookback {lookback}, horizon {horizon} and a test part need more. "
            "Provide longer series or lower `data.lookback`, `training.cv_splits` or "
            "`data.test_size`."
        )
    splitter = TimeSeriesSplit(n_splits=training.cv_splits, gap=training.cv_gap)
    folds = []
    for _, val_pos in splitter.split(history_ranks):
        val_ranks = history_ranks[val_pos]
        cut = val_ranks[0]
        validation = history[np.isin(rank[history], val_ranks)]
        train = history[rank[history + horizon - 1] + training.cv_gap < cut]
        train = train[:: data.stride] if data.stride > 1 else train
        if len(train) == 0:
            raise DataError(
                "A walk-forward fold has no training window. Provide longer series or lower "
                "`training.cv_splits`."
            )
        fit_rows = np.flatnonzero(rank <= rank[train + horizon - 1].max())
        folds.append(Fold(train, validation, int(train.max() + horizon), fit_rows))
    final_train = history[:: data.stride] if data.stride > 1 else history
    fit_rows = np.flatnonzero(rank < test_rank)
    final = Fold(final_train, np.concatenate(test), int(final_train.max() + horizon), fit_rows)
    return SplitPlan(tuple(folds), final, int(np.flatnonzero(rank >= test_rank)[0]))


def plan_sample_splits(
    labels: np.ndarray,
    data: DataConfig,
    training: TrainingConfig,
    seed: int | None,
    stratify: bool,
    test_count: int = 0,
) -> SplitPlan:
    """Split samples (not time steps): a held-out test set and `cv_splits` folds of the rest.

    The test set is the last `test_count` samples when they come from `data.test_path`, else a
    `data.test_size` share drawn with `train_test_split`. The folds come from `StratifiedKFold`
    (classification) or `KFold`, shuffled with the config's seed.

    Raises:
        DataError: a class has too few samples for the test set or the folds.
    """
    n = len(labels)
    index = np.arange(n)
    encoded = pd.factorize(pd.Series(labels))[0] if stratify else None
    if stratify:
        # the folds are drawn from the training part only (a test file's samples are not)
        counts = pd.Series(labels[: n - test_count]).value_counts()
        need = training.cv_splits + (0 if test_count else 1)
        if counts.min() < need:
            raise DataError(
                f"Class {counts.idxmin()!r} has {counts.min()} training sequences; stratified "
                f"splits into {training.cv_splits} folds"
                f"{'' if test_count else ' and a test set'} need at least {need} per class. "
                "Add data or lower `training.cv_splits`."
            )
    if test_count:
        train, test = index[: n - test_count], index[n - test_count :]
    else:
        size = data.test_size if data.test_size < 1 else int(data.test_size)
        train, test = train_test_split(index, test_size=size, random_state=seed, stratify=encoded)
        train, test = np.sort(train), np.sort(test)
    if len(train) < training.cv_splits:
        raise DataError(
            f"{len(train)} training sequences cannot make {training.cv_splits} folds. Add data "
            "or lower `training.cv_splits`."
        )
    splitter = (
        StratifiedKFold(training.cv_splits, shuffle=True, random_state=seed)
        if stratify
        else KFold(training.cv_splits, shuffle=True, random_state=seed)
    )
    folds = tuple(
        Fold(train[a], train[b], -1)
        for a, b in splitter.split(train, encoded[train] if stratify else None)
    )
    return SplitPlan(folds, Fold(train, test, -1), n - len(test))
