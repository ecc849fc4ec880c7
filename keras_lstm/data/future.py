"""Known future inputs: columns whose values over the forecast horizon are known when the
forecast is made (`data.future_features`), and calendar features of the time column
(`data.calendar`).

The model stays a plain window model: a future column `c` enters every window as the channel
`c(t+H)`, its value `horizon` rows later, so the last `horizon` steps of each window carry the
future inputs of exactly the steps being forecast, and the earlier steps their recent past.
Past-only columns (and the targets) are never shifted, so nothing from after the window's end
reaches them; the window keeps its length, window normalization and the TFLite export are
unchanged, and a streaming device feeds each step's row with the future inputs of `horizon`
steps ahead.

Calendar features are encoded cyclically, `sin` and `cos` of `2 pi phase / period`:

| name | phase | period |
| --- | --- | --- |
| `hour` | hour + minute / 60 + second / 3600 | 24 |
| `day_of_week` | Monday = 0 ... Sunday = 6 | 7 |
| `day_of_month` | day - 1 | days in that month |
| `month` | month - 1 | 12 |
| `day_of_year` | day of the year - 1 | 365.25 |

This module needs only NumPy and pandas: `Bundle.predict` and the device-side predictor use the
same functions.

Example:
    >>> times = pd.DatetimeIndex(["2024-01-01 06:00"])  # a Monday
    >>> {k: round(float(v[0]), 3) for k, v in calendar_columns(times, ("hour",)).items()}
    {'hour_sin': 1.0, 'hour_cos': 0.0}
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from keras_lstm.config import CALENDAR_FEATURES as CALENDAR
from keras_lstm.errors import DataError, row_words


def future_name(column: str, horizon: int) -> str:
    """The model input channel of future column `column`: its value `horizon` rows later.

    Example:
        >>> future_name("holiday", 48)
        'holiday(t+48)'
    """
    return f"{column}(t+{horizon})"


def calendar_names(calendar) -> list[str]:
    """The two columns (`_sin`, `_cos`) of each calendar feature."""
    return [f"{name}_{part}" for name in calendar for part in ("sin", "cos")]


def input_names(past, future, calendar, horizon: int) -> list[str]:
    """The model's input channels in order: past-only columns, then each future column and
    calendar column `horizon` rows ahead."""
    ahead = [*future, *calendar_names(calendar)]
    return [*past, *(future_name(c, horizon) for c in ahead)]


def calendar_columns(times, calendar) -> dict[str, np.ndarray]:
    """The cyclic calendar columns (`NAME_sin`, `NAME_cos`) of `times`.

    Raises:
        DataError: `times` are not dates and times (a numeric time column).
    """
    if not isinstance(times, pd.DatetimeIndex):
        raise DataError(
            "`data.calendar` derives features from dates and times, but the time column holds "
            "numbers. Give `data.time_column` as dates (e.g. 2024-01-31 13:30) or remove "
            "data.calendar."
        )
    phases = {
        "hour": (times.hour + times.minute / 60 + times.second / 3600, 24.0),
        "day_of_week": (times.dayofweek, 7.0),
        "day_of_month": (times.day - 1, times.days_in_month),
        "month": (times.month - 1, 12.0),
        "day_of_year": (times.dayofyear - 1, 365.25),
    }
    out = {}
    for name in calendar:
        phase, period = phases[name]
        angle = 2 * np.pi * np.asarray(phase, np.float64) / np.asarray(period, np.float64)
        out[f"{name}_sin"] = np.sin(angle).astype(np.float32)
        out[f"{name}_cos"] = np.cos(angle).astype(np.float32)
    return out


def known_inputs(future: np.ndarray, times, calendar) -> np.ndarray:
    """The columns known ahead, in input order: the future columns' values `(rows, n)`, then
    the calendar columns of `times` (`calendar_columns`).

    Example:
        >>> times = pd.DatetimeIndex(["2024-01-01 06:00"])
        >>> known_inputs(np.full((1, 1), 7.0), times, ("hour",)).round(3).tolist()
        [[7.0, 1.0, 0.0]]
    """
    columns = [np.asarray(future, np.float32).reshape(len(times), -1)]
    if calendar:
        columns.append(np.stack(list(calendar_columns(times, calendar).values()), axis=1))
    return np.concatenate(columns, axis=1)


def ahead(values: np.ndarray, horizon: int) -> np.ndarray:
    """`values` `(rows, columns)` moved `horizon` rows up: row `t` holds row `t + horizon`. The
    last `horizon` rows, whose future lies past the data, repeat the last row; no valid window
    reads them (its targets would run past the data too).

    Example:
        >>> ahead(np.array([[1.0], [2.0], [3.0]]), 1)[:, 0].tolist()
        [2.0, 3.0, 3.0]
    """
    values = np.asarray(values)
    if horizon >= len(values):
        return np.repeat(values[-1:], len(values), axis=0)
    return np.concatenate([values[horizon:], np.repeat(values[-1:], horizon, axis=0)])


def model_inputs(past: np.ndarray, future: np.ndarray, horizon: int) -> np.ndarray:
    """The model's input rows: past-only columns as they are beside the future columns (and
    calendar columns) `horizon` rows ahead; one row fewer per horizon step than `future` when
    `future` holds the horizon's rows too (prediction), as many rows when it does not
    (training)."""
    if len(future) == len(past) + horizon:
        shifted = future[horizon:]
    else:
        shifted = ahead(future, horizon)
    return np.concatenate([past, shifted], axis=1).astype(np.float32)


def check_future_rows(frame: pd.DataFrame, columns, horizon: int) -> None:
    """The last `horizon` rows of a prediction input must hold every future column.

    Raises:
        DataError: too few rows, or a future value is missing.
    """
    if len(frame) <= horizon:
        raise DataError(
            f"The input has {len(frame)} rows; with known future inputs its last "
            f"horizon = {horizon} rows hold the future values ({', '.join(columns)}) for the "
            "steps to forecast (targets empty), after the history rows."
        )
    for column in columns:
        values = pd.to_numeric(frame[column], errors="coerce").to_numpy(dtype=float)
        bad = np.flatnonzero(~np.isfinite(values))
        if len(bad):
            raise DataError(
                f"Future column {column!r} has no value at {row_words(bad[0])}. Its values are "
                f"needed for every row, including the last horizon = {horizon} rows (the steps "
                "to forecast): fill them with the known or planned values."
            )


__all__ = [
    "CALENDAR",
    "ahead",
    "calendar_columns",
    "calendar_names",
    "check_future_rows",
    "future_name",
    "input_names",
    "known_inputs",
    "model_inputs",
]
