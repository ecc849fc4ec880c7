"""Batches of windows for `model.fit`, gathered on demand from the `WindowData` views of
`keras_lstm.data.windows` (the data layer itself needs no Keras, so data errors are found before
Keras is imported).

Example:
    >>> batches = WindowBatches(data, rows, batch_size=32, shuffle=True, seed=0)  # doctest: +SKIP
    >>> x, y = batches[0]  # doctest: +SKIP
"""

from __future__ import annotations

import math

import keras
import numpy as np

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

    def shuffle_state(self) -> tuple[np.ndarray, dict]:
        """The window order of the next epoch and the random state that draws the ones after
        it: what a resumed fit needs to see the batches an uninterrupted one would."""
        return np.asarray(self._order).copy(), self._rng.bit_generator.state

    def set_shuffle_state(self, order, state: dict) -> None:
        """Go on from a `shuffle_state`."""
        order = np.asarray(order, dtype=self._order.dtype)
        if not np.array_equal(np.sort(order), np.sort(np.asarray(self.rows))):
            raise ValueError("the saved window order is not a permutation of these windows")
        self._order = order
        self._rng.bit_generator.state = state

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
