"""Windows over a series as NumPy views (`keras_lstm.training.batches` feeds them to Keras).

`sliding_window_view` makes every window a view of the one scaled array, so a million rows with
a lookback of 60 cost no more memory than the array itself; only the batch being trained on is
gathered into a fresh array. See `benchmarks/windowing.py` for the figures.
"""

from __future__ import annotations

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def input_windows(values: np.ndarray, lookback: int) -> np.ndarray:
    """All input windows of `values` `(rows, features)` as a view `(rows - lookback + 1,
    lookback, features)`; window `j` is `values[j : j + lookback]`.

    Example:
        >>> input_windows(np.arange(5.0).reshape(5, 1), 3)[:, :, 0].tolist()
        [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]]
    """
    return sliding_window_view(values, lookback, axis=0).transpose(0, 2, 1)


class WindowData:
    """Inputs and targets of one series, addressed by the row of each window's first target.

    Args:
        features: scaled features `(rows, n_features)`.
        targets: scaled targets `(rows, n_targets)`, or None for inference.
        lookback: rows in each input window.
        horizon: rows in each target block.

    Example:
        >>> data = WindowData(np.arange(10.0)[:, None], np.arange(10.0)[:, None], 3, 2)
        >>> x, y = data.gather(np.array([3]))
        >>> x[0, :, 0].tolist(), y[0, :, 0].tolist()
        ([0.0, 1.0, 2.0], [3.0, 4.0])
    """

    def __init__(self, features, targets, lookback: int, horizon: int):
        self.lookback = lookback
        self.horizon = horizon
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self._inputs = input_windows(self.features, lookback)
        # sliding_window_view works on strided arrays: no copy of the targets is needed
        self.targets = None if targets is None else np.asarray(targets)
        self._targets = (
            None
            if targets is None
            else sliding_window_view(self.targets, horizon, axis=0).transpose(0, 2, 1)
        )

    def inputs(self, rows: np.ndarray) -> np.ndarray:
        """Input windows (a gathered copy) for first-target rows `rows`."""
        return self._inputs[np.asarray(rows) - self.lookback]

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(inputs, targets)` for first-target rows: `(n, lookback, f)` and `(n, horizon, t)`."""
        rows = np.asarray(rows)
        return self._inputs[rows - self.lookback], self._targets[rows]


def window_spread_weights(values: np.ndarray, lookback: int, floor: float) -> np.ndarray:
    """`1 / max(std, floor)**2` of each input window of `values` `(rows,)`, indexed by the
    window's first-target row (rows before `lookback` get 0), computed from cumulative sums so
    no `(windows, lookback)` temporary is made: the weight that turns a squared error in the
    data's units into one in the window's own units.

    Example:
        >>> weights = window_spread_weights(np.array([0.0, 2.0, 0.0, 2.0, 9.0]), 2, 1e-3)
        >>> [round(float(w), 3) for w in weights[2:]]
        [1.0, 1.0, 1.0, 0.082]
    """
    values = np.asarray(values, dtype=np.float64)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    squares = np.concatenate([[0.0], np.cumsum(values**2)])
    total = sums[lookback:] - sums[:-lookback]
    total_sq = squares[lookback:] - squares[:-lookback]
    variance = np.maximum(total_sq / lookback - (total / lookback) ** 2, 0.0)
    spread = np.maximum(np.sqrt(variance), floor)
    weights = np.zeros(len(values) + 1, np.float32)
    weights[lookback:] = 1.0 / spread**2
    return weights
