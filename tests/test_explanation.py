"""Permutation importance (`keras_lstm.explanation`): the true driver ranks first, at its lag."""

import json

import numpy as np
import pandas as pd
import pytest

import keras_lstm
from keras_lstm.errors import ConfigError, DataError
from keras_lstm.training import fit, prepare

LAG = 3


def _driven_series(n=500, seed=0) -> pd.DataFrame:
    """`y[t] = 2 * x1[t - LAG]` plus a little noise; `x2` is noise the target never sees."""
    rng = np.random.default_rng(seed)
    x1, x2 = rng.standard_normal(n), rng.standard_normal(n)
    y = np.zeros(n)
    y[LAG:] = 2 * x1[:-LAG]
    return pd.DataFrame({"y": y + 0.1 * rng.standard_normal(n), "x1": x1, "x2": x2})


SERIES_CONFIG = {
    "seed": 0,
    "data": {"targets": ["y"], "lookback": 8},
    "training": {"epochs": 30, "cv_splits": 2},
}


@pytest.fixture(scope="module")
def driven():
    frame = _driven_series()
    return frame, fit(SERIES_CONFIG, frame, verbose=0)


def test_the_only_cause_ranks_first_at_its_lag(driven):
    frame, bundle = driven
    result = keras_lstm.explain(bundle, frame, repeats=3)
    assert result.top_columns(1) == ["x1"]
    assert result.columns["x2"]["mean"] < 0.1 * result.columns["x1"]["mean"]
    assert result.top_lags(1) == [("x1", LAG)]  # lag 1 is the window's last step
    assert len(result.lags["x1"]) == 8
    assert all(len(c["repeats"]) == 3 for c in result.columns.values())
    assert "x1" in result.summary() and f"x1 lag {LAG}" in result.summary()
    # the default forecaster has a linear path: its share of the learnt part of the forecast
    paths = result.paths
    assert set(paths["mean_abs"]) == {"recurrent", "linear", "base"}
    size = paths["mean_abs"]
    assert paths["linear_share"] == pytest.approx(
        size["linear"] / (size["linear"] + size["recurrent"])
    )
    assert 0.0 < paths["linear_share"] < 1.0 and "Linear path" in result.summary()


def test_importance_is_the_rise_in_test_rmse_when_a_column_is_shuffled(driven):
    """An independent computation of the first shuffle: the test windows scaled with the
    bundle's scaler, column `y` (the first) swapped between windows by the same permutation,
    predicted and mapped back to real units by hand."""
    frame, bundle = driven
    result = keras_lstm.explain(bundle, frame, repeats=1, lags=False, seed=7)
    rows = prepare(bundle.config, frame).plan.final.validation
    pre = bundle.preprocessing
    center = np.array(pre["feature_scaler"]["center"])
    scale = np.array(pre["feature_scaler"]["scale"])
    scaled = (frame[["y", "x1", "x2"]].to_numpy() - center) / scale
    windows = np.stack([scaled[r - 8 : r] for r in rows]).astype(np.float32)
    true = frame["y"].to_numpy()[rows]

    def rmse(x):
        raw = bundle.predict_scaled(x)[:, 0, 0]
        target = pre["target_scaler"]
        pred = raw * target["scale"][0] + target["center"][0]
        return float(np.sqrt(np.mean((pred - true) ** 2)))

    shuffled = windows.copy()
    order = np.random.default_rng(7).permutation(len(windows))
    shuffled[:, :, 0] = windows[order][:, :, 0]
    assert result.score == pytest.approx(rmse(windows), rel=1e-4)
    assert result.columns["y"]["mean"] == pytest.approx(rmse(shuffled) - rmse(windows), rel=1e-3)
    assert result.lags == {}  # lags=False


def test_explain_writes_json_and_plots_from_the_cli(driven, tmp_path, capsys):
    from keras_lstm.cli import main

    frame, bundle = driven
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    bundle.save(tmp_path / "run" / "bundle")
    out = tmp_path / "explained"
    code = main(["explain", str(tmp_path / "run"), "--input", str(data), "--out", str(out)])
    assert code == 0
    saved = json.loads((out / "explain.json").read_text())
    assert saved["top_columns"][0] == "x1" and saved["metric"] == "rmse"
    assert saved["top_lags"][0] == {"column": "x1", "lag": LAG}
    assert (out / "importance.png").stat().st_size > 0 and (out / "lags.png").is_file()
    assert "x1" in capsys.readouterr().out
    # other data than the training data is refused, naming what to give
    other = tmp_path / "other.csv"
    (frame * 3).to_csv(other, index=False)
    code = main(["explain", str(tmp_path / "run"), "--input", str(other), "--out", str(out)])
    assert code == 2
    assert "not the data this bundle was trained on" in capsys.readouterr().err
    assert json.loads((out / "explain.json").read_text()) == saved  # nothing overwritten


def test_bad_arguments_are_clear_errors(driven, monkeypatch):
    frame, bundle = driven
    with pytest.raises(DataError, match="repeats"):
        keras_lstm.explain(bundle, frame, repeats=0)
    with pytest.raises(DataError, match="data.path"):
        keras_lstm.explain(bundle)  # trained on a DataFrame: the data must be given
    import keras

    # SHAP's gradients are TensorFlow's: on another backend the error says what to set
    monkeypatch.setattr(keras.backend, "backend", lambda: "jax")
    with pytest.raises(ConfigError, match="KERAS_BACKEND=tensorflow"):
        keras_lstm.explain(bundle, frame, shap=True)


def _two_channel_sequences(per_class=20, seed=0) -> pd.DataFrame:
    """Classes told apart by channel `a` only (a slow or a fast sine); `b` is noise. Lengths
    vary (12-20 steps), so the shuffle must keep each sequence's padding."""
    rng = np.random.default_rng(seed)
    rows = []
    for label in (0, 1):
        for k in range(per_class):
            steps = int(rng.integers(12, 21))
            t = np.arange(steps)
            a = np.sin(t * (0.4 if label else 1.6) + rng.uniform(0, 6))
            b = rng.standard_normal(steps)
            rows += [(f"{label}-{k}", i, a[i], b[i], label) for i in range(steps)]
    frame = pd.DataFrame(rows, columns=["rec", "step", "a", "b", "g"])
    order = rng.permutation(frame["rec"].unique())
    return frame.set_index("rec").loc[order].reset_index()


def test_sequence_classifier_importance_finds_the_telling_channel():
    frame = _two_channel_sequences()
    config = {
        "task": "classification",
        "seed": 0,
        "data": {
            "series_id": "rec",
            "label": "g",
            "time_column": "step",
            "test_size": 0.25,
            "scaler": "standard",  # one cross-validation, not one per candidate scaler
        },
        "model": {"units": [8], "conv_filters": [8], "conv_pool": 1},
        "training": {"epochs": 25, "cv_splits": 2},
    }
    bundle = fit(config, frame, verbose=0)
    result = keras_lstm.explain(bundle, frame, repeats=5)
    assert result.metric == "accuracy" and result.kind == "sequences"
    assert result.score >= 0.8  # the model learnt the classes
    assert result.score == pytest.approx(bundle.metrics["test"]["accuracy"])  # the test part
    assert result.top_columns(1) == ["a"]
    assert result.columns["a"]["mean"] > 0.2 > result.columns["b"]["mean"]
    assert result.lags == {} and result.paths is None  # no lags, no linear path
    # attention pooling (the classifier default): per sample, the weights of its valid steps
    # add up to one, and the pooling's output is their weighted sum of its input
    import keras

    from keras_lstm.sequence_layers import AttentionPooling

    attention = result.attention
    stride = attention["stride"]
    pool = next(a for a in bundle.model.layers if isinstance(a, AttentionPooling))
    features_in = pool.input[0] if isinstance(pool.input, list) else pool.input
    probe = keras.Model(bundle.model.inputs, [features_in, pool.output])
    rows = prepare(bundle.config, frame).plan.final.validation
    test = [r for r, _ in frame.groupby("rec", sort=False)]
    lengths = frame.groupby("rec", sort=False).size()
    for name, weights in attention["samples"].items():
        assert len(weights) == -(-int(lengths[name]) // stride)
        assert sum(weights) == pytest.approx(1.0, abs=1e-5)
    assert len(attention["samples"]) == min(len(rows), 20) and len(test) == 40
    from keras_lstm.data.sequences import pad

    first = list(attention["samples"])[0]
    one = frame[frame.rec == first][["a", "b"]].to_numpy()
    scaled = (one - bundle.preprocessing["feature_scaler"]["center"]) / bundle.preprocessing[
        "feature_scaler"
    ]["scale"]
    features, pooled = probe.predict(pad([scaled]).astype(np.float32), verbose=0)
    w = np.asarray(attention["samples"][first])
    np.testing.assert_allclose((w[:, None] * features[0, : len(w)]).sum(0), pooled[0], atol=1e-4)
    # the input drawn under the weights is the sample's first channel, scaled
    np.testing.assert_allclose(attention["inputs"][first], scaled[:, 0], rtol=1e-5, atol=1e-6)


@pytest.mark.slow  # 30 s; the token shuffle is the one path of the text kind
def test_text_is_explained_by_the_tokens_that_decide_the_label():
    """The label is `pos` exactly when the text holds `good`; the other words (`day`, `the`,
    `a`, `walk`) appear in both classes and cost nothing when removed."""
    rng = np.random.default_rng(0)
    fillers = ["day", "the", "a", "walk"]
    texts, labels = [], []
    for k in range(80):
        words = list(rng.choice(fillers, 3))
        positive = k % 2 == 0
        words.insert(int(rng.integers(0, 4)), "good" if positive else "bad")
        texts.append(" ".join(words))
        labels.append("pos" if positive else "neg")
    frame = pd.DataFrame({"text": texts, "label": labels})
    config = {
        "task": "classification",
        "seed": 0,
        "data": {"features": ["text"], "targets": ["label"], "lookback": 6},
        "model": {"units": [8], "embedding": {"vocab_size": 30, "dim": 4}},
        "training": {"epochs": 30, "cv_splits": 2},
    }
    bundle = fit(config, frame, verbose=0)
    result = keras_lstm.explain(bundle, frame, repeats=1)
    assert result.kind == "text" and result.score >= 0.9
    assert set(result.top_columns(2)) == {"good", "bad"}
    assert all(result.columns[w]["mean"] < 0.1 for w in fillers if w in result.columns)


def test_shap_attributions_peak_at_the_causing_lag(driven, tmp_path):
    """`keras-lstm explain --shap` (run as a user would: its own process, on the TensorFlow
    backend SHAP needs): the largest mean |SHAP| is column x1 at lag 3, and each forecast's
    attributions add up, as SHAP values do, to its forecast up to one constant (the
    background's mean forecast), so they follow the forecasts."""
    import subprocess
    import sys

    frame, bundle = driven
    data = tmp_path / "data.csv"
    frame.to_csv(data, index=False)
    bundle.save(tmp_path / "run" / "bundle")
    out = tmp_path / "explained"
    command = "from keras_lstm.cli import main; raise SystemExit(main())"
    args = ["explain", str(tmp_path / "run"), "--input", str(data), "--out", str(out)]
    done = subprocess.run(
        [sys.executable, "-c", command, *args, "--shap", "--per-forecast", "--repeats", "1"],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    saved = json.loads((out / "explain.json").read_text())
    assert saved["top_shap_lags"][0] == {"column": "x1", "lag": LAG}
    assert (out / "shap.png").is_file()
    per_forecast = pd.read_csv(out / "shap_per_forecast.csv", index_col=0)
    assert per_forecast.shape == (saved["samples"], 3 * 8)
    assert "x1@lag3" in per_forecast.columns
    forecasts = bundle.predict(frame)["y"].loc[per_forecast.index].to_numpy()  # same times
    assert np.corrcoef(per_forecast.sum(axis=1), forecasts)[0, 1] > 0.9
