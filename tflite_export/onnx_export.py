"""ONNX files for runtimes other than LiteRT, through Keras' own `model.export(format="onnx")`.

Keras 3 converts with tf2onnx; LSTMs become ONNX's own `LSTM` op (one per layer, Bidirectional
included), GRUs a `Loop`. The file is checked against Keras in onnxruntime on held-out windows,
exactly like the TFLite modes, and only written when parity holds. Needs the optional extra:
`pip install "keras-lstm[onnx]"` (onnx, onnxruntime, tf2onnx).

The conversion always runs on Keras' TensorFlow backend, whichever backend trained the model:
Keras' own ONNX path differs by backend (on JAX it needs `jax2onnx` and lowers each LSTM to a
generic loop), so on another backend the model is saved to a temporary `.keras` file and
converted in a child process on TensorFlow, where it loads in safe mode. The same model gives
the same ONNX graph on every backend; parity is checked against the model on the caller's
backend.

Example:
    >>> report = export_onnx(bundle, "model.onnx")  # doctest: +SKIP
    >>> report["max_abs_error"] < 1e-5  # doctest: +SKIP
    True
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

from keras_lstm.errors import ExportError
from tflite_export import runtime
from tflite_export.exporter import VALIDATION_WINDOWS, _keras_outputs, _parts

ONNX_PACKAGES = ("onnx", "onnxruntime", "tf2onnx")
ONNX_MAX_ERROR = 1e-3  # relative RMSE; float32 all through, like the float32 TFLite mode
OPSET = 17


def _check_packages() -> None:
    missing = [name for name in ONNX_PACKAGES if importlib.util.find_spec(name) is None]
    if missing:
        raise ExportError(
            f"--format onnx needs {', '.join(missing)}: install the extra with "
            '`pip install "keras-lstm[onnx]"`. No file was written.'
        )


def _session(content: bytes):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = 1
    return onnxruntime.InferenceSession(
        content, sess_options=options, providers=["CPUExecutionProvider"]
    )


def _op_counts(content: bytes) -> dict:
    import onnx

    graph = onnx.load_from_string(content).graph
    return dict(sorted(Counter(node.op_type for node in graph.node).items()))


def export_onnx(
    bundle_or_model,
    out_path: str | os.PathLike,
    *,
    max_error: float | None = None,
    validation: np.ndarray | None = None,
    lookback: int | None = None,
) -> dict:
    """Convert a bundle's (or a Keras model's) model to ONNX, verified in onnxruntime.

    The file takes scaled windows `(batch, lookback, features)` (any batch; any length for
    whole-sequence models) like the Keras model; the report `FILE.json` beside it holds
    `format`, `size_bytes`, `ops`, `opset`, `max_abs_error`, `relative_rmse`,
    `latency_ms_p50` (onnxruntime, one window), `keras_latency_ms_p50` and the preprocessing.
    Both are written atomically, and only when the relative RMSE against Keras is within
    `max_error`.

    Args:
        bundle_or_model: a `keras_lstm.Bundle` or a factory-built Keras model.
        out_path: the `.onnx` file to write.
        max_error: the largest relative RMSE accepted; default 1e-3.
        validation: scaled held-out windows; default for a bundle: up to 256 test windows.
        lookback: window length when the model's time dimension is None.

    Returns:
        The report dict.

    Raises:
        ExportError: the extra is not installed, the converter failed, or parity failed.
    """
    _check_packages()
    import keras

    inputs = _parts(bundle_or_model, "float32", None, validation, lookback)
    model, windows = inputs.model, inputs.validation.astype(np.float32)[:VALIDATION_WINDOWS]
    max_error = ONNX_MAX_ERROR if max_error is None else float(max_error)
    shape = [None, *model.input_shape[1:]]  # any batch; a masked model takes any length
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_path.parent, prefix=f".{out_path.name}.") as tmp:
        path = Path(tmp) / "model.onnx"
        if keras.backend.backend() == "tensorflow":
            try:
                convert_on_tensorflow(model, shape, path)
            except Exception as err:  # tf2onnx raises many unrelated types
                raise ExportError(
                    f"ONNX conversion failed: {_first_line(err)}. No file was written."
                ) from err
        else:
            _convert_in_tensorflow_process(model, shape, Path(tmp))
        content = path.read_bytes()
    session = _session(content)
    name = session.get_inputs()[0].name
    keras_outputs, keras_latency = _keras_outputs(model, windows)
    got = np.concatenate(
        [session.run(None, {name: windows[i : i + 256]})[0] for i in range(0, len(windows), 256)]
    )
    difference = got.astype(np.float64) - keras_outputs.reshape(got.shape)
    rmse = float(np.sqrt(np.mean(difference**2)))
    spread = float(np.std(keras_outputs))
    relative = rmse / spread if spread > 0 else rmse
    report = {
        "format": "onnx",
        "size_bytes": len(content),
        "ops": _op_counts(content),
        "opset": OPSET,
        "max_abs_error": float(np.max(np.abs(difference))),
        "relative_rmse": relative,
        "max_error": max_error,
        "latency_ms_p50": runtime.latency_ms(lambda: session.run(None, {name: windows[:1]})),
        "keras_latency_ms_p50": keras_latency,
        "validation_windows": int(len(windows)),
        "input": {"name": name, "dtype": "float32", "shape": shape},
        "preprocessing": {**inputs.preprocessing, "lookback": int(windows.shape[1])},
    }
    if not relative <= max_error:
        raise ExportError(
            f"ONNX parity check failed: relative RMSE {relative:.4g} against Keras exceeds "
            f"max_error={max_error:g} (max abs error {report['max_abs_error']:.4g}); no file "
            "was written."
        )
    runtime.write_model_and_report(out_path, content, report)
    return report


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def convert_on_tensorflow(model, shape: list, path: Path) -> None:
    """Keras' ONNX export (tf2onnx) of `model`, on Keras' TensorFlow backend, to `path`: the
    input is named `window`, float32, of `shape` (None for any batch or length)."""
    import tensorflow as tf

    spec = tf.TensorSpec(shape, tf.float32, name="window")
    model.export(
        str(path), format="onnx", input_signature=[spec], opset_version=OPSET, verbose=False
    )


def _convert_in_tensorflow_process(model, shape: list, folder: Path) -> None:
    """`convert_on_tensorflow` in a child process on Keras' TensorFlow backend, for a model
    built on another backend: it writes `folder/model.onnx` from `folder/model.keras`."""
    model.save(folder / "model.keras")
    environment = {**os.environ, "KERAS_BACKEND": "tensorflow", "TF_CPP_MIN_LOG_LEVEL": "3"}
    done = subprocess.run(
        [sys.executable, "-m", "tflite_export.onnx_export", str(folder), json.dumps(shape)],
        env=environment,
        capture_output=True,
        text=True,
    )
    if done.returncode != 0 or not (folder / "model.onnx").is_file():
        lines = [line for line in done.stderr.strip().splitlines() if line.strip()]
        reason = lines[-1] if lines else f"exit code {done.returncode}"
        raise ExportError(f"ONNX conversion failed: {reason}. No file was written.")


def _convert_saved_model(folder: str, shape: str) -> int:
    """The child process of `_convert_in_tensorflow_process`: one line on stderr on failure."""
    import keras

    # keras-lstm's own layers, registered for safe mode (lighter than importing the bundle)
    import keras_lstm.normalization  # noqa: F401
    import keras_lstm.sequence_layers  # noqa: F401

    folder_path = Path(folder)
    try:
        model = keras.saving.load_model(folder_path / "model.keras", safe_mode=True)
        convert_on_tensorflow(model, json.loads(shape), folder_path / "model.onnx")
    except Exception as err:  # tf2onnx raises many unrelated types
        print(_first_line(err), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(_convert_saved_model(*sys.argv[1:3]))
