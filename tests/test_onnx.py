"""Tests of `tflite_export.onnx_export`: ONNX files checked in onnxruntime like the TFLite modes."""

import json

import numpy as np
import pytest

from keras_lstm.config import ModelConfig
from keras_lstm.errors import ExportError
from keras_lstm.factory import build_model
from tflite_export.onnx_export import export_onnx
from tflite_export.runtime import report_path

pytest.importorskip("onnxruntime")
pytest.importorskip("tf2onnx")

LOOKBACK, FEATURES = 12, 3

MODELS = {
    "lstm": (ModelConfig(units=(8, 4)), (2, 1), "regression", {}),
    "bidirectional-conv": (
        ModelConfig(units=(6, 4), bidirectional=True, conv_filters=4, dense_units=(5,)),
        3,
        "classification",
        {},
    ),
    "gru": (ModelConfig(cell="gru", units=(6,), linear_path=False), (1, 1), "regression", {}),
    "window": (ModelConfig(units=(4,)), (1, 1), "regression", {"window_channels": [0]}),
}


def _windows(n, seed=0):
    return np.random.default_rng(seed).standard_normal((n, LOOKBACK, FEATURES)).astype(np.float32)


def _model(name):
    import keras

    keras.utils.set_random_seed(0)
    config, output, task, extra = MODELS[name]
    model = build_model(config, (LOOKBACK, FEATURES), output, task, **extra)
    # random weights everywhere (the linear path starts at zero): every part must convert
    rng = np.random.default_rng(1)
    model.set_weights([w + 0.3 * rng.standard_normal(w.shape) for w in model.get_weights()])
    return model


def _onnxruntime(path, windows):
    """Run the file in onnxruntime, independently of the package."""
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: windows})[0]


# each conversion starts a TensorFlow process on JAX (about 10 s): the GRU and window cases
# run with -m slow, the LSTM and Bidirectional Conv ones (and the masked classifier below) always
@pytest.mark.parametrize(
    "name",
    [
        pytest.param(name, marks=[pytest.mark.slow] if name in ("gru", "window") else [])
        for name in sorted(MODELS)
    ],
)
def test_onnx_matches_keras(tmp_path, name):
    model = _model(name)
    windows = _windows(64)
    path = tmp_path / "model.onnx"
    report = export_onnx(model, path, validation=windows)
    expected = np.asarray(model(windows, training=False))
    got = _onnxruntime(path, windows)
    assert np.max(np.abs(got - expected)) < 1e-5
    assert report["max_abs_error"] < 1e-5 and report["relative_rmse"] < 1e-5
    # any batch: the file is not fixed to the validation batch
    assert _onnxruntime(path, windows[:3]).shape == (3, *expected.shape[1:])
    saved = json.loads(report_path(path).read_text())
    assert saved["size_bytes"] == path.stat().st_size
    if name != "gru":
        assert "LSTM" in saved["ops"]  # ONNX's own LSTM op, not an unrolled loop


def test_masked_sequence_classifier_takes_any_length(tmp_path):
    import keras

    from keras_lstm.config import load_config

    keras.utils.set_random_seed(0)
    # the whole-sequence classifier defaults: masked conv front, BiLSTM, attention pooling
    config = load_config(
        {"task": "classification", "data": {"series_id": "id", "label": "y", "path": "x.csv"}}
    ).model
    model = build_model(
        config, (None, 2), 3, "classification", mask_value=0.0, sequence_standardized=True
    )
    windows = np.random.default_rng(0).standard_normal((8, 48, 2)).astype(np.float32)
    windows[:4, 30:] = 0.0  # padded at the end
    path = tmp_path / "seq.onnx"
    report = export_onnx(model, path, validation=windows)
    assert report["max_abs_error"] < 1e-5
    longer = np.random.default_rng(1).standard_normal((2, 80, 2)).astype(np.float32)
    expected = np.asarray(model(longer, training=False))
    assert np.max(np.abs(_onnxruntime(path, longer) - expected)) < 1e-5


def test_failed_parity_writes_nothing(tmp_path):
    with pytest.raises(ExportError, match="parity check failed"):
        export_onnx(_model("lstm"), tmp_path / "model.onnx", validation=_windows(8), max_error=0)
    assert list(tmp_path.iterdir()) == []


def test_missing_extra_is_a_clear_error(tmp_path, monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "tf2onnx" else real(name)
    )
    with pytest.raises(ExportError, match=r"keras-lstm\[onnx\]"):
        export_onnx(_model("lstm"), tmp_path / "model.onnx", validation=_windows(8))
    assert list(tmp_path.iterdir()) == []
