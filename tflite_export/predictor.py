"""`LitePredictor`: an exported `.tflite` file and its report, used like a bundle."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from keras_lstm.data.loading import _parse_times, read_frame
from keras_lstm.data.outputs import prediction_frame, times_after
from keras_lstm.data.sequences import pad, sequences_from_arrays
from keras_lstm.errors import BundleError, DataError
from tflite_export import runtime
from tflite_export.runtime import report_path


def _affine(raw: dict | None):
    """`(center, scale)` of a scaler dict, or None for no scaling."""
    if not raw or raw.get("kind") == "none":
        return None
    return np.asarray(raw["center"], np.float64), np.asarray(raw["scale"], np.float64)


class LitePredictor:
    """Predictions in real units from an exported `.tflite` file and its JSON report.

    The report written by `tflite_export.export` beside the file (`FILE.json`) carries the
    feature names, lookback, scalers and input/output quantization, so raw feature rows are all
    `predict` needs. Each complete window of the rows runs alone, with the interpreter's state
    (the fused LSTM's variable tensors) reset before it.

    Args:
        path: the `.tflite` file; its report is read from `path + ".json"`.
        threads: LiteRT interpreter threads.

    Raises:
        BundleError: the file or its report is missing or unreadable.

    Example:
        >>> predictor = LitePredictor("model.tflite")  # doctest: +SKIP
        >>> predictor.predict(frame[predictor.feature_names]).shape  # doctest: +SKIP
        (977, 1, 1)
    """

    def __init__(self, path: str | os.PathLike, threads: int = 1):
        path = Path(path)
        if not path.is_file():
            raise BundleError(f"TFLite file {str(path)!r} does not exist. Check the path.")
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
        try:
            self.interpreter = runtime.interpreter(path=str(path), threads=threads)
        except (ValueError, RuntimeError) as err:
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BundleError(
                f"{str(path)!r} is not a readable TFLite model ({first}). The file may be "
                "truncated: export it again."
            ) from None
        pre = self.report.get("preprocessing") or {}
        self.preprocessing = pre
        try:
            self.lookback = int(pre.get("lookback") or self.report["input"]["shape"][1])
            self._features = _affine(pre.get("feature_scaler"))
            self._targets = _affine(pre.get("target_scaler"))
        except (KeyError, IndexError, TypeError, ValueError):
            raise BundleError(
                f"{str(json_path)!r} has no valid lookback or scalers. Export the model again."
            ) from None
        self.feature_names = list(pre.get("feature_names") or [])
        self.task = pre.get("task", "regression")

    def _windows(self, rows) -> np.ndarray:
        if isinstance(rows, pd.DataFrame):
            if not self.feature_names:
                raise DataError(
                    "This export has no feature names; pass a (rows, features) array instead."
                )
            missing = [name for name in self.feature_names if name not in rows.columns]
            if missing:
                raise DataError(
                    f"Input is missing feature columns {missing}; the model was trained on "
                    f"{self.feature_names}."
                )
            for name in self.feature_names:
                column = rows[name]
                if not pd.api.types.is_numeric_dtype(column) or pd.api.types.is_bool_dtype(column):
                    raise DataError(
                        f"Feature column {name!r} is not numeric; it must hold numbers."
                    )
                bad = np.flatnonzero(~np.isfinite(column.to_numpy(np.float64)))
                if len(bad):
                    raise DataError(
                        f"Feature column {name!r} has a missing or infinite value at row "
                        f"{int(bad[0])}. Clean the rows before predicting."
                    )
            rows = rows[self.feature_names].to_numpy(np.float64)
        elif isinstance(rows, np.ndarray) and (
            not np.issubdtype(rows.dtype, np.number) or np.issubdtype(rows.dtype, np.bool_)
        ):
            raise DataError(f"Rows must hold numbers; received an array of dtype {rows.dtype}.")
        values = np.asarray(rows, dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError("The rows hold NaN or inf values. Clean them before predicting.")
        if self.report["input"]["dtype"].startswith("int") and self.report["input"]["scale"] == 0:
            values = values.reshape(len(values), 1)  # token ids: one column, not scaled
        elif self._features is not None:
            center, scale = self._features
            if values.ndim != 2 or values.shape[1] != len(center):
                raise DataError(
                    f"Expected rows of {len(center)} features; received shape {values.shape}."
                )
            values = (values - center) / scale
        if len(values) < self.lookback:
            raise DataError(
                f"Need at least lookback={self.lookback} rows to make one window; received "
                f"{len(values)}."
            )
        windows = np.lib.stride_tricks.sliding_window_view(values, self.lookback, axis=0)
        windows = windows.transpose(0, 2, 1)
        if windows.shape[-1] == 1 and len(self.report["input"]["shape"]) == 2:
            windows = windows[..., 0]
        return windows.astype(np.float32)

    def _sequences(self, sequences) -> np.ndarray:
        """Whole sequences (a list of `(time, features)` arrays, or a long table with the series
        id column) scaled and zero-padded (or cut) to the exported length; the model skips the
        padding exactly as the Keras model's `Masking` layer does."""
        pre = self.preprocessing
        if isinstance(sequences, pd.DataFrame):
            column = pre.get("series_id")
            if column not in sequences.columns:
                raise DataError(f"Series column {column!r} is missing from the input.")
            missing = [n for n in self.feature_names if n not in sequences.columns]
            if missing:
                raise DataError(f"Input is missing feature columns {missing}.")
            sequences = [
                group[self.feature_names].to_numpy(np.float64)
                for _, group in sequences.groupby(column, sort=False)
            ]
        table = sequences_from_arrays(list(sequences), np.zeros(len(sequences)))
        center, scale = self._features or (np.zeros(len(self.feature_names)), 1.0)
        if table.sequences[0].shape[1] != len(center):
            raise DataError(
                f"Expected sequences of {len(center)} features; received "
                f"{table.sequences[0].shape[1]}."
            )
        scaled = [((s - center) / scale).astype(np.float32) for s in table.sequences]
        return pad(scaled, self.lookback)

    def predict_scaled(self, windows: np.ndarray) -> np.ndarray:
        """Raw model outputs for scaled windows `(n, lookback, features)`, one invoke each."""
        return runtime.run_windows(self.interpreter, np.asarray(windows, np.float32))

    def predict(self, rows, series=None) -> np.ndarray:
        """Predict for every complete window of raw feature rows, in real units.

        Args:
            rows: a DataFrame holding the feature columns (others are ignored), or an array
                `(rows, features)` in the training feature order.
            series: the series id of `rows`, required when the model was trained with
                `data.scale_per_series` (each series has its own scalers in the report).

        Returns:
            Regression: `(windows, horizon, targets)` in the targets' units. Classification: the
            class probabilities `(windows, classes)` (two columns for a sigmoid output).

        Raises:
            DataError: a feature column is missing or there are fewer rows than `lookback`.
        """
        scalers = self.preprocessing.get("series_scalers")
        if scalers is not None:
            if series is None or str(series) not in scalers:
                raise DataError(
                    "This model scales each series by its own statistics: pass `series=` with "
                    f"one of {', '.join(sorted(scalers)[:5])}... Received: series={series!r}"
                )
            self._features = _affine(scalers[str(series)]["feature_scaler"])
            self._targets = _affine(scalers[str(series)]["target_scaler"])
        if self.preprocessing.get("kind") == "sequences":
            windows = self._sequences(rows)
        else:
            windows = self._windows(rows)
        raw = self.predict_scaled(windows).astype(np.float64)
        if self.task == "classification":
            raw = raw.reshape(len(raw), -1)
            return np.concatenate([1 - raw, raw], axis=1) if raw.shape[1] == 1 else raw
        if self._targets is not None:
            center, scale = self._targets
            raw = raw * scale + center
        return raw

    def predict_labels(self, rows) -> list:
        """Classification: the most probable class of every window (from the report's classes)."""
        probabilities = self.predict(rows)
        classes = self.preprocessing.get("classes") or list(range(probabilities.shape[1]))
        return [classes[i] for i in probabilities.argmax(axis=1)]

    def predict_frame(self, source, series=None) -> pd.DataFrame:
        """Predictions as the DataFrame `Bundle.predict` returns, from a DataFrame or CSV path.

        One row per window, indexed by the time of the first predicted step (the data's time
        column when it has one), a column per target (or `TARGET@t+K`), or `label` and a
        `p(CLASS)` column per class; whole sequences are indexed by their series id.

        Example:
            >>> LitePredictor("model.tflite").predict_frame("new_rows.csv")  # doctest: +SKIP
        """
        frame = read_frame(source)
        pre = self.preprocessing
        values = self.predict(frame, series=series)
        if pre.get("kind") == "sequences":
            ids = pd.unique(frame[pre["series_id"]])
            return prediction_frame(pre, values, pd.Index(ids, name="series"))
        time_column = pre.get("time_column")
        if time_column and time_column in frame.columns:
            index = pd.Index(_parse_times(frame, time_column), name=time_column)
        else:
            index = pd.RangeIndex(len(frame))
        times = times_after(index, np.arange(self.lookback, len(frame) + 1))
        return prediction_frame(pre, values, times)
