"""Prediction intervals by split conformal calibration on the walk-forward residuals.

Cross-validation already predicts every validation window with a model that never saw it. Each
of those forecasts gives a nonconformity score per horizon step and target,

    score = |true - forecast| / spread,

where `spread` is the window's own spread of the target's input channel (its standard
deviation over the lookback, floored, in real units) when the model is window-normalized, and 1
otherwise. The interval of level `a` is then `forecast +- q_a * spread`, with `q_a` the
`ceil((n + 1) a) / n` empirical quantile of the `n` scores of that step and target (split
conformal; Vovk et al. 2005, Lei et al. 2018). The offsets `q_a` are plain numbers in
`preprocessing.json` and in an export report, so `Bundle.predict` and a device apply the same
arithmetic; nothing is refitted.

This module needs only NumPy: the device-side predictor imports it.

Example:
    >>> scores = np.abs(np.random.default_rng(0).normal(size=(999, 1, 1)))
    >>> cal = calibrate(scores, levels=(0.9,), channels=None)
    >>> round(cal["offsets"]["0.9"][0][0], 1)  # the 0.9 quantile of |N(0, 1)|: 1.645
    1.6
"""

from __future__ import annotations

import math

import numpy as np

# the smallest window spread, in the scaled units the model is fed (as `WindowNormalized`)
SPREAD_FLOOR = 1e-3
# at most this many validation windows per fold are kept for calibration, evenly spread
SCORES_PER_FOLD = 2000


def level_key(level: float) -> str:
    """The JSON key of a level: `0.9` -> `"0.9"`."""
    return f"{level:g}"


def window_spreads(windows: np.ndarray, channels, scale=None) -> np.ndarray:
    """Each window's spread per target `(n, targets)` in real units: the standard deviation
    over time of the target's input channel in the scaled `windows` `(n, time, features)`,
    floored at `SPREAD_FLOOR`, times that channel's scaler `scale` (the real units per scaled
    unit). `channels=None`: ones (absolute intervals).

    Example:
        >>> window_spreads(np.array([[[1.0], [3.0]]]), (0,), scale=(10.0,)).tolist()
        [[10.0]]
    """
    if channels is None:
        return np.ones((len(windows), 1))
    values = np.asarray(windows, dtype=np.float64)[:, :, list(channels)]
    spread = np.maximum(values.std(axis=1), SPREAD_FLOOR)
    if scale is not None:
        spread = spread * np.abs(np.asarray(scale, dtype=np.float64)[list(channels)])
    return spread


def scores(residuals, spreads) -> np.ndarray:
    """Nonconformity scores `(n, horizon, targets)`: absolute errors `|true - forecast|`
    `(n, horizon, targets)` over their windows' `spreads` `(n, targets)`."""
    return np.asarray(residuals, np.float64) / np.asarray(spreads, np.float64)[:, None, :]


def spread_rows(n: int, most: int = SCORES_PER_FOLD) -> np.ndarray:
    """At most `most` of `range(n)`, evenly spread (the windows a fold keeps for calibration)."""
    return np.unique(np.linspace(0, n - 1, min(n, most)).astype(int)) if n else np.arange(0)


def conformal_quantile(values: np.ndarray, level: float) -> np.ndarray:
    """The split-conformal quantile of `values` along axis 0: the `ceil((n + 1) level)`-th
    smallest (the largest value when that exceeds `n`), which covers a new exchangeable score
    with probability at least `level`.

    Example:
        >>> conformal_quantile(np.arange(1.0, 11.0), 0.8).item()  # ceil(11 * 0.8) = 9th
        9.0
    """
    values = np.sort(np.asarray(values, dtype=np.float64), axis=0)
    n = len(values)
    rank = min(n, math.ceil((n + 1) * level))
    return values[rank - 1]


def calibrate(scores_: np.ndarray, levels, channels) -> dict:
    """The interval record of `preprocessing.json`: offsets per level `(horizon, targets)`.

    Args:
        scores_: pooled nonconformity scores `(n, horizon, targets)`.
        levels: the nominal levels (`training.interval`).
        channels: the input channel of each target the spread is read from, or None
            (absolute intervals).
    """
    scores_ = np.asarray(scores_, dtype=np.float64)
    if len(scores_) == 0:
        raise ValueError("No calibration scores: cross-validation predicted no window.")
    return {
        "method": "split_conformal",
        "levels": [float(level) for level in levels],
        "spread_channels": None if channels is None else [int(c) for c in channels],
        "spread_floor": SPREAD_FLOOR,
        "calibration_windows": int(len(scores_)),
        "offsets": {
            level_key(level): conformal_quantile(scores_, level).tolist() for level in levels
        },
    }


def bounds(point: np.ndarray, spreads: np.ndarray, record: dict, level: float):
    """`(lower, upper)` of level `level` around real-unit forecasts `point`
    `(n, horizon, targets)` whose windows have `spreads` `(n, targets)`.

    Example:
        >>> record = {"offsets": {"0.9": [[2.0]]}}
        >>> lower, upper = bounds(np.array([[[10.0]]]), np.array([[0.5]]), record, 0.9)
        >>> lower.item(), upper.item()
        (9.0, 11.0)
    """
    offsets = np.asarray(record["offsets"][level_key(level)], dtype=np.float64)
    half = offsets[None] * np.asarray(spreads, dtype=np.float64)[:, None, :]
    point = np.asarray(point, dtype=np.float64)
    return point - half, point + half


def coverage(true, lower, upper) -> np.ndarray:
    """Empirical coverage per target: the share of `(window, step)` pairs inside the bounds."""
    inside = (np.asarray(true) >= lower) & (np.asarray(true) <= upper)
    return inside.reshape(-1, inside.shape[-1]).mean(axis=0)


__all__ = [
    "SPREAD_FLOOR",
    "bounds",
    "calibrate",
    "conformal_quantile",
    "coverage",
    "level_key",
    "scores",
    "window_spreads",
]
