"""Reading a `.tflite` file: its operators, and running windows through LiteRT one at a time.

The fused LSTM keeps its state in variable tensors between `invoke()` calls, so `run_windows`
resets the interpreter's variables before every window (on Android: `resetVariableTensors()`).
"""

from __future__ import annotations

import time
from collections import Counter

import numpy as np


def _builtin_names() -> dict[int, str]:
    from tensorflow.lite.python import schema_py_generated as schema

    return {
        value: name
        for name, value in vars(schema.BuiltinOperator).items()
        if not name.startswith("_") and isinstance(value, int)
    }


def op_counts(model: bytes) -> tuple[dict[str, int], bool]:
    """The operators of every subgraph, by name, and whether all of them are builtins.

    Custom and Flex ops appear as `CUSTOM:<name>`.
    """
    from tensorflow.lite.python import schema_py_generated as schema

    names = _builtin_names()
    root = schema.Model.GetRootAs(model, 0)
    codes = []
    for index in range(root.OperatorCodesLength()):
        code = root.OperatorCodes(index)
        builtin = max(code.BuiltinCode(), code.DeprecatedBuiltinCode())
        if builtin == schema.BuiltinOperator.CUSTOM:
            custom = code.CustomCode()
            codes.append(f"CUSTOM:{custom.decode() if custom else '?'}")
        else:
            codes.append(names.get(builtin, f"BUILTIN_{builtin}"))
    counts: Counter = Counter()
    for graph_index in range(root.SubgraphsLength()):
        graph = root.Subgraphs(graph_index)
        for op_index in range(graph.OperatorsLength()):
            counts[codes[graph.Operators(op_index).OpcodeIndex()]] += 1
    builtin_only = not any(name.startswith("CUSTOM") for name in counts)
    return dict(sorted(counts.items())), builtin_only


def interpreter(model: bytes | None = None, path: str | None = None, threads: int = 1):
    """A LiteRT interpreter with tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    lite = Interpreter(model_content=model, model_path=path, num_threads=threads)
    lite.allocate_tensors()
    return lite


def io_quantization(lite) -> dict:
    """dtype, shape and (scale, zero point) of the single input and output."""

    def describe(detail):
        scale, zero_point = detail["quantization"]
        return {
            "dtype": np.dtype(detail["dtype"]).name,
            "shape": [int(d) for d in detail["shape"]],
            "scale": float(scale),
            "zero_point": int(zero_point),
        }

    return {
        "input": describe(lite.get_input_details()[0]),
        "output": describe(lite.get_output_details()[0]),
    }


def quantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Map float values to the tensor's dtype (int8 with scale/zero point), else cast."""
    dtype = np.dtype(detail["dtype"])
    scale = detail["scale"]
    if np.issubdtype(dtype, np.integer) and scale:
        info = np.iinfo(dtype)
        q = np.round(np.asarray(values, np.float64) / scale) + detail["zero_point"]
        return np.clip(q, info.min, info.max).astype(dtype)
    return np.asarray(values).astype(dtype)


def dequantize(values: np.ndarray, detail: dict) -> np.ndarray:
    """Map a tensor's values back to float32."""
    scale = detail["scale"]
    if np.issubdtype(np.asarray(values).dtype, np.integer) and scale:
        return ((values.astype(np.float64) - detail["zero_point"]) * scale).astype(np.float32)
    return np.asarray(values, np.float32)


def run_windows(lite, windows: np.ndarray) -> np.ndarray:
    """Run each window `(n, lookback[, features])` alone, resetting state before each.

    Inputs are quantized and outputs dequantized when the file has integer input/output.
    """
    io = io_quantization(lite)
    input_index = lite.get_input_details()[0]["index"]
    output_index = lite.get_output_details()[0]["index"]
    outputs = []
    for window in windows:
        lite.reset_all_variables()
        lite.set_tensor(input_index, quantize(window[None], io["input"]))
        lite.invoke()
        outputs.append(dequantize(lite.get_tensor(output_index), io["output"])[0])
    return np.stack(outputs) if outputs else np.zeros((0,), np.float32)


def latency_ms(call, repeats: int = 50, warmup: int = 5) -> float:
    """Median wall time of `call()` in milliseconds."""
    for _ in range(warmup):
        call()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return float(np.median(times) * 1000.0)


def lite_latency_ms(lite, window: np.ndarray, repeats: int = 50) -> float:
    """Per-window latency: reset state, set the input, invoke."""
    io = io_quantization(lite)
    index = lite.get_input_details()[0]["index"]
    value = quantize(window[None], io["input"])

    def call():
        lite.reset_all_variables()
        lite.set_tensor(index, value)
        lite.invoke()

    return latency_ms(call, repeats)
