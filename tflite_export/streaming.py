"""A step model for streaming: one time step per `invoke()`, the LSTM state carried between calls.

On a device, sensor data arrives a step at a time. A window model re-runs `lookback` steps for
every new one; the step model runs one. Its fused `UNIDIRECTIONAL_SEQUENCE_LSTM` ops keep their
hidden and cell state in variable tensors between `invoke()` calls, so after the last step of a
window (or of a whole sequence) its output is the window model's output. `reset_all_variables()`
starts a new stream.

Only what reads the stream forward, one step at a time, can stream: unidirectional LSTM layers,
Dense, Dropout, Reshape, Activation (and Masking, which a stream does not need). Everything that
needs the whole window before its first output is refused with the reason:

- `Bidirectional`: its backward direction reads the window from its last step;
- `GRU`: TFLite has no fused GRU, so there is no state tensor to carry (use `model.cell: lstm`);
- `Conv1D`, pooling, attention pooling, per-sequence standardization;
- `data.scaler: window` and `model.linear_path`: both read the whole window.

Example:
    >>> forward, spec = build_step_forward(model)  # doctest: +SKIP
    >>> spec.shape  # doctest: +SKIP
    TensorShape([1, 1, 3])
"""

from __future__ import annotations

import tensorflow as tf

from keras_lstm.errors import ExportError
from tflite_export.forward import _IDENTITY_LAYERS, _convert_layer

_WHY = {
    "Bidirectional": "its backward direction reads the window from its last step, so nothing "
    "can be output before the whole window has arrived; build it with "
    "`model.bidirectional: false`",
    "GRU": "TFLite has no fused GRU op whose state could be kept between calls; use "
    "`model.cell: lstm`",
    "Conv1D": "a convolution needs the steps before each one; build it without "
    "`model.conv_filters`",
    "MaskedConv1D": "a convolution needs the steps before each one; build it without "
    "`model.conv_filters`",
    "MaxPooling1D": "pooling outputs one step per several inputs; set `model.conv_pool: 1`",
    "MaskedMaxPooling1D": "pooling outputs one step per several inputs; set `model.conv_pool: 1`",
    "AttentionPooling": "attention weighs every step of the whole sequence; use "
    "`model.pooling: last`",
    "GlobalAveragePooling1D": "the mean is over the whole sequence; use `model.pooling: last`",
    "SequenceStandardized": "each sequence is scaled by its own statistics, known only at its "
    "end; use `data.scaler: standard`",
    "BatchNormalization": "it follows a convolution, which cannot stream",
    "Embedding": "token models read whole texts; stream numeric features",
}
_STREAMABLE = ("LSTM", "Dense", "Reshape", "Activation", "Flatten", "Masking")


def _why_not_streamable(layer) -> str | None:
    """Why `layer` cannot run one step at a time, or None when it can."""
    kind = type(layer).__name__
    if kind in _IDENTITY_LAYERS or kind in _STREAMABLE:
        if kind == "LSTM" and layer.go_backwards:
            return (
                f"layer {layer.name!r} reads the window backwards; build it with go_backwards=False"
            )
        return None
    if kind in _WHY:
        return f"layer {layer.name!r} ({kind}): {_WHY[kind]}"
    return (
        f"layer {layer.name!r} ({kind}) is not a step-by-step layer (streamable layers: "
        f"{', '.join(_STREAMABLE)}, Dropout)"
    )


def stream_layers(model) -> list:
    """The model's layers for a step model, unwrapping a `WindowNormalized` that neither
    centres nor adds a linear path.

    Raises:
        ExportError: something needs the whole window (see the module docstring); the message
            names every cause at once, so one retraining fixes them all.
    """
    layers, causes = [], []
    for layer in getattr(model, "layers", []):
        if type(layer).__name__ == "WindowNormalized":
            if layer.center != "none":
                causes.append(
                    "it scales each window by its own last value and spread (`data.scaler: "
                    "window`), known only when the window is complete: train it with "
                    "`data.scaler: standard`"
                )
            if layer.linear or getattr(layer, "base_steps", None):
                causes.append(
                    "`model.linear_path` (or `model.seasonal_base`) adds a linear map of the "
                    "whole window: train it with `model.linear_path: false` (and "
                    "`model.seasonal_base: false`)"
                )
            layers.extend(layer.core.layers)
        else:
            layers.append(layer)
    causes += [why for why in map(_why_not_streamable, layers) if why]
    if not any(type(layer).__name__ == "LSTM" for layer in layers):
        causes.append("it has no LSTM layer: there is no state to stream")
    if causes:
        numbered = "; ".join(f"({i}) {cause}" for i, cause in enumerate(causes, 1))
        raise ExportError(f"This model cannot stream: {numbered}.")
    return layers


def build_step_forward(model):
    """A `tf.function` taking one step `[1, 1, features]`, whose fused LSTMs carry their state.

    Returns:
        `(function, spec)` like `tflite_export.forward.build_forward`.

    Raises:
        ExportError: the model cannot stream (the message says which layer and why).
    """
    layers = stream_layers(model)
    features = model.input_shape[-1]
    if features is None or len(model.input_shape) != 3:
        raise ExportError(
            f"Expected a model taking (time, features) windows; its input shape is "
            f"{model.input_shape}."
        )
    steps = [
        step
        for step in map(_convert_layer, layers)
        if step is not None and type(step).__name__ != "_Masking"
    ]
    spec = tf.TensorSpec([1, 1, int(features)], tf.float32, name="step")

    @tf.function(input_signature=[spec], autograph=False)
    def forward(step_input):
        x = step_input
        for step in steps:
            x = step(x)
        return {"prediction": x}

    return forward, spec
