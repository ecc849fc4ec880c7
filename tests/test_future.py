"""Known future inputs (`data.future_features`) and calendar features (`data.calendar`)."""

import numpy as np
import pandas as pd
import pytest

from keras_lstm.config import load_config
from keras_lstm.data import future
from keras_lstm.data.loading import load_table, with_future_inputs
from keras_lstm.errors import ConfigError, DataError
from keras_lstm.training import fit
from keras_lstm.training.prepare import prepare

HORIZON = 3


def _promo_frame(n=700, seed=0):
    """Hourly demand with a daily cycle and random promotions known in advance (+3 each)."""
    rng = np.random.default_rng(seed)
    times = pd.date_range("2024-01-01", periods=n, freq="h")
    promo = (rng.random(n) < 0.15).astype(float)
    y = 10 + 2 * np.sin(2 * np.pi * times.hour / 24) + 3 * promo + 0.2 * rng.standard_normal(n)
    return pd.DataFrame(
        {"time": times.strftime("%Y-%m-%d %H:%M"), "y": y, "promo": promo, "x": rng.random(n)}
    )


def _config(**data):
    return {
        "seed": 1,
        "data": {
            "time_column": "time",
            "targets": ["y"],
            "features": ["y", "x"],
            "lookback": 24,
            "horizon": HORIZON,
            "season": 24,
            **data,
        },
        "model": {"units": [8]},
        "training": {"epochs": 10, "cv_splits": 2},
    }


@pytest.fixture(scope="module")
def fitted():
    frame = _promo_frame()
    return fit(_config(future_features=["promo"], calendar=["hour"]), frame, verbose=0), frame


def _with_future_rows(frame, history):
    """The first `history` rows, then `HORIZON` future rows whose past-only columns are empty."""
    rows = frame.iloc[: history + HORIZON].copy().reset_index(drop=True)
    rows.loc[history:, ["y", "x"]] = np.nan
    return rows


# --- the transformation ----------------------------------------------------------------------


def test_calendar_columns_are_cyclic_encodings_of_the_time():
    times = pd.DatetimeIndex(["2024-01-01 06:00", "2024-01-07 18:30", "2024-03-01 00:00"])
    got = future.calendar_columns(times, ("hour", "day_of_week", "month"))
    hours = np.array([6.0, 18.5, 0.0])
    np.testing.assert_allclose(got["hour_sin"], np.sin(2 * np.pi * hours / 24), atol=1e-6)
    np.testing.assert_allclose(got["hour_cos"], np.cos(2 * np.pi * hours / 24), atol=1e-6)
    # Monday (0), Sunday (6), Friday (4)
    np.testing.assert_allclose(got["day_of_week_sin"], np.sin(2 * np.pi * np.array([0, 6, 4]) / 7))
    np.testing.assert_allclose(got["month_cos"], np.cos(2 * np.pi * np.array([0, 0, 2]) / 12))
    with pytest.raises(DataError, match="dates and times"):
        future.calendar_columns(pd.Index([1, 2, 3]), ("hour",))


def test_table_reads_future_columns_horizon_rows_ahead():
    frame = _promo_frame(100)
    config = load_config(_config(future_features=["promo"], calendar=["hour"])).data
    table = with_future_inputs(load_table(frame, config), config)
    assert table.feature_names == (
        "y",
        "x",
        f"promo(t+{HORIZON})",
        f"hour_sin(t+{HORIZON})",
        f"hour_cos(t+{HORIZON})",
    )
    np.testing.assert_allclose(table.features[:, 0], frame.y, rtol=1e-6)  # past: unshifted
    np.testing.assert_array_equal(table.features[:-HORIZON, 2], frame.promo[HORIZON:])
    hours = pd.to_datetime(frame.time).dt.hour.to_numpy()[HORIZON:]
    np.testing.assert_allclose(
        table.features[:-HORIZON, 3], np.sin(2 * np.pi * hours / 24), atol=1e-6
    )


def test_training_windows_never_see_past_only_columns_after_their_end():
    frame = _promo_frame(300)
    config = load_config(_config(future_features=["promo"], calendar=["hour"]))
    prepared = prepare(config, frame)
    fold = prepared.plan.folds[0]
    row = int(fold.validation[0])  # the first target row of a validation window
    before = prepared.fold_data(fold).windows.gather(np.array([row]))[0]
    wrecked = frame.copy()
    wrecked.loc[row:, ["y", "x"]] = 1e6  # every past-only value from the first target on
    after = prepare(config, wrecked).fold_data(fold).windows.gather(np.array([row]))[0]
    # the scalers are fitted on the fold's training rows, which end before `row`
    np.testing.assert_array_equal(before, after)
    changed = frame.copy()
    changed.loc[row + HORIZON - 1, "promo"] = 1 - changed.loc[row + HORIZON - 1, "promo"]
    moved = prepare(config, changed).fold_data(fold).windows.gather(np.array([row]))[0]
    assert not np.array_equal(before, moved)  # the last forecast step's promotion is seen


def test_future_input_config_is_checked():
    with pytest.raises(ConfigError, match="both a target and in `data.future_features`"):
        load_config(_config(future_features=["y"]))
    with pytest.raises(ConfigError, match="data.calendar"):
        load_config(_config(calendar=["weekday"]))
    with pytest.raises(ConfigError, match="time column"):
        load_config({"data": {"targets": ["y"], "calendar": ["hour"]}})
    daily = _promo_frame(120).assign(
        time=pd.date_range("2024-01-01", periods=120, freq="D").strftime("%Y-%m-%d")
    )
    with pytest.raises(DataError, match="'hour'.*constant"):
        prepare(load_config(_config(calendar=["hour"])), daily)
    with pytest.raises(DataError, match="'promo'"):
        prepare(load_config(_config(future_features=["promo"])), daily.drop(columns="promo"))


# --- a fitted model ---------------------------------------------------------------------------


def test_known_future_inputs_beat_the_same_model_without_them(fitted):
    bundle, frame = fitted
    without = fit(_config(), frame, verbose=0)
    assert bundle.metrics["test"]["rmse"] < 0.85 * without.metrics["test"]["rmse"]


def test_predict_ignores_past_only_columns_of_the_future_rows(fitted):
    bundle, frame = fitted
    rows = _with_future_rows(frame, 600)
    out = bundle.predict(rows)
    # the last forecast is for the future rows: indexed by the first of them
    assert out.index[-1] == pd.Timestamp(rows.time.iloc[600])
    assert list(out.columns) == [f"y@t+{k}" for k in range(1, HORIZON + 1)]
    overwritten = rows.copy()
    overwritten.loc[600:, ["y", "x"]] = [1e6, -1e6]
    pd.testing.assert_frame_equal(bundle.predict(overwritten), out)
    promoted = rows.copy()
    promoted.loc[600:, "promo"] = 1 - promoted.loc[600:, "promo"]
    assert not np.allclose(bundle.predict(promoted).iloc[-1], out.iloc[-1])


def test_missing_future_rows_are_named(fitted):
    bundle, frame = fitted
    rows = _with_future_rows(frame, 600)
    rows.loc[601, "promo"] = np.nan
    with pytest.raises(DataError, match=r"Future column 'promo' has no value at row 601"):
        bundle.predict(rows)
    with pytest.raises(DataError, match="'promo'.*missing"):
        bundle.predict(rows.drop(columns="promo"))
    with pytest.raises(DataError, match="Time column 'time'"):
        bundle.predict(_with_future_rows(frame, 600).drop(columns="time"))


def test_lite_predictor_takes_the_same_future_rows(fitted, tmp_path):
    from tflite_export import export
    from tflite_export.predictor import LitePredictor

    bundle, frame = fitted
    path = tmp_path / "model.tflite"
    export(bundle, "float32", path)
    rows = _with_future_rows(frame, 400)
    expected = bundle.predict(rows)
    got = LitePredictor(path).predict_frame(rows)
    assert list(got.index) == list(expected.index)
    np.testing.assert_allclose(got.to_numpy(), expected.to_numpy(), rtol=1e-4)
