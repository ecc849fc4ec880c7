import json

import keras
import numpy as np
import pandas as pd
import pytest

from keras_lstm.config import load_config
from keras_lstm.errors import ConfigError, TrainingError
from keras_lstm.pipeline import train_and_save
from keras_lstm.training import cross_validate, fit, prepare, resolve_strategy
from keras_lstm.training import loop as training_loop
from keras_lstm.training.loop import _StopOnNaN

TINY = {
    "seed": 3,
    "data": {"targets": ["y"], "lookback": 8, "test_size": 0.2},
    "model": {"units": [4], "dropout": 0.0},
    "training": {"epochs": 2, "cv_splits": 2, "batch_size": 32, "shuffle": False},
}


def _frame(n=300, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame(
        {"y": np.sin(2 * np.pi * t / 24) + 0.1 * rng.standard_normal(n), "x": rng.random(n)}
    )


def test_seeded_runs_reproduce_and_test_part_never_leaks():
    frame = _frame()
    config = load_config(TINY)
    first = cross_validate(config, frame, verbose=0)
    second = cross_validate(config, frame, verbose=0)
    assert [f.metrics for f in first.folds] == [f.metrics for f in second.folds]
    assert first.mean_val_loss == second.mean_val_loss
    # Wreck every target of the held-out test part: CV (training, early stopping,
    # validation, scalers) must not notice.
    wrecked = frame.copy()
    test_start = prepare(config, frame).plan.test_start
    wrecked.loc[test_start:, ["y", "x"]] = 1e6
    third = cross_validate(config, wrecked, verbose=0)
    assert [f.metrics for f in third.folds] == [f.metrics for f in first.folds]


def test_scalers_are_fitted_per_fold_on_training_rows():
    frame = _frame()
    prepared = prepare(load_config(TINY), frame)
    means = []
    for fold in prepared.plan.folds:
        data = prepared.fold_data(fold)
        rows = frame.iloc[: fold.train_rows]
        np.testing.assert_allclose(data.feature_scaler.center, rows[["y", "x"]].mean(), rtol=1e-5)
        np.testing.assert_allclose(data.target_scaler.scale, rows[["y"]].std(ddof=0), rtol=1e-5)
        means.append(data.feature_scaler.center)
    assert means[0] != means[1]


def test_fold_results_and_val_loss_are_consistent():
    frame = _frame()
    config = load_config(TINY)
    result = cross_validate(config, frame, verbose=0)
    assert len(result.folds) == 2
    for fold in result.folds:
        assert 1 <= fold.best_epoch <= fold.epochs_run <= 2
        assert set(fold.metrics) >= {"rmse", "mae", "mape", "smape", "mase", "r2"}
        assert fold.metrics["rmse"] == pytest.approx(fold.metrics["per_target"]["y"]["rmse"])
        assert fold.baselines["naive"]["rmse"] > 0
    assert result.mean_val_loss == pytest.approx(np.mean([f.val_loss for f in result.folds]))
    assert result.mean["rmse"] == pytest.approx(np.mean([f.metrics["rmse"] for f in result.folds]))


def test_naive_baseline_matches_hand_computation():
    frame = _frame()
    bundle = fit(TINY, frame, verbose=0)
    report = bundle.report
    y = frame["y"].to_numpy()
    test_start = 240
    true = report["test_true"][:, 0, 0]
    np.testing.assert_allclose(true, y[test_start:], rtol=1e-6)
    naive_rmse = np.sqrt(np.mean((y[test_start:] - y[test_start - 1 : -1]) ** 2))
    assert bundle.metrics["baselines"]["naive"]["test"]["rmse"] == pytest.approx(naive_rmse, 1e-5)
    assert set(bundle.metrics) >= {"cv", "test", "baselines"}
    assert set(bundle.metrics["cv"]) == {"folds", "mean", "std"}


@pytest.mark.tensorflow  # MirroredStrategy is TensorFlow's, on the two logical CPUs of conftest
def test_mirrored_strategy_on_two_logical_cpus_matches_single_device():
    frame = _frame()
    config = load_config({**TINY, "training": {**TINY["training"], "strategy": "mirrored"}})
    strategy = resolve_strategy(config)
    assert strategy.num_replicas_in_sync == 2
    mirrored = cross_validate(config, frame, verbose=0)
    single = cross_validate(config.replace(**{"training.strategy": "default"}), frame, verbose=0)
    for a, b in zip(mirrored.folds, single.folds, strict=True):
        np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-3)


def test_multi_worker_is_a_clear_error():
    config = load_config({**TINY, "training": {"strategy": "multi_worker"}})
    with pytest.raises(ConfigError, match="distributed search"):
        resolve_strategy(config)


class _Interrupt(Exception):
    pass


@pytest.mark.parametrize(
    "backup_seconds",
    # 0: a checkpoint every epoch; an hour: only the first epoch's checkpoint is written before
    # the interruption, so epochs 2-4 are run again
    [0, 3600],
)
def test_interrupted_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch, backup_seconds):
    frame = _frame()
    training = {**TINY["training"], "epochs": 4, "backup_seconds": backup_seconds}
    config = load_config({**TINY, "training": training})
    uninterrupted = cross_validate(config, frame, out_dir=tmp_path / "whole", verbose=0)
    original = training_loop._callbacks

    class StopAfterFour(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch == 3:
                raise _Interrupt()

    def interrupting(*args, **kwargs):
        callbacks, backup = original(*args, **kwargs)
        return [*callbacks, StopAfterFour()], backup

    run = tmp_path / "run"
    monkeypatch.setattr(training_loop, "_callbacks", interrupting)
    with pytest.raises(_Interrupt):
        cross_validate(config, frame, out_dir=run, verbose=0)
    assert (run / "backup" / "fold-0" / "state.json").is_file()
    monkeypatch.setattr(training_loop, "_callbacks", original)
    resumed = cross_validate(config, frame, out_dir=run, verbose=0)
    for got, want in zip(resumed.folds, uninterrupted.folds, strict=True):
        assert got.history == want.history  # the epochs before the interruption are kept
        assert got.metrics == want.metrics
    assert not (run / "backup" / "fold-0").exists()  # removed once the fit ended
    finished = json.loads((run / "backup" / "fold-1.json").read_text())
    assert finished["result"]["metrics"] == resumed.folds[1].metrics

    def no_training(*args, **kwargs):
        raise AssertionError("finished folds must not be trained again")

    monkeypatch.setattr(training_loop, "train_model", no_training)
    again = cross_validate(config, frame, out_dir=run, verbose=0)
    assert [f.metrics for f in again.folds] == [f.metrics for f in resumed.folds]


def test_classification_of_a_label_column():
    rng = np.random.default_rng(0)
    n = 300
    x = rng.standard_normal(n)
    label = np.where(np.roll(x, -1) > 0, "up", "down")  # next step's sign, from past readings
    frame = pd.DataFrame({"x": x, "label": label})
    config = {
        "task": "classification",
        "seed": 1,
        "data": {"targets": ["label"], "lookback": 4},
        "model": {"units": [4], "dropout": 0.0},
        "training": {"epochs": 2, "cv_splits": 2, "class_weight": "balanced"},
    }
    bundle = fit(config, frame, verbose=0)
    test = bundle.metrics["test"]
    assert set(test) == {"accuracy", "f1_macro", "auc", "log_loss"}
    assert "majority" in bundle.metrics["baselines"]
    assert bundle.preprocessing["classes"] == ["down", "up"]
    predictions = bundle.predict(frame[["x"]].tail(10))
    assert list(predictions.columns) == ["label", "p(down)", "p(up)"]
    np.testing.assert_allclose(predictions[["p(down)", "p(up)"]].sum(1), 1.0, rtol=1e-5)


def test_classification_rejects_a_single_class():
    frame = pd.DataFrame({"x": np.random.default_rng(0).random(100), "label": ["a"] * 100})
    config = load_config({"task": "classification", "data": {"targets": ["label"], "lookback": 4}})
    from keras_lstm.errors import DataError

    with pytest.raises(DataError, match="'label' holds one class only"):
        prepare(config, frame)


def test_a_diverged_fit_is_an_error_naming_the_fit_and_the_epoch():
    x = np.ones((64, 4, 1), np.float32)

    def fitted(targets):
        model = keras.Sequential(
            [keras.Input((4, 1)), keras.layers.Flatten(), keras.layers.Dense(1)]
        )
        model.compile(optimizer="sgd", loss="mse")
        return model.fit(
            x, targets, epochs=5, batch_size=16, verbose=0, callbacks=[_StopOnNaN("fold 2")]
        )

    with pytest.raises(TrainingError, match=r"fold 2 is nan at epoch 1\. Lower training"):
        fitted(np.full((64, 1), np.nan, np.float32))  # every loss is NaN
    assert len(fitted(np.ones((64, 1), np.float32)).history["loss"]) == 5


def test_exploding_data_stops_the_run_at_the_fold_it_reaches_and_writes_no_bundle(tmp_path):
    # the series blows up (x 1e20) after row 170: folds 1 and 2 train on the rows before it,
    # fold 3's loss overflows; with no scaler nothing tames it
    t = np.arange(300)
    y = np.sin(t / 4)
    y[170:240] *= 1e20
    config = load_config(
        {
            "seed": 1,
            "data": {"targets": ["y"], "lookback": 8, "scaler": "none"},
            "model": {"units": [4]},
            "training": {"epochs": 3, "cv_splits": 3, "fold_workers": "never"},
        }
    )
    with pytest.raises(TrainingError, match=r"loss of fold 3 is (nan|inf) at epoch 1.*data"):
        train_and_save(config, tmp_path / "run", verbose=0, data=pd.DataFrame({"y": y}))
    assert not (tmp_path / "run" / "bundle").exists()
    assert not (tmp_path / "run" / "metrics.json").exists()
