import json

import keras
import numpy as np
import pandas as pd
import pytest

from keras_lstm.bundle import Bundle
from keras_lstm.errors import BundleError, DataError
from keras_lstm.training import fit

CONFIG = {
    "seed": 5,
    "data": {"targets": ["y"], "time_column": "date", "lookback": 6, "horizon": 2},
    "model": {"units": [4], "dropout": 0.0},
    "training": {"epochs": 1, "cv_splits": 2, "batch_size": 32},
}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    rng = np.random.default_rng(0)
    t = np.arange(200)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2021-01-01", periods=200, freq="h").strftime("%Y-%m-%d %H:%M"),
            "y": 20 + 5 * np.sin(t / 5) + rng.standard_normal(200),
            "x": rng.random(200) * 100,
            "note": "ok",
        }
    )
    bundle = fit(CONFIG, frame, verbose=0)
    directory = bundle.save(tmp_path_factory.mktemp("run") / "bundle")
    return frame, bundle, directory


def test_save_load_predict_reproduces_exactly(trained):
    frame, bundle, directory = trained
    assert {p.name for p in directory.iterdir()} >= {
        "model.keras",
        "preprocessing.json",
        "config.yaml",
        "metrics.json",
        "manifest.json",
        "loss.png",
        "forecast.png",
        "folds.png",
    }
    loaded = Bundle.load(directory)
    first, second = bundle.predict(frame), loaded.predict(frame)
    pd.testing.assert_frame_equal(first, second)
    assert loaded.metrics == json.loads(json.dumps(bundle.metrics))
    assert loaded.config == bundle.config


def test_predictions_are_in_real_units_and_indexed_by_time(trained):
    frame, bundle, _ = trained
    out = bundle.predict(frame)
    assert list(out.columns) == ["y@t+1", "y@t+2"]
    assert len(out) == len(frame) - 6 + 1  # every complete window, the last one forecasts ahead
    assert out.index[0] == pd.Timestamp("2021-01-01 06:00")  # the row after the first window
    assert out.index[-1] == pd.Timestamp(frame["date"].iloc[-1]) + pd.Timedelta("1h")
    # independent computation: scale by hand, run the Keras model, unscale by hand
    pre = bundle.preprocessing
    fs, ts = pre["feature_scaler"], pre["target_scaler"]
    x = (frame[["y", "x"]].to_numpy() - fs["center"]) / fs["scale"]
    window = x[-6:][None].astype("float32")
    raw = np.asarray(bundle.model(window, training=False))[0, :, 0]
    np.testing.assert_allclose(
        out.iloc[-1].to_numpy(), raw * ts["scale"][0] + ts["center"][0], rtol=1e-4
    )


@pytest.mark.parametrize(
    "change, match",
    [
        (lambda f: f.drop(columns=["x"]), r"'x', used in training, is missing"),
        (lambda f: f.assign(extra=1.0), r"'extra' was not in the training data"),
        (lambda f: f.head(3), r"3 rows; one window needs lookback = 6"),
        (lambda f: f.assign(x="a"), r"'x' is not numeric"),
    ],
)
def test_bad_prediction_input(trained, change, match):
    frame, bundle, _ = trained
    with pytest.raises(DataError, match=match):
        bundle.predict(change(frame))


def _copy(directory, tmp_path):
    import shutil

    target = tmp_path / "copy"
    shutil.copytree(directory, target)
    return target


@pytest.mark.parametrize("name", ["model.keras", "preprocessing.json", "manifest.json"])
def test_missing_file_is_named(trained, tmp_path, name):
    copy = _copy(trained[2], tmp_path)
    (copy / name).unlink()
    with pytest.raises(BundleError, match=name):
        Bundle.load(copy)


def test_edited_or_truncated_file_is_caught(trained, tmp_path):
    copy = _copy(trained[2], tmp_path)
    pre = json.loads((copy / "preprocessing.json").read_text())
    pre["lookback"] = 3
    (copy / "preprocessing.json").write_text(json.dumps(pre))
    with pytest.raises(BundleError, match="preprocessing.json was changed or truncated"):
        Bundle.load(copy)
    copy2 = _copy(trained[2], tmp_path / "b")
    data = (copy2 / "model.keras").read_bytes()
    (copy2 / "model.keras").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match="model.keras was changed or truncated"):
        Bundle.load(copy2)


def test_lambda_layer_is_refused_by_safe_mode(trained, tmp_path):
    from keras_lstm.bundle import _sha256

    copy = _copy(trained[2], tmp_path)
    model = keras.Sequential([keras.Input((6, 2)), keras.layers.Lambda(lambda x: x * 2)])
    model.save(copy / "model.keras")
    manifest = json.loads((copy / "manifest.json").read_text())
    manifest["model.keras"] = _sha256(copy / "model.keras")  # a careful forger
    (copy / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(BundleError, match="cannot be loaded safely"):
        Bundle.load(copy)


def test_not_a_bundle(tmp_path):
    with pytest.raises(BundleError, match="does not exist"):
        Bundle.load(tmp_path / "nothing")


def test_save_replaces_atomically_and_leaves_nothing_on_failure(trained, tmp_path, monkeypatch):
    _, bundle, _ = trained
    target = bundle.save(tmp_path / "b")
    before = sorted(p.name for p in tmp_path.iterdir())

    def broken(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(bundle.model, "save", broken)
    with pytest.raises(OSError):
        bundle.save(target)
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    Bundle.load(target)  # the earlier bundle is intact


def test_a_file_linking_outside_the_bundle_is_refused(trained, tmp_path):
    copy = _copy(trained[2], tmp_path)
    outside = tmp_path / "elsewhere.json"
    outside.write_text((copy / "preprocessing.json").read_text())
    (copy / "preprocessing.json").unlink()
    (copy / "preprocessing.json").symlink_to(outside)
    with pytest.raises(BundleError, match="points outside the bundle folder"):
        Bundle.load(copy)


@pytest.mark.parametrize(
    "written, freq, after",
    [
        pytest.param(lambda t: f"{t.year}Q{t.quarter}", "QS", "1943Q1", id="quarters"),
        pytest.param(lambda t: t.strftime("%Y-%m"), "MS", "1966-09", id="months"),
        # the last row is Friday 10 October 1919: the next business day is the Monday
        pytest.param(lambda t: t.strftime("%Y/%m/%d"), "B", "1919/10/13", id="business-days"),
    ],
)
def test_cli_predict_keeps_the_input_calendar_and_its_form(trained, tmp_path, written, freq, after):
    # the same rows, stamped by another calendar: the bundle reads the times, never their step
    from keras_lstm.cli import main

    frame, _, directory = trained
    start = {"QS": "1893-01-01", "MS": "1950-01-01", "B": "1919-01-06"}[freq]
    times = pd.date_range(start, periods=200, freq=freq)
    frame = frame.assign(date=[written(t) for t in times])
    frame.to_csv(tmp_path / "in.csv", index=False)
    out = tmp_path / "p.csv"
    args = ["predict", str(directory), "--input", str(tmp_path / "in.csv"), "--output", str(out)]
    assert main(args) == 0
    got = pd.read_csv(out, dtype={"date": str})
    assert got["date"].iloc[0] == frame["date"].iloc[6]  # the input's own words for its rows
    assert got["date"].iloc[:-1].tolist() == frame["date"].iloc[6:].tolist()
    assert got["date"].iloc[-2] == frame["date"].iloc[-1]
    assert got["date"].iloc[-1] == after  # the next step of the calendar, in the same form
