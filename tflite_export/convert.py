"""TFLite conversion of the export forward pass, one recipe per quantization mode.

Every recipe asks for builtin ops only (`TFLITE_BUILTINS`, plus `TFLITE_BUILTINS_INT8` for the
integer modes); the converter fails rather than fall back to Flex.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from keras_lstm.errors import ExportError

MODES = ("float32", "float16", "dynamic", "int8", "int8-full")

RECIPES = {
    "float32": "float32: fused UNIDIRECTIONAL_SEQUENCE_LSTM, unrolled GRU, no quantization",
    "float16": "float16 weights (dequantized to float32 at load), float32 compute",
    "dynamic": "dynamic range: int8 weights (tensors >= 1024 elements), float activations",
    "int8": (
        "full integer: int8 weights (per-channel) and int8 activations calibrated on the "
        "representative windows, integer LSTM kernel; float32 input/output"
    ),
    "int8-full": (
        "full integer: int8 weights (per-channel) and int8 activations calibrated on the "
        "representative windows, integer LSTM kernel; int8 input/output"
    ),
}


def _converter(function, module):
    concrete = function.get_concrete_function()
    converter = tf.lite.TFLiteConverter.from_concrete_functions([concrete], module)
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter


def _representative(windows: np.ndarray, dtype):
    def generate():
        for window in windows:
            yield [np.asarray(window[None], dtype=dtype)]

    return generate


def convert(function, mode: str, representative: np.ndarray | None = None) -> tuple[bytes, str]:
    """Convert the export `tf.function` to TFLite bytes with `mode`'s recipe.

    Args:
        function: the traced forward pass from `forward.build_forward`.
        mode: one of `float32`, `float16`, `dynamic`, `int8`, `int8-full`.
        representative: calibration windows `(n, lookback, features)`, needed for int8 modes.

    Returns:
        `(model_bytes, recipe)`, the recipe a line saying how the model was quantized.

    Raises:
        ExportError: unknown mode, missing representative windows, or the converter failed.
    """
    if mode not in MODES:
        raise ExportError(f"Expected `mode` to be one of {MODES}. Received: mode={mode!r}")
    module = tf.Module()
    module.forward = function
    converter = _converter(function, module)
    if mode == "float16":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.target_spec.supported_types = [tf.float16]
    elif mode == "dynamic":
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    elif mode in ("int8", "int8-full"):
        if representative is None or len(representative) == 0:
            raise ExportError(
                f"Mode {mode!r} needs representative windows for calibration; pass a bundle or "
                "`representative=` windows (n, lookback, features)."
            )
        spec = function.input_signature[0]
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(
            representative, spec.dtype.as_numpy_dtype
        )
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
        if mode == "int8-full":
            if spec.dtype == tf.float32:
                converter.inference_input_type = tf.int8
            converter.inference_output_type = tf.int8
    try:
        model = converter.convert()
    except Exception as err:  # the converter raises several unrelated types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(
            f"TFLite conversion ({mode}) with builtin ops only failed: {first}"
        ) from err
    return bytes(model), RECIPES[mode]
