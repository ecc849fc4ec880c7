"""Many series in one long table, one global model."""

import numpy as np
import pandas as pd
import pytest

from keras_lstm.bundle import Bundle
from keras_lstm.config import load_config
from keras_lstm.errors import DataError
from keras_lstm.training import fit, prepare

CONFIG = {
    "seed": 1,
    "data": {
        "series_id": "meter",
        "time_column": "date",
        "targets": ["load"],
        "lookback": 7,
        "horizon": 2,
    },
    "model": {"units": [4], "dropout": 0.0},
    "training": {"epochs": 1, "cv_splits": 2, "batch_size": 32},
}


def _meters(lengths=(90, 100, 120), seed=0):
    rng = np.random.default_rng(seed)
    parts = []
    for m, n in enumerate(lengths):
        t = np.arange(n)
        parts.append(
            pd.DataFrame(
                {
                    "meter": f"m{m}",
                    "date": pd.date_range("2021-01-01", periods=n, freq="D")
                    + pd.Timedelta(days=5 * m),
                    "load": (m + 1) * 10 + np.sin(2 * np.pi * t / 7) + rng.standard_normal(n),
                    "size": float(m + 1),  # constant per meter: a static feature
                }
            )
        )
    return pd.concat(parts, ignore_index=True)


def test_windows_never_cross_a_series_and_folds_cut_at_common_times():
    frame = _meters()
    prepared = prepare(load_config(CONFIG), frame)
    starts, lookback, horizon = prepared.starts, 7, 2
    times = frame["date"].to_numpy()
    assert list(starts) == [0, 90, 190, 310]
    for fold in [*prepared.plan.folds, prepared.plan.final]:
        for rows in (fold.train, fold.validation):
            series = np.searchsorted(starts, rows, side="right") - 1
            assert np.all(rows - lookback >= starts[series])  # inputs inside the series
            assert np.all(rows + horizon <= starts[series + 1])  # targets inside the series
        # every series is cut at the same time: no training target at or after a validation time
        assert times[fold.train + horizon - 1].max() < times[fold.validation].min()
        fit_rows = fold.scaler_rows()
        assert times[fit_rows].max() < times[fold.validation].min()
    # each test target time of each series predicted once
    test = prepared.plan.final.validation
    covered = np.concatenate([np.arange(r, r + horizon) for r in test])
    assert len(np.unique(covered)) == len(covered)


def test_a_per_series_constant_is_a_feature_but_a_global_constant_is_not():
    frame = _meters()
    prepared = prepare(load_config(CONFIG), frame)
    assert "size" in prepared.feature_names
    with pytest.raises(DataError, match="'flat' is constant across every series"):
        prepare(load_config(CONFIG), frame.assign(flat=1.0))


def test_errors_name_the_series():
    frame = _meters()
    frame.loc[95, "load"] = np.inf
    with pytest.raises(DataError, match="Series 'm1'.*'load' has an infinite value"):
        prepare(load_config(CONFIG), frame)


def test_per_series_metrics_add_up_and_prediction_keeps_series(tmp_path):
    frame = _meters()
    bundle = fit(CONFIG, frame, verbose=0)
    test = bundle.metrics["test"]
    per_series = test["per_series"]
    prepared = prepare(load_config(CONFIG), frame)
    series = prepared.row_series(prepared.plan.final.validation)
    counts = pd.Series(series).value_counts()
    weighted = sum(per_series[k]["mae"] * counts[k] for k in per_series) / counts.sum()
    assert test["mae"] == pytest.approx(weighted)
    sq = sum(per_series[k]["rmse"] ** 2 * counts[k] for k in per_series) / counts.sum()
    assert test["rmse"] == pytest.approx(np.sqrt(sq))
    loaded = Bundle.load(bundle.save(tmp_path / "b"))
    recent = frame.groupby("meter").tail(10)
    out = loaded.predict(recent)
    assert list(out.columns) == ["meter", "load@t+1", "load@t+2"]
    assert out["meter"].value_counts().to_dict() == {"m0": 4, "m1": 4, "m2": 4}
    pd.testing.assert_frame_equal(out, bundle.predict(recent))


def test_scale_per_series_uses_each_series_own_training_rows(tmp_path):
    frame = _meters()
    config = load_config({**CONFIG, "data": {**CONFIG["data"], "scale_per_series": True}})
    prepared = prepare(config, frame)
    fold = prepared.plan.folds[0]
    data = prepared.fold_data(fold)
    fit_rows = set(fold.scaler_rows().tolist())
    starts = prepared.starts
    for key, first, end in zip(prepared.series_ids, starts[:-1], starts[1:], strict=True):
        own = [r for r in range(first, end) if r in fit_rows]
        features, targets = data.series_scalers[key]
        expected = frame.iloc[own][["load", "size"]]
        np.testing.assert_allclose(features.center[0], expected["load"].mean(), rtol=1e-6)
        np.testing.assert_allclose(targets.scale[0], expected["load"].std(ddof=0), rtol=1e-5)
        # every series' own training rows come out centred
        scaled = data.windows.targets[own, 0]
        assert abs(float(scaled.mean())) < 1e-4
    bundle = fit(config, frame, verbose=0)
    assert set(bundle.preprocessing["series_scalers"]) == {"m0", "m1", "m2"}
    loaded = Bundle.load(bundle.save(tmp_path / "b"))
    recent = frame.groupby("meter").tail(10)
    out = loaded.predict(recent)
    pd.testing.assert_frame_equal(out, bundle.predict(recent))
    # in each meter's own units: the level of meter m2 (about 30) is not that of m0 (about 10)
    level = out.groupby("meter")["load@t+1"].mean()
    assert level["m2"] > level["m0"] + 10
    with pytest.raises(DataError, match="Series 'm9' was not in the training data"):
        loaded.predict(recent.assign(meter="m9"))
    # exported, each meter is scaled with its own statistics from the report
    from tflite_export import LitePredictor, export

    export(bundle, "float32", tmp_path / "meters.tflite")
    lite = LitePredictor(tmp_path / "meters.tflite")
    m2 = recent[recent.meter == "m2"]
    # every meter at once, as `Bundle.predict` takes and returns them
    pd.testing.assert_frame_equal(lite.predict(recent), out, rtol=1e-4)
    np.testing.assert_allclose(
        lite.predict_array(m2, series="m2").reshape(len(m2) - 7 + 1, -1),
        out[out.meter == "m2"][["load@t+1", "load@t+2"]].to_numpy(),
        rtol=1e-4,
    )
    with pytest.raises(DataError, match="pass `series=`"):
        lite.predict_array(m2.drop(columns="meter"))  # rows that do not say which series
    # rows with the series column name their series themselves
    np.testing.assert_array_equal(lite.predict_array(m2), lite.predict_array(m2, series="m2"))


def test_intervals_of_series_scaled_one_by_one_scale_with_each_series():
    """With `data.scale_per_series`, each window's spread goes back to real units through its
    own series' scaler: a meter ten times larger gets intervals ten times wider."""
    frame = _meters(lengths=(120, 120))
    frame.loc[frame.meter == "m1", "load"] = frame.loc[frame.meter == "m0", "load"].to_numpy() * 10
    config = {
        **CONFIG,
        "data": {**CONFIG["data"], "scale_per_series": True, "horizon": 1},
        "training": {**CONFIG["training"], "interval": 0.8},
    }
    bundle = fit(config, frame.drop(columns="size"), verbose=0)
    out = bundle.predict(frame.drop(columns="size"))
    half = (out.load_upper - out.load_lower).groupby(out.meter).mean()
    assert half["m1"] / half["m0"] == pytest.approx(10, rel=0.05)
    coverage = bundle.metrics["test"]["interval_coverage"]["0.8"]["load"]
    lower, upper = bundle.report["test_bounds"][0.8]
    true = bundle.report["test_true"]
    assert coverage == pytest.approx(np.mean((true >= lower) & (true <= upper)))


@pytest.mark.parametrize("per_series", [False, True])
def test_many_series_are_explained_in_their_own_units(per_series):
    """Permutation importance on many series (one global model; also with each series'
    own scalers): the score is the bundle's test RMSE, and `size` (a per-meter constant)
    and `load` are both columns of the explanation."""
    import keras_lstm

    frame = _meters()
    config = load_config(CONFIG).replace(**{"data.scale_per_series": per_series})
    bundle = fit(config, frame, verbose=0)
    result = keras_lstm.explain(bundle, frame, repeats=2)
    assert result.kind == "panel" and set(result.columns) == {"load", "size"}
    assert result.score == pytest.approx(bundle.metrics["test"]["rmse"], rel=1e-4)
    assert set(result.lags) == {"load", "size"} and len(result.lags["load"]) == 7
