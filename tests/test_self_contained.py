"""Bundles carry their calibration windows (they never re-read the training data), and a run
folder is accepted wherever a bundle folder is."""

import hashlib
import json
import shutil
from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest
import yaml

from keras_lstm.bundle import Bundle
from keras_lstm.cli import main
from keras_lstm.errors import BundleError

LOOKBACK = 6
CONFIG = {
    "seed": 3,
    "data": {"path": "data.csv", "time_column": "date", "targets": ["y"], "lookback": LOOKBACK},
    "model": {"units": [4], "dropout": 0.0},
    "training": {"epochs": 1, "cv_splits": 2, "batch_size": 32},
}


def _frame(n=160):
    rng = np.random.default_rng(0)
    t = np.arange(n)
    return pd.DataFrame(
        {
            "date": pd.date_range("2022-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
            "y": np.sin(2 * np.pi * t / 16) + 0.1 * rng.standard_normal(n),
            "x": np.cos(2 * np.pi * t / 16),
        }
    )


@pytest.fixture(scope="module")
def moved(tmp_path_factory):
    """`keras-lstm train` on a CSV; the bundle copied elsewhere; then the CSV deleted."""
    root = tmp_path_factory.mktemp("trained")
    frame = _frame()
    frame.to_csv(root / "data.csv", index=False)
    (root / "config.yaml").write_text(yaml.safe_dump(CONFIG))
    assert main(["train", str(root / "config.yaml"), "--out", str(root / "run")]) == 0
    inputs = tmp_path_factory.mktemp("inputs")
    frame.tail(30).to_csv(inputs / "recent.csv", index=False)
    copy = tmp_path_factory.mktemp("elsewhere") / "copy"
    shutil.copytree(root / "run" / "bundle", copy)
    (root / "data.csv").unlink()
    return SimpleNamespace(
        frame=frame, run=root / "run", copy=copy, recent=inputs / "recent.csv", out=inputs
    )


def _predict(source, moved, name):
    output = moved.out / name
    assert (
        main(["predict", str(source), "--input", str(moved.recent), "--output", str(output)]) == 0
    )
    return pd.read_csv(output)


def _report(folder, stem):
    """The export report written beside `folder/stem.tflite` (`stem.tflite.json`)."""
    (report,) = folder.glob(f"{stem}*.json")
    return report


def test_the_bundle_holds_its_calibration_windows(moved):
    manifest = json.loads((moved.copy / "manifest.json").read_text())
    for name in ("calibration_train.npy", "calibration_test.npy"):
        digest = hashlib.sha256((moved.copy / name).read_bytes()).hexdigest()
        assert manifest[name] == digest
    train = np.load(moved.copy / "calibration_train.npy", allow_pickle=False)
    test = np.load(moved.copy / "calibration_test.npy", allow_pickle=False)
    assert train.dtype == np.float32 and train.shape[1:] == (LOOKBACK, 2)
    assert test.dtype == np.float32 and test.shape[1:] == (LOOKBACK, 2)
    # 160 rows, 20% test: fewer windows than the cap, so every one of them is stored
    assert len(test) == 32
    assert 100 < len(train) < 1000
    # independent computation: the last test window is the last LOOKBACK rows, scaled
    scaler = Bundle.load(moved.copy).preprocessing["feature_scaler"]
    last = (moved.frame[["y", "x"]].to_numpy()[-LOOKBACK - 1 : -1] - scaler["center"]) / scaler[
        "scale"
    ]
    np.testing.assert_allclose(test[-1], last, rtol=1e-5, atol=1e-6)


def test_a_moved_bundle_exports_int8_without_its_training_data(moved):
    assert not (moved.run.parent / "data.csv").exists()
    assert main(["export", str(moved.copy), "--quantize", "int8"]) == 0
    assert (moved.copy / "model-int8.tflite").stat().st_size > 0
    report = json.loads(_report(moved.copy, "model-int8").read_text())
    assert report["mode"] == "int8"
    assert report["relative_rmse"] < 0.5


def test_a_moved_bundle_predicts_like_the_original(moved):
    from_copy = _predict(moved.copy, moved, "copy.csv")
    from_original = _predict(moved.run / "bundle", moved, "original.csv")
    assert len(from_copy) == 30 - LOOKBACK + 1
    pd.testing.assert_frame_equal(from_copy, from_original)


def test_a_run_folder_is_accepted_for_predict_and_export(moved):
    from_run = _predict(moved.run, moved, "run.csv")
    from_bundle = _predict(moved.run / "bundle", moved, "bundle.csv")
    pd.testing.assert_frame_equal(from_run, from_bundle)
    out = moved.out / "run-model.tflite"
    assert main(["export", str(moved.run), "--quantize", "float32", "--out", str(out)]) == 0
    assert out.stat().st_size > 0
    assert json.loads(_report(moved.out, "run-model").read_text())["max_abs_error"] < 1e-4
    assert Bundle.load(moved.run).directory == moved.run / "bundle"
    # without --out the file goes beside the model, into the run's bundle folder
    assert main(["export", str(moved.run), "--quantize", "float32"]) == 0
    assert (moved.run / "bundle" / "model-float32.tflite").stat().st_size > 0
    assert not (moved.run / "model-float32.tflite").exists()


def test_a_folder_that_is_neither_a_bundle_nor_a_run_is_named(moved, tmp_path, capsys):
    with pytest.raises(BundleError, match=r"neither a bundle folder .* nor a run folder"):
        Bundle.load(tmp_path)
    capsys.readouterr()
    assert main(["predict", str(tmp_path), "--input", str(moved.recent)]) == 2
    assert "neither a bundle folder" in capsys.readouterr().err


def test_a_run_folder_with_a_damaged_bundle_names_the_bundle_file(moved, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(moved.run / "bundle", run / "bundle")
    (run / "bundle" / "model.keras").unlink()
    with pytest.raises(BundleError, match=r"bundle' has no model\.keras"):
        Bundle.load(run)


def _copy(moved, tmp_path):
    target = tmp_path / "bundle"
    shutil.copytree(moved.run / "bundle", target)  # never exported into
    return target


def _resign(folder):
    manifest = {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(folder.iterdir())
        if p.is_file() and p.name != "manifest.json"
    }
    (folder / "manifest.json").write_text(json.dumps(manifest))


def test_an_edited_calibration_file_is_refused(moved, tmp_path):
    folder = _copy(moved, tmp_path)
    windows = np.load(folder / "calibration_train.npy", allow_pickle=False)
    windows[0, 0, 0] += 1.0
    np.save(folder / "calibration_train.npy", windows, allow_pickle=False)
    with pytest.raises(BundleError, match=r"calibration_train\.npy was changed or truncated"):
        Bundle.load(folder)


@pytest.mark.parametrize("name", ["calibration_train.npy", "calibration_test.npy"])
def test_a_missing_calibration_file_is_named(moved, tmp_path, name):
    folder = _copy(moved, tmp_path)
    (folder / name).unlink()
    with pytest.raises(BundleError, match=rf"has no {name}"):
        Bundle.load(folder)


def test_a_calibration_file_linking_outside_the_bundle_is_refused(moved, tmp_path):
    folder = _copy(moved, tmp_path)
    outside = tmp_path / "windows.npy"
    shutil.move(folder / "calibration_test.npy", outside)
    (folder / "calibration_test.npy").symlink_to(outside)
    with pytest.raises(BundleError, match="points outside the bundle folder"):
        Bundle.load(folder)


@pytest.mark.parametrize(
    "content, match",
    [
        (np.zeros((4, LOOKBACK + 1, 2), np.float32), r"holds windows of shape \(4, 7, 2\)"),
        (np.zeros((4, LOOKBACK, 2), np.int32), r"dtype int32"),
        (np.array([{"a": 1}], dtype=object), r"is not a valid NumPy array file"),
    ],
    ids=["wrong-shape", "wrong-dtype", "pickled-object"],
)
def test_a_resigned_bad_calibration_file_is_refused(moved, tmp_path, content, match):
    folder = _copy(moved, tmp_path)
    np.save(folder / "calibration_train.npy", content, allow_pickle=True)
    _resign(folder)
    with pytest.raises(BundleError, match=match):
        Bundle.load(folder)


def _strip_calibration(folder):
    """The bundle as an older keras-lstm saved it: no calibration files, none in the manifest."""
    for name in ("calibration_train.npy", "calibration_test.npy"):
        (folder / name).unlink()
    _resign(folder)


def test_an_old_bundle_predicts_but_export_says_to_train_again(moved, tmp_path, capsys):
    folder = _copy(moved, tmp_path)
    _strip_calibration(folder)
    old = Bundle.load(folder)
    assert old.calibration is None
    expected = Bundle.load(moved.copy).predict(moved.recent)
    pd.testing.assert_frame_equal(old.predict(moved.recent), expected)
    with pytest.raises(BundleError, match=r"has no calibration windows.*train again"):
        old.sample_windows(10, "train")
    capsys.readouterr()
    assert not (folder / "model-int8.tflite").exists()
    assert main(["export", str(folder), "--quantize", "int8"]) == 2
    assert "calibration_train.npy" in capsys.readouterr().err
    assert not (folder / "model-int8.tflite").exists()
