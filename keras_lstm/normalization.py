"""Window normalization inside the model: each window scaled by its own level and spread.

A scaler fitted on the training rows maps a trending series' later values outside anything the
network saw, and its forecast flattens at the old level. `WindowNormalized` wraps the recurrent
core of a model: every input window is centred on its own last value and divided by its own
standard deviation (per channel), the core sees only that relative shape, and its output is
mapped back with the target channels' level and spread. Because the mapping is part of the Keras
model, `Bundle.predict`, the TFLite export and `LitePredictor` all carry it.

Example:
    >>> import keras, numpy as np
    >>> core = keras.Sequential([keras.Input((4, 1)), keras.layers.Flatten(),
    ...                          keras.layers.Dense(1, kernel_initializer="zeros"),
    ...                          keras.layers.Reshape((1, 1))])
    >>> model = keras.Sequential([keras.Input((4, 1)), WindowNormalized(core, (0,))])
    >>> float(model(np.array([[[1.0], [2.0], [3.0], [50.0]]]))[0, 0, 0])  # zero core: last value
    50.0
"""

from __future__ import annotations

from collections.abc import Sequence

import keras
from keras import ops

CENTERS = ("last", "mean")


@keras.saving.register_keras_serializable(package="keras_lstm")
class WindowNormalized(keras.layers.Layer):
    """Runs `core` on windows scaled by their own statistics and maps its output back.

    For an input window `x` `(time, channels)`: `level` is the last step (or the mean) of each
    channel, `spread = max(std over time, floor)`; the core receives `(x - level) / spread`.
    With `target_channels`, the core's output `(horizon, targets)` is returned as
    `output * spread[targets] + level[targets]`, so a core output of zero is the naive forecast
    (with `center="last"`). Without target channels (classification) the output is passed on.

    Args:
        core: the layers to wrap, as a built `keras.Sequential` taking `(time, channels)`.
        target_channels: for each output target, the input channel it is read from.
        center: `last` (the window's last value) or `mean`.
        floor: the smallest spread, in the units the model is fed (standardized units when a
            global scaler runs first); it keeps flat windows finite.

    Example:
        >>> layer = WindowNormalized(core, target_channels=(0,))  # doctest: +SKIP
    """

    def __init__(
        self,
        core: keras.Model,
        target_channels: Sequence[int] = (),
        center: str = "last",
        floor: float = 1e-3,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if center not in CENTERS:
            raise ValueError(f"Expected `center` to be one of {CENTERS}. Received: {center!r}")
        if not floor > 0:
            raise ValueError(f"Expected `floor` to be positive. Received: floor={floor!r}")
        self.core = core
        self.target_channels = tuple(int(c) for c in target_channels)
        self.center = center
        self.floor = float(floor)

    def build(self, input_shape):
        if not self.core.built:
            self.core.build(input_shape)
        self.built = True

    def statistics(self, x):
        """`(level, spread)` of each window and channel, each `(batch, 1, channels)`."""
        mean = ops.mean(x, axis=1, keepdims=True)
        spread = ops.sqrt(ops.mean(ops.square(x - mean), axis=1, keepdims=True))
        spread = ops.maximum(spread, self.floor)
        level = x[:, -1:, :] if self.center == "last" else mean
        return level, spread

    def call(self, inputs, training=None):
        level, spread = self.statistics(inputs)
        outputs = self.core((inputs - level) / spread, training=training)
        if not self.target_channels:
            return outputs
        channels = list(self.target_channels)
        return outputs * ops.take(spread, channels, axis=2) + ops.take(level, channels, axis=2)

    def compute_output_shape(self, input_shape):
        return self.core.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "core": keras.saving.serialize_keras_object(self.core),
            "target_channels": list(self.target_channels),
            "center": self.center,
            "floor": self.floor,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["core"] = keras.saving.deserialize_keras_object(config["core"])
        return cls(**config)
