"""A fit interrupted at any epoch and started again ends exactly where an uninterrupted one
does: keras_lstm/training/backup.py."""

import keras
import numpy as np
import pandas as pd
import pytest

from keras_lstm.training import fit
from keras_lstm.training import loop as training_loop
from keras_lstm.training.backup import FitBackup, epoch_saved, read_state, write_state

# shuffled windows, dropout, early stopping and the learning-rate schedule that both fire within
# the epochs: every piece of state a resume must carry over changes the result if it is lost
CONFIG = {
    "seed": 5,
    "data": {"targets": ["y"], "lookback": 8, "test_size": 0.2},
    "model": {"units": [6], "dropout": 0.2},
    "training": {
        "epochs": 14,
        "cv_splits": 2,
        "batch_size": 16,
        "auto_budget": False,
        "early_stopping_patience": 3,
        "reduce_lr_patience": 1,
        "learning_rate": 0.03,
        "fold_workers": "never",  # the interruption below is patched into this process
        "backup_seconds": 3600,  # one checkpoint (after the first epoch): the rest is replayed
    },
}


class _Interrupt(Exception):
    pass


def _frame(n=260, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    return pd.DataFrame({"y": np.sin(2 * np.pi * t / 12) + 0.3 * rng.standard_normal(n)})


def _interrupt(monkeypatch, tag: str, at_epoch: int):
    """Raise in fit `tag` at the end of epoch `at_epoch` (1-based), after its checkpoint."""
    original = training_loop._callbacks

    class Interrupt(keras.callbacks.Callback):
        def on_epoch_end(self, epoch, logs=None):
            if epoch + 1 == at_epoch:
                raise _Interrupt(tag)

    def interrupting(config, budget, validation, fit_tag, out_dir, batches):
        callbacks, backup = original(config, budget, validation, fit_tag, out_dir, batches)
        return ([*callbacks, Interrupt()] if fit_tag == tag else callbacks), backup

    monkeypatch.setattr(training_loop, "_callbacks", interrupting)
    return original


@pytest.fixture(scope="module")
def uninterrupted(tmp_path_factory):
    bundle = fit(CONFIG, _frame(), out_dir=tmp_path_factory.mktemp("whole"), verbose=0)
    return bundle.metrics


@pytest.mark.parametrize("tag, at_epoch", [("fold-1", 6), ("refit", 4)])
def test_a_resumed_fit_equals_an_uninterrupted_one(
    tmp_path, monkeypatch, uninterrupted, tag, at_epoch
):
    # the folds stop early and the rate is cut, or the test would not see their state
    folds = uninterrupted["cv"]["folds"]
    assert any(f["best_epoch"] < CONFIG["training"]["epochs"] - 1 for f in folds)
    original = _interrupt(monkeypatch, tag, at_epoch)
    with pytest.raises(_Interrupt):
        fit(CONFIG, _frame(), out_dir=tmp_path, verbose=0)
    assert epoch_saved(tmp_path / "backup" / tag) == 1  # resumes from epoch 1, replays the rest
    monkeypatch.setattr(training_loop, "_callbacks", original)
    resumed = fit(CONFIG, _frame(), out_dir=tmp_path, verbose=0).metrics
    assert resumed["training"]["fold_best_epochs"] == uninterrupted["training"]["fold_best_epochs"]
    assert resumed["refit_epochs"] == uninterrupted["refit_epochs"]
    assert resumed["cv"] == uninterrupted["cv"]
    assert resumed["test"] == uninterrupted["test"]


def test_a_checkpoint_that_does_not_match_its_digest_is_ignored(tmp_path):
    write_state(tmp_path, 3, {"variable_00000": np.ones(2)}, {"format": 1, "epoch": 3})
    assert epoch_saved(tmp_path) == 3
    (npz,) = tmp_path.glob("state-*.npz")
    npz.write_bytes(npz.read_bytes()[:-8] + b"tampered")
    assert read_state(tmp_path) is None  # the fit starts afresh rather than load it


def test_a_new_checkpoint_replaces_the_old_one_whole(tmp_path):
    write_state(tmp_path, 1, {"variable_00000": np.zeros(2)}, {"format": 1, "epoch": 1})
    write_state(tmp_path, 2, {"variable_00000": np.ones(2)}, {"format": 1, "epoch": 2})
    meta, arrays = read_state(tmp_path)
    assert meta["epoch"] == 2 and arrays["variable_00000"].tolist() == [1.0, 1.0]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["state-00002.npz", "state.json"]


def _dense(inputs: int):
    model = keras.Sequential([keras.Input((inputs,)), keras.layers.Dense(2)])
    model.compile(optimizer="adam", loss="mse")
    model.optimizer.build(model.trainable_variables)
    return model


def test_a_checkpoint_of_another_config_or_model_is_not_restored(tmp_path):
    saving = FitBackup(tmp_path, 0.0, fingerprint="a")
    saving.set_model(_dense(3))
    saving.on_train_begin()
    saving._save(epoch=1)
    assert epoch_saved(tmp_path) == 1
    for fingerprint, inputs, resumed in (("a", 3, 1), ("b", 3, 0), ("a", 4, 0)):
        backup = FitBackup(tmp_path, 3600.0, fingerprint=fingerprint)
        backup.set_model(_dense(inputs))
        backup.on_train_begin()
        assert backup.resumed_from == resumed, (fingerprint, inputs)


def test_a_finished_fit_leaves_no_checkpoint(tmp_path):
    model = keras.Sequential([keras.Input((3,)), keras.layers.Dense(1)])
    model.compile(optimizer="adam", loss="mse")
    backup = FitBackup(tmp_path / "fit", 0.0)
    model.fit(np.ones((8, 3)), np.zeros((8, 1)), epochs=2, callbacks=[backup], verbose=0)
    assert not (tmp_path / "fit").exists()
    assert len(backup.history["loss"]) == 2
