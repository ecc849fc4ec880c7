"""The device side: `LitePredictor` reads a `.tflite` file and its report with NumPy, pandas and
LiteRT only, never TensorFlow, Keras or scikit-learn."""

import json
import subprocess
import sys
import textwrap

import numpy as np
import pandas as pd
import pytest
from test_export import _bundle, raw_frame  # noqa: F401 (the fixture)

from tflite_export.exporter import export

BLOCKED = ("tensorflow", "keras", "sklearn", "tf_keras", "keras_tuner", "yaml", "matplotlib")


def test_lite_predictor_runs_with_only_numpy_pandas_and_litert(tmp_path, raw_frame):  # noqa: F811
    bundle, windows = _bundle("lstm", raw_frame)
    export(bundle, "float32", tmp_path / "m.tflite")
    raw_frame.to_csv(tmp_path / "rows.csv", index=False)
    # scale, Keras, unscale
    expected = np.asarray(bundle.model(windows, training=False)) * 3.0 + 10.0
    script = textwrap.dedent(
        f"""
        import json, sys
        for name in {BLOCKED!r}:
            sys.modules[name] = None  # any import of these now raises ImportError
        from tflite_export import LitePredictor
        predictor = LitePredictor({str(tmp_path / "m.tflite")!r})
        frame = predictor.predict({str(tmp_path / "rows.csv")!r})
        loaded = sorted(m for m in sys.modules if m.split(".")[0] in {BLOCKED!r} and sys.modules[m])
        print(json.dumps({{"values": frame.iloc[:, 0].tolist(), "columns": list(frame.columns),
                           "index": [int(i) for i in frame.index], "loaded": loaded}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    assert done.returncode == 0, done.stderr[-2000:]
    answer = json.loads(done.stdout.strip().splitlines()[-1])
    assert answer["loaded"] == []
    assert answer["columns"] == ["a"]  # the target, named as in the report
    # one row per complete window, indexed by the row each forecast is for
    assert answer["index"] == list(range(windows.shape[1], len(raw_frame) + 1))
    np.testing.assert_allclose(answer["values"], expected[:, 0, 0], atol=1e-4)


def test_the_block_is_real():
    # the same block makes a TensorFlow import fail, so the test above would catch one
    script = "import sys; sys.modules['tensorflow'] = None; import tflite_export.exporter"
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, check=False
    )
    last = done.stderr.strip().splitlines()[-1]
    assert done.returncode != 0
    # `import tensorflow` is halted; `from tensorflow.lite... import` finds no package
    assert "import of tensorflow halted" in last or "'tensorflow' is not a package" in last


def test_an_edited_report_or_model_is_refused(tmp_path, raw_frame):  # noqa: F811
    from keras_lstm.errors import BundleError
    from tflite_export import LitePredictor
    from tflite_export.runtime import report_path

    bundle, _ = _bundle("lstm", raw_frame)
    path = tmp_path / "m.tflite"
    export(bundle, "float32", path)
    report = report_path(path)
    original_report, original_model = report.read_text(), path.read_bytes()
    expected = LitePredictor(path).predict_array(raw_frame)  # as exported: accepted

    edited = json.loads(original_report)
    edited["preprocessing"]["feature_scaler"]["scale"][0] *= 3  # wrong forecasts if trusted
    report.write_text(json.dumps(edited, indent=2))
    with pytest.raises(BundleError, match=r"m\.tflite\.json.*changed after the export"):
        LitePredictor(path)

    report.write_text(original_report)
    model = bytearray(original_model)
    model[-1] ^= 0xFF
    path.write_bytes(bytes(model))
    with pytest.raises(BundleError, match=r"m\.tflite'.*does not match the digest"):
        LitePredictor(path)

    path.write_bytes(original_model)
    del edited["digest"]
    edited["preprocessing"]["feature_scaler"]["scale"][0] /= 3  # the export's own values
    report.write_text(json.dumps(edited))
    with pytest.raises(BundleError, match="has no digest"):
        LitePredictor(path)

    report.write_text(json.dumps(json.loads(original_report), indent=4))  # layout is not content
    np.testing.assert_array_equal(LitePredictor(path).predict_array(raw_frame), expected)


@pytest.mark.parametrize("mode", ["float32", "int8-full"])
def test_lite_predictor_predict_is_bundle_predict(tmp_path, raw_frame, mode):  # noqa: F811
    """`LitePredictor.predict` takes what `Bundle.predict` takes (a frame, a CSV path) and
    returns its frame: the same index and columns, the values within the export's parity."""
    from keras_lstm.bundle import Bundle
    from tflite_export import LitePredictor

    fake, windows = _bundle("lstm", raw_frame)
    # a real Bundle around the same model and preprocessing; its calibration windows are the
    # frame's own, so the parity the report measures is on exactly these windows
    bundle = Bundle(
        fake.model,
        {**fake.preprocessing, "kind": "series"},
        config=None,
        calibration={"train": windows, "test": windows},
    )
    report = export(bundle, mode, tmp_path / "m.tflite", max_error=10.0)
    predictor = LitePredictor(tmp_path / "m.tflite")
    raw_frame.to_csv(tmp_path / "rows.csv", index=False)
    # real units: the target scaler's scale (3) times the error on scaled outputs
    tolerance = 3.0 * max(report["max_abs_error"], 1e-5) * 1.01
    for source in (raw_frame, str(tmp_path / "rows.csv")):
        expected = bundle.predict(source)
        got = predictor.predict(source)
        assert isinstance(got, pd.DataFrame)
        pd.testing.assert_index_equal(got.index, expected.index)
        pd.testing.assert_index_equal(got.columns, expected.columns)
        np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=0, atol=tolerance)
    # the array of the same forecasts stays available; `predict_frame` is `predict`
    array = predictor.predict_array(raw_frame)
    assert array.shape == (len(expected), 1, 1)
    np.testing.assert_allclose(array[:, :, 0], got.to_numpy(), rtol=1e-6)
    pd.testing.assert_frame_equal(predictor.predict_frame(raw_frame), got)
