"""Data: load and check a table, split it walk-forward, scale it leak-free, window it lazily."""

from keras_lstm.data.loading import Table, load_table, read_frame
from keras_lstm.data.scaling import Scaler
from keras_lstm.data.splits import Fold, SplitPlan, plan_splits, test_start_row
from keras_lstm.data.windows import WindowBatches, WindowData, as_tf_dataset, input_windows

__all__ = [
    "Fold",
    "Scaler",
    "SplitPlan",
    "Table",
    "WindowBatches",
    "WindowData",
    "as_tf_dataset",
    "input_windows",
    "load_table",
    "plan_splits",
    "read_frame",
    "test_start_row",
]
