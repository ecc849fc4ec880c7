"""Checkpoints of a fit in progress, so that a resumed fit equals an uninterrupted one.

A fit killed at any moment (kill -9, a full disk, a power cut) goes on, when the run is started
again, from its last checkpoint with everything that decides the rest of the fit:

- every variable of the model (its weights and the states of its random-seed generators) and of
  the optimizer (moments, step count, learning rate);
- the history of every epoch so far (so `best_epoch`, the refit's epochs and `loss.png` see the
  whole fit, not the part after the resume);
- early stopping's best value, wait, best epoch and best weights, and the learning-rate
  schedule's best value, wait and cooldown;
- the shuffled window order of the next epoch and the random state that draws the ones after it.

Each fit has its own folder (`OUT/backup/fold-0`, ..., `OUT/backup/refit`) holding
`state-<epoch>.npz` (the arrays) and `state.json` (the rest, with the SHA-256 of the npz). The
npz is written first under a new name, then `state.json` by rename, then the older npz is
removed: a crash at any point leaves a complete pair. A checkpoint is written at an epoch's end
when `training.backup_seconds` have passed since the last (and after the first epoch); the folder
is removed when the fit ends.

Example:
    >>> backup = FitBackup("run/backup/fold-0", seconds=10.0)  # doctest: +SKIP
    >>> model.fit(batches, callbacks=[early_stopping, plateau, backup])  # doctest: +SKIP
    >>> backup.history["loss"]  # every epoch, also those before a resume  # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import shutil
import time
from pathlib import Path

import keras
import numpy as np

from keras_lstm.files import atomic_write_bytes, atomic_write_text, file_sha256

STATE_FILE = "state.json"
FORMAT = 1


class FitBackup(keras.callbacks.Callback):
    """Writes and restores the whole state of a fit (see the module docstring).

    Place it after the callbacks whose state it keeps (`early_stopping`, `plateau`): Keras calls
    `on_train_begin` in list order, and theirs resets what this one then restores.

    Args:
        backup_dir: this fit's folder.
        seconds: the least seconds between two checkpoints.
        batches: the training `WindowBatches` (their shuffle order and random state are kept).
        early_stopping: the fit's `keras.callbacks.EarlyStopping`, if any.
        plateau: the fit's `keras.callbacks.ReduceLROnPlateau`, if any.
        fingerprint: what the fit is (the config's digest); a checkpoint of another config, or
            one whose arrays do not fit the model, is ignored and the fit starts afresh.
    """

    def __init__(
        self,
        backup_dir,
        seconds: float,
        batches=None,
        early_stopping=None,
        plateau=None,
        fingerprint: str = "",
    ):
        super().__init__()
        self.fingerprint = fingerprint
        self.backup_dir = Path(backup_dir)
        self.seconds = seconds
        self.batches = batches
        self.early_stopping = early_stopping
        self.plateau = plateau
        self.history: dict[str, list[float]] = {}
        self.resumed_from = 0

    # -- Keras hooks -------------------------------------------------------------------------
    def on_train_begin(self, logs=None):
        self.history = {}
        self.resumed_from = 0
        self._saved_at = None
        saved = read_state(self.backup_dir)
        if saved is not None and saved[0].get("fingerprint") == self.fingerprint:
            self._restore(*saved)

    def on_epoch_end(self, epoch, logs=None):
        for name, value in (logs or {}).items():
            self.history.setdefault(name, []).append(float(value))
        now = time.monotonic()
        if self._saved_at is None or now - self._saved_at >= self.seconds:
            self._save(epoch + 1)
            self._saved_at = now

    def on_train_end(self, logs=None):
        shutil.rmtree(self.backup_dir, ignore_errors=True)

    # -- the state ---------------------------------------------------------------------------
    def _save(self, epoch: int) -> None:
        arrays = _named("variable", self.model.variables)
        arrays.update(_named("optimizer", self.model.optimizer.variables))
        meta = {
            "format": FORMAT,
            "fingerprint": self.fingerprint,
            "epoch": epoch,
            "history": self.history,
        }
        if self.early_stopping is not None:
            es = self.early_stopping
            meta["early_stopping"] = {
                "wait": es.wait,
                "best": _number(es.best),
                "best_epoch": es.best_epoch,
                "stopped_epoch": es.stopped_epoch,
            }
            if es.best_weights is not None:
                best = {f"best_{i:05d}": np.asarray(w) for i, w in enumerate(es.best_weights)}
                arrays.update(best)
        if self.plateau is not None:
            p = self.plateau
            meta["plateau"] = {
                "wait": p.wait,
                "best": _number(p.best),
                "cooldown_counter": p.cooldown_counter,
            }
        if self.batches is not None and self.batches.shuffle:
            order, rng_state = self.batches.shuffle_state()
            arrays["batches_order"] = order
            meta["batches_rng"] = rng_state
        write_state(self.backup_dir, epoch, arrays, meta)

    def _restore(self, meta: dict, arrays: dict) -> None:
        optimizer = self.model.optimizer
        if not optimizer.built:
            optimizer.build(self.model.trainable_variables)
        model_vars, optimizer_vars = self.model.variables, optimizer.variables
        fits = _fits(model_vars, arrays, "variable") and _fits(optimizer_vars, arrays, "optimizer")
        if not fits:
            return  # another model's checkpoint: start afresh
        _assign(model_vars, arrays, "variable")
        _assign(optimizer_vars, arrays, "optimizer")
        if self.early_stopping is not None and "early_stopping" in meta:
            es, saved = self.early_stopping, meta["early_stopping"]
            es.wait, es.best = saved["wait"], saved["best"]
            es.best_epoch, es.stopped_epoch = saved["best_epoch"], saved["stopped_epoch"]
            best = sorted(k for k in arrays if k.startswith("best_"))
            es.best_weights = [arrays[k] for k in best] if best else None
        if self.plateau is not None and "plateau" in meta:
            p, saved = self.plateau, meta["plateau"]
            p.wait, p.best = saved["wait"], saved["best"]
            p.cooldown_counter = saved["cooldown_counter"]
        if "batches_order" in arrays and self.batches is not None:
            self.batches.set_shuffle_state(arrays["batches_order"], meta["batches_rng"])
        self.history = {name: list(values) for name, values in meta["history"].items()}
        self.resumed_from = int(meta["epoch"])
        self.model._initial_epoch = self.resumed_from  # what Keras' BackupAndRestore sets


def write_state(backup_dir: Path, epoch: int, arrays: dict, meta: dict) -> None:
    """`state-<epoch>.npz` under a temporary name, renamed; then `state.json` naming it and its
    digest; then the older npz files are removed."""
    backup_dir = Path(backup_dir)
    backup_dir.mkdir(parents=True, exist_ok=True)
    name = f"state-{epoch:05d}.npz"
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    atomic_write_bytes(backup_dir / name, buffer.getvalue())
    meta = {**meta, "arrays": name, "sha256": _digest(backup_dir / name)}
    atomic_write_text(backup_dir / STATE_FILE, json.dumps(meta))
    for old in backup_dir.glob("state-*.npz"):
        if old.name != name:
            old.unlink(missing_ok=True)


def read_state(backup_dir: Path) -> tuple[dict, dict] | None:
    """The last complete checkpoint under `backup_dir` as `(meta, arrays)`, or None when there is
    none, or it is of another format or its arrays do not match their digest (a fit then starts
    from the beginning: it gives the same result, only later)."""
    path = Path(backup_dir) / STATE_FILE
    try:
        meta = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        return None
    arrays_path = Path(backup_dir) / str(meta.get("arrays", ""))
    if not arrays_path.is_file() or _digest(arrays_path) != meta.get("sha256"):
        return None
    with np.load(arrays_path, allow_pickle=False) as loaded:
        arrays = {key: loaded[key] for key in loaded.files}
    return meta, arrays


def epoch_saved(backup_dir: Path) -> int:
    """The epoch of the last complete checkpoint under `backup_dir` (0: none)."""
    saved = read_state(backup_dir)
    return 0 if saved is None else int(saved[0]["epoch"])


def _named(prefix: str, variables) -> dict:
    return {
        f"{prefix}_{i:05d}": keras.ops.convert_to_numpy(v.value) for i, v in enumerate(variables)
    }


def _fits(variables, arrays: dict, prefix: str) -> bool:
    names = sorted(k for k in arrays if k.startswith(f"{prefix}_"))
    return len(names) == len(variables) and all(
        tuple(arrays[n].shape) == tuple(v.shape) for n, v in zip(names, variables, strict=True)
    )


def _assign(variables, arrays: dict, prefix: str) -> None:
    names = sorted(k for k in arrays if k.startswith(f"{prefix}_"))
    for variable, name in zip(variables, names, strict=True):
        variable.assign(arrays[name])


def _number(value):
    return None if value is None else float(value)


_digest = file_sha256
