"""int16x8 for TFLite Micro (`tflite_export.requantize`): requantized, checked in TFLite
Micro's interpreter, refused where it cannot run."""

import importlib

import numpy as np
import pandas as pd
import pytest

from keras_lstm.errors import BundleError, ExportError
from keras_lstm.training import fit
from tflite_export import LitePredictor, export
from tflite_export.requantize import run_micro


def _series(n=600, seed=0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n)
    y = np.zeros(n)
    y[2:] = 2 * x[:-2] + 0.5 * x[1:-1]
    return pd.DataFrame({"y": y + 0.1 * rng.standard_normal(n), "x": x})


MICRO_CONFIG = {  # an all-integer model: global scaler, no linear path
    "seed": 0,
    "data": {"targets": ["y"], "lookback": 8, "scaler": "standard"},
    "model": {"units": [16, 16], "linear_path": False},
    "training": {"epochs": 15, "cv_splits": 2},
}


@pytest.fixture(scope="module")
def micro_bundle():
    return fit(MICRO_CONFIG, _series(), verbose=0)


def _tensor_types(content: bytes) -> dict:
    """Per LSTM op of the file: the type names of its input, output and gate biases."""
    utils = importlib.import_module("tensorflow.lite.tools.flatbuffer_utils")
    schema = importlib.import_module("tensorflow.lite.python.schema_py_generated")
    names = {v: k for k, v in vars(schema.TensorType).items() if isinstance(v, int)}
    model = utils.convert_bytearray_to_object(bytearray(content))
    lstm = schema.BuiltinOperator.UNIDIRECTIONAL_SEQUENCE_LSTM
    found = []
    for graph in model.subgraphs:
        for op in graph.operators:
            code = model.operatorCodes[op.opcodeIndex]
            if max(code.builtinCode, code.deprecatedBuiltinCode) == lstm:
                found.append(
                    {
                        "input": names[graph.tensors[op.inputs[0]].type],
                        "output": names[graph.tensors[op.outputs[0]].type],
                        "biases": {
                            names[graph.tensors[op.inputs[i]].type] for i in (12, 13, 14, 15)
                        },
                    }
                )
    return found


def _micro_error(bundle, content: bytes, n: int = 64, streaming: bool = False) -> float:
    """Relative RMSE of `content` in TFLite Micro's interpreter against Keras' own predictions
    of the same scaled test windows (an independent run, not the export's report)."""
    windows = bundle.sample_windows(n, part="test")
    keras = bundle.predict_scaled(windows)
    micro = run_micro(content, windows, streaming=streaming)
    return float(np.sqrt(np.mean((micro - keras.reshape(micro.shape)) ** 2)) / np.std(keras))


def test_int16x8_is_more_accurate_than_int8_in_tflite_micro(micro_bundle, tmp_path):
    path = tmp_path / "m16.tflite"
    report = export(micro_bundle, "int16x8", path)
    assert report["runtime"] == "tflite-micro" and report["mode"] == "int16x8"
    assert report["input"]["dtype"] == "int16" and report["builtin_only"]
    lstms = _tensor_types(path.read_bytes())
    assert len(lstms) == 2
    assert all(t["input"] == t["output"] == "INT16" and t["biases"] == {"INT64"} for t in lstms)
    error = _micro_error(micro_bundle, path.read_bytes())
    assert error < 0.01
    assert report["relative_rmse"] < report["int8_relative_rmse"]
    assert report["relative_rmse"] == pytest.approx(error, rel=0.5)  # 64 of its windows


def test_desktop_litert_refuses_the_file_and_the_c_array_is_written(micro_bundle, tmp_path):
    from keras_lstm.cli import main

    micro_bundle.save(tmp_path / "bundle")
    source = tmp_path / "m16.cc"
    args = ["export", str(tmp_path / "bundle"), "--quantize", "int16x8", "--format", "c-array"]
    assert main([*args, "--out", str(source)]) == 0
    assert "unsigned char" in source.read_text() or "alignas" in source.read_text()
    with pytest.raises(BundleError, match="TFLite Micro"):
        LitePredictor(source.with_suffix(".tflite"))


def test_window_normalized_models_are_refused_with_the_op(tmp_path):
    bundle = fit(
        {**MICRO_CONFIG, "data": {"targets": ["y"], "lookback": 8}, "model": {"units": [4]}},
        _series(n=300),
        verbose=0,
    )
    with pytest.raises(ExportError, match="int16x8 cannot requantize|int8-full"):
        export(bundle, "int16x8", tmp_path / "no.tflite")
    assert not (tmp_path / "no.tflite").exists()


def test_gru_int16x8_runs_in_tflite_micro_more_accurately_than_int8(tmp_path):
    """A GRU is unrolled for int16x8 (the WHILE form keeps its state float), its steps share
    one recurrent bias, which each step's FULLY_CONNECTED needs as its own int64 buffer."""
    config = {**MICRO_CONFIG, "model": {**MICRO_CONFIG["model"], "cell": "gru"}}
    bundle = fit(config, _series(), verbose=0)
    path = tmp_path / "gru16.tflite"
    report = export(bundle, "int16x8", path)
    assert "WHILE" not in report["ops"] and report["input"]["dtype"] == "int16"
    assert _micro_error(bundle, path.read_bytes()) < 0.01
    assert report["relative_rmse"] < report["int8_relative_rmse"]


def test_streaming_int16x8_runs_step_by_step_in_tflite_micro(micro_bundle, tmp_path):
    """The step model in 16x8: fed one step per invoke() in TFLite Micro, its output after a
    window's last step is Keras' window output, closer than the int8 step model's."""
    path = tmp_path / "s16.tflite"
    report = export(micro_bundle, "int16x8", path, streaming=True)
    assert report["streaming"] is True and report["runtime"] == "tflite-micro"
    lstms = _tensor_types(path.read_bytes())
    assert len(lstms) == 2 and all(t["input"] == "INT16" for t in lstms)
    # one step per call: the file's input holds one time step, not the window
    assert report["input"]["shape"][1] == 1 < micro_bundle.sample_windows(1).shape[1]
    assert _micro_error(micro_bundle, path.read_bytes(), n=32, streaming=True) < 0.01
    assert report["relative_rmse"] < report["int8_relative_rmse"]
