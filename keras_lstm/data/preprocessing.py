"""The preprocessing a trained model needs, one typed object per data kind.

Training fits it; a bundle saves it as JSON (never pickle); `Bundle.predict`, `LitePredictor`
and the CLI all turn raw rows into model inputs, and model outputs into a frame in real units,
through it. Each kind is one class:

| kind | class | one sample is |
| --- | --- | --- |
| `series` | `SeriesPreprocessing` | a window of `lookback` rows of one table |
| `series` with `series_id` | `PanelPreprocessing` | a window inside one of many series |
| `sequences` | `SequencePreprocessing` | a whole labelled sequence (padded on a device) |
| `text` | `TextPreprocessing` | a text, as token ids |

Adding a data kind is a new class here with `_inputs`/`predict` and a `KINDS` entry.

This module imports only NumPy, pandas and keras-lstm's own light modules (no TensorFlow, Keras
or scikit-learn), so a device-side predictor can use it.

Example:
    >>> pre = SeriesPreprocessing(task="regression", feature_names=("y",), target_names=("y",),
    ...                           lookback=2)
    >>> Preprocessing.from_dict(pre.to_dict()) == pre
    True
    >>> pre.predict(pd.DataFrame({"y": [1.0, 2.0, 3.0]}), lambda w: w[:, -1:, :]).y.tolist()
    [2.0, 3.0]
"""

from __future__ import annotations

import dataclasses
import re
import string
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import pandas as pd
from numpy.lib.stride_tricks import sliding_window_view

from keras_lstm.data import future as ahead
from keras_lstm.data import intervals as conformal
from keras_lstm.data.loading import (
    _apply_missing,
    _check_numeric,
    _parse_times,
    load_features,
    read_frame,
)
from keras_lstm.data.outputs import prediction_frame, times_after
from keras_lstm.data.scaling import Scaler
from keras_lstm.data.sequences import PAD_VALUE, pad
from keras_lstm.errors import BundleError, DataError

FORMAT_VERSION = 1
PAD_TOKEN, UNKNOWN_TOKEN = 0, 1
# Keras' `TextVectorization` standardisation (`lower_and_strip_punctuation`), written out so a
# device can vectorise texts without TensorFlow; a test keeps the two equal.
_STRIP = re.compile(r'[!"#$%&()\*\+,\-\./:;<=>?@\[\\\]^_`{|}~\']')
# `tf.strings.lower` (what `TextVectorization` calls) lowers ASCII letters only: "ÜBER" -> "Über"
_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)
# `tf.strings.split` splits on ASCII whitespace only (not on a no-break space, say)
_SPACES = re.compile(r"[ \t\n\r\f\v]+")

Run = Callable[[np.ndarray], np.ndarray]


def tokens(text: str) -> list[str]:
    """The tokens Keras' `TextVectorization` makes of `text`: lower case, punctuation removed,
    split on whitespace.

    Example:
        >>> tokens("Hello, World!")
        ['hello', 'world']
    """
    return [t for t in _SPACES.split(_STRIP.sub("", str(text).translate(_ASCII_LOWER))) if t]


def vectorize(texts, vocabulary: list[str], length: int) -> np.ndarray:
    """Token ids `(n, length)` of `texts` with a fixed vocabulary (0 pads, 1 is unknown; the
    vocabulary's first two entries are those two, as Keras' `get_vocabulary()` returns them).

    Example:
        >>> vectorize(["b a c"], ["", "[UNK]", "a", "b"], 4).tolist()
        [[3, 2, 1, 0]]
    """
    ids = {token: i for i, token in enumerate(vocabulary) if i > UNKNOWN_TOKEN}
    out = np.full((len(texts), length), PAD_TOKEN, dtype=np.int32)
    for row, text in enumerate(texts):
        found = [ids.get(token, UNKNOWN_TOKEN) for token in tokens(text)][:length]
        out[row, : len(found)] = found
    return out


def probabilities(raw: np.ndarray) -> np.ndarray:
    """Class probabilities `(n, classes)` from a model's output: a sigmoid's single column
    becomes two, `[1 - p, p]`."""
    raw = np.asarray(raw, dtype=np.float64).reshape(len(raw), -1)
    return np.concatenate([1 - raw, raw], axis=1) if raw.shape[1] == 1 else raw


def series_scalers_dict(scalers: dict) -> dict:
    """Each series' `(feature, target)` scalers in their JSON form (`preprocessing.json`).

    Example:
        >>> one = Scaler("standard", (0.0,), (1.0,))
        >>> series_scalers_dict({"m0": (one, one)})["m0"]["target_scaler"]["kind"]
        'standard'
    """
    return {
        str(key): {"feature_scaler": f.to_dict(), "target_scaler": t.to_dict()}
        for key, (f, t) in scalers.items()
    }


def _scaler(raw) -> Scaler | None:
    return Scaler.from_dict(raw) if raw else None


@dataclass(frozen=True)
class Preprocessing:
    """What turns raw rows into model inputs and outputs into real units; one subclass per
    data kind (`KINDS`). Rebuilt from JSON with `Preprocessing.from_dict`.

    Attributes:
        task: `regression` or `classification`.
        feature_names: the model's input columns, in order.
        target_names: the predicted columns (or the label column).
        lookback: the window length (the padded length for sequences, the token count for text).
        horizon: steps predicted per window.
        time_column: the time column, used to index predictions.
        missing: the missing-value policy (`data.missing`).
        feature_scaler: the fitted input scaler (None: inputs go in as they are).
        target_scaler: the fitted target scaler (regression).
        classes: the class names (classification).
        other_columns: input columns that may be present and are ignored.
        intervals: the calibrated prediction intervals (`keras_lstm.data.intervals.calibrate`;
            `training.interval`), or None.
    """

    kind: ClassVar[str] = ""
    # what a kind's inputs are, read by the device-side predictor instead of the kind's name
    input_dtype: ClassVar[str] = "float32"  # the model's input type (token ids: int32)
    many_series: ClassVar[bool] = False  # rows of several series: predict one by its id
    task: str
    feature_names: tuple[str, ...]
    target_names: tuple[str, ...]
    lookback: int
    horizon: int = 1
    time_column: str | None = None
    missing: str = "error"
    feature_scaler: Scaler | None = None
    target_scaler: Scaler | None = None
    classes: tuple | None = None
    other_columns: tuple[str, ...] = ()
    intervals: dict | None = None

    # --- JSON ----------------------------------------------------------------------------------

    def to_dict(self) -> dict:
        """The JSON-able form (`preprocessing.json` in a bundle, `preprocessing` in an export
        report)."""
        out = {"format": FORMAT_VERSION, "kind": self.kind}
        for item in dataclasses.fields(self):
            value = getattr(self, item.name)
            if isinstance(value, Scaler):
                value = value.to_dict()
            elif isinstance(value, tuple):
                value = list(value)
            out[item.name] = value
        return out

    @staticmethod
    def from_dict(raw, where: str = "preprocessing.json") -> Preprocessing:
        """The preprocessing object of `to_dict()` output, checked.

        Raises:
            BundleError: `raw` is not valid preprocessing (naming `where`).
        """
        if not isinstance(raw, dict):
            raise BundleError(
                f"{where} must hold a JSON object. The bundle is damaged: train again."
            )
        if raw.get("format", FORMAT_VERSION) != FORMAT_VERSION:
            raise BundleError(
                f"{where} is bundle format {raw.get('format')}; this keras-lstm reads format "
                f"{FORMAT_VERSION}. Train again with this version."
            )
        kind = raw.get("kind")
        if kind == "series" and raw.get("series_id"):
            kind = "panel"
        cls = KINDS.get(kind)
        if cls is None:
            raise BundleError(f"{where} has an unknown `kind` {raw.get('kind')!r}. It is damaged.")
        for key, types in (
            ("task", str),
            ("feature_names", list),
            ("target_names", list),
            ("lookback", int),
            ("horizon", int),
        ):
            if not isinstance(raw.get(key), types) or isinstance(raw.get(key), bool):
                raise BundleError(
                    f"{where} has no valid `{key}`. The bundle is damaged or was edited: "
                    "train again."
                )
        values = {}
        try:
            for item in dataclasses.fields(cls):
                if item.name not in raw:
                    continue
                value = raw[item.name]
                if item.name.endswith("_scaler"):
                    value = _scaler(value)
                elif item.name == "series_scalers" and value is not None:
                    value = {
                        str(key): (_scaler(pair["feature_scaler"]), _scaler(pair["target_scaler"]))
                        for key, pair in value.items()
                    }
                elif isinstance(value, list):
                    value = tuple(value)
                values[item.name] = value
            pre = cls(**values)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise BundleError(
                f"{where} holds an invalid scaler or field. The bundle is damaged: train again."
            ) from None
        pre._check(where)
        return pre

    def _check(self, where: str) -> None:
        for names, scaler in (
            ("feature_names", self.feature_scaler),
            ("target_names", self.target_scaler),
        ):
            if scaler is not None and len(scaler.center) != len(getattr(self, names)):
                raise BundleError(
                    f"{where}: `{names}` has {len(getattr(self, names))} entries but its scaler "
                    f"has {len(scaler.center)} columns. The bundle was edited: train again."
                )

    # --- prediction ----------------------------------------------------------------------------

    def predict(self, source, run: Run, *, fixed_length: bool = False) -> pd.DataFrame:
        """Predictions for every sample of `source`, in real units, as a frame.

        Args:
            source: the new data (a DataFrame or CSV path; arrays and text lists where the kind
                takes them).
            run: the model: scaled inputs `(n, ...)` in, raw outputs out.
            fixed_length: every input must have exactly `lookback` steps (an exported TFLite
                model): whole sequences are zero-padded or cut to it.

        Returns:
            Regression: a column per target (horizon 1) or `TARGET@t+K` per step.
            Classification: `label` and a `p(CLASS)` column per class.
        """
        inputs, index = self._inputs(source, fixed_length)
        out = self.frame(self._run(run, inputs), index)
        return self._with_bounds(out, inputs) if self.intervals else out

    def spreads(self, inputs, channels) -> np.ndarray:
        """Each scaled input window's spread per target in real units, read from the input
        `channels` of the targets (`intervals.window_spreads`): what the intervals' offsets are
        multiplied by. `channels=None`: ones (absolute intervals)."""
        if channels is None:
            return np.ones((len(inputs), len(self.target_names)))
        scale = self.feature_scaler.scale if self.feature_scaler is not None else None
        return conformal.window_spreads(inputs, channels, scale)

    def bounds(self, point: np.ndarray, inputs) -> dict:
        """`{level: (lower, upper)}` around real-unit forecasts `point` `(n, horizon, targets)`
        of the scaled `inputs`; empty without intervals."""
        if not self.intervals:
            return {}
        spreads = self.spreads(inputs, self.intervals["spread_channels"])
        return {
            level: conformal.bounds(point, spreads, self.intervals, level)
            for level in self.intervals["levels"]
        }

    def _with_bounds(self, out: pd.DataFrame, inputs) -> pd.DataFrame:
        """`out` with `COLUMN_lower` / `COLUMN_upper` after each forecast column (with several
        levels, `COLUMN_lower_80`, ...: the level in percent)."""
        point = out.to_numpy(dtype=np.float64).reshape(len(out), -1, len(self.target_names))
        several = len(self.intervals["levels"]) > 1
        bands = {
            f"_{level * 100:g}" if several else "": (
                lower.reshape(len(out), -1),
                upper.reshape(len(out), -1),
            )
            for level, (lower, upper) in self.bounds(point, inputs).items()
        }
        columns = {}
        for i, name in enumerate(out.columns):
            columns[name] = out[name].to_numpy()
            for tag, (lower, upper) in bands.items():
                columns[f"{name}_lower{tag}"] = lower[:, i]
                columns[f"{name}_upper{tag}"] = upper[:, i]
        return pd.DataFrame(columns, index=out.index)

    def values(self, source, run: Run, *, fixed_length: bool = False) -> np.ndarray:
        """Like `predict`, as an array: `(n, horizon, targets)` in real units, or class
        probabilities `(n, classes)`."""
        inputs, _ = self._inputs(source, fixed_length)
        return self.real(self._run(run, inputs))

    def forecast_bounds(self, source, run: Run, *, fixed_length: bool = False):
        """Real-unit forecasts `(n, horizon, targets)` and their interval bounds
        `{level: (lower, upper)}` (empty without `training.interval`)."""
        inputs, _ = self._inputs(source, fixed_length)
        point = self.real(self._run(run, inputs))
        return point, self.bounds(point, inputs)

    def _run(self, run: Run, inputs) -> np.ndarray:
        if isinstance(inputs, list):  # samples of different lengths: one call each
            outputs = [np.asarray(run(sample[None])) for sample in inputs]
            return np.concatenate(outputs) if outputs else np.zeros((0, 1), np.float32)
        return np.asarray(run(inputs))

    def real(self, raw: np.ndarray) -> np.ndarray:
        """Raw model outputs in real units: probabilities, or targets through the scaler."""
        if self.task == "classification":
            return probabilities(raw)
        raw = np.asarray(raw, dtype=np.float64)
        if self.target_scaler is None:
            return raw
        return self.target_scaler.inverse_transform(raw.reshape(*raw.shape[:-1], -1))

    def frame(self, raw: np.ndarray, index) -> pd.DataFrame:
        """Raw model outputs as the prediction frame (see `predict`)."""
        # the three fields the frame is named from: `to_dict()` would also copy every scaler
        # (each series' in a panel) and the vocabulary on every call
        names = {
            "task": self.task,
            "classes": self.classes,
            "target_names": list(self.target_names),
        }
        return prediction_frame(names, self.real(raw), index)

    def _inputs(self, source, fixed_length: bool):
        raise NotImplementedError


@dataclass(frozen=True)
class SeriesPreprocessing(Preprocessing):
    """One table: every complete window of `lookback` rows is a sample.

    With `future_features` or `calendar` (`keras_lstm.data.future`) the input's last `horizon`
    rows hold the future inputs of the steps to forecast (targets and past-only columns may be
    empty there), and every window's future channels are read `horizon` rows ahead.
    """

    kind: ClassVar[str] = "series"
    future_features: tuple[str, ...] = ()
    calendar: tuple[str, ...] = ()

    @property
    def past_features(self) -> tuple[str, ...]:
        """The raw columns fed as they are (all features without future inputs)."""
        ahead_count = len(self.future_features) + 2 * len(self.calendar)
        return self.feature_names[: len(self.feature_names) - ahead_count]

    def _future_rows(self, source) -> tuple[np.ndarray, pd.Index]:
        """Model input rows of an input whose last `horizon` rows hold the future inputs."""
        frame = read_frame(source)  # a DataFrame or CSV path; raw arrays have no future rows
        frame.columns = [str(c) for c in frame.columns]
        future = list(self.future_features)
        absent = [c for c in future if c not in frame.columns]
        if absent:
            raise DataError(
                f"Future column {absent[0]!r}, used in training, is missing from the input. "
                f"Expected columns: {', '.join([*self.past_features, *future])}."
            )
        ahead.check_future_rows(frame, future, self.horizon)
        history = frame.iloc[: -self.horizon]
        past, _ = load_features(
            history,
            list(self.past_features),
            allowed=[*self.target_names, self.time_column, *self.other_columns, *future],
            time_column=self.time_column,
            missing=self.missing,
            lookback=self.lookback,
        )
        if len(past) != len(history):
            raise DataError(
                "Rows with missing past values cannot be dropped (data.missing: drop) when the "
                "model has known future inputs: the rows would no longer line up with them. "
                "Fill the missing values first."
            )
        index = pd.RangeIndex(len(frame))
        if self.time_column and self.time_column in frame.columns:
            index = pd.Index(_parse_times(frame, self.time_column), name=self.time_column)
        elif self.calendar:
            raise DataError(
                f"Time column {self.time_column!r} is missing from the input: the model's "
                f"calendar features ({', '.join(self.calendar)}) are computed from it, for the "
                "future rows too."
            )
        known = ahead.known_inputs(frame[future].to_numpy(np.float32), index, self.calendar)
        return ahead.model_inputs(past, known, self.horizon), index

    def _rows(self, source) -> tuple[np.ndarray, pd.Index]:
        if self.future_features or self.calendar:
            return self._future_rows(source)
        if isinstance(source, np.ndarray):
            values = np.asarray(source)
            if not np.issubdtype(values.dtype, np.number) or values.dtype == np.bool_:
                raise DataError(f"Rows must hold numbers; received an array of {values.dtype}.")
            if values.ndim != 2 or values.shape[1] != len(self.feature_names):
                raise DataError(
                    f"Expected rows of {len(self.feature_names)} features "
                    f"{list(self.feature_names)}; received shape {values.shape}."
                )
            if not np.isfinite(values).all():
                raise DataError("The rows hold NaN or inf values. Clean them before predicting.")
            if len(values) < self.lookback:
                raise DataError(
                    f"Need at least lookback={self.lookback} rows to make one window; received "
                    f"{len(values)}."
                )
            return values.astype(np.float32), pd.RangeIndex(len(values))
        return load_features(
            source,
            list(self.feature_names),
            allowed=[*self.target_names, self.time_column, *self.other_columns],
            time_column=self.time_column,
            missing=self.missing,
            lookback=self.lookback,
        )

    def _inputs(self, source, fixed_length):
        features, index = self._rows(source)
        if self.feature_scaler is not None:
            features = self.feature_scaler.transform(features)
        windows = sliding_window_view(features, self.lookback, axis=0).transpose(0, 2, 1)
        rows = np.arange(self.lookback, len(features) + 1)
        return np.ascontiguousarray(windows, dtype=np.float32), times_after(index, rows)


@dataclass(frozen=True)
class PanelPreprocessing(SeriesPreprocessing):
    """Many series in one long table, told apart by `series_id`; windows never cross series.
    With `series_scalers` each series has its own fitted scalers."""

    kind: ClassVar[str] = "panel"
    many_series: ClassVar[bool] = True
    series_id: str = ""
    series_scalers: dict | None = None

    def to_dict(self) -> dict:
        out = super().to_dict()
        out["kind"] = "series"  # the bundle format names many series by their `series_id`
        if self.series_scalers is not None:
            out["series_scalers"] = series_scalers_dict(self.series_scalers)
        return out

    def one_series(self, key) -> SeriesPreprocessing:
        """The single-series preprocessing of series `key` (its own scalers when it has them).

        Raises:
            DataError: the model scales each series by its own statistics and `key` was not in
                the training data.
        """
        values = {f.name: getattr(self, f.name) for f in dataclasses.fields(SeriesPreprocessing)}
        if self.series_scalers is not None:
            if str(key) not in self.series_scalers:
                raise DataError(
                    f"Series {key!r} was not in the training data; this model scales each "
                    "series by its own statistics (data.scale_per_series) and has none for it. "
                    f"Known series: {', '.join(sorted(self.series_scalers)[:5])}..."
                )
            values["feature_scaler"], values["target_scaler"] = self.series_scalers[str(key)]
        return SeriesPreprocessing(**values)

    def _groups(self, source):
        frame = read_frame(source)
        if self.series_id not in frame.columns:
            raise DataError(
                f"Series column {self.series_id!r} is missing from the input; the model was "
                "trained on many series and needs it to tell them apart."
            )
        return frame.groupby(self.series_id, sort=False)

    def predict(self, source, run: Run, *, fixed_length: bool = False) -> pd.DataFrame:
        parts = []
        for key, group in self._groups(source):
            single = self.one_series(key).predict(group.drop(columns=[self.series_id]), run)
            single.insert(0, self.series_id, key)
            parts.append(single)
        return pd.concat(parts)

    def values(self, source, run: Run, *, fixed_length: bool = False, series=None) -> np.ndarray:
        """The real-unit forecasts of one series: `source` holds its rows (with or without the
        `series_id` column); `series` names it when the rows do not."""
        source, series = self._one(source, series)
        return self.one_series(series).values(source, run)

    def _one(self, source, series):
        """The rows of one series without the id column, and its id."""
        if isinstance(source, pd.DataFrame) and self.series_id in source.columns:
            keys = source[self.series_id].unique()
            if len(keys) != 1:
                raise DataError(
                    f"`values` takes one series at a time; the input holds {len(keys)} in "
                    f"{self.series_id!r}. Use `predict` for many."
                )
            series = keys[0] if series is None else series
            source = source.drop(columns=[self.series_id])
        if series is None and self.series_scalers is not None:
            raise DataError(
                "This model scales each series by its own statistics: pass `series=` with one "
                f"of {', '.join(sorted(self.series_scalers)[:5])}... Received: series=None"
            )
        return source, series

    def forecast_bounds(self, source, run: Run, *, fixed_length: bool = False, series=None):
        """`Preprocessing.forecast_bounds` of one series (see `values`)."""
        source, series = self._one(source, series)
        return self.one_series(series).forecast_bounds(source, run)


@dataclass(frozen=True)
class SequencePreprocessing(Preprocessing):
    """Whole sequences, one label each: a long table with `series_id`, an array
    `(n, time, features)` or a list of `(time, features)` arrays. `lookback` is the padded
    length of an exported model; labels are never needed to predict."""

    kind: ClassVar[str] = "sequences"
    series_id: str = ""
    label: str | None = None
    mask_value: float | None = PAD_VALUE

    def sequences(self, source) -> tuple[list[np.ndarray], pd.Index]:
        """The raw (unscaled) sequences of `source` and their ids."""
        if isinstance(source, (list, tuple, np.ndarray)):
            arrays = [np.asarray(s, dtype=np.float64) for s in source]
            if not arrays:
                raise DataError("No sequences given.")
            for i, s in enumerate(arrays):
                if s.ndim == 1 and len(self.feature_names) == 1:
                    arrays[i] = s = s[:, None]
                if s.ndim != 2 or s.shape[1] != len(self.feature_names):
                    raise DataError(
                        f"Expected sequences of {len(self.feature_names)} features "
                        f"{list(self.feature_names)}; sequence {i} has shape {s.shape}."
                    )
                if not np.isfinite(s).all():
                    raise DataError(f"Sequence {i} holds NaN or inf values. Clean it first.")
            return [s.astype(np.float32) for s in arrays], pd.RangeIndex(len(arrays), name="series")
        frame = read_frame(source)
        frame.columns = [str(c) for c in frame.columns]
        if self.series_id not in frame.columns:
            raise DataError(
                f"Series column {self.series_id!r} (data.series_id) is missing from the input: "
                "it tells the sequences apart."
            )
        missing = [n for n in self.feature_names if n not in frame.columns]
        if missing:
            raise DataError(
                f"Feature column {missing[0]!r}, used in training, is missing from the input. "
                f"Expected columns: {', '.join(self.feature_names)}."
            )
        features = list(self.feature_names)
        _check_numeric(frame, features)
        arrays, ids = [], []
        for key, group in frame.groupby(self.series_id, sort=False):
            group = group.reset_index(drop=True)
            if self.time_column and self.time_column in group.columns:
                _parse_times(group, self.time_column)
            group = _apply_missing(group, features, self.missing)
            if group.empty:
                continue
            arrays.append(group[features].to_numpy(dtype=np.float32))
            ids.append(key)
        if not arrays:
            raise DataError("The input holds no sequence with usable rows.")
        return arrays, pd.Index(ids, name="series")

    def _inputs(self, source, fixed_length):
        arrays, index = self.sequences(source)
        if self.feature_scaler is not None:
            arrays = [self.feature_scaler.transform(s) for s in arrays]
        if fixed_length:
            return pad(arrays, self.lookback), index
        return arrays, index  # unpadded, one model call each: exactly what a device does


@dataclass(frozen=True)
class TextPreprocessing(Preprocessing):
    """Texts as token ids of a fixed vocabulary, `lookback` ids per text."""

    kind: ClassVar[str] = "text"
    input_dtype: ClassVar[str] = "int32"
    vocabulary: tuple[str, ...] = ()
    sequence_length: int | None = None

    def _check(self, where: str) -> None:
        if len(self.vocabulary) < 2:
            raise BundleError(f"{where} has no valid `vocabulary`. The bundle is damaged.")
        super()._check(where)

    def texts(self, source) -> tuple[list[str], pd.Index]:
        """The texts of `source`: a list of strings, or a frame / CSV with the text column."""
        column = self.feature_names[0]
        if isinstance(source, pd.DataFrame) or not isinstance(source, (list, tuple, np.ndarray)):
            frame = read_frame(source)
            if column not in frame.columns:
                raise DataError(f"Text column {column!r} is missing from the input.")
            texts = frame[column].fillna("").astype(str).tolist()
        else:
            texts = [str(t) for t in source]
        return texts, pd.RangeIndex(len(texts), name="sample")

    def _inputs(self, source, fixed_length):
        texts, index = self.texts(source)
        return vectorize(texts, list(self.vocabulary), self.lookback), index


KINDS: dict[str, type[Preprocessing]] = {
    cls.kind: cls
    for cls in (SeriesPreprocessing, PanelPreprocessing, SequencePreprocessing, TextPreprocessing)
}


def preprocessing_for(kind: str, **values) -> Preprocessing:
    """Build the preprocessing of data kind `kind` (`series`, `panel`, `sequences`, `text`).

    Example:
        >>> preprocessing_for("text", task="classification", feature_names=("t",),
        ...                   target_names=("y",), lookback=4, vocabulary=("", "[UNK]")).kind
        'text'
    """
    if kind not in KINDS:
        raise ValueError(f"Unknown data kind {kind!r}; expected one of {sorted(KINDS)}.")
    return KINDS[kind](**values)


__all__ = [
    "KINDS",
    "PanelPreprocessing",
    "Preprocessing",
    "SequencePreprocessing",
    "SeriesPreprocessing",
    "TextPreprocessing",
    "preprocessing_for",
    "probabilities",
    "tokens",
    "vectorize",
]
