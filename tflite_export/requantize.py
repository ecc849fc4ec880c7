"""int8 LSTM models requantized to 16x8 (int16 activations, int8 weights, int64 biases) for
TFLite Micro, whose LSTM kernel has that path (LiteRT's desktop kernel does not).

Adapted from tflite-micro's `tensorflow/lite/micro/tools/requantize_flatbuffer.py` and
`requantize_flatbuffer_utils.py` (Copyright 2023 The TensorFlow Authors, Apache License 2.0):
the same two passes on TensorFlow's flatbuffer object API (`tensorflow.lite.tools.
flatbuffer_utils`), so no bazel build is needed. One change: a constant activation buffer is
dequantized with its int8 scale (upstream reads the int16 one it has just written).

1. Ops with weights (`FULLY_CONNECTED`, `UNIDIRECTIONAL_SEQUENCE_LSTM`, `SOFTMAX`): their
   activation tensors become int16 (symmetric, the int8 range kept) and their int32 biases
   int64 at `input_scale * weight_scale`.
2. Every other int8 activation tensor becomes int16, for the ops tflite-micro tested
   (`SUPPORTED_OPS`); any other op is refused.

Example:
    >>> content16 = requantize_8to16(Path("model-int8-full.tflite").read_bytes())  # doctest: +SKIP
"""

from __future__ import annotations

import importlib

import numpy as np

from keras_lstm.errors import ExportError
from tflite_export import runtime


def _flatbuffers():
    utils = importlib.import_module("tensorflow.lite.tools.flatbuffer_utils")
    schema = importlib.import_module("tensorflow.lite.python.schema_py_generated")
    return utils, schema


def _codes(schema) -> tuple[dict, dict]:
    kinds = schema.TensorType
    to_numpy = {kinds.INT8: np.int8, kinds.INT16: np.int16, kinds.INT32: np.int32}
    to_numpy[kinds.INT64] = np.int64
    return to_numpy, {v: k for k, v in to_numpy.items()}


def _quantize(data, scale, zero_point=0, bits=8):
    low, high = -(2 ** (bits - 1)), 2 ** (bits - 1) - 1
    return np.clip(np.round(np.asarray(data) / scale) + zero_point, low, high)


class _Requantizer:
    def __init__(self, content: bytes):
        self.utils, self.schema = _flatbuffers()
        self.model = self.utils.convert_bytearray_to_object(bytearray(content))
        self.to_numpy, self.to_code = _codes(self.schema)
        self.remaining = {id(t): t for g in self.model.subgraphs for t in g.tensors}
        self.original = {}  # buffer index -> its int8-file bytes, for biases rewritten to int64
        ops = self.schema.BuiltinOperator
        self.complex = {
            ops.FULLY_CONNECTED: self._fully_connected,
            ops.UNIDIRECTIONAL_SEQUENCE_LSTM: self._lstm,
            ops.SOFTMAX: self._softmax,
        }
        simple = (
            "ADD CONCATENATION DEQUANTIZE LEAKY_RELU LOGISTIC MEAN MUL PACK PAD QUANTIZE "
            "RESHAPE RSQRT SHAPE SPLIT SQRT SQUARED_DIFFERENCE STRIDED_SLICE SUB TANH"
        ).split()
        self.supported = set(self.complex) | {getattr(ops, name) for name in simple}
        self.names = {v: k for k, v in vars(ops).items() if isinstance(v, int)}

    # --- tensors -------------------------------------------------------------------------------

    def _to_int16(self, tensor) -> None:
        if tensor.type != self.to_code[np.int8]:
            return
        quantization = tensor.quantization
        if quantization.quantizedDimension != 0 and len(quantization.scale) > 1:
            raise ExportError(
                f"Tensor {tensor.name!r} is quantized per channel; 16x8 activations need one "
                "scale per tensor."
            )
        scale, zero = float(quantization.scale[0]), int(quantization.zeroPoint[0])
        # the int8 range, 127 read as 128 to keep the precision int8 lost at the top
        top = max(abs(scale * (128 - zero)), abs(scale * (-128 - zero)))
        scale16 = top / 32767
        buffer = self.model.buffers[tensor.buffer]
        if buffer.data is not None and len(buffer.data):
            data = np.frombuffer(bytes(buffer.data), dtype=np.int8)
            if data.nbytes == int(np.prod(tensor.shape)):
                real = scale * (data.astype(np.float64) - zero)
                buffer.data = _quantize(real, scale16, 0, 16).astype(np.int16).tobytes()
        quantization.scale, quantization.zeroPoint = [scale16], [0]
        tensor.type = self.to_code[np.int16]

    def _bias_to_int64(self, source, weight, bias) -> None:
        if bias.type != self.to_code[np.int32]:
            return
        data = np.frombuffer(self._own_buffer(bias), dtype=np.int32).astype(np.float64)
        buffer = self.model.buffers[bias.buffer]
        scales = list(bias.quantization.scale)
        weights = list(weight.quantization.scale)
        zeros = list(bias.quantization.zeroPoint)
        if len(scales) != 1 and len(scales) != len(weights):
            raise ExportError(f"Bias {bias.name!r} has {len(scales)} scales for its weights'.")
        input_scale = float(source.quantization.scale[0])
        new = [input_scale * float(w) for w in (weights if len(scales) > 1 else weights[:1])]
        old = np.asarray(scales, np.float64)
        real = (data - np.asarray(zeros, np.float64)) * (old if len(old) > 1 else old[0])
        step = np.asarray(new, np.float64) if len(new) > 1 else new[0]
        buffer.data = _quantize(real, step, 0, 64).astype(np.int64).tobytes()
        bias.quantization.scale, bias.quantization.zeroPoint = new, [0] * len(new)
        bias.type = self.to_code[np.int64]

    def _own_buffer(self, tensor) -> bytes:
        """The int8-file bytes of `tensor`'s buffer; a buffer another tensor already rewrote
        (an unrolled GRU's steps share one bias) is copied first, so each tensor gets its own."""
        index = tensor.buffer
        if index in self.original:
            copy = type(self.model.buffers[index])()
            self.model.buffers.append(copy)
            tensor.buffer = len(self.model.buffers) - 1
            return self.original[index]
        self.original[index] = bytes(self.model.buffers[index].data)
        return self.original[index]

    # --- ops -----------------------------------------------------------------------------------

    def _fully_connected(self, tensors, op) -> None:
        source, weight = tensors[op.inputs[0]], tensors[op.inputs[1]]
        self._to_int16(source)
        self._to_int16(tensors[op.outputs[0]])
        if len(op.inputs) > 2 and op.inputs[2] != -1:
            self._bias_to_int64(source, weight, tensors[op.inputs[2]])
        op.builtinOptions.quantizedBiasType = self.to_code[np.int64]

    def _lstm(self, tensors, op) -> None:
        # indices from tflite-micro's tensorflow/lite/micro/kernels/lstm_shared.h
        source = tensors[op.inputs[0]]
        self._to_int16(source)
        self._to_int16(tensors[op.inputs[18]])  # the hidden state
        self._to_int16(tensors[op.outputs[0]])
        for weight, bias in zip((1, 2, 3, 4), (12, 13, 14, 15), strict=True):
            self._bias_to_int64(source, tensors[op.inputs[weight]], tensors[op.inputs[bias]])

    def _softmax(self, tensors, op) -> None:
        self._to_int16(tensors[op.inputs[0]])
        output = tensors[op.outputs[0]]
        if output.type == self.to_code[np.int8]:
            output.quantization.scale, output.quantization.zeroPoint = [1 / 32768], [0]
            output.type = self.to_code[np.int16]

    def run(self) -> bytes:
        codes = self.model.operatorCodes
        for subgraph in self.model.subgraphs:
            tensors = subgraph.tensors
            for op in subgraph.operators:
                code = codes[op.opcodeIndex]
                builtin = max(code.builtinCode, code.deprecatedBuiltinCode)
                if builtin not in self.supported:
                    raise ExportError(
                        f"int16x8 cannot requantize the {self.names.get(builtin, builtin)} op "
                        "(tflite-micro's requantizer handles FULLY_CONNECTED, "
                        "UNIDIRECTIONAL_SEQUENCE_LSTM, SOFTMAX and simple element-wise ops). "
                        "Train with data.scaler: standard and model.linear_path: false, or "
                        "export --quantize int8-full."
                    )
                if builtin in self.complex:
                    self.complex[builtin](tensors, op)
                    for index in [*op.inputs, *op.outputs]:
                        if index != -1:
                            self.remaining.pop(id(tensors[index]), None)
        for subgraph in self.model.subgraphs:
            for tensor in subgraph.tensors:
                name = tensor.name.decode() if isinstance(tensor.name, bytes) else str(tensor.name)
                if id(tensor) in self.remaining and "const" not in name:
                    self._to_int16(tensor)
        return bytes(self.utils.convert_object_to_bytearray(self.model))


def requantize_8to16(content: bytes) -> bytes:
    """An all-integer int8 `.tflite` file's bytes, requantized to 16x8 (see the module)."""
    return _Requantizer(content).run()


# the largest relative RMSE against Keras an int16x8 file may have (int8's target, 0.02)
INT16X8_MAX_ERROR = 0.02


def micro_interpreter(content: bytes):
    """TFLite Micro's reference interpreter (the `tflite-micro` package) on `content`.

    Raises:
        ExportError: the package is missing (`pip install "keras-lstm[micro]"`).
    """
    try:
        from tflite_micro.python.tflite_micro import runtime as micro
    except ImportError as err:
        raise ExportError(
            "int16x8 files are checked in TFLite Micro's interpreter: pip install "
            '"keras-lstm[micro]" (the tflite-micro package).'
        ) from err
    return micro.Interpreter.from_bytes(bytes(content))


def micro_detail(detail: dict) -> dict:
    """A TFLite Micro tensor detail in the form of `runtime.io_quantization`'s: `dtype`,
    `shape`, `scale` and `zero_point` (0 and 0 for a float tensor), which `runtime.quantize`
    and `runtime.dequantize` take."""
    params = detail.get("quantization_parameters") or {}
    scales, zeros = params.get("scales"), params.get("zero_points")
    quantized = scales is not None and len(scales) > 0
    return {
        "dtype": np.dtype(detail["dtype"]).name,
        "shape": [int(d) for d in detail["shape"]],
        "scale": float(scales[0]) if quantized else 0.0,
        "zero_point": int(zeros[0]) if quantized else 0,
    }


def run_micro(
    content: bytes, windows: np.ndarray, streaming: bool = False, mask_value: float | None = None
) -> np.ndarray:
    """Each window `(n, lookback, features)` alone through TFLite Micro's interpreter (state
    reset before each), inputs quantized and outputs dequantized by the file's own scales.

    `streaming`: the file is a step model (`tflite_export.streaming`); each window is fed one
    step per `invoke()` (its trailing padding, equal to `mask_value`, skipped) and the output
    after its last step kept, as `runtime.run_stream` does in LiteRT.
    """
    lite = micro_interpreter(content)
    source = micro_detail(lite.get_input_details(0))
    target = micro_detail(lite.get_output_details(0))
    outputs = []
    for window in np.asarray(windows, np.float64):
        lite.reset()
        if streaming:
            calls = [step[None, None] for step in runtime.valid_steps(window, mask_value)]
        else:
            calls = [window[None]]
        for call in calls:
            lite.set_input(runtime.quantize(call, source), 0)
            lite.invoke()
        outputs.append(runtime.dequantize(np.asarray(lite.get_output(0)), target)[0])
    return np.stack(outputs)


def export_int16x8(
    bundle, out_path, *, max_error: float | None = None, streaming: bool = False
) -> dict:
    """Write a 16x8 file for TFLite Micro (`--quantize int16x8`) and its report.

    The bundle is converted all-integer first (int8-full's `integer-lstm` recipe: every
    fused LSTM quantized, none kept in float, whatever its int8 parity), requantized to
    int16 activations (`requantize_8to16`), then run in TFLite Micro's reference interpreter
    on the held-out windows against Keras. The report's `runtime` is `tflite-micro`: LiteRT's
    desktop interpreter has no int16-activation LSTM kernel, so `LitePredictor` refuses the
    file. `streaming`: the step model instead (`tflite_export.streaming`), calibrated on steps
    in stream order and checked step by step in TFLite Micro.

    Returns:
        The report: `mode` `int16x8`, `runtime`, `relative_rmse` and `max_abs_error` in TFLite
        Micro, `int8_relative_rmse` (the same all-integer int8 file in the same interpreter),
        `input` / `output` (int16, scale, zero point), `preprocessing`, `micro`, `ops`.

    Raises:
        ExportError: a window-normalized model (its normalization is float), an op the
            requantizer cannot take, the `tflite-micro` package missing, or parity worse than
            `max_error` (default `INT16X8_MAX_ERROR`). No file is written.
    """
    from pathlib import Path

    from tflite_export.exporter import _commit, _keras_outputs, _mask_value, _parts

    inputs = _parts(bundle, "int8-full", None, None, None)
    _refuse_window_normalization(inputs.model)
    validation = inputs.validation
    mask_value = _mask_value(inputs)
    content8, content = _int16x8_files(inputs, streaming, mask_value)
    keras_outputs, keras_latency = _keras_outputs(bundle.model, validation.astype(np.float32))
    spread = float(np.std(keras_outputs)) or 1.0

    def relative(outputs) -> float:
        return float(np.sqrt(np.mean((outputs - keras_outputs) ** 2)) / spread)

    outputs = run_micro(content, validation, streaming, mask_value)
    error16 = relative(outputs)
    error8 = relative(run_micro(content8, validation, streaming, mask_value))
    limit = INT16X8_MAX_ERROR if max_error is None else float(max_error)
    if not error16 <= limit:
        raise ExportError(
            f"Parity check failed for int16x8 in TFLite Micro: relative RMSE {error16:.4g} "
            f"against Keras exceeds max_error={limit:g}; no file was written."
        )
    report = {
        **_int16x8_report(content, inputs, streaming),
        "max_abs_error": float(np.abs(outputs - keras_outputs).max()),
        "relative_rmse": error16,
        "int8_relative_rmse": error8,
        "max_error": limit,
        "keras_latency_ms_p50": keras_latency,
    }
    _commit(Path(out_path), content, report)
    return report


def _refuse_window_normalization(model) -> None:
    from tflite_export.forward import is_window_normalized

    if is_window_normalized(model):
        raise ExportError(
            "int16x8 needs an all-integer model, and window normalization (data.scaler: "
            "window, the forecasting default) reads raw float values: train with data.scaler: "
            "standard for TFLite Micro, or export --quantize int8-full (it keeps the "
            "normalization in float)."
        )


def _int16x8_files(inputs, streaming: bool, mask_value) -> tuple[bytes, bytes]:
    """The all-integer int8 file (int8-full's `integer-lstm` recipe, every LSTM quantized) and
    its int16-activation requantization: the window model, or the step model calibrated on
    steps in stream order."""
    from tflite_export.convert import calibrate, quantize
    from tflite_export.forward import build_forward
    from tflite_export.streaming import build_step_forward

    representative = inputs.representative
    if streaming:
        forward, _ = build_step_forward(inputs.model)
        representative = runtime.stream_steps(representative, mask_value)
    else:
        forward, _ = build_forward(inputs.model, inputs.lookback, gru_loop=False)
    calibrated = calibrate(forward, representative, inputs.margin)
    content8, _ = quantize(calibrated, "int8-full", "integer-lstm", False, ())
    return content8, requantize_8to16(content8)


def _int16x8_report(content: bytes, inputs, streaming: bool) -> dict:
    """The parts of an int16x8 report that describe the file, not its parity."""
    from tflite_export.c_array import micro_support
    from tflite_export.convert import RECIPES
    from tflite_export.exporter import STATE_NOTE, STREAMING_NOTE
    from tflite_export.ops import op_counts

    lite = micro_interpreter(content)
    ops, builtin_only = op_counts(content)
    return {
        "mode": "int16x8",
        "runtime": "tflite-micro",
        "size_bytes": len(content),
        "ops": ops,
        "builtin_only": builtin_only,
        "streaming": streaming,
        "recipe": f"{RECIPES['integer-lstm']}; then every activation requantized to int16 "
        "(LSTM and fully connected biases int64) for TFLite Micro",
        "validation_windows": int(len(inputs.validation)),
        "input": micro_detail(lite.get_input_details(0)),
        "output": micro_detail(lite.get_output_details(0)),
        "representative_windows": int(len(inputs.representative)),
        "preprocessing": {**inputs.preprocessing, "lookback": int(inputs.validation.shape[1])},
        "state_reset": STREAMING_NOTE if streaming else STATE_NOTE,
        "micro": micro_support(content).to_dict(),
        "parity_runtime": "TFLite Micro's reference interpreter (the tflite-micro package)",
    }
