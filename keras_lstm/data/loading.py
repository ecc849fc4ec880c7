"""Load a CSV or DataFrame and check it before anything is trained on it."""

from __future__ import annotations

import dataclasses
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from keras_lstm.config import DataConfig
from keras_lstm.data.future import input_names, known_inputs, model_inputs
from keras_lstm.errors import DataError, row_words
from keras_lstm.files import missing_file


@dataclass(frozen=True)
class Table:
    """A checked table: feature and target columns as float arrays, plus their names and times.

    Attributes:
        features: array `(rows, n_features)`, float32.
        targets: array `(rows, n_targets)`, float32 (regression) or the raw labels
            (classification).
        feature_names: column names of `features`.
        target_names: column names of `targets`.
        index: the time of each row (the time column, or the row number).
        other_columns: columns of the data used neither as features nor targets.
    """

    features: np.ndarray
    targets: np.ndarray
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    index: pd.Index
    other_columns: tuple[str, ...] = ()

    def __len__(self) -> int:
        return len(self.features)


def read_frame(source: str | os.PathLike | pd.DataFrame) -> pd.DataFrame:
    """Read a CSV path or take a DataFrame, with a `DataError` naming the file on failure.

    Example:
        >>> frame = read_frame(pd.DataFrame({"y": [1.0, 2.0]}))
        >>> list(frame.columns)
        ['y']
    """
    if isinstance(source, pd.DataFrame):
        return source.copy()
    if source is None:
        raise DataError(
            "No data given: set `data.path` in the config or pass a DataFrame or CSV path."
        )
    if not isinstance(source, (str, os.PathLike)):
        raise DataError(
            f"Data must be a pandas DataFrame or a CSV path; received {type(source).__name__}."
        )
    path = Path(source)
    problem = missing_file(path)
    if problem:
        raise DataError(f"Data file {str(path)!r} {problem}. Check `data.path`.")
    try:
        frame = pd.read_csv(path)
    except pd.errors.EmptyDataError:
        raise DataError(
            f"Data file {str(path)!r} is empty: it needs a header row and data rows."
        ) from None
    except UnicodeDecodeError:
        raise DataError(
            f"Data file {str(path)!r} is not UTF-8 text. Save it as UTF-8 CSV."
        ) from None
    except (pd.errors.ParserError, ValueError) as err:
        raise DataError(f"Data file {str(path)!r} is not a readable CSV: {err}") from None
    if frame.empty:
        raise DataError(f"Data file {str(path)!r} has a header but no data rows.")
    if frame.shape[1] == 1 and any(sep in str(frame.columns[0]) for sep in ";\t|"):
        raise DataError(
            f"Data file {str(path)!r} has a single column named {frame.columns[0]!r}: it looks "
            "delimited by something other than commas. Save it as comma-separated CSV."
        )
    return frame


def _parse_times(frame: pd.DataFrame, column: str) -> pd.DatetimeIndex | pd.Index:
    if column not in frame.columns:
        raise DataError(
            f"Time column {column!r} (data.time_column) is not in the data. "
            f"Columns: {', '.join(map(str, frame.columns))}."
        )
    raw = frame[column]
    if pd.api.types.is_numeric_dtype(raw):
        times = pd.Index(raw.to_numpy())
        bad = np.flatnonzero(~np.isfinite(times.to_numpy(dtype=float)))
    else:
        try:
            with warnings.catch_warnings():  # pandas warns before it fails on mixed zones
                warnings.simplefilter("ignore", FutureWarning)
                parsed = pd.to_datetime(raw, errors="coerce", format="mixed")
                bad = np.flatnonzero(parsed.isna().to_numpy())
                times = pd.DatetimeIndex(parsed)
        except (ValueError, TypeError, OverflowError) as err:  # e.g. mixed time zones
            raise DataError(
                f"Time column {column!r} cannot be read as times: {err}. Write every time in "
                "one format and one time zone."
            ) from None
    if len(bad):
        row = int(bad[0])
        raise DataError(
            f"Time column {column!r} has a value that is not a time at {row_words(row)}: "
            f"{raw.iloc[row]!r}. Fix or remove that row."
        )
    values = times.to_numpy()
    steps = values[1:] > values[:-1]
    if not steps.all():
        row = int(np.flatnonzero(~steps)[0]) + 1
        what = "repeats" if values[row] == values[row - 1] else "goes back in time"
        raise DataError(
            f"Time column {column!r} {what} at {row_words(row)}: {raw.iloc[row]!r} after "
            f"{raw.iloc[row - 1]!r}. Times must be unique and increasing: sort the rows and "
            "remove duplicates."
        )
    return times


def _apply_missing(frame: pd.DataFrame, columns: list[str], policy: str) -> pd.DataFrame:
    block = frame[columns]
    if policy == "error":
        nan = block.isna().to_numpy()
        if nan.any():
            row, col = np.argwhere(nan)[0]
            raise DataError(
                f"Column {columns[col]!r} has a missing value at {row_words(row)}. Fill it, or set "
                "`data.missing` to ffill, interpolate or drop."
            )
        return frame
    if policy == "drop":
        return frame.loc[~block.isna().any(axis=1)].reset_index(drop=True)
    frame = frame.copy()
    if policy == "ffill":
        frame[columns] = block.ffill().bfill()
    else:  # interpolate
        frame[columns] = block.interpolate(limit_direction="both")
    return frame


def _check_numeric(frame: pd.DataFrame, columns) -> None:
    columns = list(columns)
    block = frame[columns]
    for column, dtype in block.dtypes.items():
        if not pd.api.types.is_numeric_dtype(dtype):
            values = block[column]
            bad = values.notna() & pd.to_numeric(values, errors="coerce").isna()
            row = int(np.flatnonzero(bad.to_numpy())[0]) if bad.any() else 0
            raise DataError(
                f"Column {column!r} is not numeric at {row_words(row)}: {values.iloc[row]!r}. "
                "Convert it to numbers or leave it out of `data.features` / `data.targets`."
            )
    values = block.to_numpy(dtype=float)  # one pass over every column at once
    empty = np.isnan(values).all(axis=0)
    if empty.any():
        column = columns[int(np.flatnonzero(empty)[0])]
        raise DataError(f"Column {column!r} is empty (all values missing). Remove it.")
    inf = np.isinf(values)
    if inf.any():
        row, col = np.argwhere(inf)[0]
        raise DataError(
            f"Column {columns[col]!r} has an infinite value at {row_words(row)}. Replace it with a "
            "finite number or leave the cell empty and set `data.missing`."
        )


# share of a text column's filled cells that must read as numbers for it to count as a numeric
# column with bad cells (rather than a text column, which default features leave out)
MOSTLY_NUMERIC = 0.9


def _refuse_a_numeric_column_with_bad_cells(values: pd.Series, column) -> None:
    filled = values.dropna()
    if filled.empty or not filled.map(lambda value: isinstance(value, str)).all():
        return
    stripped = filled.str.strip()
    numbers = pd.to_numeric(stripped, errors="coerce")
    if numbers.notna().mean() < MOSTLY_NUMERIC or numbers.notna().all():
        return
    position = int(np.flatnonzero(values.index == numbers.index[numbers.isna()][0])[0])
    raise DataError(
        f"Column {column!r} is not numeric at {row_words(position)}: "
        f"{values.iloc[position]!r}, though its other cells are numbers. Fix or empty that cell "
        "(empty cells follow `data.missing`), or set `data.features` to the columns to use."
    )


def select_features(frame: pd.DataFrame, features, skip) -> list[str]:
    """The feature columns: `features` as given (each must exist), or by default every numeric
    (non-boolean) column not in `skip`.

    A column that is numbers but for a few cells (`'n/a?'` among floats) is an error naming the
    row, not silently left out: most of its filled cells read as numbers
    (`MOSTLY_NUMERIC`).

    Raises:
        DataError: a named feature is missing, a column looks numeric but has a bad cell, or no
            numeric column is left.
    """
    if features is None:
        for column in frame.columns:
            if column not in skip and not pd.api.types.is_numeric_dtype(frame[column]):
                _refuse_a_numeric_column_with_bad_cells(frame[column], column)
        chosen = [
            c
            for c in frame.columns
            if c not in skip
            and pd.api.types.is_numeric_dtype(frame[c])
            and not pd.api.types.is_bool_dtype(frame[c])
        ]
        if not chosen:
            raise DataError(
                "No numeric feature columns found. Set `data.features` to the input columns."
            )
        return chosen
    absent = [c for c in features if c not in frame.columns]
    if absent:
        raise DataError(
            f"Feature column {absent[0]!r} (data.features) is not in the data. "
            f"Columns: {', '.join(frame.columns)}."
        )
    return list(features)


def load_features(
    source,
    feature_names,
    *,
    allowed=(),
    time_column: str | None = None,
    missing: str = "error",
    lookback: int = 1,
) -> tuple[np.ndarray, pd.Index]:
    """Check the feature columns of new data (at prediction time) and return them.

    Args:
        source: CSV path or DataFrame.
        feature_names: the columns the model was trained on, in order.
        allowed: other columns that may be present (targets, time column, unused columns).
        time_column: optional time column (checked as in training).
        missing: the missing-value policy.
        lookback: rows needed for one window.

    Returns:
        `(features (rows, n_features) float32, index)`.

    Raises:
        DataError: a feature column is missing or not numeric, an unknown column is present,
            a value is inf, or there are fewer rows than `lookback`.

    Example:
        >>> x, index = load_features(pd.DataFrame({"a": [1.0, 2.0]}), ["a"])
        >>> x.shape
        (2, 1)
    """
    frame = read_frame(source)
    frame.columns = [str(c) for c in frame.columns]
    absent = [c for c in feature_names if c not in frame.columns]
    if absent:
        raise DataError(
            f"Feature column {absent[0]!r}, used in training, is missing from the input. "
            f"Expected columns: {', '.join(feature_names)}."
        )
    if frame.empty:
        raise DataError(f"The input has no rows; one window needs lookback = {lookback} rows.")
    known = set(feature_names) | {c for c in allowed if c}
    extra = [c for c in frame.columns if c not in known]
    if extra:
        raise DataError(
            f"Column {extra[0]!r} was not in the training data. Remove it; the model expects "
            f"{', '.join(feature_names)}."
        )
    _check_numeric(frame, feature_names)
    index = pd.RangeIndex(len(frame))
    if time_column and time_column in frame.columns:
        index = pd.Index(_parse_times(frame, time_column), name=time_column)
        frame = frame.assign(__time__=index)
    frame = _apply_missing(frame, list(feature_names), missing)
    if time_column and time_column in frame.columns:
        index = pd.Index(frame["__time__"], name=time_column)
    else:
        index = pd.RangeIndex(len(frame))
    if len(frame) < lookback:
        raise DataError(
            f"The input has {len(frame)} rows; one window needs lookback = {lookback} rows."
        )
    return frame[list(feature_names)].to_numpy(dtype=np.float32), index


def with_future_inputs(table: Table, config: DataConfig) -> Table:
    """`table` with its future columns (`data.future_features`) and calendar columns
    (`data.calendar`) moved `horizon` rows ahead, after the past-only columns
    (`keras_lstm.data.future`); the table itself when there are none.

    Raises:
        DataError: a calendar feature is constant in this data (e.g. `hour` of daily rows).
    """
    future, calendar = list(config.future_features or ()), list(config.calendar or ())
    if not future and not calendar:
        return table
    names = list(table.feature_names)
    past = [n for n in names if n not in future]
    known = known_inputs(table.features[:, [names.index(c) for c in future]], table.index, calendar)
    for i, name in enumerate(calendar):  # each feature's sin and cos, after the future columns
        pair = known[:, len(future) + 2 * i : len(future) + 2 * i + 2]
        if np.ptp(pair, axis=0).max() == 0:
            raise DataError(
                f"Calendar feature {name!r} (data.calendar) is constant in this data (the "
                f"time column {table.index.name!r} never changes it). Remove it from "
                "data.calendar."
            )
    features = model_inputs(
        table.features[:, [names.index(c) for c in past]], known, config.horizon
    )
    return dataclasses.replace(
        table,
        features=features,
        feature_names=tuple(input_names(past, future, calendar, config.horizon)),
    )


def _input_columns(frame: pd.DataFrame, config: DataConfig, skip: set) -> list[str]:
    """The feature columns (`data.features`, or every numeric column not in `skip`) and the
    future columns after them, with the targets checked to be there."""
    if not config.targets:
        raise DataError(
            "No target column: set `data.targets` to the column(s) to predict. "
            f"Columns: {', '.join(frame.columns)}."
        )
    missing = [c for c in config.targets if c not in frame.columns]
    if missing:
        raise DataError(
            f"Target column {missing[0]!r} (data.targets) is not in the data. "
            f"Columns: {', '.join(frame.columns)}."
        )
    features = select_features(frame, config.features, skip)
    future = list(config.future_features or ())
    absent = [c for c in future if c not in frame.columns]
    if absent:
        raise DataError(
            f"Future column {absent[0]!r} (data.future_features) is not in the data. "
            f"Columns: {', '.join(frame.columns)}."
        )
    return features + [c for c in future if c not in features]


def _refuse_constant(frame: pd.DataFrame, features: list[str]) -> None:
    """One row, or a feature column with one value, carries nothing to learn from."""
    if len(frame) < 2:  # one row is "constant" in every column
        raise DataError(
            f"The data has {len(frame)} row; training needs at least lookback + horizon rows "
            "for one window, and many more for the folds and the test part. Provide more rows."
        )
    for column in features:
        if frame[column].nunique(dropna=True) <= 1:
            raise DataError(
                f"Feature column {column!r} is constant: it carries no information and cannot be "
                "scaled. Leave it out of `data.features`."
            )


def load_table(
    source: str | os.PathLike | pd.DataFrame | None,
    config: DataConfig,
    task: str = "regression",
    check_constant: bool = True,
) -> Table:
    """Load, validate and clean the data a config describes.

    Checks the time column, picks features (default: every numeric column but the time column)
    and targets, applies the missing-value policy and rejects inf, constant columns and
    non-numeric features, each with a `DataError` that names the column (and row).

    Args:
        source: CSV path or DataFrame; None reads `config.path`.
        config: the `data` section.
        task: `regression` or `classification` (the target of a classification is a label).
        check_constant: reject constant feature columns (off for one series of many, where a
            per-series constant is a legitimate static feature).

    Returns:
        A `Table`.

    Raises:
        DataError: the data cannot be used as the config describes.

    Example:
        >>> frame = pd.DataFrame({"y": np.sin(np.arange(50.0)), "x": np.arange(50.0)})
        >>> table = load_table(frame, DataConfig(targets=("y",)))
        >>> table.feature_names, table.target_names
        (('y', 'x'), ('y',))
    """
    frame = read_frame(config.path if source is None else source)
    frame.columns = [str(c) for c in frame.columns]
    if frame.empty:
        raise DataError("The data has no rows. Pass a table with a header and data rows.")
    skip = {config.time_column, config.series_id, config.label} - {None}
    if task == "classification":
        skip |= set(config.targets or ())
    features = _input_columns(frame, config, skip)
    numeric = list(
        dict.fromkeys(features + ([] if task == "classification" else list(config.targets)))
    )
    _check_numeric(frame, numeric)
    times = _parse_times(frame, config.time_column) if config.time_column else None
    if times is not None:
        frame = frame.assign(**{"__time__": times})
    used = numeric + ([c for c in config.targets if c not in numeric])
    frame = _apply_missing(frame, used, config.missing)
    if frame.empty:
        raise DataError("No rows are left after dropping rows with missing values.")
    if check_constant:
        _refuse_constant(frame, features)
    if times is not None:
        index = pd.Index(frame["__time__"], name=config.time_column)
    else:
        index = pd.RangeIndex(len(frame))
    used_columns = set(features) | set(config.targets) | skip
    if task == "classification":
        targets = frame[list(config.targets)].to_numpy()
    else:
        targets = frame[list(config.targets)].to_numpy(dtype=np.float32)
    return Table(
        features=frame[features].to_numpy(dtype=np.float32),
        targets=targets,
        feature_names=tuple(features),
        target_names=tuple(config.targets),
        index=index,
        other_columns=tuple(c for c in frame.columns if c not in used_columns and c != "__time__"),
    )
