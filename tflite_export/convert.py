"""TFLite conversion of the export forward pass, one recipe per quantization mode.

Every recipe asks for builtin ops only (`TFLITE_BUILTINS`, plus `TFLITE_BUILTINS_INT8` for the
integer modes); the converter fails rather than fall back to Flex.
"""

from __future__ import annotations

import numpy as np
import tensorflow as tf
from tensorflow.lite.python import convert as lite_convert

from keras_lstm.config import QUANTIZE_MODES
from keras_lstm.errors import ExportError
from tflite_export.forward import WINDOW_SCOPE
from tflite_export.runtime import interpreter

MODES = QUANTIZE_MODES  # one list, in the config (`export.quantize`)

RECIPES = {
    "float32": "float32: fused UNIDIRECTIONAL_SEQUENCE_LSTM, unrolled GRU, no quantization",
    "float16": "float16 weights (dequantized to float32 at load), float32 compute",
    "dynamic": "dynamic range: int8 weights (tensors >= 1024 elements), float activations",
    "integer-lstm": (
        "full integer: int8 per-channel weights, int8 activations calibrated on the "
        "representative windows, integer LSTM kernel (16-bit cell state)"
    ),
    "float-lstm": (
        "selective: int8 Conv/Dense/other ops calibrated on the representative windows, fused "
        "LSTMs kept in float32 (denylisted from quantization)"
    ),
    "window-integer": (
        "selective: window normalization and the output mapping kept in float32, so windows "
        "outside the training range are exact; the core (LSTM, Conv, Dense) int8, calibrated "
        "on the representative windows"
    ),
    "window-float-lstm": (
        "selective: window normalization, the output mapping and the fused LSTMs kept in "
        "float32; Conv/Dense int8"
    ),
}

# Integer modes try these in order; `export` keeps the first whose parity meets
# `INTEGER_TARGET`, else the most accurate.
INTEGER_RECIPES = ("integer-lstm", "float-lstm")
# A window-normalized model reads raw values: its input and output stay float32 in every mode.
WINDOW_RECIPES = ("window-integer", "window-float-lstm")
INTEGER_TARGET = 0.02
# Builtin ops LiteRT runs in float only: integer recipes keep them float32.
FLOAT_ONLY_OPS = ["REVERSE_SEQUENCE"]


def _reverses_valid_steps(function) -> bool:
    """Whether the traced forward pass reverses only each sequence's valid steps (masked
    Bidirectional layers): TensorFlow's ReverseSequence becomes TFLite's REVERSE_SEQUENCE,
    which LiteRT runs in float only. Read from the traced graph, no conversion needed."""
    graph = function.get_concrete_function().graph
    return any(op.type == "ReverseSequence" for op in graph.get_operations())


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


def recipes(mode: str, window: bool = False) -> tuple[str, ...]:
    """The recipes `export` tries for `mode`, in order (`window`: the model is window
    normalized)."""
    if mode not in MODES:
        raise ExportError(f"Expected `mode` to be one of {MODES}. Received: mode={mode!r}")
    if mode not in ("int8", "int8-full"):
        return (mode,)
    return WINDOW_RECIPES if window else INTEGER_RECIPES


def _float_nodes(calibrated: bytes) -> list[str]:
    """Tensors of the window normalization and the model output: kept float in int8 modes."""
    lite = interpreter(calibrated)
    names = [d["name"] for d in lite.get_tensor_details()]
    outputs = [d["name"] for d in lite.get_output_details()]
    return [n for n in names if n.startswith(WINDOW_SCOPE)] + outputs


def convert(
    function,
    mode: str,
    representative: np.ndarray | None = None,
    recipe: str | None = None,
    window: bool = False,
) -> tuple[bytes, str]:
    """Convert the export `tf.function` to TFLite bytes with one of `mode`'s recipes.

    Args:
        function: the traced forward pass from `forward.build_forward`.
        mode: one of `float32`, `float16`, `dynamic`, `int8`, `int8-full`.
        representative: calibration windows `(n, lookback, features)`, needed for int8 modes.
        recipe: one of `recipes(mode, window)`; default the first.
        window: the forward pass holds window normalization (`tflite_export.forward`).

    Returns:
        `(model_bytes, recipe_description)`.

    Raises:
        ExportError: unknown mode, missing representative windows, or the converter failed.
    """
    recipe = recipe or recipes(mode, window)[0]
    if recipe not in recipes(mode, window):
        raise ExportError(f"Recipe {recipe!r} does not apply to mode {mode!r}.")
    module = tf.Module()
    module.forward = function
    converter = _converter(function, module)
    spec = function.input_signature[0]
    integer_io = mode == "int8-full" and not window
    float_reverse = False
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
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
        converter.representative_dataset = _representative(
            representative, spec.dtype.as_numpy_dtype
        )
        float_reverse = recipe == "integer-lstm" and _reverses_valid_steps(function)
        if recipe == "integer-lstm" and not float_reverse:
            converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS_INT8]
            if integer_io:
                if spec.dtype == tf.float32:
                    converter.inference_input_type = tf.int8
                converter.inference_output_type = tf.int8
        else:
            converter._experimental_calibrate_only = True
    try:
        model = converter.convert()
        if recipe == "float-lstm" or float_reverse:
            # float-lstm keeps the fused LSTMs float; an integer model with REVERSE_SEQUENCE
            # (the masked backward direction, no int8 kernel in LiteRT) keeps that op alone float
            float_input = not integer_io or spec.dtype != tf.float32
            model = lite_convert.mlir_quantize(
                model,
                fully_quantize=integer_io,
                input_data_type=tf.float32 if float_input else tf.int8,
                output_data_type=tf.int8 if integer_io else tf.float32,
                denylisted_ops=FLOAT_ONLY_OPS
                if float_reverse
                else ["UNIDIRECTIONAL_SEQUENCE_LSTM", *FLOAT_ONLY_OPS],
            )
        elif recipe in WINDOW_RECIPES:
            # fully_quantize would make the input int8, clipping windows beyond the calibration
            # range before they are normalized; the normalization must see raw floats.
            model = lite_convert.mlir_quantize(
                model,
                fully_quantize=False,
                input_data_type=tf.float32,
                output_data_type=tf.float32,
                denylisted_ops=["UNIDIRECTIONAL_SEQUENCE_LSTM", *FLOAT_ONLY_OPS]
                if recipe == "window-float-lstm"
                else FLOAT_ONLY_OPS,
                denylisted_nodes=_float_nodes(model),
            )
    except Exception as err:  # the converter raises several unrelated types
        first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
        raise ExportError(
            f"TFLite conversion ({mode}, {recipe}) with builtin ops only failed: {first}"
        ) from err
    description = RECIPES[recipe]
    if mode in ("int8", "int8-full"):
        description += "; int8 input/output" if integer_io else "; float32 input/output"
        if window and mode == "int8-full":
            description += " (the window normalization needs the raw float values)"
    return bytes(model), f"{recipe}: {description}" if recipe != mode else description
