"""End to end with a real `keras_lstm.Bundle`: fit, save, `keras-lstm export`, LitePredictor."""

import types

import numpy as np
import pandas as pd
import pytest

from keras_lstm.config import load_config

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    import keras_lstm

    folder = tmp_path_factory.mktemp("bundle")
    rng = np.random.default_rng(0)
    t = np.arange(300)
    import pandas as pd

    frame = pd.DataFrame(
        {
            "date": pd.date_range("2020-01-01", periods=300, freq="D").strftime("%Y-%m-%d"),
            "y": np.sin(2 * np.pi * t / 20) + 0.1 * rng.standard_normal(300),
            "x": np.cos(2 * np.pi * t / 20),
        }
    )
    frame.to_csv(folder / "data.csv", index=False)
    config = load_config(
        {
            "data": {
                "path": str(folder / "data.csv"),
                "time_column": "date",
                "targets": ["y"],
                "lookback": 10,
            },
            "model": {"units": [8]},
            "training": {"epochs": 2, "cv_splits": 2},
            "export": {"representative_windows": 100},
        }
    )
    bundle = keras_lstm.fit(config, verbose=False)
    bundle.save(folder / "bundle")
    return folder / "bundle", frame


@pytest.mark.parametrize("mode", ["float32", "int8-full"])
def test_cli_export_and_predictor_match_bundle(bundle_dir, mode, capsys):
    from keras_lstm.bundle import Bundle
    from tflite_export import LitePredictor
    from tflite_export.cli import run_export

    directory, frame = bundle_dir
    args = types.SimpleNamespace(
        bundle=str(directory), quantize=mode, out=None, max_error=None, format="tflite"
    )
    assert run_export(args) == 0
    assert "builtin ops only" in capsys.readouterr().out
    path = directory / f"model-{mode}.tflite"
    predictor = LitePredictor(path)
    expected = Bundle.load(directory).predict(frame)
    got = predictor.predict(frame)  # the frame Bundle.predict gives: same index and columns
    pd.testing.assert_index_equal(got.index, expected.index)
    pd.testing.assert_index_equal(got.columns, expected.columns)
    assert predictor.predict_array(frame).shape == (len(expected), 1, 1)
    expected = expected.to_numpy()
    difference = got.to_numpy() - expected
    if mode == "float32":
        assert np.max(np.abs(difference)) < 1e-4
    else:
        assert np.sqrt(np.mean(difference**2)) < 0.05 * np.std(expected)
        assert np.max(np.abs(difference)) < 0.25 * np.std(expected)
    assert predictor.report["preprocessing"]["lookback"] == 10
