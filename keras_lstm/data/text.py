"""Texts as token ids, with the vocabulary a text model was trained on (Keras'
`TextVectorization`: lower case, punctuation stripped, split on whitespace)."""

from __future__ import annotations

import keras
import numpy as np


def vectorize(texts, vocabulary: list[str], length: int) -> np.ndarray:
    """Token ids `(n, length)` of `texts` with a fixed vocabulary (0 pads, 1 is unknown).

    Example:
        >>> vectorize(["a b", "c"], ["", "[UNK]", "a", "b"], 3).tolist()
        [[2, 3, 0], [1, 0, 0]]
    """
    layer = keras.layers.TextVectorization(vocabulary=vocabulary[2:], output_sequence_length=length)
    return np.asarray(layer(np.asarray(list(texts), dtype=object)), dtype=np.int32)
