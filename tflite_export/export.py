"""`export`: a bundle or Keras model in, a verified builtin-ops `.tflite` file and report out."""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path

import numpy as np

from keras_lstm.errors import ExportError
from tflite_export import runtime
from tflite_export.convert import INTEGER_TARGET, MODES, convert, recipes
from tflite_export.forward import build_forward, is_window_normalized

# Default parity thresholds on relative RMSE (TFLite vs Keras over the std of Keras' outputs).
DEFAULT_MAX_ERROR = {
    "float32": 1e-3,
    "float16": 1e-2,
    "dynamic": 0.05,
    "int8": 0.1,
    "int8-full": 0.1,
}
VALIDATION_WINDOWS = 256
STATE_NOTE = (
    "The fused LSTM keeps its state in variable tensors between invoke() calls: reset the "
    "interpreter's variables before every window (Python: interpreter.reset_all_variables(); "
    "Android: Interpreter.resetVariableTensors())."
)


def report_path(out_path: str | os.PathLike) -> Path:
    """Where the JSON report of `out_path` goes: the file's name with `.json` appended."""
    out_path = Path(out_path)
    return out_path.with_name(out_path.name + ".json")


def _parts(bundle_or_model, mode, representative, validation, lookback):
    """Model, preprocessing, calibration windows, validation windows and default threshold."""
    if hasattr(bundle_or_model, "model"):
        bundle = bundle_or_model
        model = bundle.model
        preprocessing = dict(getattr(bundle, "preprocessing", None) or {})
        config = getattr(bundle, "config", None)
        export_config = getattr(config, "export", None)
        lookback = lookback or preprocessing.get("lookback")
        if representative is None and mode in ("int8", "int8-full"):
            count = getattr(export_config, "representative_windows", 1000)
            representative = bundle.sample_windows(count, part="train")
        if validation is None:
            validation = bundle.sample_windows(VALIDATION_WINDOWS, part="test")
            if len(validation) == 0:
                validation = bundle.sample_windows(VALIDATION_WINDOWS, part="train")
        threshold = getattr(export_config, "max_error", None)
    else:
        model = bundle_or_model
        if not hasattr(model, "layers"):
            raise ExportError(
                f"Expected a Bundle or a Keras model; received {type(bundle_or_model).__name__}."
            )
        preprocessing = {}
        if representative is None and validation is None:
            raise ExportError(
                "Exporting a bare Keras model needs windows: pass `representative=` "
                "(and optionally `validation=`) as arrays (n, lookback, features) of scaled "
                "inputs, or export a Bundle."
            )
        if validation is None:
            validation = representative
        threshold = None
    if validation is None or len(validation) == 0:
        raise ExportError("No validation windows to check parity on; pass `validation=`.")
    for name, windows in (("representative", representative), ("validation", validation)):
        if windows is not None:
            _check_windows(name, np.asarray(windows), model)
    return model, preprocessing, representative, np.asarray(validation), lookback, threshold


def _check_windows(name: str, windows: np.ndarray, model) -> None:
    """`representative` / `validation` must be finite numbers shaped like the model's input."""
    shape = tuple(model.inputs[0].shape) if getattr(model, "inputs", None) else None
    rank = len(shape) if shape else 3
    if windows.ndim != rank:
        raise ExportError(
            f"`{name}` windows must have shape (n, {', '.join(map(str, shape[1:]))}) like the "
            f"model's input; received shape {windows.shape}."
        )
    if shape and shape[-1] is not None and rank == 3 and windows.shape[-1] != shape[-1]:
        raise ExportError(
            f"`{name}` windows have {windows.shape[-1]} features; the model takes {shape[-1]} "
            f"(shape {windows.shape})."
        )
    if not np.issubdtype(windows.dtype, np.number) or np.issubdtype(windows.dtype, np.bool_):
        raise ExportError(f"`{name}` windows must hold numbers; received dtype {windows.dtype}.")
    if not np.isfinite(windows).all():
        raise ExportError(f"`{name}` windows hold NaN or inf values; pass finite, scaled windows.")


def _keras_outputs(model, windows: np.ndarray):
    """Outputs of a compiled `model(x, training=False)` and its one-window latency."""
    import tensorflow as tf

    compiled = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
    outputs = np.concatenate(
        [
            compiled(tf.constant(windows[start : start + 512])).numpy()
            for start in range(0, len(windows), 512)
        ]
    )
    one = tf.constant(windows[:1])
    latency = runtime.latency_ms(lambda: compiled(one).numpy())
    return outputs, latency


def _atomic_write(path: Path, content: bytes) -> Path:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    with os.fdopen(fd, "wb") as handle:
        handle.write(content)
    return Path(tmp)


def export(
    bundle_or_model,
    mode: str,
    out_path: str | os.PathLike,
    representative: np.ndarray | None = None,
    *,
    max_error: float | None = None,
    lookback: int | None = None,
    validation: np.ndarray | None = None,
) -> dict:
    """Convert a bundle's (or a Keras model's) model to a builtin-ops `.tflite` file, verified.

    The model is re-traced as plain TensorFlow ops (see `tflite_export.forward`) with a static
    batch of one window, converted with `mode`'s recipe, run in LiteRT on held-out windows (state
    reset before each) and compared with the Keras model. Only when every op is a builtin and the
    relative RMSE is within `max_error` are the file and its report `FILE.json` written, each
    atomically (temporary file in the same folder, then rename).

    Args:
        bundle_or_model: a `keras_lstm.Bundle` (anything with `.model`, `.preprocessing`,
            `.config` and `.sample_windows(n, part)`), or a Keras model from the factory.
        mode: `float32`, `float16`, `dynamic`, `int8` (float input/output) or `int8-full`
            (int8 input/output).
        out_path: the `.tflite` file to write; the report goes to `out_path + ".json"`.
        representative: scaled calibration windows `(n, lookback, features)` for int8 modes;
            default for a bundle: `config.export.representative_windows` training windows.
        max_error: the largest relative RMSE accepted; default `config.export.max_error`, else
            the mode's default (`DEFAULT_MAX_ERROR`).
        lookback: window length when the model's time dimension is None (a bundle carries it).
        validation: scaled held-out windows for the parity check; default for a bundle: up to
            256 test windows; for a bare model: `representative`.

    Returns:
        The report dict, as written to `FILE.json`: `mode`, `size_bytes`, `ops`, `builtin_only`,
        `max_abs_error`, `relative_rmse`, `latency_ms_p50`, `keras_latency_ms_p50`, `recipe`,
        `input`/`output` (dtype, shape, scale, zero point), `preprocessing` and `state_reset`.

    Raises:
        ExportError: the model has a layer with no builtin form, the converter failed, a
            non-builtin op remains, or parity is worse than `max_error`. No file is written.

    Example:
        >>> report = export(bundle, "int8-full", "model.tflite")  # doctest: +SKIP
        >>> report["builtin_only"], report["relative_rmse"] < 0.02  # doctest: +SKIP
        (True, True)
    """
    if mode not in MODES:
        raise ExportError(f"Expected `mode` to be one of {MODES}. Received: mode={mode!r}")
    model, preprocessing, representative, validation, lookback, threshold = _parts(
        bundle_or_model, mode, representative, validation, lookback
    )
    if max_error is None:
        max_error = threshold if threshold is not None else DEFAULT_MAX_ERROR[mode]
    forward, spec = build_forward(model, lookback)
    window = is_window_normalized(model)
    time_steps = int(spec.shape[1])
    if validation.shape[1] != time_steps:
        raise ExportError(
            f"Validation windows have {validation.shape[1]} steps; the model takes {time_steps}."
        )
    keras_outputs, keras_latency = _keras_outputs(
        model, validation.astype(spec.dtype.as_numpy_dtype)
    )
    best = None
    tried = []
    for name in recipes(mode, window):
        if name.endswith("float-lstm") and "UNIDIRECTIONAL_SEQUENCE_LSTM" not in best[3]:
            break  # keeping LSTMs in float changes nothing without LSTMs
        content, recipe = convert(forward, mode, representative, name, window)
        ops, builtin_only = runtime.op_counts(content)
        if not builtin_only:
            others = sorted(op for op in ops if op.startswith("CUSTOM"))
            raise ExportError(
                f"The converted model still holds non-builtin ops {others}; no file was written."
            )
        lite = runtime.interpreter(content)
        difference = runtime.run_windows(lite, validation).astype(np.float64)
        difference -= keras_outputs.reshape(difference.shape)
        max_abs_error = float(np.max(np.abs(difference)))
        rmse = float(np.sqrt(np.mean(difference**2)))
        spread = float(np.std(keras_outputs))
        relative_rmse = rmse / spread if spread > 0 else rmse
        tried.append({"recipe": name, "relative_rmse": relative_rmse, "size_bytes": len(content)})
        candidate = (relative_rmse, content, recipe, ops, builtin_only, lite, max_abs_error)
        if best is None or relative_rmse < best[0]:
            best = candidate
        if relative_rmse <= INTEGER_TARGET:
            best = candidate
            break
    relative_rmse, content, recipe, ops, builtin_only, lite, max_abs_error = best
    latency = runtime.lite_latency_ms(lite, validation[0])

    report = {
        "mode": mode,
        "size_bytes": len(content),
        "ops": ops,
        "builtin_only": builtin_only,
        "max_abs_error": max_abs_error,
        "relative_rmse": relative_rmse,
        "max_error": float(max_error),
        "latency_ms_p50": latency,
        "keras_latency_ms_p50": keras_latency,
        "recipe": recipe,
        "validation_windows": int(len(validation)),
        "representative_windows": int(len(representative)) if representative is not None else 0,
        "recipes_tried": tried,
        **runtime.io_quantization(lite),
        "preprocessing": {**preprocessing, "lookback": time_steps},
        "state_reset": STATE_NOTE,
    }
    if not relative_rmse <= max_error:
        raise ExportError(
            f"Parity check failed for mode {mode!r}: relative RMSE {relative_rmse:.4g} against "
            f"Keras exceeds max_error={max_error:g} (max abs error {max_abs_error:.4g}); no file "
            "was written. Raise --max-error or choose a less aggressive --quantize mode."
        )

    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    json_path = report_path(out_path)
    text = json.dumps({"file": out_path.name, **report}, indent=2, default=_json_default)
    model_tmp = _atomic_write(out_path, content)
    try:
        report_tmp = _atomic_write(json_path, text.encode("utf-8"))
        os.replace(model_tmp, out_path)
        os.replace(report_tmp, json_path)
    except BaseException:
        for tmp in (model_tmp, locals().get("report_tmp")):
            if tmp is not None and Path(tmp).exists():
                Path(tmp).unlink()
        raise
    return report


def _json_default(value):
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")
