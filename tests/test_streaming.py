"""Tests of streaming export (`tflite_export.streaming`): one step per invoke, state carried."""

import json
import types

import numpy as np
import pandas as pd
import pytest

from keras_lstm.config import ModelConfig
from keras_lstm.errors import BundleError, DataError, ExportError
from keras_lstm.factory import build_model
from tflite_export import LitePredictor, export
from tflite_export.runtime import report_path

LOOKBACK, FEATURES = 10, 3


def _model(seed=0, **options):
    import keras

    keras.utils.set_random_seed(seed)
    config = ModelConfig(**{"units": (8, 4), "linear_path": False, **options})
    return build_model(config, (LOOKBACK, FEATURES), (2, 1), "regression")


def _windows(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, LOOKBACK, FEATURES)).astype(np.float32)


def _stream(path, windows):
    """Feed each window step by step through a fresh LiteRT interpreter, independently of the
    package: reset once per window, never between its steps."""
    from ai_edge_litert.interpreter import Interpreter

    lite = Interpreter(model_path=str(path))
    lite.allocate_tensors()
    source, target = lite.get_input_details()[0], lite.get_output_details()[0]
    assert list(source["shape"]) == [1, 1, FEATURES]
    outputs = []
    for window in windows:
        lite.reset_all_variables()
        for step in window:
            lite.set_tensor(source["index"], step[None, None])
            lite.invoke()
        outputs.append(lite.get_tensor(target["index"])[0].copy())
    return np.stack(outputs)


def test_float32_stream_equals_whole_window_keras(tmp_path):
    model = _model()
    windows = _windows(40)
    path = tmp_path / "step.tflite"
    report = export(model, "float32", path, windows, streaming=True)
    expected = np.asarray(model(windows, training=False))
    got = _stream(path, windows)
    assert np.max(np.abs(got - expected)) <= 1e-5
    assert report["streaming"] is True and report["latency_unit"] == "step"
    assert report["max_abs_error"] <= 1e-5
    assert report["window_latency_ms_p50"] == pytest.approx(report["latency_ms_p50"] * LOOKBACK)
    assert report["input"]["shape"] == [1, 1, FEATURES]
    assert report["ops"]["UNIDIRECTIONAL_SEQUENCE_LSTM"] == 2
    # without carrying the state (a reset before each step) the output would be the last
    # step alone: the state really is carried between invokes
    alone = np.asarray(model(windows[:, -1:], training=False))
    assert np.max(np.abs(alone - expected)) > 100 * np.max(np.abs(got - expected))


@pytest.mark.parametrize("mode", ["int8", "int8-full"])
def test_int8_stream_is_within_the_int8_bar(tmp_path, mode):
    model = _model()
    windows = _windows(120)
    report = export(
        model,
        mode,
        tmp_path / "step.tflite",
        windows[:80],
        validation=windows[80:],
        streaming=True,
    )
    assert report["relative_rmse"] <= 0.1
    assert report["streaming"] is True
    if mode == "int8-full":
        assert report["input"]["dtype"] == "int8"


def test_masked_sequence_streams_only_its_valid_steps(tmp_path):
    import keras

    keras.utils.set_random_seed(1)
    model = build_model(
        ModelConfig(units=(6,), linear_path=False),
        (None, FEATURES),
        2,
        "classification",
        mask_value=0.0,
    )
    windows = _windows(12, seed=3)
    lengths = np.arange(3, 15)[: len(windows)] % LOOKBACK + 2
    for window, length in zip(windows, lengths, strict=True):
        window[length:] = 0.0  # padded at the end, as whole sequences are
    path = tmp_path / "step.tflite"
    report = export(model, "float32", path, windows, lookback=LOOKBACK, streaming=True)
    expected = np.asarray(model(windows, training=False))
    got = _stream(path, [w[:n] for w, n in zip(windows, lengths, strict=True)])
    assert np.max(np.abs(got - expected)) <= 1e-5
    assert report["max_abs_error"] <= 1e-5  # the parity check skipped the padding too


@pytest.mark.parametrize(
    "options, reason",
    [
        ({"bidirectional": True}, "backward direction"),
        ({"cell": "gru"}, "no fused GRU"),
        ({"conv_filters": 4}, "convolution"),
        ({"linear_path": True}, "linear_path"),
    ],
)
def test_models_that_cannot_stream_are_refused(tmp_path, options, reason):
    model = _model(**options)
    with pytest.raises(ExportError, match=reason):
        export(model, "float32", tmp_path / "step.tflite", _windows(8), streaming=True)
    assert list(tmp_path.iterdir()) == []


def test_window_normalized_model_is_refused(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    model = build_model(
        ModelConfig(units=(4,)), (LOOKBACK, FEATURES), (1, 1), "regression", window_channels=[0]
    )
    with pytest.raises(ExportError, match="data.scaler: standard"):
        export(model, "float32", tmp_path / "step.tflite", _windows(8), streaming=True)


def test_every_cause_is_named_at_once(tmp_path):
    import keras

    keras.utils.set_random_seed(0)
    # the forecasting defaults: window scaling and a linear path, two causes
    model = build_model(
        ModelConfig(units=(4,), linear_path=True),
        (LOOKBACK, FEATURES),
        (1, 1),
        "regression",
        window_channels=[0],
    )
    with pytest.raises(ExportError) as info:
        export(model, "float32", tmp_path / "step.tflite", _windows(8), streaming=True)
    message = str(info.value)
    assert "(1)" in message and "data.scaler: standard" in message
    assert "(2)" in message and "model.linear_path: false" in message


class _Bundle:
    def __init__(self, model, preprocessing, windows):
        self.model, self.preprocessing, self.config = model, preprocessing, None
        self.windows = windows

    def sample_windows(self, n, part="train"):
        return self.windows[:n]


def test_lite_predictor_step_matches_predict_in_real_units(tmp_path):
    rng = np.random.default_rng(4)
    frame = pd.DataFrame(
        {
            "a": 1 + 2 * rng.standard_normal(30),
            "b": rng.standard_normal(30) - 2,
            "c": 0.5 * rng.standard_normal(30),
        }
    )
    center, scale = np.array([1.0, -2.0, 0.0]), np.array([2.0, 1.0, 0.5])
    scaled = ((frame.to_numpy() - center) / scale).astype(np.float32)
    windows = np.lib.stride_tricks.sliding_window_view(scaled, LOOKBACK, axis=0)
    windows = np.ascontiguousarray(windows.transpose(0, 2, 1))
    preprocessing = {
        "task": "regression",
        "feature_names": ["a", "b", "c"],
        "target_names": ["a"],
        "lookback": LOOKBACK,
        "horizon": 2,
        "feature_scaler": {"kind": "standard", "center": center.tolist(), "scale": scale.tolist()},
        "target_scaler": {"kind": "standard", "center": [10.0], "scale": [3.0]},
    }
    model = _model()
    export(_Bundle(model, preprocessing, windows), "float32", tmp_path / "s.tflite", streaming=True)
    export(_Bundle(model, preprocessing, windows), "float32", tmp_path / "w.tflite")
    streaming, window = LitePredictor(tmp_path / "s.tflite"), LitePredictor(tmp_path / "w.tflite")
    assert streaming.streaming and not window.streaming
    expected = window.predict_array(frame)  # (windows, horizon, targets) in real units
    streaming.reset()
    rows = frame.iloc[:LOOKBACK]
    for index, (_, row) in enumerate(rows.iterrows()):
        # a mapping by name, or the values in feature order: the same step
        out = streaming.step(row if index % 2 else row.to_numpy())
    assert out.shape == (2, 1)
    np.testing.assert_allclose(out, expected[0], atol=1e-4)
    by_hand = np.asarray(model(windows[:1], training=False))[0] * 3.0 + 10.0
    np.testing.assert_allclose(out, by_hand, atol=1e-4)
    with pytest.raises(DataError, match="missing feature 'c'"):
        streaming.step({"a": 1.0, "b": 2.0})
    with pytest.raises(DataError, match="3 features"):
        streaming.step([1.0, 2.0])
    with pytest.raises(BundleError, match="--streaming"):
        window.step([1.0, 2.0, 3.0])
    report = json.loads(report_path(tmp_path / "s.tflite").read_text())
    assert "one time step per invoke()" in report["state_reset"]


def test_cli_streaming_flag_reaches_the_export(tmp_path, monkeypatch):
    import tflite_export.cli as cli

    seen = {}

    class _Loaded:
        directory = tmp_path

    def fake_export(bundle, mode, out, max_error=None, streaming=False, **options):
        seen.update(out=out, streaming=streaming)
        raise ExportError("stop here")

    monkeypatch.setattr("keras_lstm.bundle.Bundle.load", staticmethod(lambda path: _Loaded()))
    monkeypatch.setattr("tflite_export.exporter.export", fake_export)
    args = types.SimpleNamespace(
        bundle=str(tmp_path),
        quantize="float32",
        out=None,
        max_error=None,
        format="tflite",
        streaming=True,
    )
    with pytest.raises(ExportError, match="stop here"):
        cli.run_export(args)
    assert seen == {"out": tmp_path / "model-float32-streaming.tflite", "streaming": True}
    args.format = "saved_model"
    with pytest.raises(ExportError, match="step model"):
        cli.run_export(args)
