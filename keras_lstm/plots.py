"""PNG plots of a training run: losses per fold, forecast against actual, metrics per fold.

`save_plots` writes them for a freshly fitted bundle; each figure has its own function
(`loss_figure`, `forecast_figure`, `confusion_figure`, `folds_figure`) that returns the
matplotlib figure, so the figures can be checked without reading PNGs.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_plots(bundle, directory: str | Path) -> list[Path]:
    """Write `loss.png`, `forecast.png` (regression) or `confusion.png` (classification) and
    `folds.png` for a freshly fitted bundle.

    Args:
        bundle: a `Bundle` fresh from `fit` (its `report` holds the histories and the test
            part's predictions).
        directory: the folder to write into.

    Returns:
        The paths written.

    Example:
        >>> save_plots(keras_lstm.fit("config.yaml"), "run")  # doctest: +SKIP
    """
    directory = Path(directory)
    report = bundle.report
    written = [_save(loss_figure(report), directory / "loss.png")]
    if bundle.preprocessing["task"] == "regression":
        figure = forecast_figure(
            report, bundle.preprocessing["target_names"], forecast_times(bundle)
        )
        written.append(_save(figure, directory / "forecast.png"))
        key = "rmse"
    else:
        figure = confusion_figure(report, bundle.preprocessing["classes"])
        written.append(_save(figure, directory / "confusion.png"))
        key = "accuracy"
    written.append(_save(folds_figure(report, key), directory / "folds.png"))
    return written


def loss_figure(report: dict):
    """Training and validation loss of every fold against the epoch, on a log scale."""
    fig, ax = _pyplot().subplots(figsize=(8, 4.5))
    for fold in report["cv"].folds:
        (line,) = ax.plot(fold.history.get("loss", []), label=f"fold {fold.index + 1} train")
        ax.plot(
            fold.history.get("val_loss", []),
            linestyle="--",
            color=line.get_color(),
            label=f"fold {fold.index + 1} validation",
        )
    ax.set(xlabel="epoch", ylabel="loss (scaled units)", title="Training and validation loss")
    ax.set_yscale("log")
    ax.legend(fontsize="small", ncol=2)
    return fig


# --- forecast -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetTimes:
    """Where each plotted forecast step of the test part lies on the x axis.

    Attributes:
        values: `(windows, steps)`: the target time (`datetime64`) or position of each step
            drawn; `steps` is the horizon, or 1 when only each window's first step is drawn.
        dates: whether `values` are times (a date axis) rather than positions.
        noun: what a value is, for the axis label (`target time`, `target row`, ...).
        first: how the first value reads in a title (`2021-01-01`, `row 160`, ...).
    """

    values: np.ndarray
    dates: bool
    noun: str
    first: str


def forecast_times(bundle) -> TargetTimes:
    """The target time (or position) of each test window's forecast steps.

    Every step is placed at its own target row's time when the bundle carries the prepared
    series `fit` leaves on it; otherwise (whole sequences, texts, a report built by hand) each
    window is placed at `report["test_index"]`, the time or id of its first step, and only that
    step is drawn.

    Args:
        bundle: a `Bundle` fresh from `fit`.

    Returns:
        A `TargetTimes`.
    """
    report = bundle.report
    windows, horizon = report["test_true"].shape[:2]
    prepared = getattr(bundle, "prepared", None)
    if prepared is not None and prepared.kind == "series":
        first_rows = np.asarray(prepared.plan.final.validation)
        if len(first_rows) == windows:
            rows = first_rows[:, None] + np.arange(horizon)
            return index_times(prepared.table.index[rows.ravel()], (windows, horizon))
    return index_times(pd.Index(report["test_index"]), (windows, 1))


def index_times(index: pd.Index, shape: tuple[int, int]) -> TargetTimes:
    """`TargetTimes` of `index` (one value per step, window by window) laid out as `shape`.

    Times become `datetime64` (time zones dropped: the wall-clock time is drawn), whole or real
    numbers stay positions, anything else (series ids) is drawn at 0, 1, 2, ...

    Example:
        >>> times = index_times(pd.DatetimeIndex(["2024-01-02", "2024-01-03"]), (2, 1))
        >>> times.dates, times.noun, times.first
        (True, 'target time', '2024-01-02')
    """
    if isinstance(index, pd.DatetimeIndex):
        if index.tz is not None:
            index = index.tz_localize(None)
        values = index.to_numpy(dtype="datetime64[ns]")
        return TargetTimes(values.reshape(shape), True, "target time", format_time(index[0]))
    if pd.api.types.is_numeric_dtype(index.dtype) and not pd.api.types.is_bool_dtype(index.dtype):
        name = index.name or "row"
        values = index.to_numpy()
        return TargetTimes(values.reshape(shape), False, f"target {name}", f"{name} {values[0]}")
    positions = np.arange(len(index)).reshape(shape)
    return TargetTimes(positions, False, "test sample (in order)", str(index[0]))


def format_time(time) -> str:
    """A time as a date when it is midnight, else as a date and time (seconds when not 0).

    Example:
        >>> format_time(pd.Timestamp("2024-03-01")), format_time(pd.Timestamp("2024-03-01 06:30"))
        ('2024-03-01', '2024-03-01 06:30')
    """
    time = pd.Timestamp(time)
    if time == time.normalize():
        return time.strftime("%Y-%m-%d")
    if time.second or time.microsecond or time.nanosecond:
        return time.strftime("%Y-%m-%d %H:%M:%S")
    return time.strftime("%Y-%m-%d %H:%M")


def _segments(values: np.ndarray) -> list[slice]:
    """Runs of increasing `values`: one per series of a many-series test part, whose times
    start again at each series."""
    breaks = np.flatnonzero(values[1:] <= values[:-1]) + 1
    edges = [0, *breaks.tolist(), len(values)]
    return [slice(a, b) for a, b in zip(edges[:-1], edges[1:], strict=True)]


def _x_label(times: TargetTimes, horizon: int) -> str:
    steps = times.values.shape[1]
    if horizon == 1:
        return times.noun
    if steps == horizon:
        return f"{times.noun} of every step (each window forecasts {horizon} steps)"
    return f"{times.noun} of each window's first step (each window forecasts {horizon} steps)"


def forecast_figure(report: dict, names, times: TargetTimes):
    """Actual against forecast (and the interval bands) over the test part, one axes a target.

    Args:
        report: the bundle's report (`test_true`, `test_pred` `(windows, horizon, targets)`
            in real units, optional `test_bounds` `{level: (lower, upper)}`).
        names: the target names.
        times: the x value of each step drawn (`forecast_times`); with dates the x axis is
            a date axis.

    Returns:
        The figure.
    """
    true, pred = report["test_true"], report["test_pred"]
    horizon, steps = true.shape[1], times.values.shape[1]
    bands = report.get("test_bounds") or {}
    x = times.values.ravel()
    segments = _segments(x)
    fig, axes = _pyplot().subplots(len(names), 1, figsize=(10, 3.5 * len(names)), squeeze=False)
    for i, name in enumerate(names):
        ax = axes[i, 0]
        for level, (lower, upper) in sorted(bands.items(), reverse=True):
            _draw(
                ax.fill_between,
                x,
                segments,
                lower[:, :steps, i].ravel(),
                upper[:, :steps, i].ravel(),
                color="tab:orange",
                alpha=0.15 + 0.1 * (level == min(bands)),
                linewidth=0,
                label=f"{level:.0%} interval",
            )
        _draw(ax.plot, x, segments, true[:, :steps, i].ravel(), color="tab:blue", label="actual")
        _draw(
            ax.plot, x, segments, pred[:, :steps, i].ravel(), color="tab:orange", label="forecast"
        )
        overlaid = f", {len(segments)} series drawn over one another" if len(segments) > 1 else ""
        ax.set(
            title=f"{name}: test part (from {times.first}{overlaid})",
            xlabel=_x_label(times, horizon),
        )
        if times.dates:
            _date_axis(ax)
        ax.legend()
    return fig


def _draw(method, x, segments, *ys, label, **style):
    """`method(x, *ys)` on each segment, labelled once so the legend has one entry."""
    for j, part in enumerate(segments):
        method(x[part], *(y[part] for y in ys), label=label if j == 0 else None, **style)


def _date_axis(ax) -> None:
    import matplotlib.dates as mdates

    locator = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(locator))


# --- classification and folds ---------------------------------------------------------------------


def confusion_figure(report: dict, classes):
    """The test part's confusion matrix."""
    from sklearn.metrics import ConfusionMatrixDisplay

    fig, ax = _pyplot().subplots(figsize=(5, 5))
    ConfusionMatrixDisplay.from_predictions(
        report["test_true"],
        report["test_pred"].argmax(1),
        labels=list(range(len(classes))),
        display_labels=classes,
        ax=ax,
    )
    ax.set_title("Test part: confusion matrix")
    return fig


def folds_figure(report: dict, key: str):
    """The model's validation metric `key` per fold beside each baseline's, as grouped bars.

    The legend sits to the right of the axes, where it covers no bar.
    """
    folds = report["cv"].folds
    fig, ax = _pyplot().subplots(figsize=(8, 4.5))
    labels = [f"fold {f.index + 1}" for f in folds]
    series = {"model": [f.metrics[key] for f in folds]}
    for name in folds[0].baselines:
        series[name] = [f.baselines[name][key] for f in folds]
    width = 0.8 / len(series)
    for i, (name, values) in enumerate(series.items()):
        ax.bar(np.arange(len(labels)) + i * width, values, width, label=name)
    ax.set_xticks(np.arange(len(labels)) + width * (len(series) - 1) / 2, labels)
    ax.set(ylabel=key, title=f"Validation {key} per fold, beside the baselines")
    ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), borderaxespad=0.0)
    return fig


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    _pyplot().close(fig)
    return path


def importance_figure(explanation):
    """A bar per input column (or token) of a `keras_lstm.explanation.Explanation`, most important
    on top, its spread over the shuffles as error bars."""
    names = list(explanation.columns)[::-1]
    means = [explanation.columns[n]["mean"] for n in names]
    spreads = [explanation.columns[n]["std"] for n in names]
    fig, ax = _pyplot().subplots(figsize=(7, 1.2 + 0.35 * len(names)))
    ax.barh(names, means, xerr=spreads, color="tab:blue", capsize=3)
    ax.axvline(0.0, color="black", linewidth=0.8)
    ax.set(xlabel=explanation.unit, title="Permutation importance on the test part")
    return fig


def lag_figure(table: dict, unit: str, title: str):
    """A heat map of a lag x column table (`{column: [value of lag 1, lag 2, ...]}`, as
    `Explanation.lags` and `shap_lags`), lag 1 (the window's last step) on the right."""
    names = list(table)
    values = np.array([table[n][::-1] for n in names])  # oldest lag first
    lookback = values.shape[1]
    fig, ax = _pyplot().subplots(figsize=(9, 1.4 + 0.4 * len(names)))
    image = ax.imshow(values, aspect="auto", cmap="viridis", interpolation="nearest")
    ticks = sorted({0, lookback // 2, lookback - 1})
    ax.set_xticks(ticks, [str(lookback - t) for t in ticks])
    ax.set_yticks(range(len(names)), names)
    ax.set(xlabel="lag (steps before the forecast)", title=title)
    fig.colorbar(image, ax=ax, label=unit)
    return fig


def attention_figure(attention: dict, count: int = 4):
    """The attention weights of up to `count` test samples (`Explanation.attention`), one
    panel each, drawn over the input steps they cover."""
    samples = list(attention["samples"].items())[:count]
    stride = attention["stride"]
    fig, axes = _pyplot().subplots(len(samples), 1, figsize=(8, 1.6 * len(samples)), squeeze=False)
    inputs = attention.get("inputs") or {}
    for ax, (name, weights) in zip(axes[:, 0], samples, strict=True):
        starts = np.arange(len(weights)) * stride
        ax.bar(starts, weights, width=stride, align="edge", color="tab:orange", alpha=0.6)
        ax.set(ylabel="weight", title=f"{name}: attention over the input")
        if name in inputs:  # the first input channel, on its own axis
            signal = ax.twinx()
            signal.plot(np.arange(len(inputs[name])) + 0.5, inputs[name], color="tab:blue")
            signal.set_ylabel("input (scaled)")
    axes[-1, 0].set_xlabel("input step")
    return fig


def save_figure(fig, path: str | Path) -> Path:
    """Write `fig` to `path` as a PNG (and close it)."""
    return _save(fig, Path(path))
