"""Metrics in the data's own units, and the naive baselines they are judged against.

Regression: `rmse`, `mae`, `mape`, `smape` (percent), `mase`, `r2`, overall and per target
(scikit-learn computes RMSE, MAE and R2). A metric that cannot be computed is None, and
`metric_notes` says why: MAPE where the truth is 0 or changes sign, MASE where the training
part is not longer than one season. Classification: `accuracy`, `f1_macro`, `auc`,
`log_loss`.

Example:
    >>> import numpy as np
    >>> m = regression_metrics(np.array([[[1.0]], [[2.0]]]), np.array([[[1.5]], [[2.0]]]),
    ...                        ("y",), mase_scale=np.array([1.0]))
    >>> round(m["mae"], 3), round(m["mase"], 3)
    (0.25, 0.25)
"""

from __future__ import annotations

import math

import numpy as np
from sklearn import metrics as skm

REGRESSION_METRICS = ("rmse", "mae", "mape", "smape", "mase", "r2")
CLASSIFICATION_METRICS = ("accuracy", "f1_macro", "auc", "log_loss")


def _finite(value) -> float | None:
    value = float(value)
    return value if math.isfinite(value) else None


def _mape(true: np.ndarray, pred: np.ndarray) -> float | None:
    """Mean absolute percentage error, or None where the truth is 0 or changes sign (MAPE
    divides by the true value: a temperature crossing 0 degrees gives 1e15 %; sMAPE stays)."""
    if len(true) == 0 or np.any(true == 0) or (true.min() < 0 < true.max()):
        return None
    return _finite(100 * np.mean(np.abs(pred - true) / np.abs(true)))


def _one_target(true: np.ndarray, pred: np.ndarray, scale: float) -> dict:
    true, pred = true.ravel(), pred.ravel()
    denominator = np.abs(true) + np.abs(pred)
    ratio = np.divide(
        2 * np.abs(pred - true), denominator, out=np.zeros_like(true), where=denominator > 0
    )
    mae = skm.mean_absolute_error(true, pred)
    return {
        "rmse": _finite(skm.root_mean_squared_error(true, pred)),
        "mae": _finite(mae),
        "mape": _mape(true, pred),
        "smape": _finite(100 * ratio.mean()),
        "mase": _finite(mae / scale) if scale > 0 else None,
        "r2": _finite(skm.r2_score(true, pred)) if len(true) > 1 else None,
    }


def regression_metrics(true, pred, target_names, mase_scale) -> dict:
    """Metrics of predictions `(windows, horizon, targets)` against the truth, in real units.

    Args:
        true: true values `(windows, horizon, targets)`.
        pred: predictions of the same shape.
        target_names: names of the targets (keys of `per_target`).
        mase_scale: per target, the mean absolute error of the seasonal naive forecast inside
            the training part (the MASE denominator).

    Returns:
        `{metric: value, ..., "per_target": {name: {metric: value}}}`; the overall values are
        the mean over targets (so targets of different scales weigh the same in `mase` and
        `r2`; `rmse` and `mae` are then only meaningful per target when the scales differ).
    """
    true = np.asarray(true, dtype=np.float64)
    pred = np.asarray(pred, dtype=np.float64)
    per_target = {
        name: _one_target(true[..., i], pred[..., i], float(mase_scale[i]))
        for i, name in enumerate(target_names)
    }
    overall = {}
    for metric in REGRESSION_METRICS:
        values = [m[metric] for m in per_target.values() if m[metric] is not None]
        overall[metric] = float(np.mean(values)) if values else None
    return {**overall, "per_target": per_target}


def seasonal_naive_scale(history: np.ndarray, season: int) -> np.ndarray:
    """Per column of `history` `(rows, targets)`: mean |y[t] - y[t - season]| (MASE's scale)."""
    history = np.asarray(history, dtype=np.float64)
    if len(history) <= season:
        return np.full(history.shape[1], np.nan)
    return np.abs(history[season:] - history[:-season]).mean(axis=0)


def seasonal_lags(horizon: int, season: int) -> np.ndarray:
    """How far back the seasonal naive forecast looks for each step `k` of a horizon:
    `season * ceil((k + 1) / season)`, the latest value one whole season before that step.

    Example:
        >>> seasonal_lags(5, 2).tolist()
        [2, 2, 4, 4, 6]
    """
    steps = np.arange(horizon)
    return season * np.ceil((steps + 1) / season).astype(int)


def naive_forecast(
    targets: np.ndarray, rows: np.ndarray, horizon: int, season: int = 1, starts=None
):
    """Seasonal naive forecasts `(windows, horizon, targets)` for windows starting at `rows`.

    Step `k` (0-based) of the window whose first target row is `r` is predicted by the value one
    whole season before it, `y[r + k - season * ceil((k + 1) / season)]`, i.e. from rows before
    `r` only. `season=1` is the plain naive forecast: the last value, repeated. Where a full
    season of history is missing (that row would lie before the series' start, `starts`, default
    row 0), the plain naive value `y[r - 1]` is used instead.
    """
    targets = np.asarray(targets, dtype=np.float64)
    rows = np.asarray(rows)
    starts = np.zeros_like(rows) if starts is None else np.asarray(starts)
    steps = np.arange(horizon)
    source = rows[:, None] + steps[None, :] - seasonal_lags(horizon, season)[None, :]
    source = np.where(source >= starts[:, None], source, (rows - 1)[:, None])
    return targets[source]


def classification_metrics(labels: np.ndarray, probabilities: np.ndarray) -> dict:
    """Metrics of class probabilities `(n, classes)` against integer labels `(n,)`."""
    labels = np.asarray(labels).astype(int).ravel()
    probabilities = np.clip(np.asarray(probabilities, dtype=np.float64), 1e-7, 1.0)
    probabilities = probabilities / probabilities.sum(axis=1, keepdims=True)
    classes = probabilities.shape[1]
    predicted = probabilities.argmax(axis=1)
    try:
        if classes == 2:
            auc = skm.roc_auc_score(labels, probabilities[:, 1])
        else:
            auc = skm.roc_auc_score(
                labels, probabilities, multi_class="ovr", labels=list(range(classes))
            )
    except ValueError:  # a class absent from these labels: AUC is undefined
        auc = float("nan")
    return {
        "accuracy": _finite(skm.accuracy_score(labels, predicted)),
        "f1_macro": _finite(
            skm.f1_score(labels, predicted, average="macro", labels=list(range(classes)))
        ),
        "auc": _finite(auc),
        "log_loss": _finite(skm.log_loss(labels, probabilities, labels=list(range(classes)))),
    }


def nearest_neighbour_labels(
    train: np.ndarray, labels: np.ndarray, queries: np.ndarray, chunk: int = 256
) -> np.ndarray:
    """The label of each query's nearest training sample by Euclidean distance: the
    1NN-Euclidean baseline of labelled sequences, on zero-padded `(n, length, channels)` arrays
    (the shorter of the two is padded to the other's length).

    Example:
        >>> train = np.array([[[0.0], [0.0]], [[5.0], [5.0]]])
        >>> nearest_neighbour_labels(train, np.array([3, 7]), np.array([[[4.0], [6.0]]]))
        array([7])
    """
    train = np.asarray(train, dtype=np.float64)
    queries = np.asarray(queries, dtype=np.float64)
    length = max(train.shape[1], queries.shape[1])

    def flat(x):
        widths = [(0, 0), (0, length - x.shape[1])] + [(0, 0)] * (x.ndim - 2)
        return np.pad(x, widths).reshape(len(x), -1)

    train, queries = flat(train), flat(queries)
    norms = (train**2).sum(axis=1)
    nearest = np.empty(len(queries), dtype=np.int64)
    for start in range(0, len(queries), chunk):
        part = queries[start : start + chunk]
        # |q - t|^2 without the |q|^2 term, which does not change the argmin over t
        nearest[start : start + chunk] = np.argmin(norms[None, :] - 2 * part @ train.T, axis=1)
    return np.asarray(labels)[nearest]


def hard_label_metrics(labels: np.ndarray, predicted: np.ndarray, classes: int) -> dict:
    """`classification_metrics` of a baseline that predicts labels, not probabilities: the log
    loss and AUC of one-hot guesses say nothing, so they are None."""
    one_hot = np.eye(classes)[np.asarray(predicted).astype(int)]
    return {**classification_metrics(labels, one_hot), "auc": None, "log_loss": None}


def summarize(folds: list[dict]) -> tuple[dict, dict]:
    """Mean and standard deviation over folds of every top-level numeric metric."""
    keys = [k for k, v in folds[0].items() if isinstance(v, (int, float)) or v is None]
    mean, std = {}, {}
    for key in keys:
        values = [f[key] for f in folds if f.get(key) is not None]
        mean[key] = float(np.mean(values)) if values else None
        std[key] = float(np.std(values)) if values else None
    return mean, std


# metric judged against the baselines, and whether higher is better
_VERDICT_METRICS = (("mase", False), ("rmse", False), ("accuracy", True), ("log_loss", False))


def baseline_comparison(model: dict, baselines: dict) -> dict | None:
    """How the model's metrics compare with the best baseline's on the same samples.

    MASE is compared where it is defined (scale-free, so targets of different units weigh the
    same), else RMSE; for classification the accuracy (the one metric every classification
    baseline has: a nearest-neighbour guess has no probabilities), else the log loss.

    Args:
        model: the model's metrics (`regression_metrics` or `classification_metrics`).
        baselines: baseline name -> metrics of the same form.

    Returns:
        `{"metric", "model", "best_baseline", "baseline", "beats"}`, or None when no metric is
        defined for both.

    Example:
        >>> baseline_comparison({"mase": 0.8}, {"naive": {"mase": 1.0}, "seasonal_naive": {"mase": 0.9}})
        {'metric': 'mase', 'model': 0.8, 'best_baseline': 'seasonal_naive', 'baseline': 0.9, 'beats': True}
    """  # noqa: E501
    for metric, higher in _VERDICT_METRICS:
        if model.get(metric) is None:
            continue
        scores = {n: b[metric] for n, b in baselines.items() if b.get(metric) is not None}
        if not scores:
            continue
        best = (max if higher else min)(scores, key=scores.get)
        beats = model[metric] > scores[best] if higher else model[metric] < scores[best]
        return {
            "metric": metric,
            "model": model[metric],
            "best_baseline": best,
            "baseline": scores[best],
            "beats": bool(beats),
        }
    return None


def metric_notes(cv_folds: list[dict], test: dict, season: int, train_rows: list[int]) -> list:
    """Why a regression metric is missing ('-' in the summary), one sentence each.

    Args:
        cv_folds: each fold's metrics, in fold order.
        test: the test part's metrics.
        season: `data.season`.
        train_rows: each fold's training rows (before its validation part).

    Example:
        >>> notes = metric_notes([{"mase": None}], {"mase": 0.9, "mape": 2.0}, 365, [300])
        >>> notes[0][:62]
        'MASE is missing for fold 1: its 300 training rows are not more'
    """
    notes = []
    for index, fold in enumerate(cv_folds):
        if "mase" in fold and fold["mase"] is None:
            notes.append(
                f"MASE is missing for fold {index + 1}: its {train_rows[index]} training rows "
                f"are not more than data.season = {season}, so there is no seasonal difference "
                "to scale by."
            )
    parts = [f"fold {i + 1}" for i, f in enumerate(cv_folds) if "mape" in f and f["mape"] is None]
    if "mape" in test and test["mape"] is None:
        parts.append("test")
    if parts:
        notes.append(
            f"MAPE is missing for {', '.join(parts)}: the target is 0 or crosses 0 there (MAPE "
            "divides by the true value); sMAPE is reported instead."
        )
    return notes
