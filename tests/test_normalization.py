"""Tests of `keras_lstm.normalization` (window normalization inside the model) and of what it is
for: forecasts of a series whose test part leaves the training range."""

import keras
import numpy as np
import pandas as pd
import pytest

from keras_lstm.config import ModelConfig, load_config
from keras_lstm.errors import ConfigError
from keras_lstm.factory import build_model
from keras_lstm.normalization import WindowNormalized
from keras_lstm.training import fit

LOOKBACK = 12


def _windows(n=16, features=2, seed=0):
    rng = np.random.default_rng(seed)
    return (rng.standard_normal((n, LOOKBACK, features)) * 3 + 5).astype(np.float32)


def _linear_core(features, horizon=2, targets=1, seed=0):
    """A core with known random weights: Flatten -> Dense -> Reshape."""
    rng = np.random.default_rng(seed)
    core = keras.Sequential(
        [
            keras.Input((LOOKBACK, features)),
            keras.layers.Flatten(),
            keras.layers.Dense(horizon * targets),
            keras.layers.Reshape((horizon, targets)),
        ]
    )
    weights = [rng.standard_normal(w.shape).astype(np.float32) for w in core.get_weights()]
    core.set_weights(weights)
    return core, weights


def _numpy_forward(x, weights, channels, center="last", floor=1e-3):
    """The normalization computed independently in NumPy around a Flatten-Dense core."""
    mean = x.mean(axis=1, keepdims=True)
    spread = np.maximum(x.std(axis=1, keepdims=True), floor)
    level = x[:, -1:, :] if center == "last" else mean
    z = ((x - level) / spread).reshape(len(x), -1)
    out = (z @ weights[0] + weights[1]).reshape(len(x), -1, len(channels))
    return out * spread[:, :, channels] + level[:, :, channels]


@pytest.mark.parametrize("center", ["last", "mean"])
@pytest.mark.parametrize("channels", [(0,), (1,), (1, 0)])
def test_forward_matches_numpy(center, channels):
    core, weights = _linear_core(2, horizon=2, targets=len(channels))
    model = keras.Sequential(
        [keras.Input((LOOKBACK, 2)), WindowNormalized(core, channels, center=center)]
    )
    x = _windows()
    expected = _numpy_forward(x.astype(np.float64), weights, list(channels), center)
    np.testing.assert_allclose(model.predict(x, verbose=0), expected, rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("season", [1, 4])
def test_parts_add_up_to_the_forecast(season):
    """`recurrent + linear + base` is the layer's output; `base` is the last value (or, with
    a season, the value one season back), computed here independently."""
    core, _ = _linear_core(2, horizon=2, targets=1, seed=1)
    layer = WindowNormalized(core, (1,), linear=True, season=season)
    x = _windows()
    out = np.asarray(layer(x))
    highway = layer.highway.layers[-2]  # Flatten, Dense, Reshape: its Dense
    highway.set_weights([np.full(w.shape, 0.1, np.float32) for w in highway.get_weights()])
    out = np.asarray(layer(x))
    parts = {k: np.asarray(v) for k, v in layer.parts(x).items()}
    assert set(parts) == {"recurrent", "linear", "base"}
    np.testing.assert_allclose(sum(parts.values()), out, rtol=1e-5, atol=1e-4)
    steps = [LOOKBACK - 1] * 2 if season == 1 else [LOOKBACK + k - season for k in range(2)]
    np.testing.assert_allclose(parts["base"][:, :, 0], x[:, steps, 1], rtol=1e-6)
    assert np.abs(parts["linear"]).mean() > 0.01  # the linear path's own term


def test_forecast_follows_shift_and_scale_of_the_window():
    """f(a * x + b) = a * f(x) + b: a window far outside any training range is forecast as its
    own level and spread say, which a global scaler cannot do."""
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(units=(8,)), (LOOKBACK, 1), (3, 1), window_channels=(0,))
    x = _windows(features=1)
    base = model.predict(x, verbose=0)
    moved = model.predict(x * 40.0 + 1000.0, verbose=0)
    np.testing.assert_allclose(moved, base * 40.0 + 1000.0, rtol=1e-4)
    plain = build_model(ModelConfig(units=(8,)), (LOOKBACK, 1), (3, 1))
    plain_moved = plain.predict(x * 40.0 + 1000.0, verbose=0)
    assert not np.allclose(plain_moved, plain.predict(x, verbose=0) * 40.0 + 1000.0, rtol=1e-2)


def test_flat_window_stays_finite_and_forecasts_its_level():
    keras.utils.set_random_seed(0)
    model = build_model(ModelConfig(units=(4,)), (LOOKBACK, 1), (1, 1), window_channels=(0,))
    flat = np.full((1, LOOKBACK, 1), 7.0, np.float32)
    out = model.predict(flat, verbose=0)
    assert np.isfinite(out).all()
    # a spread of `floor` (1e-3) times a bounded core output stays at the level
    assert abs(float(out[0, 0, 0]) - 7.0) < 0.05


def test_safe_mode_round_trip(tmp_path):
    keras.utils.set_random_seed(1)
    model = build_model(
        ModelConfig(units=(6, 4), conv_filters=3, dense_units=(5,)),
        (LOOKBACK, 2),
        (2, 1),
        window_channels=(1,),
    )
    path = tmp_path / "model.keras"
    model.save(path)
    loaded = keras.models.load_model(path, safe_mode=True, compile=False)
    assert [type(layer).__name__ for layer in loaded.layers] == ["WindowNormalized"]
    inner = [type(layer).__name__ for layer in loaded.layers[0].core.layers]
    assert inner.count("LSTM") == 2 and "Conv1D" in inner
    x = _windows()
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0))


def test_window_channels_must_match_targets_and_inputs():
    with pytest.raises(ConfigError, match="one input channel per target"):
        build_model(ModelConfig(units=(4,)), (LOOKBACK, 2), (1, 2), window_channels=(0,))
    with pytest.raises(ConfigError, match="token inputs"):
        build_model(
            ModelConfig(units=(4,), embedding={"vocab_size": 10, "dim": 2}),
            (LOOKBACK,),
            2,
            "classification",
            window_channels=(),
        )


def test_window_needs_target_among_features(sine_frame):
    config = load_config(
        {
            "data": {"targets": ["y"], "features": ["x"], "lookback": 8, "scaler": "window"},
            "training": {"epochs": 1, "cv_splits": 2},
        }
    )
    with pytest.raises(ConfigError, match="target 'y' is not among `data.features`"):
        fit(config, sine_frame, verbose=0)


# --- a series whose test part rises above the training range -------------------------------


def rising_frame(rows=300, seed=0):
    """Growth plus a 12-step season: the test part (last 20%) ends about 45% above the largest
    training value."""
    rng = np.random.default_rng(seed)
    t = np.arange(rows, dtype=np.float64)
    y = 10.0 * np.exp(t / 150) + 3.0 * np.sin(2 * np.pi * t / 12) + 0.2 * rng.standard_normal(rows)
    return pd.DataFrame({"y": y})


def _rising_config(scaler):
    return load_config(
        {
            "seed": 3,
            "data": {"targets": ["y"], "lookback": LOOKBACK, "scaler": scaler, "season": 12},
            # the plain recurrent stack: what the scaling alone does
            "model": {"units": [16], "dropout": 0.0, "linear_path": False},
            "training": {"epochs": 40, "cv_splits": 2, "learning_rate": 0.01},
        }
    )


@pytest.fixture(scope="module")
def rising_bundles():
    frame = rising_frame()
    return frame, {
        scaler: fit(_rising_config(scaler), frame, verbose=0) for scaler in ("window", "standard")
    }


def test_rising_series_needs_window_scaling(rising_bundles):
    frame, bundles = rising_bundles
    train_max = frame["y"].iloc[:240].max()
    assert frame["y"].iloc[240:].max() > 1.3 * train_max  # the premise of the test
    window, standard = (bundles[s].metrics for s in ("window", "standard"))
    naive = window["baselines"]["naive"]["test"]["rmse"]
    assert standard["baselines"]["naive"]["test"]["rmse"] == pytest.approx(naive)
    assert window["test"]["rmse"] < naive
    assert standard["test"]["rmse"] > naive
    assert window["beats_baselines"] is True
    assert standard["beats_baselines"] is False


def test_rising_series_test_rmse_is_independent(rising_bundles):
    """The reported test RMSE equals one computed from `Bundle.predict` on the raw frame."""
    frame, bundles = rising_bundles
    predictions = bundles["window"].predict(frame)
    y = frame["y"].to_numpy()
    test_rows = np.arange(240, 300)
    pred = predictions["y"].reindex(test_rows).to_numpy()
    rmse = float(np.sqrt(np.mean((pred - y[test_rows]) ** 2)))
    assert rmse == pytest.approx(bundles["window"].metrics["test"]["rmse"], rel=1e-4)


@pytest.mark.parametrize("mode, bar", [("float32", 1e-5), ("int8", 0.1), ("int8-full", 0.1)])
def test_export_parity_above_the_training_range(rising_bundles, tmp_path, mode, bar):
    from tflite_export import LitePredictor, export

    frame, bundles = rising_bundles
    bundle = bundles["window"]
    report = export(bundle, mode, tmp_path / "model.tflite")
    assert report["builtin_only"] and report["input"]["dtype"] == "float32"
    # every held-out window the report checked lies above the training range
    lite = LitePredictor(tmp_path / "model.tflite").predict(frame)["y"].to_numpy()
    keras_pred = bundle.predict(frame)["y"].to_numpy()
    above = np.arange(len(keras_pred)) >= 240 - LOOKBACK
    error = np.abs(lite[above] - keras_pred[above])
    if mode == "float32":
        assert report["max_abs_error"] <= bar
        assert error.max() <= 1e-4 * np.abs(keras_pred[above]).max()
    else:
        assert report["relative_rmse"] <= bar
        relative = np.sqrt(np.mean(error**2)) / np.std(keras_pred[above])
        assert relative <= bar
        assert "window" in report["recipe"]


def test_window_scaling_is_refused_for_whole_sequences_and_auto_is_per_sequence():
    from keras_lstm.training import prepare

    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((30, 10, 2)), np.arange(30) % 2
    config = load_config({"task": "classification", "data": {"lookback": 10, "scaler": "window"}})
    with pytest.raises(ConfigError, match="sequences samples cannot use it"):
        prepare(config, (x, y))
    auto = prepare(config.replace(**{"data.scaler": "auto"}), (x, y))
    assert auto.scaler == "sequence" and auto.window_channels is None


def test_auto_scaler_is_window_for_forecasting_only(sine_frame):
    from keras_lstm.training import prepare

    forecast = prepare(load_config({"data": {"targets": ["y"], "time_column": "date"}}), sine_frame)
    assert forecast.scaler == "window" and forecast.window_channels == (0,)
    # a target that is not an input cannot be mapped back: auto falls back to standard
    other = load_config({"data": {"targets": ["y"], "features": ["x"], "time_column": "date"}})
    assert prepare(other, sine_frame).scaler == "standard"
