"""Data: load and check a table, split it walk-forward, scale it leak-free, window it lazily.

The names below load on first use: `loading`, `sequences` and `outputs` need only NumPy and
pandas (the device-side predictor reads rows and writes frames through them), `splits` and
`scaling` need scikit-learn; none needs Keras (`keras_lstm.training.batches` feeds windows to it).

Example:
    >>> from keras_lstm.data import load_table  # doctest: +SKIP
"""

import importlib

_LAZY = {
    "Table": "keras_lstm.data.loading",
    "load_table": "keras_lstm.data.loading",
    "read_frame": "keras_lstm.data.loading",
    "Scaler": "keras_lstm.data.scaling",
    "Fold": "keras_lstm.data.splits",
    "SplitPlan": "keras_lstm.data.splits",
    "plan_splits": "keras_lstm.data.splits",
    "test_start_row": "keras_lstm.data.splits",
    "WindowData": "keras_lstm.data.windows",
    "input_windows": "keras_lstm.data.windows",
}


def __getattr__(name):
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keras_lstm.data' has no attribute {name!r}")


__all__ = sorted(_LAZY)
