import numpy as np
import pandas as pd
import pytest

from keras_lstm.config import DataConfig, TrainingConfig
from keras_lstm.data import (
    Scaler,
    WindowData,
    input_windows,
    load_table,
    plan_splits,
)
from keras_lstm.errors import DataError
from keras_lstm.training.batches import WindowBatches

# --- loading ------------------------------------------------------------------------------------


def test_features_default_to_numeric_columns(sine_frame):
    frame = sine_frame.assign(note="a")
    table = load_table(frame, DataConfig(time_column="date", targets=("y",)))
    assert table.feature_names == ("y", "x")
    assert table.features.dtype == np.float32 and table.features.shape == (400, 2)
    assert isinstance(table.index, pd.DatetimeIndex) and table.index[0] == pd.Timestamp(
        "2020-01-01"
    )
    np.testing.assert_allclose(table.targets[:, 0], frame["y"].to_numpy(), rtol=1e-6)


def test_reads_csv(tmp_path, sine_frame):
    path = tmp_path / "data.csv"
    sine_frame.to_csv(path, index=False)
    table = load_table(path, DataConfig(targets=("y",), features=("x",)))
    assert table.feature_names == ("x",)


def _csv(tmp_path, text, name="bad.csv"):
    path = tmp_path / name
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


@pytest.mark.parametrize(
    "text, config, match",
    [
        ("", {}, r"bad.csv.*empty"),
        ("y,x\n", {}, r"bad.csv.*no data rows"),
        ("y;x\n1;2\n3;4\n", {}, r"bad.csv.*delimited"),
        (b"y,x\n\xff\xfe,1\n", {}, r"bad.csv.*UTF-8"),
        ("y,x\n1,2\n2,3\n", {"targets": ("load",)}, r"'load'.*data.targets.*Columns: y, x"),
        ("y,x\n1,a\n2,b\n", {"features": ("y", "x")}, r"'x' is not numeric"),
        ("y,x\n1,5\n2,5\n3,5\n", {}, r"'x' is constant"),
        ("y,x\n1,2\n,3\n3,4\n", {}, r"'y' has a missing value at row 1.*data.missing"),
        ("y,x\n1,2\n2,inf\n3,4\n", {}, r"'x' has an infinite value at row 1"),
        ("y,x,e\n1,2,\n2,3,\n3,4,\n", {"features": ("y", "x", "e")}, r"'e' is empty"),
        ("t,y\n2020-01-01,1\n2020-01-01,2\n", {"time_column": "t"}, r"'t' repeats at row 1"),
        ("t,y\n2020-01-02,1\n2020-01-01,2\n", {"time_column": "t"}, r"'t' goes back.*row 1"),
        ("t,y\n2020-01-01,1\nsoon,2\n", {"time_column": "t"}, r"'t'.*not a time at row 1.*soon"),
        ("y,x\n1,2\n2,3\n", {"time_column": "when"}, r"'when'.*not in the data"),
        ("y,x\n1,2\n2,3\n", {"features": ("z",)}, r"'z'.*data.features"),
    ],
)
def test_bad_csv_names_the_culprit(tmp_path, text, config, match):
    path = _csv(tmp_path, text)
    config = {"targets": ("y",), **config}
    with pytest.raises(DataError, match=match):
        load_table(path, DataConfig(**config))


def test_missing_file_names_path(tmp_path):
    with pytest.raises(DataError, match="nope.csv.*does not exist"):
        load_table(tmp_path / "nope.csv", DataConfig(targets=("y",)))


def test_missing_target_setting():
    with pytest.raises(DataError, match="data.targets"):
        load_table(pd.DataFrame({"y": [1.0, 2.0]}), DataConfig())


@pytest.mark.parametrize(
    "policy, expected",
    [("ffill", [1.0, 1.0, 3.0, 4.0]), ("interpolate", [1.0, 2.0, 3.0, 4.0]), ("drop", [1, 3, 4])],
)
def test_missing_policies(policy, expected):
    frame = pd.DataFrame({"y": [1.0, np.nan, 3.0, 4.0], "x": [1.0, 2.0, 0.0, 5.0]})
    table = load_table(frame, DataConfig(targets=("y",), missing=policy))
    np.testing.assert_allclose(table.targets[:, 0], expected)


# --- windows ------------------------------------------------------------------------------------


def test_windows_match_a_hand_computation():
    values = np.arange(24, dtype=np.float32).reshape(12, 2)  # row i = [2i, 2i+1]
    targets = values[:, :1] * 10
    data = WindowData(values, targets, lookback=3, horizon=2)
    x, y = data.gather(np.array([3, 7]))
    assert x.shape == (2, 3, 2) and y.shape == (2, 2, 1)
    np.testing.assert_array_equal(x[0], [[0, 1], [2, 3], [4, 5]])  # rows 0..2
    np.testing.assert_array_equal(y[0, :, 0], [60, 80])  # rows 3, 4
    np.testing.assert_array_equal(x[1], [[8, 9], [10, 11], [12, 13]])  # rows 4..6
    np.testing.assert_array_equal(y[1, :, 0], [140, 160])  # rows 7, 8


def test_windows_are_views_not_copies():
    values = np.random.default_rng(0).random((1000, 4)).astype(np.float32)
    windows = input_windows(values, 50)
    assert windows.shape == (951, 50, 4)
    assert np.shares_memory(windows, values)
    data = WindowData(values, values[:, :1], 50, 1)
    assert np.shares_memory(data._inputs, data.features)


def test_batches_cover_every_window_once_and_shuffle_with_seed():
    values = np.arange(100, dtype=np.float32)[:, None]
    data = WindowData(values, values, lookback=5, horizon=1)
    rows = np.arange(5, 100)
    batches = WindowBatches(data, rows, batch_size=16, shuffle=True, seed=3)
    assert len(batches) == 6
    seen = np.concatenate([batches[i][1][:, 0, 0] for i in range(len(batches))])
    np.testing.assert_array_equal(np.sort(seen), rows.astype(np.float32))
    assert not np.array_equal(seen, rows)  # shuffled
    again = WindowBatches(data, rows, batch_size=16, shuffle=True, seed=3)
    np.testing.assert_array_equal(again[0][1], batches[0][1])
    x, y = batches[0]
    np.testing.assert_array_equal(x[:, -1, 0] + 1, y[:, 0, 0])  # target follows its window


# --- splits -------------------------------------------------------------------------------------


@pytest.mark.parametrize("horizon", [1, 3])
@pytest.mark.parametrize("gap", [0, 4])
def test_no_training_target_in_validation_or_test(horizon, gap):
    data = DataConfig(lookback=10, horizon=horizon, test_size=0.2)
    plan = plan_splits(300, data, TrainingConfig(cv_splits=4, cv_gap=gap))
    assert len(plan.folds) == 4
    for fold in [*plan.folds, plan.final]:
        last_train_target = fold.train.max() + horizon - 1
        assert last_train_target < fold.validation.min()
        assert fold.validation.min() - fold.train.max() >= horizon + (
            gap if fold is not plan.final else 0
        )
        assert fold.train_rows == last_train_target + 1
        assert fold.train.min() >= data.lookback  # a full window of history
    for fold in plan.folds:  # validation never touches the test part
        assert fold.validation.max() + horizon - 1 < plan.test_start
    # the test part: every target time predicted once
    test = plan.final.validation
    assert test.min() == plan.test_start == 240
    covered = np.concatenate([np.arange(r, r + horizon) for r in test])
    assert len(np.unique(covered)) == len(covered)
    assert 300 - covered.max() - 1 < horizon


def test_folds_walk_forward():
    plan = plan_splits(200, DataConfig(lookback=5), TrainingConfig(cv_splits=3))
    starts = [fold.validation.min() for fold in plan.folds]
    assert starts == sorted(starts)
    sizes = [len(fold.train) for fold in plan.folds]
    assert sizes == sorted(sizes)


def test_stride_keeps_the_latest_window():
    plan = plan_splits(200, DataConfig(lookback=5, stride=3), TrainingConfig(cv_splits=3))
    for fold in plan.folds:
        assert np.all(np.diff(fold.train) == 3)
        assert fold.train.max() + 1 == fold.validation.min()


def test_too_short_series_says_how_many_rows():
    with pytest.raises(DataError, match="one window needs lookback \\+ horizon = 31 rows"):
        plan_splits(20, DataConfig(lookback=30), TrainingConfig())
    with pytest.raises(DataError, match="need at least \\d+"):
        plan_splits(40, DataConfig(lookback=30), TrainingConfig(cv_splits=5))


# --- scaling ------------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", ["standard", "minmax", "robust", "none"])
def test_scaler_statistics_come_from_training_rows_only(kind):
    rng = np.random.default_rng(1)
    values = np.concatenate([rng.normal(5, 2, (80, 2)), rng.normal(50, 9, (20, 2))])
    plan = plan_splits(100, DataConfig(lookback=5), TrainingConfig(cv_splits=2))
    fold = plan.folds[0]
    train = values[: fold.train_rows]
    scaler = Scaler.fit(kind, train)
    expected = {
        "standard": (train.mean(0), train.std(0)),
        "minmax": (train.min(0), train.max(0) - train.min(0)),
        "robust": (
            np.median(train, 0),
            np.percentile(train, 75, 0) - np.percentile(train, 25, 0),
        ),
        "none": (np.zeros(2), np.ones(2)),
    }[kind]
    np.testing.assert_allclose(scaler.center, expected[0], rtol=1e-10)
    np.testing.assert_allclose(scaler.scale, expected[1], rtol=1e-10)
    scaled = scaler.transform(values)
    np.testing.assert_allclose(scaler.inverse_transform(scaled), values, rtol=1e-5)
    assert Scaler.from_dict(scaler.to_dict()) == scaler
