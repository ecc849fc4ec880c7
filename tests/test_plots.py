"""Tests of `keras_lstm.plots`: the forecast's date axis and title, the folds' legend.

One tiny fit (1 epoch, units 4) gives a real bundle; the rest draw hand-made reports.
"""

from types import SimpleNamespace

import matplotlib.dates as mdates
import numpy as np
import pandas as pd
import pytest

from keras_lstm import plots
from keras_lstm.training import fit

CONFIG = {
    "seed": 2,
    "data": {"targets": ["y"], "time_column": "date", "lookback": 6, "horizon": 3},
    "model": {"units": [4], "dropout": 0.0},
    "training": {"epochs": 1, "cv_splits": 2, "batch_size": 64, "fold_workers": "never"},
}


@pytest.fixture(scope="module")
def daily():
    """A daily series (midnight times) and the bundle fitted on it, horizon 3."""
    rng = np.random.default_rng(0)
    t = np.arange(300)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2020-01-01", periods=300, freq="D").strftime("%Y-%m-%d"),
            "y": np.sin(2 * np.pi * t / 30) + 0.1 * rng.standard_normal(300),
        }
    )
    return frame, fit(CONFIG, frame, verbose=0)


def _dates(line) -> pd.DatetimeIndex:
    """A line's x values as times, through matplotlib's own date conversion."""
    return pd.DatetimeIndex(mdates.num2date(line.get_xdata(orig=False))).tz_localize(None)


def test_forecast_draws_every_step_at_its_own_target_time(daily):
    frame, bundle = daily
    report = bundle.report
    windows, horizon = report["test_true"].shape[:2]
    figure = plots.forecast_figure(report, ["y"], plots.forecast_times(bundle))
    ax = figure.axes[0]
    actual, forecast = ax.lines
    # the test windows do not overlap: their steps are the last rows of the data, in order
    rows = frame.iloc[len(frame) - windows * horizon :]
    expected = pd.DatetimeIndex(pd.to_datetime(rows["date"]))
    assert (_dates(actual) == expected).all() and (_dates(forecast) == expected).all()
    assert expected[0] == report["test_index"][0]
    np.testing.assert_allclose(actual.get_ydata(), rows["y"], rtol=1e-5)
    assert isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)
    assert "every step" in ax.get_xlabel()
    assert ax.get_title() == f"y: test part (from {expected[0]:%Y-%m-%d})"
    assert "00:00" not in ax.get_title()


def test_save_plots_writes_every_figure(daily, tmp_path):
    _, bundle = daily
    written = plots.save_plots(bundle, tmp_path)
    assert [p.name for p in written] == ["loss.png", "forecast.png", "folds.png"]
    assert all(p.stat().st_size > 0 for p in written)


def _report(index, horizon=1, windows=12):
    rng = np.random.default_rng(1)
    true = rng.standard_normal((windows, horizon, 1))
    return {"test_true": true, "test_pred": true + 0.1, "test_index": index}


def test_title_keeps_a_time_of_day_and_drops_midnight():
    hourly = pd.date_range("2021-03-04 06:00", periods=12, freq="h")
    figure = plots.forecast_figure(
        _report(hourly), ["y"], plots.index_times(hourly, (len(hourly), 1))
    )
    ax = figure.axes[0]
    assert ax.get_title() == "y: test part (from 2021-03-04 06:00)"
    assert ax.get_xlabel() == "target time"
    assert (_dates(ax.lines[0]) == hourly).all()
    assert plots.format_time(pd.Timestamp("2021-03-04")) == "2021-03-04"
    assert plots.format_time(pd.Timestamp("2021-03-04 06:00:30")) == "2021-03-04 06:00:30"


def test_report_without_prepared_data_draws_each_windows_first_step():
    index = pd.date_range("2021-03-04", periods=12, freq="3D")
    report = _report(index, horizon=3)
    bundle = SimpleNamespace(report=report)
    ax = plots.forecast_figure(report, ["y"], plots.forecast_times(bundle)).axes[0]
    assert (_dates(ax.lines[0]) == index).all()
    np.testing.assert_array_equal(ax.lines[0].get_ydata(), report["test_true"][:, 0, 0])
    assert "first step" in ax.get_xlabel() and "3 steps" in ax.get_xlabel()


def test_integer_positions_stay_positions():
    index = pd.RangeIndex(160, 172)
    ax = plots.forecast_figure(_report(index), ["y"], plots.index_times(index, (12, 1))).axes[0]
    assert ax.lines[0].get_xdata().tolist() == list(range(160, 172))
    assert ax.get_xlabel() == "target row" and ax.get_title() == "y: test part (from row 160)"
    assert not isinstance(ax.xaxis.get_major_formatter(), mdates.ConciseDateFormatter)


def test_many_series_are_drawn_one_line_each():
    # a many-series test part: each series' times start again at the cut
    times = pd.date_range("2021-01-01", periods=6, freq="D")
    index = times.append(times)
    ax = plots.forecast_figure(_report(index), ["y"], plots.index_times(index, (12, 1))).axes[0]
    assert len(ax.lines) == 4  # actual and forecast, one each per series
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["actual", "forecast"]
    assert all(np.all(np.diff(_dates(line).asi8) > 0) for line in ax.lines)


def _fold(index, model, naive, seasonal):
    return SimpleNamespace(
        index=index,
        metrics={"rmse": model},
        baselines={"naive": {"rmse": naive}, "seasonal_naive": {"rmse": seasonal}},
    )


def test_folds_legend_covers_no_bar():
    # bars of one height everywhere leave no free corner inside the axes for a legend
    cv = SimpleNamespace(folds=[_fold(i, 1.0, 1.0, 1.0) for i in range(3)])
    figure = plots.folds_figure({"cv": cv}, "rmse")
    figure.tight_layout()
    figure.canvas.draw()
    ax = figure.axes[0]
    legend = ax.get_legend().get_window_extent()
    bars = [patch.get_window_extent() for patch in ax.patches]
    assert len(bars) == 9
    assert not any(legend.overlaps(bar) for bar in bars)
    page = figure.bbox
    assert page.x0 <= legend.x0 and legend.x1 <= page.x1  # and the legend is not cut off
