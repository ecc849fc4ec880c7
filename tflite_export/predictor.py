"""`LitePredictor`: an exported `.tflite` file and its report, used like a bundle."""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from keras_lstm.data.preprocessing import Preprocessing
from keras_lstm.errors import BundleError, DataError
from keras_lstm.files import atomic_write_bytes, missing_file
from tflite_export import runtime
from tflite_export.runtime import report_path


class LitePredictor:
    """Predictions in real units from an exported `.tflite` file and its JSON report.

    The report written by `tflite_export.export` beside the file (`FILE.json`) carries the
    feature names, lookback, scalers and input/output quantization, so raw feature rows are all
    `predict` needs. Each complete window of the rows runs alone, with the interpreter's state
    (the fused LSTM's variable tensors) reset before it.

    `predict(source)` takes what `Bundle.predict` takes and returns the frame it returns (same
    index, columns and units), so code written for one runs with the other; `predict_array`
    gives the same forecasts as an array, `predict_scaled` the raw outputs of scaled windows.

    Args:
        path: the `.tflite` file; its report is read from `path + ".json"`.
        threads: LiteRT interpreter threads.

    Raises:
        BundleError: the file or its report is missing or unreadable.

    Example:
        >>> predictor = LitePredictor("model.tflite")  # doctest: +SKIP
        >>> lite = predictor.predict("new_rows.csv")  # doctest: +SKIP
        >>> keras = Bundle.load("run").predict("new_rows.csv")  # doctest: +SKIP
        >>> lite.index.equals(keras.index), lite.columns.equals(keras.columns)  # doctest: +SKIP
        (True, True)
        >>> predictor.predict_array("new_rows.csv").shape  # doctest: +SKIP
        (977, 1, 1)
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        path = Path(path)
        problem = missing_file(path)
        if problem:
            raise BundleError(f"TFLite file {str(path)!r} {problem}. Check the path.")
        json_path = report_path(path)
        if not json_path.is_file():
            raise BundleError(
                f"{str(json_path)!r} is missing: LitePredictor needs the report written by "
                "`tflite_export.export` beside the .tflite file."
            )
        try:
            self.report = json.loads(json_path.read_text(encoding="utf-8"))
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BundleError(f"{str(json_path)!r} is not valid JSON: {err}") from None
        self.path = path
        if (
            not isinstance(self.report, dict)
            or not isinstance(self.report.get("input"), dict)
            or not isinstance(self.report.get("preprocessing", {}), dict)
        ):
            raise BundleError(
                f"{str(json_path)!r} is not an export report (no `input` details). Export the "
                "model again with `keras-lstm export`."
            )
        if self.report.get("runtime") == "tflite-micro":
            raise BundleError(
                f"{str(path)!r} is an int16x8 file for TFLite Micro: LiteRT's desktop "
                "interpreter has no int16-activation LSTM kernel. Run it on the device (its C "
                "array: `keras-lstm export --quantize int16x8 --format c-array`) or in the "
                "tflite-micro package's interpreter; export int8 or float32 for LiteRT."
            )
        content = path.read_bytes()
        problem = runtime.digest_mismatch(content, self.report)
        if problem == "missing":
            raise BundleError(
                f"{str(json_path)!r} has no digest (written by an earlier version, or by hand): "
                "its scalers cannot be trusted. Export the model again with `keras-lstm export`."
            )
        if problem is not None:
            edited = str(path) if problem == "model" else str(json_path)
            raise BundleError(
                f"{edited!r} does not match the digest in {str(json_path)!r}: it was changed "
                "after the export, or the two files come from different exports. Export the "
                "model again with `keras-lstm export` rather than edit either file."
            )
        try:
            self.interpreter = runtime.interpreter(path=str(path), threads=threads)
        except (ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BundleError(
                f"{str(path)!r} is not a readable TFLite model ({first}). The file may be "
                "truncated: export it again."
            ) from None
        if self.adaptable:  # every signature's tensors, so that a state reset reaches all
            runtime.allocate_signatures(self.interpreter)
        self.pre = Preprocessing.from_dict(self._preprocessing(), str(json_path))
        self.preprocessing = self.report.get("preprocessing") or {}
        self.lookback = self.pre.lookback
        self.feature_names = list(self.pre.feature_names)
        self.task = self.pre.task

    def _preprocessing(self) -> dict:
        """The report's preprocessing; a bare model's export (no bundle) has none, and its
        inputs are then scaled windows of `f0, f1, ...` predicting `y0, y1, ...` as they are."""
        pre = dict(self.report.get("preprocessing") or {})
        shape = self.report["input"].get("shape") or [1, 1, 1]
        out_shape = (self.report.get("output") or {}).get("shape") or [1, 1, 1]
        if not pre.get("feature_names"):
            pre["feature_names"] = [f"f{i}" for i in range(shape[-1] if len(shape) > 2 else 1)]
        pre.setdefault("kind", "series")
        pre.setdefault("task", "regression")
        pre.setdefault("lookback", shape[1] if len(shape) > 1 else 1)
        pre.setdefault("horizon", out_shape[1] if len(out_shape) > 2 else 1)
        pre.setdefault("target_names", [f"y{i}" for i in range(out_shape[-1])])
        return pre

    def predict_scaled(self, windows: np.ndarray) -> np.ndarray:
        """Raw model outputs for scaled windows `(n, lookback, features)`, one invoke each."""
        dtype = np.dtype(self.pre.input_dtype)
        if self.adaptable:
            return runtime.infer_windows(self.interpreter, np.asarray(windows, dtype))
        return runtime.run_windows(self.interpreter, np.asarray(windows, dtype))

    # --- adaptation on the device (`keras-lstm export --adaptable`) -----------------------------

    @property
    def adaptable(self) -> bool:
        """Whether the file keeps learning on the device (`tflite_export.adaptable`)."""
        return isinstance(self.report.get("adaptation"), dict)

    def training_pairs(self, source) -> tuple[np.ndarray, np.ndarray]:
        """Scaled `(windows, targets)` of every complete window of raw rows `source` whose
        next `horizon` rows are there too: `(n, lookback, features)` and `(n, horizon,
        targets)`, as the training of the bundle scaled them."""
        self._require_adaptable("training_pairs")
        features, _ = self.pre._rows(source)
        names = list(self.pre.feature_names)
        channels = [names.index(t) for t in self.pre.target_names]  # checked at export
        targets = features[:, channels].astype(np.float64)
        if self.pre.feature_scaler is not None:
            features = self.pre.feature_scaler.transform(features)
        if self.pre.target_scaler is not None:
            targets = self.pre.target_scaler.transform(targets)
        lookback, horizon = self.lookback, self.pre.horizon
        count = len(features) - lookback - horizon + 1
        if count < 1:
            raise DataError(
                f"Adapting needs at least lookback + horizon = {lookback + horizon} rows (a "
                f"window and the targets after it); received {len(features)}."
            )
        starts = np.arange(count)
        windows = np.stack([features[i : i + lookback] for i in starts]).astype(np.float32)
        after = np.stack([targets[i + lookback : i + lookback + horizon] for i in starts])
        return windows, after.astype(np.float32)

    def adapt(self, source, epochs: int | None = None, seed: int = 0) -> list[float]:
        """Keep learning on new raw rows: the `train` signature over their (window, target)
        pairs, in batches of the file's batch size (the last, incomplete batch is left out),
        shuffled with `seed`, for `epochs` passes (default the report's). Only the output
        layer and the linear path change, each weight within the report's bound of its
        shipped value; `reset_weights` undoes it all.

        Returns:
            The loss of each step (mean squared error in scaled units, before the step).

        Raises:
            BundleError: the file is not adaptable.
            DataError: the rows are bad, or fewer than one batch of pairs.

        Example:
            >>> predictor = LitePredictor("adaptable.tflite")  # doctest: +SKIP
            >>> losses = predictor.adapt("last_week.csv")  # doctest: +SKIP
            >>> predictor.save_state("weights.npy")  # doctest: +SKIP
        """
        self._require_adaptable("adapt")
        settings = self.report["adaptation"]
        epochs = settings["epochs"] if epochs is None else epochs
        if isinstance(epochs, bool) or not isinstance(epochs, int) or epochs < 1:
            raise DataError(f"epochs must be a whole number >= 1; received {epochs!r}.")
        windows, targets = self.training_pairs(source)
        batch = int(settings["batch_size"])
        if len(windows) < batch:
            raise DataError(
                f"Adapting needs at least one batch of {batch} (window, target) pairs: "
                f"{self.lookback + self.pre.horizon + batch - 1} rows; received "
                f"{len(windows) + self.lookback + self.pre.horizon - 1}."
            )
        runner = self.interpreter.get_signature_runner("train")
        rng = np.random.default_rng(seed)
        losses = []
        for _ in range(epochs):
            order = rng.permutation(len(windows))
            for start in range(0, len(order) - batch + 1, batch):
                rows = order[start : start + batch]
                self.interpreter.reset_all_variables()  # the LSTM state, not the weights
                out = runner(windows=windows[rows], targets=targets[rows])
                losses.append(float(out["loss"]))
        return losses

    def state(self) -> np.ndarray:
        """The adapted weights, as one float32 vector (`report["adaptation"]["layers"]`)."""
        self._require_adaptable("state")
        return np.array(self.interpreter.get_signature_runner("save")()["state"])

    def save_state(self, path) -> Path:
        """Write the adapted weights to `path` (`.npy`), atomically."""
        buffer = io.BytesIO()
        np.save(buffer, self.state(), allow_pickle=False)
        atomic_write_bytes(path, buffer.getvalue())
        return Path(path)

    def load_state(self, path) -> None:
        """Load weights `save_state` wrote (checked: a float32 vector of the file's size)."""
        self._require_adaptable("load_state")
        size = int(self.report["adaptation"]["state_size"])
        try:
            state = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as err:
            raise DataError(f"{str(path)!r} is not a saved state ({err}).") from None
        if state.dtype != np.float32 or state.shape != (size,) or not np.isfinite(state).all():
            raise DataError(
                f"{str(path)!r} holds {state.dtype} {state.shape}; this file's state is "
                f"{size} finite float32 numbers. Load a state saved from the same export."
            )
        self.interpreter.get_signature_runner("restore")(state=state)

    def reset_weights(self) -> None:
        """Back to the shipped weights: the forecasts are the exported file's again."""
        self._require_adaptable("reset_weights")
        self.interpreter.get_signature_runner("reset")()

    def _require_adaptable(self, name: str) -> None:
        if not self.adaptable:
            raise BundleError(
                f"`{name}` needs an adaptable model; {str(self.path)!r} is not one. Export one "
                "with `keras-lstm export BUNDLE --adaptable`."
            )

    def predict(self, source) -> pd.DataFrame:
        """Predict for every sample of `source`, in real units: the DataFrame `Bundle.predict`
        returns for the same input, through the same preprocessing object
        (`keras_lstm.data.preprocessing`), with the `.tflite` file as the model.

        Args:
            source: what `Bundle.predict` takes: a DataFrame (or CSV path) with the training
                feature columns (the time column and target columns may be present too); many
                series: with the series id column; for whole sequences also an array
                `(n, time, features)` or a list of `(time, features)` arrays (padded or cut to
                the exported length); for texts a list of strings.

        Returns:
            The frame of `Bundle.predict`: windows of a series, one row per complete window,
            indexed by the time of the first predicted step; many series: the series id as
            first column; sequences and texts: one row per sample. Regression columns: each
            target (horizon 1), or `TARGET@t+K` for step K, with `_lower`/`_upper` columns when
            the report has intervals. A classification has `label` and a `p(CLASS)` column per
            class. The arrays: `predict_array`.

        Raises:
            DataError: a feature column is missing, an unknown column is present, or there are
                too few rows.

        Example:
            >>> LitePredictor("model.tflite").predict("new_rows.csv").tail(1)  # doctest: +SKIP
        """
        return self.pre.predict(source, self.predict_scaled, fixed_length=True)

    # the name of `predict` before it returned a frame (`keras-lstm predict` calls it)
    predict_frame = predict

    def predict_array(self, rows, series=None) -> np.ndarray:
        """The forecasts of `predict` as an array, in real units (what `predict` itself
        returned before it gave `Bundle.predict`'s frame).

        Args:
            rows: a DataFrame (or CSV path) holding the feature columns, or an array
                `(rows, features)` in the training feature order; whole sequences as a long
                table or a list of `(time, features)` arrays (padded or cut to the exported
                length); texts as a list of strings. Many series: the rows of one series.
            series: the series id of `rows`, required when the model was trained with
                `data.scale_per_series` and `rows` has no series id column (each series has
                its own scalers in the report).

        Returns:
            Regression: `(samples, horizon, targets)` in the targets' units. Classification: the
            class probabilities `(samples, classes)` (two columns for a sigmoid output).

        Raises:
            DataError: a feature column is missing, or there are fewer rows than `lookback`.

        Example:
            >>> LitePredictor("model.tflite").predict_array(frame).shape  # doctest: +SKIP
            (977, 1, 1)
        """
        if self.pre.many_series:  # the rows of one series, with its own scalers
            return self.pre.values(rows, self.predict_scaled, fixed_length=True, series=series)
        return self.pre.values(rows, self.predict_scaled, fixed_length=True)

    def predict_intervals(self, rows, series=None) -> tuple[np.ndarray, dict]:
        """The forecasts of `predict_array` and their prediction intervals, from the calibrated
        offsets in the report (`training.interval`; empty when the model has none).

        Returns:
            `(forecast, {level: (lower, upper)})`, each array `(samples, horizon, targets)`.

        Example:
            >>> predictor = LitePredictor("model.tflite")  # doctest: +SKIP
            >>> point, bands = predictor.predict_intervals(rows)  # doctest: +SKIP
            >>> lower, upper = bands[0.9]  # doctest: +SKIP
        """
        if self.pre.many_series:
            return self.pre.forecast_bounds(
                rows, self.predict_scaled, fixed_length=True, series=series
            )
        return self.pre.forecast_bounds(rows, self.predict_scaled, fixed_length=True)

    @property
    def streaming(self) -> bool:
        """Whether the file is a step model (`keras-lstm export --streaming`)."""
        return bool(self.report.get("streaming"))

    def reset(self) -> None:
        """Start a new stream: the LSTM state goes back to zeros (streaming models)."""
        self._require_streaming("reset")
        self.interpreter.reset_all_variables()

    def step(self, row) -> np.ndarray:
        """Feed one time step of raw features to a streaming model; the prediction after it.

        The LSTM state carries over from the steps before (since `reset()`), so after the
        last step of a window (or of a whole sequence) the output is what `predict_array` gives
        for that window.

        Args:
            row: one step's raw feature values: a mapping or Series by feature name, or a
                sequence of `len(feature_names)` numbers in their order.

        Returns:
            Regression: `(horizon, targets)` in the targets' units. Classification: the class
            probabilities `(classes,)`.

        Raises:
            BundleError: the file is not a streaming model.
            DataError: a feature is missing or not a finite number.

        Example:
            >>> predictor = LitePredictor("model-float32-streaming.tflite")  # doctest: +SKIP
            >>> predictor.reset()  # doctest: +SKIP
            >>> for row in rows:  # doctest: +SKIP
            ...     forecast = predictor.step(row)
        """
        self._require_streaming("step")
        values = self._step_values(row)
        if self.pre.feature_scaler is not None:
            values = self.pre.feature_scaler.transform(values[None])[0]
        lite = self.interpreter
        source, target = lite.get_input_details()[0], lite.get_output_details()[0]
        io = runtime.io_quantization(lite)
        lite.set_tensor(source["index"], runtime.quantize(values[None, None], io["input"]))
        lite.invoke()
        raw = runtime.dequantize(lite.get_tensor(target["index"]), io["output"])
        return self.pre.real(raw)[0]

    def _require_streaming(self, name: str) -> None:
        if not self.streaming:
            raise BundleError(
                f"`{name}` needs a streaming model; {str(self.path)!r} runs whole windows. "
                "Export one with `keras-lstm export BUNDLE --streaming`."
            )

    def _step_values(self, row) -> np.ndarray:
        names = self.feature_names
        if isinstance(row, (dict, pd.Series)):
            missing = [name for name in names if name not in row]
            if missing:
                raise DataError(f"The step is missing feature {missing[0]!r}; it needs {names}.")
            row = [row[name] for name in names]
        try:
            values = np.asarray(row, dtype=np.float64).reshape(-1)
        except (TypeError, ValueError):
            raise DataError(f"A step must hold numbers for {names}; received {row!r}.") from None
        if len(values) != len(names):
            raise DataError(
                f"A step holds {len(names)} features {names}; received {len(values)} values."
            )
        if not np.isfinite(values).all():
            raise DataError(f"The step holds NaN or inf values: {values.tolist()}.")
        return values.astype(np.float32)

    def predict_labels(self, rows) -> list:
        """Classification: the most probable class of every window (from the report's classes)."""
        probabilities = self.predict_array(rows)
        classes = self.pre.classes or list(range(probabilities.shape[1]))
        return [classes[i] for i in probabilities.argmax(axis=1)]
