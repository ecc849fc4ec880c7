"""Training overheads, measured side by side in one run (ratios; the machine is shared).

(a) our training loop (`train_model`: WindowBatches from views, callbacks) versus a plain
    `model.fit` on a materialised NumPy array of the same windows, same model and epochs;
(b) `cross_validate` over k folds versus k separate plain fits of the same folds;
(c) `Bundle.predict` on one window versus `model.predict` on the same window.

Run from the repository root:  python benchmarks/training.py
"""

from __future__ import annotations

import os
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import keras  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from keras_lstm.config import load_config  # noqa: E402
from keras_lstm.factory import build_model  # noqa: E402
from keras_lstm.training import cross_validate, fit, prepare, train_model  # noqa: E402

EPOCHS = 3
CONFIG = {
    "seed": 0,
    "data": {"targets": ["y"], "lookback": 48},
    "model": {"units": [64, 32]},
    "training": {
        "epochs": EPOCHS,
        "batch_size": 64,
        "cv_splits": 3,
        "early_stopping_patience": 100,
        "reduce_lr_patience": 100,
        "shuffle": True,
    },
}


def frame(rows=8_000):
    rng = np.random.default_rng(0)
    t = np.arange(rows)
    return pd.DataFrame(
        {
            "y": np.sin(2 * np.pi * t / 96) + 0.1 * rng.standard_normal(rows),
            "a": rng.standard_normal(rows),
            "b": np.cos(2 * np.pi * t / 24),
        }
    )


def plain_fit(prepared, fold, validation=True):
    """What a user would write by hand: arrays of windows, model.fit with the same callbacks."""
    data = prepared.fold_data(fold)
    x, y = data.windows.gather(fold.train)
    config = prepared.config
    model = build_model(config.model, prepared.input_shape, prepared.output_shape)
    val = data.windows.gather(fold.validation) if validation else None
    callbacks = [
        keras.callbacks.EarlyStopping(patience=100, restore_best_weights=True),
        keras.callbacks.ReduceLROnPlateau(patience=100),
    ]
    model.fit(
        x, y, batch_size=64, epochs=EPOCHS, validation_data=val, callbacks=callbacks, verbose=0
    )
    return model


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return time.perf_counter() - start, out


def main():
    data = frame()
    config = load_config(CONFIG)
    prepared = prepare(config, data)
    fold = prepared.plan.folds[-1]
    keras.utils.set_random_seed(0)
    plain_fit(prepared, fold)  # warm-up: graph tracing caches, thread pools

    rows = []
    ours_t, plain_t = [], []
    for _ in range(2):  # alternate to spread machine noise over both
        keras.backend.clear_session()
        t, _ = timed(
            lambda: train_model(
                prepared,
                fold,
                prepared.fold_data(fold),
                epochs=EPOCHS,
                validation=True,
                tag="bench",
                verbose=0,
            )
        )
        ours_t.append(t)
        keras.backend.clear_session()
        t, _ = timed(lambda: plain_fit(prepared, fold))
        plain_t.append(t)
    a = min(ours_t) / min(plain_t)
    rows.append(
        (
            "(a) train_model vs plain model.fit",
            f"{min(ours_t):.1f} s",
            f"{min(plain_t):.1f} s",
            f"{a:.3f}x",
            "<= 1.05x",
        )
    )

    cross_validate(config, data.head(3000), verbose=0)  # warm-up of this code path too
    cv_runs, sep_runs = [], []
    for _ in range(2):  # alternate, keep the best of each: the machine is shared
        t, _ = timed(lambda: cross_validate(config, data, verbose=0, prepared=prepared))
        cv_runs.append(t)
        sep = 0.0
        for f in prepared.plan.folds:
            keras.backend.clear_session()
            t, _ = timed(lambda f=f: plain_fit(prepared, f))
            sep += t
        sep_runs.append(sep)
    cv_t, sep_t = min(cv_runs), min(sep_runs)
    b = cv_t / sep_t
    rows.append(
        (
            f"(b) cross_validate vs {len(prepared.plan.folds)} plain fits",
            f"{cv_t:.1f} s",
            f"{sep_t:.1f} s",
            f"{b:.3f}x",
            "<= 1.1x",
        )
    )

    small = load_config({**CONFIG, "training": {**CONFIG["training"], "epochs": 1}})
    bundle = fit(small, data.tail(3000), verbose=0)
    window = data.tail(48)
    bundle.predict(window)  # trace once
    reps = 200
    ours, _ = timed(lambda: [bundle.predict(window) for _ in range(reps)])
    arr = np.zeros((1, 48, 3), np.float32)
    bundle.model.predict(arr, verbose=0)
    theirs, _ = timed(lambda: [bundle.model.predict(arr, verbose=0) for _ in range(reps)])
    rows.append(
        (
            "(c) Bundle.predict vs model.predict, 1 window",
            f"{1000 * ours / reps:.2f} ms",
            f"{1000 * theirs / reps:.2f} ms",
            f"{theirs / ours:.1f}x faster",
            "<= 5 ms",
        )
    )
    header = ("measure", "ours", "reference", "ratio", "goal")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(5)]
    for row in [header, *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True)))


if __name__ == "__main__":
    main()
