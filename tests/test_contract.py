"""One contract for every data kind: train tiny, save, load, predict, export float32, and the
device-side `LitePredictor` gives the frame `Bundle.predict` gives (same index, columns and
values), through the kind's one preprocessing object."""

import numpy as np
import pandas as pd
import pytest

from keras_lstm.bundle import Bundle
from keras_lstm.data.preprocessing import KINDS, Preprocessing
from keras_lstm.training import fit
from tflite_export import LitePredictor
from tflite_export.exporter import export

TINY = {"model": {"units": [4], "dropout": 0.0}, "training": {"epochs": 1, "cv_splits": 2}}


def _series():
    rng = np.random.default_rng(0)
    t = np.arange(160)
    frame = pd.DataFrame(
        {
            "date": pd.date_range("2021-01-01", periods=160, freq="h").strftime("%Y-%m-%d %H:%M"),
            "y": 20 + 5 * np.sin(t / 5) + rng.standard_normal(160),
            "x": rng.random(160) * 100,
        }
    )
    data = {"targets": ["y"], "time_column": "date", "lookback": 6, "horizon": 2}
    return {"data": data}, frame, frame.iloc[-40:]


def _many_series():
    rng = np.random.default_rng(1)
    parts = []
    for m, n in enumerate((70, 80, 90)):
        parts.append(
            pd.DataFrame(
                {
                    "meter": f"m{m}",
                    "date": pd.date_range("2021-01-01", periods=n, freq="D").strftime("%Y-%m-%d"),
                    "load": (m + 1) * 10 + np.sin(np.arange(n)) + rng.standard_normal(n),
                }
            )
        )
    frame = pd.concat(parts, ignore_index=True)
    data = {"series_id": "meter", "time_column": "date", "targets": ["load"], "lookback": 5}
    new = frame.groupby("meter").tail(12).reset_index(drop=True)
    return {"data": data, "data_extra": {"scale_per_series": True}}, frame, new


def _sequences():
    rng = np.random.default_rng(2)
    rows = []
    for i in range(30):
        cls = i % 3
        length = int(rng.integers(5, 10))
        x = np.sin(np.arange(length) * (cls + 1) / 2) + 0.05 * rng.standard_normal(length)
        rows += [{"rec": f"r{i}", "x": x[k], "g": "abc"[cls]} for k in range(length)]
    frame = pd.DataFrame(rows)
    new = frame[frame.rec.isin(["r3", "r4", "r5"])].drop(columns="g")
    return {"task": "classification", "data": {"series_id": "rec", "label": "g"}}, frame, new


def _text():
    texts = ["good great fine day", "bad awful poor day", "great good", "poor bad"] * 10
    frame = pd.DataFrame({"text": texts, "label": ["pos", "neg"] * 20})
    config = {
        "task": "classification",
        "data": {"features": ["text"], "targets": ["label"], "lookback": 6},
        "model": {"embedding": {"vocab_size": 30, "dim": 4}},
    }
    return config, frame, pd.DataFrame({"text": ["good fine", "awful, POOR!", "unseen words"]})


KINDS_TO_TEST = {
    "series": _series,
    "panel": _many_series,
    "sequences": _sequences,
    "text": _text,
}


def test_every_kind_has_a_preparer_a_preprocessing_class_and_a_contract_case():
    """A kind added to `keras_lstm.config.KINDS` fails here until it can be loaded, saved and
    run through the contract below; each case's config is read as its own kind."""
    from keras_lstm.config import KINDS as CONFIG_KINDS
    from keras_lstm.config import data_kind, load_config
    from keras_lstm.training.prepare import PREPARERS

    assert set(PREPARERS) == set(CONFIG_KINDS)
    assert set(KINDS) == set(CONFIG_KINDS)
    assert set(KINDS_TO_TEST) == set(CONFIG_KINDS)
    for kind, case in KINDS_TO_TEST.items():
        extra = case()[0]
        raw = {
            "task": extra.get("task", "regression"),
            "data": {**extra["data"], **extra.get("data_extra", {})},
            "model": extra.get("model", {}),
        }
        assert data_kind(load_config(raw)) == kind


@pytest.mark.parametrize("kind", sorted(KINDS_TO_TEST))
def test_every_kind_round_trips_from_training_to_the_device(tmp_path, kind):
    extra, frame, new = KINDS_TO_TEST[kind]()
    config = {
        "seed": 3,
        "task": extra.get("task", "regression"),
        "data": {**extra["data"], **extra.get("data_extra", {})},
        "model": {**TINY["model"], **extra.get("model", {})},
        "training": TINY["training"],
    }
    bundle = fit(config, frame, verbose=0)
    loaded = Bundle.load(bundle.save(tmp_path / "bundle"))
    assert type(loaded.pre) is KINDS[kind]
    # the bundle carries its calibration windows: the same the fresh one draws from its data
    assert loaded.config.data.path is None and loaded.calibration is not None
    for part in ("train", "test"):
        fresh, again = bundle.sample_windows(1000, part), loaded.sample_windows(1000, part)
        assert len(again) > 0 and again.dtype == (np.int32 if kind == "text" else np.float32)
        np.testing.assert_array_equal(again, fresh)
    # the preprocessing object survives its own JSON form
    assert Preprocessing.from_dict(loaded.pre.to_dict()) == loaded.pre
    expected = loaded.predict(new)
    pd.testing.assert_frame_equal(expected, bundle.predict(new))
    export(loaded, "float32", tmp_path / "model.tflite")
    got = LitePredictor(tmp_path / "model.tflite").predict_frame(new)
    pd.testing.assert_index_equal(got.index, expected.index)
    assert list(got.columns) == list(expected.columns)
    numeric = [c for c in expected.columns if c not in ("label", "meter")]
    np.testing.assert_allclose(
        got[numeric].to_numpy(float), expected[numeric].to_numpy(float), rtol=1e-4, atol=1e-4
    )
    for column in set(expected.columns) - set(numeric):
        assert got[column].tolist() == expected[column].tolist()


def test_the_device_side_text_vectorizer_equals_keras():
    from keras_lstm.data import preprocessing, text

    texts = [
        "Good, GREAT; fine-day!",
        "  tabs\tand\nnew lines  ",
        "it's (not) [really] {bad}... 100% #1 @home",
        "café naïve ÜBER straße",
        "no\u00a0break space and\u2003em space",
        "",
        "unknown words only",
        "good " * 20,  # longer than the length: cut
    ]
    vocabulary = text.fit_vocabulary(texts[:4], 40)
    for length in (3, 12):
        np.testing.assert_array_equal(
            preprocessing.vectorize(texts, vocabulary, length),
            text.vectorize(texts, vocabulary, length),
        )
