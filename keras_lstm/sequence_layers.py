"""Mask-aware layers for whole-sequence models: a padded batch predicts what each sequence alone
predicts, in Keras and in the exported TFLite file.

Variable-length sequences are zero-padded and a `Masking` layer marks the padding. Keras'
`Conv1D` and `MaxPooling1D` drop that mask, so a convolutional front would let the padding
leak into the recurrent layers and into the pooling. These layers keep it:

- `SequenceStandardized`: each sequence centred and scaled per channel by its own valid steps
  (`data.scaler: sequence`).
- `MaskedConv1D`: a causal `Conv1D` that passes the mask on (a causal kernel at a valid step
  reads only valid steps, so valid outputs do not depend on the padding).
- `MaskedMaxPooling1D`: shortens the sequence `pool_size` times; padded steps count as zero,
  which is exact after a ReLU.
- `AttentionPooling`: a softmax-weighted sum over the valid steps (`model.pooling: attention`).

Every layer uses builtin TFLite ops only (no large constants either, so int8 ranges stay tight).

Example:
    >>> import keras, numpy as np
    >>> x = np.zeros((1, 6, 1), "float32"); x[0, :4, 0] = [1, 2, 3, 4]
    >>> model = keras.Sequential([keras.Input((None, 1)), keras.layers.Masking(0.0),
    ...                           SequenceStandardized(), keras.layers.GlobalAveragePooling1D()])
    >>> round(float(model(x)[0, 0]), 6)  # the mean of the standardized valid steps
    0.0
"""

from __future__ import annotations

import keras
from keras import ops

SEQUENCE_FLOOR = 1e-6


def _float_mask(mask, inputs):
    """`(batch, time, 1)` ones at valid steps (all ones without a mask)."""
    if mask is None:
        return ops.ones_like(inputs[..., :1])
    return ops.expand_dims(ops.cast(mask, inputs.dtype), -1)


LEVEL_TINY = 1e-12  # below it a level is zero: the signed log level's division stays finite

# A channel whose spread within a sequence is at most `floor + FLAT_RELATIVE * |mean|` is flat:
# that much spread is the rounding error of the mean (float32 sums differ by backend and
# runtime), which dividing by the floor would blow up into values of order 1 that differ
# between JAX, TensorFlow and the TFLite file. A flat channel standardizes to exactly zero.
FLAT_RELATIVE = 1e-4


@keras.saving.register_keras_serializable(package="keras_lstm")
class SequenceStandardized(keras.layers.Layer):
    """Centre each sequence on its own mean and divide by its own standard deviation, per
    channel, over its valid (unmasked) steps; padded steps stay zero and stay masked.

    With `scale_channels`, the log of each channel's standard deviation is appended as one more
    channel per feature (constant over the valid steps): the shape is then learnt free of the
    scale, and the scale, which tells a kettle from a phone charger, is not lost. With
    `level_channels`, each channel's mean is appended too, as `sign(mean) * log(1 + |mean|)`
    (the inputs are already standardized over the training set, so this is the sequence's
    level against the others, compressed where levels span orders of magnitude): classes
    that differ only in their level stay apart.

    A channel that is flat within a sequence (its spread no more than `floor` plus
    `FLAT_RELATIVE` times its level: the rounding error of its mean) gives zeros, and
    `log(floor)` as its scale channel.

    Args:
        floor: the smallest standard deviation, so a flat channel stays finite.
        scale_channels: append `log(std)` of each channel.
        level_channels: append the signed log level of each channel (after the scale ones).

    Example:
        >>> SequenceStandardized()(np.array([[[1.0], [3.0]]])).numpy().ravel().tolist()
        [-1.0, 1.0]
    """

    def __init__(
        self,
        floor: float = SEQUENCE_FLOOR,
        scale_channels: bool = False,
        level_channels: bool = False,
        **kwargs,
    ):
        super().__init__(**kwargs)
        if not floor > 0:
            raise ValueError(f"Expected `floor` to be positive. Received: floor={floor!r}")
        self.floor = float(floor)
        self.scale_channels = bool(scale_channels)
        self.level_channels = bool(level_channels)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        valid = _float_mask(mask, inputs)
        count = ops.maximum(ops.sum(valid, axis=1, keepdims=True), 1.0)
        mean = ops.sum(inputs * valid, axis=1, keepdims=True) / count
        centred = (inputs - mean) * valid
        spread = ops.sqrt(ops.sum(ops.square(centred), axis=1, keepdims=True) / count)
        varies = ops.cast(spread > self.floor + FLAT_RELATIVE * ops.abs(mean), inputs.dtype)
        spread = spread * varies + self.floor * (1.0 - varies)  # the floor where it is flat
        parts = [centred / spread * varies]
        if self.scale_channels:
            parts.append(ops.log(spread) * valid)  # (batch, time, channels): zero on padding
        if self.level_channels:
            # sign(m) * log(1 + |m|), written without SIGN (not a TFLite Micro op)
            size = ops.abs(mean)
            level = mean * ops.log(1.0 + size) / ops.maximum(size, LEVEL_TINY)
            parts.append(level * valid)
        return parts[0] if len(parts) == 1 else ops.concatenate(parts, axis=-1)

    def compute_output_shape(self, input_shape):
        channels = input_shape[-1] * (1 + self.scale_channels + self.level_channels)
        return (*input_shape[:-1], channels)

    def get_config(self):
        return {
            **super().get_config(),
            "floor": self.floor,
            "scale_channels": self.scale_channels,
            "level_channels": self.level_channels,
        }


@keras.saving.register_keras_serializable(package="keras_lstm")
class MaskedConv1D(keras.layers.Conv1D):
    """A causal, stride-1 `Conv1D` that keeps the incoming mask.

    Args:
        filters, kernel_size, activation, and the other `Conv1D` arguments; `padding` is always
        `causal` and `strides` 1.

    Example:
        >>> layer = MaskedConv1D(8, 5, activation="relu")
    """

    def __init__(self, filters, kernel_size, **kwargs):
        kwargs.pop("padding", None)
        kwargs.pop("strides", None)
        super().__init__(filters, kernel_size, padding="causal", strides=1, **kwargs)
        self.supports_masking = True

    def compute_mask(self, inputs, mask=None):
        return mask


@keras.saving.register_keras_serializable(package="keras_lstm")
class MaskedMaxPooling1D(keras.layers.Layer):
    """Max over each run of `pool_size` steps (the last run may be shorter), so the sequence is
    `pool_size` times shorter. A pooled step is valid when the first step of its run is; padded
    steps count as zero, exact for non-negative inputs such as a ReLU's output.

    Args:
        pool_size: steps per pooled step (>= 2).

    Example:
        >>> MaskedMaxPooling1D(2)(np.array([[[1.0], [3.0], [2.0]]])).numpy().ravel().tolist()
        [3.0, 2.0]
    """

    def __init__(self, pool_size: int, **kwargs):
        super().__init__(**kwargs)
        if int(pool_size) < 2:
            raise ValueError(f"Expected `pool_size` >= 2. Received: pool_size={pool_size!r}")
        self.pool_size = int(pool_size)
        self.supports_masking = True

    def call(self, inputs, mask=None):
        if mask is not None:
            inputs = inputs * _float_mask(mask, inputs)
        # zeros at the end up to a whole number of runs ("same" padding would put some at the
        # start, so the runs, and the output, would depend on the padded length)
        extra = (-ops.shape(inputs)[1]) % self.pool_size
        inputs = ops.pad(inputs, [[0, 0], [0, extra], [0, 0]])
        return ops.max_pool(inputs, self.pool_size, self.pool_size, padding="valid")

    def compute_mask(self, inputs, mask=None):
        if mask is None:
            return None
        return mask[:, :: self.pool_size]

    def compute_output_shape(self, input_shape):
        time = input_shape[1]
        steps = None if time is None else -(-time // self.pool_size)
        return (input_shape[0], steps, input_shape[2])

    def get_config(self):
        return {**super().get_config(), "pool_size": self.pool_size}


@keras.saving.register_keras_serializable(package="keras_lstm")
class AttentionPooling(keras.layers.Layer):
    """A softmax-weighted sum over time: one learnt score per step, softmax over the valid
    steps, and the sum of the steps weighted by it.

    Example:
        >>> AttentionPooling()(np.ones((2, 5, 3), "float32")).shape
        TensorShape([2, 3])
    """

    def __init__(self, **kwargs):
        super().__init__(**kwargs)
        self.supports_masking = True

    def build(self, input_shape):
        self.score = self.add_weight(
            name="score", shape=(int(input_shape[-1]), 1), initializer="glorot_uniform"
        )
        self.built = True

    def attention(self, inputs, mask=None):
        """The weight of each step `(batch, time, 1)`: a softmax over the valid steps."""
        scores = ops.matmul(inputs, self.score)  # (batch, time, 1)
        # exp(s - max s) times the mask: a masked softmax without a large negative constant
        weights = ops.exp(scores - ops.max(scores, axis=1, keepdims=True))
        weights = weights * _float_mask(mask, inputs)
        return weights / ops.maximum(ops.sum(weights, axis=1, keepdims=True), 1e-9)

    def call(self, inputs, mask=None):
        return ops.sum(self.attention(inputs, mask) * inputs, axis=1)

    def compute_mask(self, inputs, mask=None):
        return None

    def compute_output_shape(self, input_shape):
        return (input_shape[0], input_shape[-1])


class AttentionWeights(keras.layers.Layer):
    """The weights an `AttentionPooling` layer gives each step, as an output (for
    explanations: `keras_lstm.explanation`); it shares the pooling layer's score.

    Example:
        >>> pool = AttentionPooling(); _ = pool(np.ones((1, 4, 2), "float32"))
        >>> AttentionWeights(pool)(np.ones((1, 4, 2), "float32")).numpy().ravel().tolist()
        [0.25, 0.25, 0.25, 0.25]
    """

    def __init__(self, pooling: AttentionPooling, **kwargs):
        super().__init__(**kwargs)
        self.pooling = pooling
        self.supports_masking = True

    def call(self, inputs, mask=None):
        return self.pooling.attention(inputs, mask)[..., 0]

    def compute_mask(self, inputs, mask=None):
        return None


SEQUENCE_LAYERS = {
    cls.__name__: cls
    for cls in (SequenceStandardized, MaskedConv1D, MaskedMaxPooling1D, AttentionPooling)
}
