"""TFLite conversion of the export forward pass, one recipe per quantization mode.

Every conversion asks for builtin ops only (`TFLITE_BUILTINS`): the converter fails rather than
fall back to Flex. The integer modes calibrate once (`calibrate`: the ranges each tensor took on
the representative windows, widened by a margin) and then quantize with each recipe
(`quantize`), so trying several recipes costs one calibration.
"""

from __future__ import annotations

from dataclasses import dataclass

import flatbuffers
import numpy as np
import tensorflow as tf
from tensorflow.lite.python import convert as lite_convert
from tensorflow.lite.python import schema_py_generated as schema

from keras_lstm.config import QUANTIZE_MODES, ExportConfig
from keras_lstm.errors import ExportError
from keras_lstm.stderr import native_stderr_silenced
from tflite_export.forward import WINDOW_SCOPE
from tflite_export.runtime import interpreter

MODES = QUANTIZE_MODES  # one list, in the config (`export.quantize`)
# converter modes: int16x8 is int8-full requantized afterwards (`tflite_export.requantize`)
CONVERTER_MODES = tuple(m for m in MODES if m != "int16x8")

RECIPES = {
    "float32": "float32: fused UNIDIRECTIONAL_SEQUENCE_LSTM, GRU as a WHILE loop, no quantization",
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
# With `float_lstms`, the integer recipes keep those fused LSTMs (by output tensor) in float32.
PARTIAL = (
    "; the fused LSTMs {names} kept in float32 (the fewest that met the parity target), the "
    "other LSTMs integer"
)

# Integer modes try these in order; `export` keeps the first whose parity meets
# `INTEGER_TARGET`, else the most accurate. Between the two, `export` tries keeping the fewest
# fused LSTMs in float (`float_lstms`), one more at a time.
INTEGER_RECIPES = ("integer-lstm", "float-lstm")
# A window-normalized model reads raw values: its input and output stay float32 in every mode.
WINDOW_RECIPES = ("window-integer", "window-float-lstm")
INTEGER_TARGET = 0.02
# Calibration ranges are widened by this fraction of their span on each side before int8
# quantization: new data beyond the calibration windows' range (a warmer year, a trend) is
# otherwise clipped at the edge, which was most of the int8 error (BENCHMARKS.md, Export).
CALIBRATION_MARGIN = ExportConfig.calibration_margin
# Builtin ops LiteRT runs in float only: integer recipes keep them float32.
FLOAT_ONLY_OPS = ["REVERSE_SEQUENCE"]


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
    if mode not in CONVERTER_MODES:
        raise ExportError(
            f"Expected `mode` to be one of {CONVERTER_MODES}. Received: mode={mode!r}"
        )
    if mode not in ("int8", "int8-full"):
        return (mode,)
    return WINDOW_RECIPES if window else INTEGER_RECIPES


def widen_ranges(calibrated: bytes, margin: float) -> bytes:
    """Widen every calibrated (min, max) range of a calibrate-only TFLite model by `margin`
    times its span on each side, so values a little beyond the calibration windows are not
    clipped by the int8 scale chosen from them.

    Example:
        >>> wide = widen_ranges(calibrated, 0.1)  # doctest: +SKIP
    """
    if margin < 0:
        raise ExportError(f"Expected `margin` >= 0. Received: margin={margin!r}")
    if margin == 0:
        return calibrated
    model = schema.ModelT.InitFromObj(schema.Model.GetRootAs(calibrated, 0))
    for graph in model.subgraphs:
        for tensor in graph.tensors:
            ranges = tensor.quantization
            if ranges is None or ranges.min is None or ranges.max is None or not len(ranges.min):
                continue
            low = np.asarray(ranges.min, np.float64)
            high = np.asarray(ranges.max, np.float64)
            span = high - low
            ranges.min = (low - margin * span).astype(np.float32).tolist()
            ranges.max = (high + margin * span).astype(np.float32).tolist()
    builder = flatbuffers.Builder(len(calibrated) + 1024)
    builder.Finish(model.Pack(builder), file_identifier=b"TFL3")
    return bytes(builder.Output())


@dataclass(frozen=True)
class Calibrated:
    """A calibrate-only model (every tensor's widened (min, max)) and what each recipe reads
    from it, found once.

    Attributes:
        content: the calibrated float model (TFLite bytes).
        float_input: the model's input is float32 (token ids are int32).
        window_nodes: tensors of the window normalization and the model output, kept float by
            the window recipes.
        lstm_nodes: output tensor names of the fused LSTM ops, in graph order: the names
            `quantize(..., float_lstms=)` takes.
    """

    content: bytes
    float_input: bool
    window_nodes: tuple[str, ...]
    lstm_nodes: tuple[str, ...]

    @classmethod
    def read(cls, content: bytes) -> Calibrated:
        lite = interpreter(content)
        names = {d["index"]: d["name"] for d in lite.get_tensor_details()}
        outputs = [d["name"] for d in lite.get_output_details()]
        lstms = [
            names[op["outputs"][0]]
            for op in lite._get_ops_details()
            if op["op_name"] == "UNIDIRECTIONAL_SEQUENCE_LSTM"
        ]
        return cls(
            content=content,
            float_input=lite.get_input_details()[0]["dtype"] == np.float32,
            window_nodes=tuple(n for n in names.values() if n.startswith(WINDOW_SCOPE))
            + tuple(outputs),
            lstm_nodes=tuple(lstms),
        )


def calibrate(
    function, representative: np.ndarray | None, margin: float = CALIBRATION_MARGIN
) -> Calibrated:
    """Run the calibration windows through the traced forward pass: a `Calibrated` float model
    holding each tensor's (min, max), widened by `margin` (`widen_ranges`), ready for `quantize`.

    Raises:
        ExportError: no calibration windows, or the converter failed.

    Example:
        >>> calibrated = calibrate(forward, bundle.sample_windows(1000, "train"))  # doctest: +SKIP
        >>> content, description = quantize(calibrated, "int8", "integer-lstm")  # doctest: +SKIP
    """
    if representative is None or len(representative) == 0:
        raise ExportError(
            "int8 modes need representative windows for calibration; pass a bundle or "
            "`representative=` windows (n, lookback, features)."
        )
    module = tf.Module()
    module.forward = function
    converter = _converter(function, module)
    spec = function.input_signature[0]
    converter.optimizations = [tf.lite.Optimize.DEFAULT]
    converter.representative_dataset = _representative(representative, spec.dtype.as_numpy_dtype)
    converter._experimental_calibrate_only = True
    return Calibrated.read(widen_ranges(_run_converter(converter, "int8", "calibration"), margin))


def quantize(
    calibrated: Calibrated, mode: str, recipe: str, window: bool = False, float_lstms=()
) -> tuple[bytes, str]:
    """Quantize a `calibrate` result with one of `mode`'s integer recipes.

    `float_lstms` (names from `calibrated.lstm_nodes`) keeps those fused LSTMs in float32
    with `integer-lstm` / `window-integer`.

    Returns:
        `(model_bytes, recipe_description)`.
    """
    if recipe not in recipes(mode, window) or mode not in ("int8", "int8-full"):
        raise ExportError(f"Recipe {recipe!r} does not apply to mode {mode!r}.")
    integer_io = mode == "int8-full" and not window
    try:
        model = _quantize(calibrated, recipe, integer_io, list(float_lstms))
    except Exception as err:  # the quantizer raises several unrelated types
        raise ExportError(_failure(mode, recipe, err)) from err
    description = RECIPES[recipe]
    if float_lstms and not recipe.endswith("float-lstm"):
        description += PARTIAL.format(names=", ".join(float_lstms))
    description += "; int8 input/output" if integer_io else "; float32 input/output"
    if window and mode == "int8-full":
        description += " (the window normalization needs the raw float values)"
    return bytes(model), f"{recipe}: {description}"


def convert(
    function,
    mode: str,
    representative: np.ndarray | None = None,
    recipe: str | None = None,
    window: bool = False,
    margin: float = CALIBRATION_MARGIN,
) -> tuple[bytes, str]:
    """Convert the export `tf.function` to TFLite bytes with one of `mode`'s recipes.

    Args:
        function: the traced forward pass from `forward.build_forward`.
        mode: one of `float32`, `float16`, `dynamic`, `int8`, `int8-full`.
        representative: calibration windows `(n, lookback, features)`, needed for int8 modes.
        recipe: one of `recipes(mode, window)`; default the first.
        window: the forward pass holds window normalization (`tflite_export.forward`).
        margin: int8 modes: widen each calibrated range by this fraction of its span on each
            side (`widen_ranges`); 0 keeps the calibration windows' exact ranges.

    Returns:
        `(model_bytes, recipe_description)`.

    Raises:
        ExportError: unknown mode, missing representative windows, or the converter failed.

    Example:
        >>> content, description = convert(forward, "float16")  # doctest: +SKIP
    """
    recipe = recipe or recipes(mode, window)[0]
    if recipe not in recipes(mode, window):
        raise ExportError(f"Recipe {recipe!r} does not apply to mode {mode!r}.")
    if mode in ("int8", "int8-full"):
        return quantize(calibrate(function, representative, margin), mode, recipe, window)
    module = tf.Module()
    module.forward = function
    converter = _converter(function, module)
    if mode in ("float16", "dynamic"):
        converter.optimizations = [tf.lite.Optimize.DEFAULT]
    if mode == "float16":
        converter.target_spec.supported_types = [tf.float16]
    return _run_converter(converter, mode, recipe), RECIPES[recipe]


def _failure(mode: str, recipe: str, err: Exception) -> str:
    first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
    return f"TFLite conversion ({mode}, {recipe}) with builtin ops only failed: {first}"


def _run_converter(converter, mode: str, recipe: str) -> bytes:
    try:
        with native_stderr_silenced():  # the converter's and calibrator's C++ notices
            return bytes(converter.convert())
    except Exception as err:  # the converter raises several unrelated types
        raise ExportError(_failure(mode, recipe, err)) from err


def _quantize(
    calibrated: Calibrated, recipe: str, integer_io: bool, float_lstms: list[str]
) -> bytes:
    """Quantize a calibrated model with one integer recipe (`RECIPES`).

    Every recipe keeps REVERSE_SEQUENCE (the masked backward direction, which LiteRT runs in
    float only) float; `*float-lstm` keeps the fused LSTMs float, `float_lstms` the named ones;
    the window recipes keep the window normalization, the output mapping and the I/O float,
    since an int8 input would clip windows beyond the calibration range before they are
    normalized.
    """
    denylisted = FLOAT_ONLY_OPS
    if recipe.endswith("float-lstm"):
        denylisted = ["UNIDIRECTIONAL_SEQUENCE_LSTM", *FLOAT_ONLY_OPS]
    nodes = [*(calibrated.window_nodes if recipe in WINDOW_RECIPES else ()), *float_lstms]
    with native_stderr_silenced():  # the quantizer prints "fully_quantize: 0, ..." to fd 2
        return _mlir_quantize(calibrated, integer_io, denylisted, nodes)


def _mlir_quantize(calibrated: Calibrated, integer_io: bool, denylisted, nodes) -> bytes:
    return lite_convert.mlir_quantize(
        calibrated.content,
        fully_quantize=integer_io,
        input_data_type=tf.int8 if integer_io and calibrated.float_input else tf.float32,
        output_data_type=tf.int8 if integer_io else tf.float32,
        denylisted_ops=denylisted,
        denylisted_nodes=nodes or None,
    )
