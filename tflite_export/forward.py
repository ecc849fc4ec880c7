"""An export-only forward pass: the factory's Keras layers re-written in plain TensorFlow ops.

Keras 3 traces recurrent layers into while loops over tensor lists, which the TFLite converter
can lower only with Flex ops. This module re-states the inference-time forward pass of a
`keras.Sequential` in ops the converter turns into builtins, reading the Keras layers' weights as
constants (so no variable freezing is involved):

- every `LSTM` (and each direction of a `Bidirectional(LSTM)`) becomes a `tf.function` whose
  attributes carry `api_implements: "lstm_<id>"` and whose signature is Keras 2's
  `standard_lstm`; the converter replaces it with one fused `UNIDIRECTIONAL_SEQUENCE_LSTM`;
- every `GRU` becomes one `tf.while_loop` over the static window length (a builtin WHILE
  whose body is one step), so its file and its int8 quantization parameters hold one step;
- `Conv1D`, `Dense`, `Embedding`, `Reshape` and `Flatten` become their TF ops; `Dropout` and other
  inference-time identities vanish.

The traced function has a static batch of 1 (the fused op needs a static batch), so a TFLite
interpreter runs one window per `invoke()` and must have its variables reset between windows.

Example:
    >>> forward = build_forward(model, lookback=12)  # doctest: +SKIP
    >>> forward(np.zeros((1, 12, 3), np.float32)).shape  # doctest: +SKIP
    TensorShape([1, 1, 1])
"""

from __future__ import annotations

import uuid

import numpy as np
import tensorflow as tf

from keras_lstm.errors import ExportError
from keras_lstm.factory import stack_layers
from keras_lstm.sequence_layers import FLAT_RELATIVE, LEVEL_TINY

_IDENTITY_LAYERS = (
    "Dropout",
    "SpatialDropout1D",
    "GaussianNoise",
    "GaussianDropout",
    "AlphaDropout",
    "ActivityRegularization",
    "InputLayer",
)

_ACTIVATIONS = {
    "linear": lambda x: x,
    "relu": tf.nn.relu,
    "sigmoid": tf.sigmoid,
    "tanh": tf.tanh,
    "softmax": lambda x: tf.nn.softmax(x, axis=-1),
    "elu": tf.nn.elu,
    "relu6": tf.nn.relu6,
    "swish": tf.nn.silu,
    "silu": tf.nn.silu,
}


def _activation(layer, attribute="activation"):
    import keras

    function = getattr(layer, attribute)
    name = keras.activations.serialize(function)
    if isinstance(name, dict):
        name = name.get("config", name.get("class_name"))
    if name not in _ACTIVATIONS:
        raise ExportError(
            f"Layer {layer.name!r} uses activation {name!r}, which the exporter does not "
            f"support. Use one of {sorted(_ACTIVATIONS)}."
        )
    return name


def _constant(value) -> tf.Tensor:
    return tf.constant(np.asarray(value, dtype=np.float32))


def _standard_lstm(inputs, init_h, init_c, kernel, recurrent_kernel, bias):
    """Keras 2's `standard_lstm` contract, batch-major: what the converter fuses.

    The converter replaces the whole body by one `UNIDIRECTIONAL_SEQUENCE_LSTM`; the body still
    has to be the true recurrence so the function means the same in TensorFlow.
    """
    h, c = init_h, init_c
    outputs = []
    for step in range(inputs.shape[1]):
        z = tf.matmul(inputs[:, step], kernel) + tf.matmul(h, recurrent_kernel) + bias
        z_i, z_f, z_c, z_o = tf.split(z, 4, axis=1)
        c = tf.sigmoid(z_f) * c + tf.sigmoid(z_i) * tf.tanh(z_c)
        h = tf.sigmoid(z_o) * tf.tanh(c)
        outputs.append(h)
    return h, tf.stack(outputs, axis=1), h, c, tf.constant(0.0)


def _fused_lstm_function():
    # A unique `api_implements` per layer: the converter fuses each function separately.
    attributes = {
        "api_implements": f"lstm_{uuid.uuid4().hex}",
        "api_preferred_device": "CPU",
        "time_major": False,
        "go_backwards": False,
    }
    return tf.function(_standard_lstm, experimental_attributes=attributes, autograph=False)


class _LSTM:
    def __init__(self, layer, reverse=False):
        cell = getattr(layer, "cell", layer)
        _check_recurrent(layer, cell, "tanh", "sigmoid")
        kernel, recurrent_kernel = cell.kernel.numpy(), cell.recurrent_kernel.numpy()
        units = recurrent_kernel.shape[0]
        bias = cell.bias.numpy() if cell.use_bias else np.zeros(4 * units, np.float32)
        self.weights = [_constant(kernel), _constant(recurrent_kernel), _constant(bias)]
        self.units = units
        self.return_sequences = layer.return_sequences
        self.reverse = reverse ^ bool(layer.go_backwards)
        self.function = _fused_lstm_function()

    def __call__(self, x, length=None):
        if self.reverse:
            x = _reverse(x, length)
        zeros = tf.zeros([x.shape[0], self.units], tf.float32)
        last, sequence, _, _, _ = self.function(x, zeros, zeros, *self.weights)
        if self.return_sequences:
            return sequence
        return last if length is None else _last_valid(sequence, length)


class _GRU:
    def __init__(self, layer, reverse=False):
        cell = getattr(layer, "cell", layer)
        _check_recurrent(layer, cell, "tanh", "sigmoid")
        units = cell.units
        self.kernel = _constant(cell.kernel.numpy())
        self.recurrent_kernel = _constant(cell.recurrent_kernel.numpy())
        self.reset_after = cell.reset_after
        if cell.use_bias:
            bias = cell.bias.numpy()
            if self.reset_after:
                input_bias, recurrent_bias = bias[0], bias[1]
            else:
                input_bias, recurrent_bias = bias, np.zeros(3 * units, np.float32)
        else:
            input_bias = recurrent_bias = np.zeros(3 * units, np.float32)
        self.input_bias, self.recurrent_bias = _constant(input_bias), _constant(recurrent_bias)
        self.units = units
        self.return_sequences = layer.return_sequences
        self.reverse = reverse ^ bool(layer.go_backwards)
        self.loop = True

    def __call__(self, x, length=None):
        if self.reverse:
            x = _reverse(x, length)
        # One matmul for the input projection of every step; the recurrence is a loop.
        projected = tf.einsum("btf,fk->btk", x, self.kernel) + self.input_bias
        keep_sequence = self.return_sequences or length is not None
        run = self._loop if self.loop else self._unrolled
        h, sequence = run(projected, keep_sequence)
        if self.return_sequences:
            return sequence
        return h if length is None else _last_valid(sequence, length)

    def _step(self, projected_step, h):
        """One GRU step from the input projection of that step and the previous state."""
        units = self.units
        x_z, x_r, x_h = tf.split(projected_step, 3, axis=1)
        if self.reset_after:
            inner = tf.matmul(h, self.recurrent_kernel) + self.recurrent_bias
            r_z, r_r, r_h = tf.split(inner, 3, axis=1)
            z = tf.sigmoid(x_z + r_z)
            r = tf.sigmoid(x_r + r_r)
            candidate = tf.tanh(x_h + r * r_h)
        else:
            inner = tf.matmul(h, self.recurrent_kernel[:, : 2 * units])
            r_z, r_r = tf.split(inner, 2, axis=1)
            z = tf.sigmoid(x_z + r_z)
            r = tf.sigmoid(x_r + r_r)
            candidate = tf.tanh(x_h + tf.matmul(r * h, self.recurrent_kernel[:, 2 * units :]))
        return z * h + (1.0 - z) * candidate

    def _unrolled(self, projected, keep_sequence):
        """The recurrence written out step by step: one set of ops per time step, which the
        int8 quantizer makes all-integer (the `WHILE` form keeps its loop state float)."""
        h = tf.zeros([projected.shape[0], self.units], tf.float32)
        outputs = []
        for step in range(projected.shape[1]):
            h = self._step(projected[:, step], h)
            outputs.append(h)
        return h, (tf.stack(outputs, axis=1) if keep_sequence else None)

    def _loop(self, projected, keep_sequence):
        """The recurrence as one `tf.while_loop` (a TFLite WHILE op whose body holds one step),
        so the file holds one step's ops and quantization parameters, not one per time step.

        Every loop variable changes in the body: the projected inputs rotate by one step (the
        body reads step 0) and the outputs shift in at the end, since TF's calibrator crashes
        on a WHILE whose body passes a variable through unchanged (tensorflow issue 75140).
        After `steps` turns the inputs are back in order and the outputs are too.
        """
        steps = projected.shape[1]
        h = tf.zeros([projected.shape[0], self.units], tf.float32)
        sequence = tf.zeros([projected.shape[0], steps, self.units], tf.float32)

        def body(step, h, inputs, *sequence):
            h = self._step(inputs[:, 0], h)
            inputs = tf.concat([inputs[:, 1:], inputs[:, :1]], axis=1)
            if sequence:
                sequence = (tf.concat([sequence[0][:, 1:], h[:, None]], axis=1),)
            return (step + 1, h, inputs, *sequence)

        variables = (tf.constant(0), h, projected, *((sequence,) if keep_sequence else ()))
        result = tf.while_loop(lambda step, *_: step < steps, body, variables)
        return result[1], (result[3] if keep_sequence else None)


def _reverse(x, length=None):
    """Reverse the time axis; with `length`, only the first `length` (valid) steps, so padding
    stays at the end, as Keras' masked backward pass sees the sequence."""
    if length is None:
        return tf.reverse(x, axis=[1])
    return tf.reverse_sequence(x, length, seq_axis=1, batch_axis=0)


def _last_valid(sequence, length):
    """The output at each sequence's last valid step (what a masked Keras RNN returns)."""
    return tf.gather(sequence, length - 1, axis=1, batch_dims=1)


class _Masking:
    """Masking becomes a length: trailing padded steps (every feature equal to `mask_value`)
    are counted off, recurrent layers return the output at the last valid step, and backward
    directions reverse only the valid steps. Valid steps never see the padding after them, so
    the result equals Keras' masked one for sequences padded at the end."""

    def __init__(self, layer):
        self.mask_value = float(layer.mask_value)

    def length(self, x):
        valid = tf.reduce_any(tf.not_equal(x, self.mask_value), axis=-1)
        return tf.maximum(tf.reduce_sum(tf.cast(valid, tf.int32), axis=1), 1)


def _check_recurrent(layer, cell, activation, recurrent_activation):
    if getattr(layer, "return_state", False) or getattr(layer, "stateful", False):
        raise ExportError(
            f"Recurrent layer {layer.name!r} has return_state or stateful set; the exporter "
            "handles sequence-to-output layers only. Rebuild it with both off."
        )
    if _activation(cell) != activation or _activation(cell, "recurrent_activation") != (
        recurrent_activation
    ):
        raise ExportError(
            f"Recurrent layer {layer.name!r} must use activation={activation!r} and "
            f"recurrent_activation={recurrent_activation!r} to become a builtin TFLite op."
        )


def _recurrent(layer, reverse=False):
    kind = type(layer).__name__
    if kind == "LSTM":
        return _LSTM(layer, reverse)
    if kind == "GRU":
        return _GRU(layer, reverse)
    raise ExportError(
        f"Recurrent layer {layer.name!r} of type {kind} is not supported; use LSTM or GRU."
    )


class _Bidirectional:
    def __init__(self, layer):
        self.forward = _recurrent(layer.forward_layer)
        # The backward layer has go_backwards=True already: `_recurrent` reverses the input.
        self.backward = _recurrent(layer.backward_layer)
        self.merge_mode = layer.merge_mode
        self.return_sequences = layer.return_sequences
        if self.merge_mode not in ("concat", "sum", "mul", "ave"):
            raise ExportError(
                f"Bidirectional layer {layer.name!r} has merge_mode={self.merge_mode!r}; "
                "expected concat, sum, mul or ave."
            )

    def __call__(self, x, length=None):
        forward = self.forward(x, length)
        backward = self.backward(x, length)
        if self.return_sequences:
            backward = _reverse(backward, length)
        if self.merge_mode == "concat":
            return tf.concat([forward, backward], axis=-1)
        if self.merge_mode == "sum":
            return forward + backward
        if self.merge_mode == "mul":
            return forward * backward
        return (forward + backward) * 0.5


class _Dense:
    def __init__(self, layer):
        self.kernel = _constant(layer.kernel.numpy())
        self.bias = _constant(layer.bias.numpy()) if layer.use_bias else None
        self.activation = _ACTIVATIONS[_activation(layer)]

    def __call__(self, x):
        if x.shape.rank == 2:
            y = tf.matmul(x, self.kernel)
        else:
            y = tf.einsum("...i,ij->...j", x, self.kernel)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)


class _Conv1D:
    def __init__(self, layer):
        if layer.data_format != "channels_last" or layer.groups != 1:
            raise ExportError(
                f"Conv1D layer {layer.name!r} must be channels_last with groups=1 to export."
            )
        self.kernel = _constant(layer.kernel.numpy())
        self.bias = _constant(layer.bias.numpy()) if layer.use_bias else None
        self.activation = _ACTIVATIONS[_activation(layer)]
        self.stride = layer.strides[0]
        self.dilation = layer.dilation_rate[0]
        self.padding = layer.padding
        self.size = layer.kernel_size[0]

    def __call__(self, x):
        padding = self.padding.upper()
        if self.padding == "causal":
            x = tf.pad(x, [[0, 0], [self.dilation * (self.size - 1), 0], [0, 0]])
            padding = "VALID"
        y = tf.nn.conv1d(x, self.kernel, self.stride, padding, dilations=self.dilation)
        if self.bias is not None:
            y = y + self.bias
        return self.activation(y)


class _Embedding:
    def __init__(self, layer):
        if getattr(layer, "mask_zero", False):
            raise ExportError(
                f"Embedding {layer.name!r} has mask_zero=True: the fused TFLite LSTM cannot skip "
                "masked steps, so token 0 would be read as a real token. Build the model with "
                "mask_zero=False (pad with a token the model learns) to export it."
            )
        self.table = _constant(layer.embeddings.numpy())

    def __call__(self, x):
        return tf.gather(self.table, tf.cast(x, tf.int32))


class _Reshape:
    def __init__(self, target_shape):
        self.target_shape = [int(d) for d in target_shape]

    def __call__(self, x):
        return tf.reshape(x, [x.shape[0], *self.target_shape])


WINDOW_SCOPE = "window_normalization"


class _WindowNormalized:
    """Window statistics and the output mapping in plain ops (MEAN, SUB, SQUARE, SQRT,
    MAXIMUM, DIV, MUL, ADD), each named under `WINDOW_SCOPE` so that integer exports can keep
    exactly these ops in float; the wrapped layers are converted like any other."""

    def __init__(self, layer):
        self.steps = [step for step in map(_convert_layer, layer.core.layers) if step is not None]
        self.highway = None
        if layer.highway is not None:
            self.highway = [
                step for step in map(_convert_layer, layer.highway.layers) if step is not None
            ]
        self.channels = list(layer.target_channels)
        self.center = layer.center
        self.floor = float(layer.floor)
        self.base_steps = getattr(layer, "base_steps", None)

    def __call__(self, x):
        inputs = x
        if self.center != "none":
            with tf.name_scope(WINDOW_SCOPE):
                mean = tf.reduce_mean(x, axis=1, keepdims=True)
                spread = tf.sqrt(tf.reduce_mean(tf.square(x - mean), axis=1, keepdims=True))
                spread = tf.maximum(spread, self.floor)
                level = x[:, -1:, :] if self.center == "last" else mean
                x = (x - level) / spread
        normalized = x
        for step in self.steps:
            x = step(x)
        if self.highway is not None:
            linear = normalized
            for step in self.highway:
                linear = step(linear)
            x = x + linear
        if self.center == "none" or not self.channels:
            return x
        with tf.name_scope(WINDOW_SCOPE + "_output"):
            if self.base_steps is not None:
                level = tf.gather(inputs, self.base_steps, axis=1)
            spread = tf.gather(spread, self.channels, axis=2)
            level = tf.gather(level, self.channels, axis=2)
            return x * spread + level


def _valid(x, length):
    """`(batch, time, 1)` ones at the valid steps (all ones without a length)."""
    if length is None:
        return tf.ones_like(x[..., :1])
    return tf.expand_dims(tf.sequence_mask(length, x.shape[1], dtype=x.dtype), -1)


class _SequenceStandardized:
    def __init__(self, layer):
        self.floor = float(layer.floor)
        self.scale_channels = bool(getattr(layer, "scale_channels", False))
        self.level_channels = bool(getattr(layer, "level_channels", False))

    def __call__(self, x, length=None):
        valid = _valid(x, length)
        count = tf.maximum(tf.reduce_sum(valid, axis=1, keepdims=True), 1.0)
        mean = tf.reduce_sum(x * valid, axis=1, keepdims=True) / count
        centred = (x - mean) * valid
        spread = tf.sqrt(tf.reduce_sum(tf.square(centred), axis=1, keepdims=True) / count)
        varies = tf.cast(spread > self.floor + FLAT_RELATIVE * tf.abs(mean), x.dtype)
        spread = spread * varies + self.floor * (1.0 - varies)  # as the Keras layer
        parts = [centred / spread * varies]
        if self.scale_channels:
            parts.append(tf.math.log(spread) * valid)
        if self.level_channels:
            size = tf.abs(mean)  # sign(m) * log(1 + |m|) without SIGN, as the Keras layer
            level = mean * tf.math.log(1.0 + size) / tf.maximum(size, LEVEL_TINY)
            parts.append(level * valid)
        return parts[0] if len(parts) == 1 else tf.concat(parts, axis=-1)


class _MaxPooling1D:
    """Keras' `MaxPooling1D` or the mask-aware `MaskedMaxPooling1D`; the valid length shrinks
    to `ceil(length / pool_size)`."""

    def __init__(self, layer):
        masked = type(layer).__name__ == "MaskedMaxPooling1D"
        size = layer.pool_size if masked else layer.pool_size[0]
        self.size, self.masked = int(size), masked
        self.stride = self.size if masked else int(layer.strides[0])
        self.padding = "VALID" if masked else layer.padding.upper()

    def __call__(self, x, length=None):
        if self.masked:
            if length is not None:
                x = x * _valid(x, length)
            x = tf.pad(x, [[0, 0], [0, (-x.shape[1]) % self.size], [0, 0]])
        y = tf.nn.max_pool1d(x, self.size, self.stride, self.padding)
        if length is None:
            return y, None
        return y, (length + self.size - 1) // self.size


class _BatchNormalization:
    """Inference-time batch normalization: one multiply and one add per channel."""

    def __init__(self, layer):
        if layer.axis not in (-1, 2):
            raise ExportError(
                f"BatchNormalization layer {layer.name!r} must normalize the last axis to export."
            )
        scale = 1.0 / np.sqrt(layer.moving_variance.numpy() + layer.epsilon)
        if layer.scale:
            scale = scale * layer.gamma.numpy()
        offset = -layer.moving_mean.numpy() * scale
        if layer.center:
            offset = offset + layer.beta.numpy()
        self.scale, self.offset = _constant(scale), _constant(offset)

    def __call__(self, x):
        return x * self.scale + self.offset


class _GlobalAveragePooling1D:
    def __call__(self, x, length=None):
        if length is None:
            return tf.reduce_mean(x, axis=1)
        valid = _valid(x, length)
        return tf.reduce_sum(x * valid, axis=1) / tf.reduce_sum(valid, axis=1)


class _AttentionPooling:
    def __init__(self, layer):
        self.score = _constant(layer.score.numpy())

    def __call__(self, x, length=None):
        scores = tf.einsum("btf,fk->btk", x, self.score)
        weights = tf.exp(scores - tf.reduce_max(scores, axis=1, keepdims=True)) * _valid(x, length)
        weights = weights / tf.maximum(tf.reduce_sum(weights, axis=1, keepdims=True), 1e-9)
        return tf.reduce_sum(weights * x, axis=1)


_LENGTH_AWARE = (_SequenceStandardized, _GlobalAveragePooling1D, _AttentionPooling)


def _convert_layer(layer):
    kind = type(layer).__name__
    if kind in _IDENTITY_LAYERS:
        return None
    if kind == "WindowNormalized":
        return _WindowNormalized(layer)
    if kind in ("LSTM", "GRU"):
        return _recurrent(layer)
    if kind == "Bidirectional":
        return _Bidirectional(layer)
    if kind == "Dense":
        return _Dense(layer)
    if kind in ("Conv1D", "MaskedConv1D"):
        return _Conv1D(layer)
    if kind in ("MaxPooling1D", "MaskedMaxPooling1D"):
        return _MaxPooling1D(layer)
    if kind == "BatchNormalization":
        return _BatchNormalization(layer)
    if kind == "SequenceStandardized":
        return _SequenceStandardized(layer)
    if kind == "GlobalAveragePooling1D":
        return _GlobalAveragePooling1D()
    if kind == "AttentionPooling":
        return _AttentionPooling(layer)
    if kind == "Embedding":
        return _Embedding(layer)
    if kind == "Reshape":
        return _Reshape(layer.target_shape)
    if kind == "Masking":
        return _Masking(layer)
    if kind == "Flatten":
        return lambda x: tf.reshape(x, [x.shape[0], -1])
    if kind == "Activation":
        return _ACTIVATIONS[_activation(layer)]
    raise ExportError(
        f"Layer {layer.name!r} of type {kind} is not supported by the TFLite exporter. "
        "Supported: Masking, Embedding, Conv1D, BatchNormalization, MaxPooling1D, LSTM, GRU, "
        "Bidirectional, GlobalAveragePooling1D, Dropout, Dense, Reshape, Flatten, Activation, "
        "WindowNormalized and keras_lstm's sequence layers."
    )


def is_window_normalized(model) -> bool:
    """Whether the model scales each window by its own statistics (`data.scaler: window`)."""
    return any(
        type(layer).__name__ == "WindowNormalized" and layer.center != "none"
        for layer in model.layers
    )


def input_spec(model, lookback: int | None = None) -> tf.TensorSpec:
    """The static `[1, lookback, features]` (or `[1, lookback]` token ids) input signature."""
    shape = list(model.input_shape)[1:]
    time = shape[0]
    if time is None:
        if lookback is None:
            raise ExportError(
                "The model's time dimension is None; pass `lookback=` (a bundle carries it)."
            )
        time = int(lookback)
    elif lookback is not None and int(lookback) != time:
        raise ExportError(
            f"The model expects windows of {time} steps; received lookback={lookback}."
        )
    embedded = any(type(layer).__name__ == "Embedding" for layer in stack_layers(model))
    if embedded:
        return tf.TensorSpec([1, time], tf.int32, name="window")
    if len(shape) != 2 or shape[1] is None:
        raise ExportError(
            f"Expected a model taking (time, features) windows; its input shape is "
            f"{model.input_shape}."
        )
    return tf.TensorSpec([1, time, int(shape[1])], tf.float32, name="window")


def _grus(steps):
    """Every `_GRU` among `steps`, inside Bidirectional and window-normalized wrappers too."""
    for step in steps:
        if isinstance(step, _WindowNormalized):
            yield from _grus([*step.steps, *(step.highway or ())])
        parts = (step.forward, step.backward) if isinstance(step, _Bidirectional) else (step,)
        yield from (part for part in parts if isinstance(part, _GRU))


def build_forward(model, lookback: int | None = None, gru_loop: bool = True):
    """A `tf.function` computing `model(x, training=False)` with converter-friendly ops.

    Args:
        model: a `keras.Sequential` built by `keras_lstm.build_model` (or of the same layers).
        lookback: window length, needed only when the model's time dimension is None.
        gru_loop: GRUs become one WHILE op holding one step (a file about 4x smaller, 0.84x
            float32 in int8, whose loop state stays float32 between steps); False unrolls them
            over the window, which int8 quantizes all-integer (`int8-full`, `int16x8`).

    Returns:
        `(function, spec)`: the traced function with a static batch-1 input signature, and the
        input `tf.TensorSpec`.

    Raises:
        ExportError: a layer, activation or option has no builtin TFLite form.
    """
    layers = getattr(model, "layers", None)
    if layers is None:
        raise ExportError(f"Expected a Keras model; received {type(model).__name__}.")
    steps = [step for step in map(_convert_layer, layers) if step is not None]
    for gru in _grus(steps):
        gru.loop = gru_loop
    spec = input_spec(model, lookback)

    @tf.function(input_signature=[spec], autograph=False)
    def forward(window):
        x, length = window, None
        for step in steps:
            if isinstance(step, _Masking):
                length = step.length(x)
            elif isinstance(step, (_LSTM, _GRU, _Bidirectional, *_LENGTH_AWARE)):
                x = step(x, length)
            elif isinstance(step, _MaxPooling1D):
                x, length = step(x, length)
            else:
                x = step(x)
        return {"prediction": x}

    return forward, spec
