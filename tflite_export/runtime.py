"""Running a `.tflite` file: its report's path, and windows through LiteRT one at a time.
Imports only NumPy (LiteRT on first use), so the device side can use it; the file's operators
are read by `tflite_export.ops`, which needs TensorFlow.

The fused LSTM keeps its state in variable tensors between `invoke()` calls, so `run_windows`
resets the interpreter's variables before every window (on Android: `resetVariableTensors()`).
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from pathlib import Path

import numpy as np

from keras_lstm.errors import OutputError
from keras_lstm.files import output_error, temporary_file
from keras_lstm.stderr import native_stderr_silenced


def report_path(out_path: str | os.PathLike) -> Path:
    """Where the JSON report of `out_path` goes: the file's name with `.json` appended.

    Example:
        >>> report_path("model-int8.tflite").name
        'model-int8.tflite.json'
    """
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".json")


DIGEST_KEY = "digest"


def report_digest(content: bytes, report: dict) -> dict:
    """SHA-256 of a `.tflite` file's bytes and of its report (every field but this one, as
    canonical JSON), stored in the report under `digest`: a file or report edited after the
    export, or a report beside another export's file, no longer matches.

    Example:
        >>> sorted(report_digest(b"model", {"input": {}}))
        ['algorithm', 'model', 'report']
    """
    body = {k: v for k, v in report.items() if k != DIGEST_KEY}
    canonical = json.dumps(body, sort_keys=True, separators=(",", ":"))
    return {
        "algorithm": "sha256",
        "model": hashlib.sha256(content).hexdigest(),
        "report": hashlib.sha256(canonical.encode("utf-8")).hexdigest(),
    }


def digest_mismatch(content: bytes, report: dict) -> str | None:
    """What does not match the report's `digest` (`"model"`, `"report"`, `"missing"`), or None."""
    saved = report.get(DIGEST_KEY)
    if not isinstance(saved, dict):
        return "missing"
    expected = report_digest(content, report)
    for part in ("model", "report"):
        if saved.get(part) != expected[part]:
            return part
    return None


def interpreter(model: bytes | None = None, path: str | None = None, threads: int = 1):
    """A LiteRT interpreter with tensors allocated."""
    from ai_edge_litert.interpreter import Interpreter

    with native_stderr_silenced():  # "Created TensorFlow Lite XNNPACK delegate for CPU."
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


def _run_each(lite, samples, inputs_of) -> np.ndarray:
    """For each sample: reset the state, invoke on each of `inputs_of(sample)` in turn, keep
    the last output. Inputs are quantized and outputs dequantized for integer files."""
    io = io_quantization(lite)
    input_index = lite.get_input_details()[0]["index"]
    output_index = lite.get_output_details()[0]["index"]
    outputs = []
    for sample in samples:
        lite.reset_all_variables()
        for value in inputs_of(sample):
            lite.set_tensor(input_index, quantize(value, io["input"]))
            lite.invoke()
        outputs.append(dequantize(lite.get_tensor(output_index), io["output"])[0])
    return np.stack(outputs) if outputs else np.zeros((0,), np.float32)


def run_windows(lite, windows: np.ndarray) -> np.ndarray:
    """Run each window `(n, lookback[, features])` alone, resetting state before each.

    Inputs are quantized and outputs dequantized when the file has integer input/output.
    """
    return _run_each(lite, windows, lambda window: [window[None]])


def allocate_signatures(lite) -> None:
    """Allocate the tensors of every signature's subgraph, as a signature runner does on its
    first call: `reset_all_variables` reads every subgraph's variable tensors, and fails on
    one that was never allocated (the `train` subgraph before the first step)."""
    wrapper = lite._interpreter  # what `SignatureRunner.__call__` itself calls
    for key in lite.get_signature_list():
        wrapper.AllocateTensors(wrapper.GetSubgraphIndexFromSignature(key))


def infer_windows(lite, windows: np.ndarray) -> np.ndarray:
    """The `infer` signature of an adaptable file (`tflite_export.adaptable`) on each window
    alone, the LSTM state reset before each."""
    allocate_signatures(lite)
    runner = lite.get_signature_runner("infer")
    outputs = []
    for window in np.asarray(windows, np.float32):
        lite.reset_all_variables()
        outputs.append(runner(window=window[None])["prediction"][0])
    return np.stack(outputs) if outputs else np.zeros((0,), np.float32)


def valid_steps(window: np.ndarray, mask_value: float | None) -> np.ndarray:
    """The steps of a window before its trailing padding (every feature equal to
    `mask_value`); all of them when `mask_value` is None."""
    window = np.asarray(window)
    if mask_value is None or window.ndim < 2:
        return window
    padded = np.all(window == mask_value, axis=-1)
    valid = np.flatnonzero(~padded)
    return window[: int(valid[-1]) + 1] if len(valid) else window[:1]


def stream_steps(windows: np.ndarray, mask_value: float | None = None) -> np.ndarray:
    """Every valid step of `windows` `(n, lookback, features)` in stream order, each as a
    one-step window `(steps, 1, features)`: what a step model is calibrated on."""
    steps = [valid_steps(window, mask_value) for window in windows]
    return np.concatenate(steps)[:, None].astype(np.float32)


def run_stream(lite, windows: np.ndarray, mask_value: float | None = None) -> np.ndarray:
    """Run a streaming (step) model over each window `(n, lookback, features)`: reset the
    state, feed the window one step per `invoke()`, keep the output after its last step.

    With `mask_value`, trailing padded steps of a window are not fed (a stream has none).
    """
    return _run_each(
        lite, windows, lambda window: (step[None, None] for step in valid_steps(window, mask_value))
    )


def lite_step_latency_ms(lite, step: np.ndarray, repeats: int = 200) -> float:
    """Per-step latency of a streaming model: set one step, invoke (no reset)."""
    io = io_quantization(lite)
    index = lite.get_input_details()[0]["index"]
    value = quantize(np.asarray(step)[None, None], io["input"])

    def call():
        lite.set_tensor(index, value)
        lite.invoke()

    lite.reset_all_variables()
    return latency_ms(call, repeats)


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


def write_model_and_report(out_path: str | os.PathLike, content: bytes, report: dict) -> None:
    """Write an exported model (`.tflite`, `.onnx`) and its JSON report `FILE.json` (with
    `file` and the `digest` of both, `report_digest`), each to a temporary name in the target
    folder first, then renamed into place; on failure no temporary file is left, and files
    that were there before are unchanged (an `OSError`, such as a full disk, is `OutputError`).

    Example:
        >>> write_model_and_report("model.tflite", content, report)  # doctest: +SKIP
    """
    out_path = Path(out_path)
    try:
        out_path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise output_error(out_path, err) from err
    json_path = report_path(out_path)
    # the digest covers the report as it will be read back (JSON round trip)
    body = json.loads(json.dumps({"file": out_path.name, **report}, default=_json_default))
    body[DIGEST_KEY] = report_digest(content, body)
    text = json.dumps(body, indent=2)
    model_tmp = temporary_file(out_path, content)
    report_tmp = None
    try:
        report_tmp = temporary_file(json_path, text.encode("utf-8"))
        os.replace(model_tmp, out_path)
        os.replace(report_tmp, json_path)
    except OSError as err:
        _remove(model_tmp, report_tmp)
        if isinstance(err, OutputError):
            raise
        raise output_error(out_path, err) from err
    except BaseException:
        _remove(model_tmp, report_tmp)
        raise


def _remove(*paths) -> None:
    for tmp in paths:
        if tmp is not None:
            tmp.unlink(missing_ok=True)


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
