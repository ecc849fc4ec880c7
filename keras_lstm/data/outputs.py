"""Model outputs as a DataFrame in real units: the column of each target and step, and the time
each row predicts. Needs only NumPy and pandas: `Bundle.predict` and the device-side
`LitePredictor` share it.
"""

from __future__ import annotations

import re
import warnings

import numpy as np
import pandas as pd


def prediction_frame(pre: dict, values: np.ndarray, index) -> pd.DataFrame:
    """Predictions as a DataFrame: class probabilities `(n, classes)` become `label` and a
    `p(CLASS)` column per class; real-unit forecasts `(n, horizon, targets)` a column per target
    (horizon 1) or `TARGET@t+K` per step. Shared by `Bundle` and `LitePredictor` output.

    Example:
        >>> pre = {"task": "regression", "target_names": ["y"]}
        >>> prediction_frame(pre, np.array([[[1.0]], [[2.0]]]), pd.RangeIndex(2)).y.tolist()
        [1.0, 2.0]
    """
    if pre.get("task") == "classification":
        classes = pre.get("classes") or list(range(values.shape[1]))
        out = pd.DataFrame(values, index=index, columns=[f"p({c})" for c in classes])
        out.insert(0, "label", [classes[i] for i in values.argmax(1)])
        return out
    names = pre["target_names"]
    horizon = values.shape[1] if values.ndim == 3 else 1
    if horizon == 1:
        columns = names
    else:
        columns = [f"{name}@t+{k + 1}" for k in range(horizon) for name in names]
    return pd.DataFrame(values.reshape(len(values), -1), index=index, columns=columns)


def _calendar_step(index: pd.DatetimeIndex):
    """One step of the index's calendar: the frequency pandas infers (months, quarters,
    business days: steps of unequal length), else the median spacing, else a day."""
    if len(index) > 2:
        try:
            with warnings.catch_warnings():  # pandas 3 warns that a later one returns an offset
                warnings.simplefilter("ignore")
                freq = pd.infer_freq(index)
        except (TypeError, ValueError):
            freq = None
        if freq is not None:
            return pd.tseries.frequencies.to_offset(freq)
    return pd.Series(index).diff().median() if len(index) > 1 else pd.Timedelta(1, "D")


def times_after(index: pd.Index, rows: np.ndarray) -> pd.Index:
    """The time of row `r` for each of `rows`, extending past the end by the index's calendar:
    the frequency pandas infers for times (so the quarter after 1993Q1 is 1993Q2, the business
    day after a Friday a Monday), else the median step.

    Example:
        >>> times_after(pd.Index([10, 20, 30]), np.array([2, 3, 4])).tolist()
        [30, 40, 50]
        >>> quarters = pd.DatetimeIndex(["1993-01-01", "1993-04-01", "1993-07-01"])
        >>> [str(t.date()) for t in times_after(quarters, np.array([3, 4]))]
        ['1993-10-01', '1994-01-01']
    """
    n = len(index)
    if isinstance(index, pd.DatetimeIndex):
        step = _calendar_step(index)
        last = index[-1]
        return pd.DatetimeIndex(
            [index[r] if r < n else last + (r - n + 1) * step for r in rows], name=index.name
        )
    values = np.asarray(index)
    step = np.median(np.diff(values)) if n > 1 else 1
    if np.issubdtype(values.dtype, np.integer):  # years or step numbers stay whole
        step = int(round(step))
    return pd.Index(
        [values[r] if r < n else values[-1] + (r - n + 1) * step for r in rows], name=index.name
    )


_QUARTER = re.compile(r"^(\d{4})([-_ ]?)[Qq]([1-4])$")


def format_times_like(index: pd.Index, examples) -> pd.Index:
    """Times written the way the input wrote them: `examples` are the input's own strings of
    its time column (`1993Q1`, `2015-03-15`, `03/15/2015 14:00`). Quarters keep their form;
    any other form that pandas can name and that writes the examples back exactly is used for
    every time; anything else (numbers, a form pandas cannot name) leaves `index` as it is.

    Example:
        >>> times = pd.DatetimeIndex(["1993-10-01", "1994-01-01"], name="quarter")
        >>> format_times_like(times, ["1993Q1", "1993Q2"]).tolist()
        ['1993Q4', '1994Q1']
        >>> format_times_like(times, ["1993-01-01"]).tolist()
        ['1993-10-01', '1994-01-01']
    """
    examples = [str(value).strip() for value in examples]
    if not isinstance(index, pd.DatetimeIndex) or not examples:
        return index
    quarter = _QUARTER.match(examples[0])
    if quarter and all(_QUARTER.match(value) for value in examples):
        separator = quarter.group(2)
        return pd.Index(
            [f"{t.year}{separator}Q{t.quarter}" for t in index], name=index.name, dtype=object
        )
    from pandas.tseries.api import guess_datetime_format

    pattern = guess_datetime_format(examples[0])
    if pattern is None:
        return index
    try:
        written = pd.to_datetime(pd.Series(examples), format=pattern).dt.strftime(pattern)
    except (TypeError, ValueError):
        return index
    if written.tolist() != examples:  # the form does not write the input back exactly
        return index
    return pd.Index(index.strftime(pattern), name=index.name, dtype=object)
