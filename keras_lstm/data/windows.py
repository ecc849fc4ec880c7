"""Windows over a series as NumPy views, fed to Keras batch by batch.

`sliding_window_view` makes every window a view of the one scaled array, so a million rows with
a lookback of 60 cost no more memory than the array itself; only the batch being trained on is
gathered into a fresh array. See `benchmarks/windowing.py` for the figures.
"""

from __future__ import annotations

import math

import keras
import numpy as np
from numpy.lib.stride_tricks import sliding_window_view


def input_windows(values: np.ndarray, lookback: int) -> np.ndarray:
    """All input windows of `values` `(rows, features)` as a view `(rows - lookback + 1,
    lookback, features)`; window `j` is `values[j : j + lookback]`.

    Example:
        >>> input_windows(np.arange(5.0).reshape(5, 1), 3)[:, :, 0].tolist()
        [[0.0, 1.0, 2.0], [1.0, 2.0, 3.0], [2.0, 3.0, 4.0]]
    """
    return sliding_window_view(values, lookback, axis=0).transpose(0, 2, 1)


class WindowData:
    """Inputs and targets of one series, addressed by the row of each window's first target.

    Args:
        features: scaled features `(rows, n_features)`.
        targets: scaled targets `(rows, n_targets)`, or None for inference.
        lookback: rows in each input window.
        horizon: rows in each target block.

    Example:
        >>> data = WindowData(np.arange(10.0)[:, None], np.arange(10.0)[:, None], 3, 2)
        >>> x, y = data.gather(np.array([3]))
        >>> x[0, :, 0].tolist(), y[0, :, 0].tolist()
        ([0.0, 1.0, 2.0], [3.0, 4.0])
    """

    def __init__(self, features, targets, lookback: int, horizon: int):
        self.lookback = lookback
        self.horizon = horizon
        self.features = np.ascontiguousarray(features, dtype=np.float32)
        self._inputs = input_windows(self.features, lookback)
        # sliding_window_view works on strided arrays: no copy of the targets is needed
        self.targets = None if targets is None else np.asarray(targets)
        self._targets = (
            None
            if targets is None
            else sliding_window_view(self.targets, horizon, axis=0).transpose(0, 2, 1)
        )

    def inputs(self, rows: np.ndarray) -> np.ndarray:
        """Input windows (a gathered copy) for first-target rows `rows`."""
        return self._inputs[np.asarray(rows) - self.lookback]

    def gather(self, rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """`(inputs, targets)` for first-target rows: `(n, lookback, f)` and `(n, horizon, t)`."""
        rows = np.asarray(rows)
        return self._inputs[rows - self.lookback], self._targets[rows]


BUCKET_BATCHES = 8


class WindowBatches(keras.utils.PyDataset):
    """Batches of windows for `model.fit`, gathered on demand from `WindowData` views.

    Args:
        data: the `WindowData`.
        rows: first-target rows of the windows to serve.
        batch_size: windows per batch.
        shuffle: reshuffle the window order every epoch (windows are independent samples).
        seed: seed of the shuffling.
        target_fn: optional function applied to each target batch (e.g. class labels).
        weights: optional sample weight of every window, indexed by first-target row.
    """

    def __init__(
        self, data, rows, batch_size, shuffle=False, seed=None, target_fn=None, weights=None
    ):
        super().__init__()
        self.data = data
        self.rows = np.asarray(rows)
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.target_fn = target_fn
        self.weights = weights
        self._rng = np.random.default_rng(seed)
        # only a shuffled order needs its own (int32, half-size) copy of the rows
        self._order = self.rows.astype(np.int32) if shuffle else self.rows
        if shuffle:
            self._arrange()

    def _arrange(self):
        """A new random order. With sequences of different lengths (`data.lengths`), each run
        of `BUCKET_BATCHES` batches is sorted by length and the batches are then shuffled, so
        a batch holds sequences of similar length and is cut short (`SequenceData`)."""
        self._rng.shuffle(self._order)
        lengths = getattr(self.data, "lengths", None)
        if lengths is None:
            return
        run = self.batch_size * BUCKET_BATCHES
        for start in range(0, len(self._order), run):
            part = self._order[start : start + run]
            part[:] = part[np.argsort(lengths[part], kind="stable")]
        batches = [
            self._order[i : i + self.batch_size]
            for i in range(0, len(self._order), self.batch_size)
        ]
        self._rng.shuffle(batches)
        self._order = np.concatenate(batches)

    def __len__(self) -> int:
        return math.ceil(len(self.rows) / self.batch_size)

    def __getitem__(self, index):
        rows = self._order[index * self.batch_size : (index + 1) * self.batch_size]
        x, y = self.data.gather(rows)
        if self.target_fn is not None:
            y = self.target_fn(y)
        if self.weights is not None:
            return x, y, self.weights[rows]
        return x, y

    def on_epoch_end(self):
        if self.shuffle:
            self._arrange()


def as_tf_dataset(batches: WindowBatches):
    """The same batches as a `tf.data.Dataset`, for distribution strategies.

    A `MirroredStrategy` splits each batch across replicas; `tf.data` handles a last batch that
    does not split evenly, which a `PyDataset` under Keras 3 does not. Reshuffles every epoch.
    """
    import tensorflow as tf

    x, y = batches[0]

    def generate():
        for index in range(len(batches)):
            yield batches[index]
        batches.on_epoch_end()

    trimmed = getattr(batches.data, "lengths", None) is not None  # batches cut to their length
    signature = (
        tf.TensorSpec((None, None if trimmed else x.shape[1], *x.shape[2:]), tf.float32),
        tf.TensorSpec((None, *y.shape[1:]), tf.as_dtype(y.dtype)),
    )
    dataset = tf.data.Dataset.from_generator(generate, output_signature=signature)
    # a known length lets Keras size each epoch without running the generator dry first
    return dataset.apply(tf.data.experimental.assert_cardinality(len(batches))).prefetch(2)


def window_spread_weights(values: np.ndarray, lookback: int, floor: float) -> np.ndarray:
    """`1 / max(std, floor)**2` of each input window of `values` `(rows,)`, indexed by the
    window's first-target row (rows before `lookback` get 0), computed from cumulative sums so
    no `(windows, lookback)` temporary is made: the weight that turns a squared error in the
    data's units into one in the window's own units.

    Example:
        >>> weights = window_spread_weights(np.array([0.0, 2.0, 0.0, 2.0, 9.0]), 2, 1e-3)
        >>> [round(float(w), 3) for w in weights[2:]]
        [1.0, 1.0, 1.0, 0.082]
    """
    values = np.asarray(values, dtype=np.float64)
    sums = np.concatenate([[0.0], np.cumsum(values)])
    squares = np.concatenate([[0.0], np.cumsum(values**2)])
    total = sums[lookback:] - sums[:-lookback]
    total_sq = squares[lookback:] - squares[:-lookback]
    variance = np.maximum(total_sq / lookback - (total / lookback) ** 2, 0.0)
    spread = np.maximum(np.sqrt(variance), floor)
    weights = np.zeros(len(values) + 1, np.float32)
    weights[lookback:] = 1.0 / spread**2
    return weights
