"""Prediction intervals: split conformal calibration on the CV residuals, carried through the
bundle, its JSON, the TFLite export and `LitePredictor`."""

import math

import numpy as np
import pandas as pd
import pytest

from keras_lstm import Bundle
from keras_lstm.config import load_config
from keras_lstm.data import intervals
from keras_lstm.data.preprocessing import Preprocessing, SeriesPreprocessing
from keras_lstm.data.scaling import Scaler
from keras_lstm.errors import ConfigError
from keras_lstm.pipeline import summary_table
from keras_lstm.training import fit

NOISE = 0.3


def _noisy_sine(n=900, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame({"y": 5 + np.sin(2 * np.pi * t / 24) + NOISE * rng.standard_normal(n)})


@pytest.fixture(scope="module")
def fitted():
    config = {
        "seed": 1,
        "data": {"targets": ["y"], "lookback": 24, "season": 24, "test_size": 0.3},
        "model": {"units": [8]},
        "training": {"epochs": 8, "cv_splits": 3, "interval": 0.9},
    }
    frame = _noisy_sine()
    return fit(config, frame, verbose=0), frame


# --- the calibration itself -----------------------------------------------------------------


def test_conformal_quantile_is_the_ceil_n_plus_one_rank():
    values = np.random.default_rng(0).permutation(np.arange(1.0, 20.0))  # 19 scores
    for level in (0.5, 0.8, 0.9, 0.95):
        rank = math.ceil(20 * level)  # (n + 1) * level
        assert intervals.conformal_quantile(values, level) == sorted(values)[rank - 1]
    # more coverage than the scores can give: the largest score
    assert intervals.conformal_quantile(values[:5], 0.99) == values[:5].max()


def test_exchangeable_scores_cover_at_the_nominal_level():
    rng = np.random.default_rng(1)
    for level in (0.8, 0.9):
        hits = []
        for _ in range(200):
            calibration = np.abs(rng.standard_normal(99))
            q = intervals.conformal_quantile(calibration, level)
            hits.append(abs(rng.standard_normal()) <= q)
        # split conformal: P(cover) is in [level, level + 1 / (n + 1)]; 200 draws, 3 sigma
        assert abs(np.mean(hits) - (level + 0.005)) < 3 * math.sqrt(level * (1 - level) / 200)


def test_window_spreads_are_the_real_unit_std_of_the_target_channel():
    rng = np.random.default_rng(2)
    raw = rng.normal(10, 3, size=(5, 12, 2))
    scaler = Scaler("standard", (10.0, 0.0), (3.0, 1.0))
    got = intervals.window_spreads(scaler.transform(raw), (0,), scaler.scale)
    np.testing.assert_allclose(got[:, 0], raw[:, :, 0].std(axis=1), rtol=1e-5)
    # a flat window keeps a finite, positive spread
    flat = intervals.window_spreads(np.zeros((1, 4, 1)), (0,), (2.0,))
    assert flat[0, 0] == pytest.approx(intervals.SPREAD_FLOOR * 2.0)


def test_preprocessing_adds_bounds_columns_per_level_and_step():
    record = intervals.calibrate(np.full((10, 2, 1), 1.0), (0.8, 0.9), channels=None)
    pre = SeriesPreprocessing(
        task="regression",
        feature_names=("y",),
        target_names=("y",),
        lookback=3,
        horizon=2,
        intervals=record,
    )
    frame = pd.DataFrame({"y": [1.0, 2.0, 3.0, 4.0]})
    out = pre.predict(frame, lambda w: np.repeat(w[:, -1:, :], 2, axis=1))
    assert list(out.columns) == [
        "y@t+1",
        "y@t+1_lower_80",
        "y@t+1_upper_80",
        "y@t+1_lower_90",
        "y@t+1_upper_90",
        "y@t+2",
        "y@t+2_lower_80",
        "y@t+2_upper_80",
        "y@t+2_lower_90",
        "y@t+2_upper_90",
    ]
    # every score is 1: each half-width is exactly 1 at both levels
    np.testing.assert_allclose(out["y@t+2_upper_90"] - out["y@t+2"], 1.0)
    np.testing.assert_allclose(out["y@t+1"] - out["y@t+1_lower_80"], 1.0)
    # the record survives the JSON round trip (the bundle's and the export report's)
    assert Preprocessing.from_dict(pre.to_dict()).intervals == record


def test_interval_config_is_checked():
    assert load_config({"training": {"interval": [0.9, 0.8]}}).training.interval == (0.8, 0.9)
    with pytest.raises(ConfigError, match="training.interval"):
        load_config({"training": {"interval": 1.5}})
    with pytest.raises(ConfigError, match="training.interval.*regression"):
        load_config({"task": "classification", "training": {"interval": 0.9}})


# --- a fitted model ---------------------------------------------------------------------------


def test_test_coverage_of_a_series_with_known_noise_is_near_nominal(fitted):
    bundle, _ = fitted
    coverage = bundle.metrics["test"]["interval_coverage"]["0.9"]["y"]
    windows = len(bundle.report["test_true"])
    assert windows >= 250
    assert abs(coverage - 0.9) < 0.06  # ~3.5 standard errors at 0.9 on 250 windows
    # the width cannot beat the noise: at least the 0.9 band of N(0, NOISE) (2 * 1.645 sigma),
    # and a model close to the truth stays near it
    width = bundle.metrics["test"]["interval_width"]["0.9"]["y"]
    assert 0.9 * 2 * 1.645 * NOISE < width < 2.0 * 2 * 1.645 * NOISE
    # the reported coverage is the share of test targets inside the reported bounds
    lower, upper = bundle.report["test_bounds"][0.9]
    true = bundle.report["test_true"]
    assert coverage == pytest.approx(np.mean((true >= lower) & (true <= upper)))
    # the run's summary says it too
    assert f"90% interval (test): y coverage {coverage:.3f}" in summary_table(
        bundle.metrics, "regression"
    )


def test_bundle_bounds_are_point_plus_offset_times_window_spread(fitted, tmp_path):
    bundle, frame = fitted
    rows = frame.tail(60).reset_index(drop=True)
    out = bundle.predict(rows)
    assert list(out.columns) == ["y", "y_lower", "y_upper"]
    record = bundle.preprocessing["intervals"]
    assert record["spread_channels"] == [0]  # the default window-normalized model
    offset = record["offsets"]["0.9"][0][0]
    # independent: each window's spread is the std of its 24 raw values
    spread = np.array([rows.y.iloc[i : i + 24].std(ddof=0) for i in range(len(out))])
    np.testing.assert_allclose(out.y_upper - out.y, offset * spread, rtol=1e-4)
    np.testing.assert_allclose(out.y - out.y_lower, offset * spread, rtol=1e-4)
    loaded = Bundle.load(bundle.save(tmp_path / "bundle"))
    pd.testing.assert_frame_equal(loaded.predict(rows), out)


def test_lite_predictor_gives_the_bundle_intervals(fitted, tmp_path):
    from tflite_export import export
    from tflite_export.predictor import LitePredictor

    bundle, frame = fitted
    path = tmp_path / "model.tflite"
    export(bundle, "float32", path)
    rows = frame.tail(40).reset_index(drop=True)
    lite = LitePredictor(path)
    expected = bundle.predict(rows)
    got = lite.predict_frame(rows)
    assert list(got.columns) == list(expected.columns)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-4)
    point, bands = lite.predict_intervals(rows)
    lower, upper = bands[0.9]
    np.testing.assert_allclose(lower[:, 0, 0], expected.y_lower, rtol=1e-4)
    np.testing.assert_allclose(upper[:, 0, 0], expected.y_upper, rtol=1e-4)
