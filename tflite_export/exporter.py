"""`export`: a bundle or Keras model in, a verified builtin-ops `.tflite` file and report out."""

from __future__ import annotations

import dataclasses
import functools
import os
from dataclasses import dataclass
from typing import Any

import numpy as np

from keras_lstm.errors import ExportError
from tflite_export import runtime
from tflite_export.c_array import micro_support
from tflite_export.convert import (
    CALIBRATION_MARGIN,
    INTEGER_TARGET,
    MODES,
    calibrate,
    convert,
    quantize,
    recipes,
)
from tflite_export.forward import build_forward, is_window_normalized
from tflite_export.ops import float_ops, op_counts
from tflite_export.runtime import write_model_and_report as _commit
from tflite_export.streaming import build_step_forward

# Default parity thresholds on relative RMSE (TFLite vs Keras over the std of Keras' outputs).
DEFAULT_MAX_ERROR = {
    "float32": 1e-3,
    "float16": 1e-2,
    "dynamic": 0.05,
    "int8": 0.1,
    "int8-full": 0.1,
}
VALIDATION_WINDOWS = 256
STREAMING_NOTE = (
    "A streaming model: one time step per invoke(); the fused LSTMs keep their state in "
    "variable tensors between calls, so the output after a window's (or sequence's) last step "
    "is the window model's output. Reset the variables before each new stream (Python: "
    "interpreter.reset_all_variables(); Android: Interpreter.resetVariableTensors())."
)
STATE_NOTE = (
    "The fused LSTM keeps its state in variable tensors between invoke() calls: reset the "
    "interpreter's variables before every window (Python: interpreter.reset_all_variables(); "
    "Android: Interpreter.resetVariableTensors())."
)


@dataclass(frozen=True)
class ExportInputs:
    """What `export` works from, resolved from a bundle or a bare model by `_parts`.

    Attributes:
        model: the Keras model to convert.
        preprocessing: the bundle's preprocessing dict (empty for a bare model).
        representative: scaled calibration windows, or None (only int8 modes need them).
        validation: scaled held-out windows for the parity check, `(n, lookback, features)`.
        lookback: window length for a model whose time dimension is None, or None.
        threshold: the bundle's `config.export.max_error`, or None.
        margin: int8 modes: the calibration margin (`tflite_export.convert.widen_ranges`).
    """

    model: Any
    preprocessing: dict
    representative: np.ndarray | None
    validation: np.ndarray
    lookback: int | None
    threshold: float | None
    margin: float = CALIBRATION_MARGIN


@dataclass(frozen=True)
class Attempt:
    """One conversion recipe tried, and its parity against Keras on the validation windows.

    Attributes:
        name: the recipe's name (`tflite_export.convert.RECIPES`), e.g. `integer-lstm`.
        description: the recipe's description, as `convert` returns it.
        content: the `.tflite` bytes.
        ops: op name -> count in the converted model.
        builtin_only: every op is a builtin.
        interpreter: a LiteRT interpreter of `content`.
        max_abs_error: the largest absolute difference from Keras.
        relative_rmse: RMSE of the difference over the std of Keras' outputs.
        float_lstms: the fused LSTMs (output tensor names) this recipe kept in float.
    """

    name: str
    description: str
    content: bytes
    ops: dict
    builtin_only: bool
    interpreter: Any
    max_abs_error: float
    relative_rmse: float
    float_lstms: tuple = ()

    def summary(self) -> dict:
        """The attempt as the report's `recipes_tried` lists it."""
        return {
            "recipe": self.name,
            "float_lstms": list(self.float_lstms),
            "relative_rmse": self.relative_rmse,
            "size_bytes": len(self.content),
        }


@dataclass(frozen=True)
class RecipeSearch:
    """The outcome of `_search_recipes`: the attempt kept and every attempt, in order."""

    chosen: Attempt
    attempts: list[Attempt]


def _parts(
    bundle_or_model, mode, representative, validation, lookback, margin=None
) -> ExportInputs:
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
        if margin is None:
            margin = getattr(export_config, "calibration_margin", None)
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
    return ExportInputs(
        model=model,
        preprocessing=preprocessing,
        representative=representative,
        validation=np.asarray(validation),
        lookback=lookback,
        threshold=threshold,
        margin=_margin(margin),
    )


def _margin(margin) -> float:
    """The calibration margin: `CALIBRATION_MARGIN` when None, else a number >= 0."""
    if margin is None:
        return CALIBRATION_MARGIN
    if isinstance(margin, bool) or not isinstance(margin, (int, float)) or not margin >= 0:
        raise ExportError(
            f"Expected `calibration_margin` to be a number >= 0 (a fraction of each calibrated "
            f"range, e.g. 0.1). Received: {margin!r}"
        )
    return float(margin)


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
    """Outputs of the compiled Keras model (`predict_on_batch`, on whichever Keras backend it
    runs) and its one-window latency."""
    outputs = np.concatenate(
        [
            np.asarray(model.predict_on_batch(windows[start : start + 512]))
            for start in range(0, len(windows), 512)
        ]
    )
    one = windows[:1]
    latency = runtime.latency_ms(lambda: np.asarray(model.predict_on_batch(one)))
    return outputs, latency


def export(
    bundle_or_model,
    mode: str,
    out_path: str | os.PathLike,
    representative: np.ndarray | None = None,
    *,
    max_error: float | None = None,
    lookback: int | None = None,
    validation: np.ndarray | None = None,
    streaming: bool = False,
    calibration_margin: float | None = None,
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
        mode: `float32`, `float16`, `dynamic`, `int8` (float input/output), `int8-full`
            (int8 input/output) or `int16x8` (int16 activations and int8 weights, for TFLite
            Micro: `tflite_export.requantize.export_int16x8`).
        out_path: the `.tflite` file to write; the report goes to `out_path + ".json"`.
        representative: scaled calibration windows `(n, lookback, features)` for int8 modes;
            default for a bundle: `config.export.representative_windows` training windows.
        max_error: the largest relative RMSE accepted; default `config.export.max_error`, else
            the mode's default (`DEFAULT_MAX_ERROR`).
        lookback: window length when the model's time dimension is None (a bundle carries it).
        validation: scaled held-out windows for the parity check; default for a bundle: up to
            256 test windows; for a bare model: `representative`.
        streaming: write a step model (`tflite_export.streaming`): one time step per
            `invoke()`, the LSTM state kept between calls. Parity is the output after each
            validation window's last step against Keras on the whole window; latencies are
            per step. Unidirectional LSTM stacks only.
        calibration_margin: int8 modes: widen each calibrated range by this fraction of its
            span on each side, so inputs a little beyond the calibration windows are not
            clipped; default `config.export.calibration_margin`, else `CALIBRATION_MARGIN`.

    Returns:
        The report dict, as written to `FILE.json`: `mode`, `runtime` (`litert`; the
        `micro` section says whether TFLite Micro runs it too), `size_bytes`, `ops`, `builtin_only`,
        `max_abs_error`, `relative_rmse`, `latency_ms_p50`, `keras_latency_ms_p50`, `recipe`,
        `input`/`output` (dtype, shape, scale, zero point), `preprocessing`, `state_reset`,
        `micro` (TFLite Micro's resolver calls, the ops it lacks, an arena estimate) and, for
        int8 modes, `kept_float` (the ops left in float32, their output tensors, and the share
        of the file their float32 weights take).

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
    _check_max_error(max_error)
    if mode == "int16x8":  # for TFLite Micro: int8-full, then int16 activations
        if not hasattr(bundle_or_model, "sample_windows"):
            raise ExportError(
                "int16x8 exports a bundle for TFLite Micro (its windows calibrate and check "
                "the file); bare Keras models are not supported: save a bundle with `fit`."
            )
        from tflite_export.requantize import export_int16x8

        return export_int16x8(bundle_or_model, out_path, max_error=max_error, streaming=streaming)
    inputs = _parts(bundle_or_model, mode, representative, validation, lookback, calibration_margin)
    if max_error is None:
        max_error = inputs.threshold if inputs.threshold is not None else DEFAULT_MAX_ERROR[mode]
    validation = inputs.validation
    runner = runtime.run_windows
    if streaming:
        forward, spec = build_step_forward(inputs.model)
        window, time_steps = False, int(validation.shape[1])
        mask_value = _mask_value(inputs)
        runner = functools.partial(runtime.run_stream, mask_value=mask_value)
        if inputs.representative is not None:  # calibrate on steps, in stream order
            steps = runtime.stream_steps(inputs.representative, mask_value)
            inputs = dataclasses.replace(inputs, representative=steps)
    else:
        # int8-full promises a board that needs no float: GRUs unrolled, all-integer.
        forward, spec = build_forward(inputs.model, inputs.lookback, gru_loop=mode != "int8-full")
        window = is_window_normalized(inputs.model)
        time_steps = int(spec.shape[1])
        if validation.shape[1] != time_steps:
            raise ExportError(
                f"Validation windows have {validation.shape[1]} steps; the model takes "
                f"{time_steps}."
            )
    keras_outputs, keras_latency = _keras_outputs(
        inputs.model, validation.astype(spec.dtype.as_numpy_dtype)
    )
    search = _search_recipes(forward, mode, window, inputs, keras_outputs, runner)
    report = _report(mode, search, inputs, max_error, keras_latency, time_steps, streaming)
    chosen = search.chosen
    if not chosen.relative_rmse <= max_error:
        raise ExportError(
            f"Parity check failed for mode {mode!r}: relative RMSE {chosen.relative_rmse:.4g} "
            f"against Keras exceeds max_error={max_error:g} (max abs error "
            f"{chosen.max_abs_error:.4g}); no file was written. Raise --max-error or choose a "
            "less aggressive --quantize mode."
        )
    _commit(out_path, chosen.content, report)
    return report


def _search_recipes(
    forward, mode: str, window: bool, inputs: ExportInputs, keras_outputs, runner=None
):
    """Convert with `mode`'s recipes in order and measure each one's parity against Keras.

    Integer modes calibrate once, then try the all-integer recipe; if it misses
    `INTEGER_TARGET`, the fewest fused LSTMs kept in float (one more each round, the one that
    helps most, while a round still helps), then every LSTM in float. The first attempt that
    meets the target is kept, else the most accurate of all. Keeping LSTMs in float is skipped
    for a model with no fused LSTM (a GRU), where it would change nothing.

    Raises:
        ExportError: the converter failed, or a non-builtin op remains.
    """
    names = recipes(mode, window)
    if mode not in ("int8", "int8-full"):
        content, description = convert(forward, mode, recipe=names[0], window=window)
        chosen = _attempt(names[0], content, description, inputs, keras_outputs, runner)
        return RecipeSearch(chosen=chosen, attempts=[chosen])
    calibrated = calibrate(forward, inputs.representative, inputs.margin)
    lstms = calibrated.lstm_nodes
    attempts, failures = [], []

    def attempt(recipe, float_lstms=()):
        content, description = quantize(calibrated, mode, recipe, window, float_lstms)
        try:
            result = _attempt(recipe, content, description, inputs, keras_outputs, runner)
        except _Unrunnable as err:
            failures.append(f"{recipe}: {err}")
            return None
        result = dataclasses.replace(result, float_lstms=tuple(float_lstms))
        attempts.append(result)
        return result

    first = attempt(names[0])
    if (first is None or first.relative_rmse > INTEGER_TARGET) and lstms:
        kept, previous = [], first
        while len(kept) < len(lstms) - 1:
            round_ = [attempt(names[0], [*kept, name]) for name in lstms if name not in kept]
            round_ = [a for a in round_ if a is not None]
            if not round_:
                break
            leader = min(round_, key=lambda a: a.relative_rmse)
            if leader.relative_rmse <= INTEGER_TARGET:
                return RecipeSearch(chosen=leader, attempts=attempts)
            if previous is not None and leader.relative_rmse >= previous.relative_rmse:
                break  # keeping one more LSTM in float no longer helps
            kept, previous = list(leader.float_lstms), leader
        last = attempt(names[1])
        if last is not None and last.relative_rmse <= INTEGER_TARGET:
            return RecipeSearch(chosen=last, attempts=attempts)
    chosen = first
    if (first is None or first.relative_rmse > INTEGER_TARGET) and attempts:
        chosen = min(attempts, key=lambda a: a.relative_rmse)
    if chosen is None:
        raise ExportError(
            f"LiteRT cannot run this model in mode {mode!r} ({'; '.join(failures)}); no file "
            "was written. Choose float32, float16 or dynamic."
        )
    return RecipeSearch(chosen=chosen, attempts=attempts)


class _Unrunnable(Exception):
    """The converted file holds an op LiteRT cannot run with these tensor types."""


def _attempt(
    name, content: bytes, description: str, inputs: ExportInputs, keras_outputs, runner=None
) -> Attempt:
    """Refuse non-builtin ops in a converted model and compare it with Keras' outputs."""
    ops, builtin_only = op_counts(content)
    if not builtin_only:
        others = sorted(op for op in ops if op.startswith("CUSTOM"))
        raise ExportError(
            f"The converted model still holds non-builtin ops {others}; no file was written."
        )
    try:
        lite = runtime.interpreter(content)
    except RuntimeError as err:  # e.g. an op without an int8 kernel fails at allocate_tensors
        raise _Unrunnable(str(err).strip().splitlines()[0]) from None
    difference = (runner or runtime.run_windows)(lite, inputs.validation).astype(np.float64)
    difference -= keras_outputs.reshape(difference.shape)
    rmse = float(np.sqrt(np.mean(difference**2)))
    spread = float(np.std(keras_outputs))
    return Attempt(
        name=name,
        description=description,
        content=content,
        ops=ops,
        builtin_only=builtin_only,
        interpreter=lite,
        max_abs_error=float(np.max(np.abs(difference))),
        relative_rmse=rmse / spread if spread > 0 else rmse,
    )


def _report(
    mode: str,
    search: RecipeSearch,
    inputs: ExportInputs,
    max_error: float,
    keras_latency: float,
    time_steps: int,
    streaming: bool = False,
) -> dict:
    """The JSON-able report of the chosen attempt (`FILE.json` holds it, plus `file`)."""
    chosen = search.chosen
    representative = inputs.representative
    if streaming:
        step_latency = runtime.lite_step_latency_ms(chosen.interpreter, inputs.validation[0][0])
        extra = {
            "streaming": True,
            "latency_ms_p50": step_latency,
            "latency_unit": "step",
            "window_latency_ms_p50": step_latency * time_steps,
        }
    else:
        extra = {
            "streaming": False,
            "latency_ms_p50": runtime.lite_latency_ms(chosen.interpreter, inputs.validation[0]),
            "latency_unit": "window",
        }
    return {
        "mode": mode,
        "runtime": "litert",  # and TFLite Micro, where `micro.missing_ops` is empty
        "size_bytes": len(chosen.content),
        "ops": chosen.ops,
        "builtin_only": chosen.builtin_only,
        "max_abs_error": chosen.max_abs_error,
        "relative_rmse": chosen.relative_rmse,
        "max_error": float(max_error),
        **extra,
        "keras_latency_ms_p50": keras_latency,
        "recipe": chosen.description,
        "validation_windows": int(len(inputs.validation)),
        "representative_windows": int(len(representative)) if representative is not None else 0,
        **({"calibration_margin": inputs.margin} if mode in ("int8", "int8-full") else {}),
        "recipes_tried": [attempt.summary() for attempt in search.attempts],
        **runtime.io_quantization(chosen.interpreter),
        "preprocessing": {**inputs.preprocessing, "lookback": time_steps},
        "state_reset": STREAMING_NOTE if streaming else STATE_NOTE,
        "micro": micro_support(chosen.content).to_dict(),
        **({"kept_float": float_ops(chosen.content)} if mode in ("int8", "int8-full") else {}),
        **_latency_note(chosen, mode),
    }


# Measured with benchmarks/kernel_paths.py (BENCHMARKS.md, Export: kernel paths)
INTEGER_LSTM_NOTE = (
    "This file runs its LSTMs with LiteRT's integer LSTM kernel. On a desktop or server CPU "
    "(x86-64) that kernel is several times slower than the float one (the quickstart's int8 "
    "file: 0.53 ms a window against 0.08 ms in float32; XNNPACK delegates neither), so int8 "
    "buys size (about 3x smaller) and integer-only hardware (microcontrollers, NPUs, DSPs), "
    "not desktop speed. For speed on a CPU with float, export float32 or float16."
)


def _latency_note(chosen: Attempt, mode: str) -> dict:
    """`{"latency_note": ...}` for an integer file with an integer LSTM, else nothing."""
    if mode not in ("int8", "int8-full"):
        return {}
    lstms = chosen.ops.get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0)
    if lstms <= float_ops(chosen.content)["ops"].get("UNIDIRECTIONAL_SEQUENCE_LSTM", 0):
        return {}
    return {"latency_note": INTEGER_LSTM_NOTE}


def _check_max_error(max_error) -> None:
    """A bound on relative RMSE is a finite number >= 0; checked before any conversion."""
    if max_error is None:
        return
    if (
        isinstance(max_error, bool)
        or not isinstance(max_error, (int, float))
        or not (max_error >= 0 and np.isfinite(max_error))
    ):
        raise ExportError(
            f"Expected `max_error` (--max-error) to be a number >= 0, the largest relative "
            f"RMSE against Keras to accept (for example 0.05). Received: {max_error!r}"
        )


def _mask_value(inputs: ExportInputs) -> float | None:
    """The padding value of a masked model (whole sequences): padded steps are not streamed."""
    for layer in inputs.model.layers:
        if type(layer).__name__ == "Masking":
            return float(layer.mask_value)
    return None
