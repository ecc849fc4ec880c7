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
import numpy as np
from keras import ops

from keras_lstm.metrics import seasonal_lags

CENTERS = ("last", "mean", "none")
WINDOW_FLOOR = 1e-3


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
        center: `last` (the window's last value), `mean`, or `none`: no window statistics
            (the inputs pass as they are, e.g. for the linear path over globally scaled data).
        floor: the smallest spread, in the units the model is fed (standardized units when a
            global scaler runs first); it keeps flat windows finite.
        season: with a season of at most the window length, the forecast is mapped back onto
            the seasonal naive forecast (the value one season before each step) instead of the
            last value, so a core output of zero is the seasonal naive forecast.
        linear: add a linear map of the whole normalized window to the core's output (a
            highway, as in LSTNet): seasonal and autoregressive structure is then learnt from
            few windows, and the recurrent core models what is left. Regression only.

    Example:
        >>> layer = WindowNormalized(core, target_channels=(0,))  # doctest: +SKIP
    """

    def __init__(
        self,
        core: keras.Model,
        target_channels: Sequence[int] = (),
        center: str = "last",
        floor: float = WINDOW_FLOOR,
        linear: bool = False,
        season: int = 1,
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
        self.linear = bool(linear)
        self.season = int(season)
        self.base_steps = None
        lookback = core.input_shape[1]
        if self.season > 1 and self.target_channels and lookback and self.season <= lookback:
            horizon = int(core.output_shape[1])
            lags = seasonal_lags(horizon, self.season)
            self.base_steps = [int(i) for i in lookback + np.arange(horizon) - lags]
        self.highway = None
        if self.linear:
            output_shape = tuple(core.output_shape[1:])
            if len(output_shape) != 2:
                raise ValueError(
                    "`linear=True` needs a core with a (horizon, targets) regression output. "
                    f"Received a core with output shape {core.output_shape}."
                )
            self.highway = keras.Sequential(
                [
                    keras.Input(tuple(core.input_shape[1:])),
                    keras.layers.Flatten(),
                    keras.layers.Dense(int(np.prod(output_shape)), kernel_initializer="zeros"),
                    keras.layers.Reshape(output_shape),
                ],
                name="highway",
            )

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

    def parts(self, inputs) -> dict:
        """The forecast of `call`, split into the terms that add up to it, each in the output's
        units: `recurrent` (the core's output), `linear` (the linear path's; absent without
        one), each mapped back by the window's spread, and `base` (the last value, or the
        seasonal naive, of each target; zero without window statistics).

        Example:
            >>> parts = layer.parts(windows)  # doctest: +SKIP
            >>> sum(parts.values()) - layer(windows)  # doctest: +SKIP
            0.0
        """
        if self.center == "none":
            normalized, spread, base = inputs, None, None
        else:
            level, spread = self.statistics(inputs)
            normalized = (inputs - level) / spread
        out = {"recurrent": self.core(normalized, training=False)}
        if self.highway is not None:
            out["linear"] = self.highway(normalized, training=False)
        if self.center == "none" or not self.target_channels:
            out["base"] = ops.zeros_like(out["recurrent"])
            return out
        channels = list(self.target_channels)
        base = level if self.base_steps is None else ops.take(inputs, self.base_steps, axis=1)
        scale = ops.take(spread, channels, axis=2)
        out = {name: value * scale for name, value in out.items()}
        out["base"] = ops.take(base, channels, axis=2) + ops.zeros_like(out["recurrent"])
        return out

    def call(self, inputs, training=None):
        if self.center == "none":
            normalized = inputs
        else:
            level, spread = self.statistics(inputs)
            normalized = (inputs - level) / spread
        outputs = self.core(normalized, training=training)
        if self.highway is not None:
            outputs = outputs + self.highway(normalized, training=training)
        if self.center == "none" or not self.target_channels:
            return outputs
        channels = list(self.target_channels)
        base = level if self.base_steps is None else ops.take(inputs, self.base_steps, axis=1)
        return outputs * ops.take(spread, channels, axis=2) + ops.take(base, channels, axis=2)

    def compute_output_shape(self, input_shape):
        return self.core.compute_output_shape(input_shape)

    def get_config(self):
        return {
            **super().get_config(),
            "core": keras.saving.serialize_keras_object(self.core),
            "target_channels": list(self.target_channels),
            "center": self.center,
            "floor": self.floor,
            "linear": self.linear,
            "season": self.season,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["core"] = keras.saving.deserialize_keras_object(config["core"])
        return cls(**config)
