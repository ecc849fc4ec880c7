"""Texts as token ids on the training side, with Keras' `TextVectorization` (lower case,
punctuation stripped, split on whitespace): the vocabulary fitted on the training texts, and
their ids. Prediction uses the NumPy copy in `keras_lstm.data.preprocessing` (a device has no
Keras); a test keeps the two equal."""

from __future__ import annotations

import numpy as np


def vectorize(texts, vocabulary: list[str], length: int) -> np.ndarray:
    """Token ids `(n, length)` of `texts` with a fixed vocabulary (0 pads, 1 is unknown).

    Example:
        >>> vectorize(["a b", "c"], ["", "[UNK]", "a", "b"], 3).tolist()
        [[2, 3, 0], [1, 0, 0]]
    """
    import keras  # on first use: the data layer loads without Keras

    layer = keras.layers.TextVectorization(vocabulary=vocabulary[2:], output_sequence_length=length)
    return np.asarray(layer(np.asarray(list(texts), dtype=object)), dtype=np.int32)


def fit_vocabulary(texts: list[str], vocab_size: int) -> list[str]:
    """The `TextVectorization` vocabulary of `texts` (at most `vocab_size` entries, padding and
    the out-of-vocabulary token first).

    Example:
        >>> fit_vocabulary(["b a b", "c b"], 10)
        ['', '[UNK]', 'b', 'c', 'a']
    """
    import keras

    layer = keras.layers.TextVectorization(max_tokens=vocab_size)
    layer.adapt(np.asarray(texts, dtype=object))
    return [str(t) for t in layer.get_vocabulary()]
