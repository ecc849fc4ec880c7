"""An adaptable `.tflite` file: a forecaster that keeps learning on the device.

`export_adaptable(bundle, "model.tflite")` writes a float32 file with five signatures, builtin
ops and TFLite resource variables only, so the stock LiteRT interpreter runs it:

- `infer(window)`: the forecast, as the plain export gives it;
- `train(windows, targets)`: one plain gradient step (SGD, mean squared error in the model's
  scaled units) on a batch of `ADAPT_BATCH` (window, target) pairs, for the **output layer**
  of the recurrent stack and the **linear path** only: the LSTMs stay as shipped. After the
  step each adapted weight is clipped to its shipped value plus or minus `max_change` times the
  largest shipped weight of its layer, so a run of bad rows cannot drive it anywhere;
- `save()`: the adapted weights as one float32 vector (a few hundred numbers);
- `restore(state)`: load such a vector back;
- `reset()`: the shipped weights again (the forecasts are the shipped file's, exactly).

Windows and targets are scaled by the bundle's scalers, as `LitePredictor.adapt` does from
raw rows. The learning rate (`ADAPT_LEARNING_RATE` unless given) and the bound go into the
report (`adaptation`), with the parity check of `infer` against Keras and the ops TFLite Micro
lacks for each signature's kernels (`micro`).

Only window-normalized forecasters of one series (the default forecaster: `data.scaler: window`
with its linear path) adapt; other models are refused with the reason.

Example:
    >>> report = export_adaptable(bundle, "adaptable.tflite")  # doctest: +SKIP
    >>> predictor = LitePredictor("adaptable.tflite")  # doctest: +SKIP
    >>> predictor.adapt(new_rows)  # doctest: +SKIP
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import tensorflow as tf

from keras_lstm.errors import ExportError
from keras_lstm.stderr import native_stderr_silenced
from tflite_export import forward as fwd
from tflite_export import runtime
from tflite_export.c_array import micro_support
from tflite_export.exporter import VALIDATION_WINDOWS, _commit, _keras_outputs
from tflite_export.ops import op_counts

ADAPT_BATCH = 16  # (window, target) pairs per `train` call
ADAPT_LEARNING_RATE = 0.01  # SGD's step; the report carries it
ADAPT_EPOCHS = 5  # passes over the new rows `LitePredictor.adapt` makes by default
MAX_CHANGE = 1.0  # the bound on each weight's change, in its layer's largest shipped weight
SIGNATURES = ("infer", "train", "save", "restore", "reset")
MICRO_NOTE = (
    "not supported: every op has a TFLite Micro kernel, but TFLite Micro's reference "
    "interpreter (the tflite-micro package) crashes loading this five-signature file with "
    "resource variables; it is for LiteRT (phones, Linux boards)"
)
ADAPT_NOTE = (
    "Reset the interpreter's variables (reset_all_variables) before each infer or train call: "
    "the fused LSTM keeps its state in variable tensors. The adapted weights are resource "
    "variables, which that reset leaves alone; the reset signature restores the shipped ones."
)


class _Adaptable(tf.Module):
    """The forward pass with its output layer and linear path as `tf.Variable`s."""

    def __init__(self, model, lookback: int, features: int, horizon: int, targets: int, lr):
        super().__init__()
        layers = [layer for layer in model.layers if type(layer).__name__ == "WindowNormalized"]
        if len(model.layers) != 1 or not layers or not layers[0].target_channels:
            raise ExportError(
                "Only window-normalized forecasters adapt on the device (data.scaler: window, "
                "the forecasting default); this model is not one. Export it without "
                "--adaptable."
            )
        self.forward = fwd._WindowNormalized(layers[0])
        heads = [step for step in self.forward.steps if isinstance(step, fwd._Dense)][-1:]
        heads += [step for step in self.forward.highway or [] if isinstance(step, fwd._Dense)]
        self.names, self.adapted, bounds = [], [], []
        for number, head in enumerate(heads):
            name = "output" if number == 0 else "linear_path"
            largest = float(np.abs(head.kernel.numpy()).max()) or 1.0
            head.kernel = tf.Variable(head.kernel, name=f"{name}_kernel")
            self.names.append(f"{name}/kernel")
            self.adapted.append(head.kernel)
            bounds.append(largest)
            if head.bias is not None:
                head.bias = tf.Variable(head.bias, name=f"{name}_bias")
                self.names.append(f"{name}/bias")
                self.adapted.append(head.bias)
                bounds.append(largest)
        self.shipped = [tf.constant(v.numpy()) for v in self.adapted]
        self.bounds = bounds
        self.sizes = [int(np.prod(v.shape)) for v in self.adapted]
        self.lr = float(lr)
        window = tf.TensorSpec([1, lookback, features], tf.float32, name="window")
        windows = tf.TensorSpec([ADAPT_BATCH, lookback, features], tf.float32, name="windows")
        target = tf.TensorSpec([ADAPT_BATCH, horizon, targets], tf.float32, name="targets")
        state = tf.TensorSpec([sum(self.sizes)], tf.float32, name="state")
        self.infer = tf.function(self._infer, input_signature=[window], autograph=False)
        self.train = tf.function(self._train, input_signature=[windows, target], autograph=False)
        self.save = tf.function(self._save, input_signature=[], autograph=False)
        self.restore = tf.function(self._restore, input_signature=[state], autograph=False)
        self.reset = tf.function(self._reset, input_signature=[], autograph=False)

    def _infer(self, window):
        return {"prediction": self.forward(window)}

    def _train(self, windows, targets):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(self.forward(windows) - targets))
        grads = tape.gradient(loss, self.adapted)
        for variable, grad, shipped, bound in zip(
            self.adapted, grads, self.shipped, self.bounds, strict=True
        ):
            stepped = variable - self.lr * grad
            variable.assign(shipped + tf.clip_by_value(stepped - shipped, -bound, bound))
        return {"loss": loss}

    def _state(self):
        return tf.concat([tf.reshape(v, [-1]) for v in self.adapted], axis=0)

    def _save(self):
        return {"state": self._state()}

    def _restore(self, state):
        for variable, part in zip(self.adapted, tf.split(state, self.sizes), strict=True):
            variable.assign(tf.reshape(part, variable.shape))
        return {"state": self._state()}

    def _reset(self):
        for variable, shipped in zip(self.adapted, self.shipped, strict=True):
            variable.assign(shipped)
        return {"state": self._state()}


def _convert(module: _Adaptable) -> bytes:
    signatures = {name: getattr(module, name).get_concrete_function() for name in SIGNATURES}
    with tempfile.TemporaryDirectory() as folder:
        tf.saved_model.save(module, folder, signatures=signatures)
        converter = tf.lite.TFLiteConverter.from_saved_model(folder, signature_keys=SIGNATURES)
        converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
        converter.experimental_enable_resource_variables = True
        try:
            with native_stderr_silenced():  # the converter's C++ notices
                return converter.convert()
        except Exception as err:  # the converter raises many types; all mean "cannot convert"
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise ExportError(f"The adaptable model did not convert to TFLite: {first}") from err


def export_adaptable(
    bundle,
    out_path,
    *,
    learning_rate: float | None = None,
    max_change: float = MAX_CHANGE,
    max_error: float = 1e-4,
) -> dict:
    """Write `out_path` (an adaptable float32 `.tflite` file) and its report `out_path.json`.

    Args:
        bundle: a `keras_lstm.Bundle` of a window-normalized forecaster of one series.
        out_path: the file to write (atomically, with its report, as `export` does).
        learning_rate: SGD's step on the device (default `ADAPT_LEARNING_RATE`).
        max_change: each adapted weight stays within its shipped value plus or minus this
            many times its layer's largest shipped weight.
        max_error: the largest relative RMSE of `infer` against Keras accepted.

    Returns:
        The report: what `export` reports for a float32 file (`ops`, `builtin_only`,
        `relative_rmse`, `preprocessing`, `micro`, ...) and `adaptation`: the signatures,
        the adapted weights (`layers`, `state_size`), `learning_rate`, `batch_size`,
        `epochs`, `max_change` and `bounds`.

    Raises:
        ExportError: the model cannot adapt (not a window-normalized forecaster, many series
            or future inputs), a non-builtin op remains, or parity fails. Nothing is written.

    Example:
        >>> report = export_adaptable(bundle, "adaptable.tflite")  # doctest: +SKIP
        >>> report["adaptation"]["state_size"]  # doctest: +SKIP
        58
    """
    pre = dict(bundle.preprocessing)
    _check_adaptable(pre)
    if learning_rate is None:
        learning_rate = ADAPT_LEARNING_RATE
    if not (isinstance(learning_rate, (int, float)) and learning_rate > 0):
        raise ExportError(f"The learning rate must be a number > 0; received {learning_rate!r}.")
    if not (isinstance(max_change, (int, float)) and max_change > 0):
        raise ExportError(f"max_change must be a number > 0; received {max_change!r}.")
    model = bundle.model
    lookback, features = int(model.input_shape[1]), int(model.input_shape[2])
    horizon, targets = (int(d) for d in model.output_shape[1:])
    module = _Adaptable(model, lookback, features, horizon, targets, learning_rate)
    module.bounds = [float(max_change) * b for b in module.bounds]
    content = _convert(module)
    ops, builtin_only = op_counts(content)
    if not builtin_only:
        raise ExportError(f"The adaptable file needs non-builtin ops: {sorted(ops)}.")
    validation = bundle.sample_windows(VALIDATION_WINDOWS, part="test")
    keras_outputs, keras_latency = _keras_outputs(model, validation.astype(np.float32))
    lite = runtime.interpreter(model=content)
    lite_outputs = runtime.infer_windows(lite, validation)
    error = lite_outputs - keras_outputs
    relative = float(np.sqrt(np.mean(error**2)) / (np.std(keras_outputs) or 1.0))
    if not relative <= max_error:
        raise ExportError(
            f"Parity check failed for the adaptable file: relative RMSE {relative:.4g} against "
            f"Keras exceeds {max_error:g}; no file was written."
        )
    report = {
        "mode": "float32",
        "runtime": "litert",  # not TFLite Micro: `adaptation.microcontrollers`
        "size_bytes": len(content),
        "ops": ops,
        "builtin_only": builtin_only,
        "max_abs_error": float(np.abs(error).max()),
        "relative_rmse": relative,
        "max_error": float(max_error),
        "streaming": False,
        "keras_latency_ms_p50": keras_latency,
        "recipe": "float32 with resource variables: infer, train, save, restore, reset",
        "validation_windows": int(len(validation)),
        "input": {"dtype": "float32", "shape": [1, lookback, features]},
        "output": {"dtype": "float32", "shape": [1, horizon, targets]},
        "preprocessing": {**pre, "lookback": lookback},
        "state_reset": ADAPT_NOTE,
        "micro": micro_support(content).to_dict(),
        "adaptation": _adaptation_report(module, learning_rate, max_change),
    }
    _commit(Path(out_path), content, report)
    return report


def _check_adaptable(pre: dict) -> None:
    """Only a forecaster of one series without future inputs adapts on the device."""
    if pre.get("kind") != "series" or pre.get("series_scalers") or pre.get("series_ids"):
        raise ExportError(
            "Only forecasters of one series adapt on the device; this bundle is of kind "
            f"{pre.get('kind')!r}{' with many series' if pre.get('series_ids') else ''}."
        )
    if pre.get("future_features") or pre.get("calendar"):
        raise ExportError(
            "Forecasters with known future inputs (data.future_features, data.calendar) do not "
            "adapt on the device yet: their training pairs need the future rows. Export "
            "without --adaptable."
        )


def _adaptation_report(module, learning_rate: float, max_change: float) -> dict:
    """The report's `adaptation`: signatures, adapted weights and the settings of SGD."""
    return {
        "signatures": list(SIGNATURES),
        "layers": list(module.names),
        "shapes": [list(v.shape) for v in module.adapted],
        "state_size": int(sum(module.sizes)),
        "learning_rate": float(learning_rate),
        "batch_size": ADAPT_BATCH,
        "epochs": ADAPT_EPOCHS,
        "max_change": float(max_change),
        "bounds": list(module.bounds),
        "loss": "mean squared error of the scaled targets",
        "microcontrollers": MICRO_NOTE,
    }
