"""Model outputs as a DataFrame in real units: the column of each target and step, and the time
each row predicts. Needs only NumPy and pandas: `Bundle.predict` and the device-side
`LitePredictor` share it.
"""

from __future__ import annotations

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


def times_after(index: pd.Index, rows: np.ndarray) -> pd.Index:
    """The time of row `r` for each of `rows`, extending past the end at the median step.

    Example:
        >>> times_after(pd.Index([10, 20, 30]), np.array([2, 3, 4])).tolist()
        [30, 40, 50]
    """
    n = len(index)
    if isinstance(index, pd.DatetimeIndex):
        step = pd.Series(index).diff().median() if n > 1 else pd.Timedelta(1, "D")
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
