"""Whole sequences as samples: labelled recordings, NumPy arrays of sequences, and texts.

A long-format table with `data.series_id` and `data.label` becomes one sample per series: its
feature rows (in time order) and its label. Variable lengths are padded with zeros after
scaling; the model's `Masking` layer skips the padding, so a padded batch predicts exactly what
each sequence predicts alone. Splits are stratified by label (scikit-learn).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from keras_lstm.config import DataConfig
from keras_lstm.data.loading import (
    _apply_missing,
    _check_numeric,
    _parse_times,
    read_frame,
    select_features,
)
from keras_lstm.errors import DataError, row_words

PAD_VALUE = 0.0


@dataclass(frozen=True)
class SequenceTable:
    """Sequences with one label each.

    Attributes:
        sequences: one `(length, features)` float32 array per sample (token ids `(length,)` for
            text, after vectorising).
        labels: one label per sample (raw values).
        feature_names: the feature columns.
        ids: the series id of each sample (or its position).
        test_count: how many trailing samples form a separate test set (from `data.test_path`).
    """

    sequences: list
    labels: np.ndarray
    feature_names: tuple[str, ...]
    ids: tuple
    test_count: int = 0


def load_sequences(source, config: DataConfig) -> SequenceTable:
    """Split a long table into one labelled sequence per `data.series_id`.

    Raises:
        DataError: a column is missing or not numeric, the label changes within a series, or
            times are not increasing within a series.

    Example:
        >>> frame = pd.DataFrame({"id": [1, 1, 2], "x": [0.1, 0.2, 0.3], "y": ["a", "a", "b"]})
        >>> table = load_sequences(frame, DataConfig(series_id="id", label="y"))
        >>> [len(s) for s in table.sequences], table.labels.tolist()
        ([2, 1], ['a', 'b'])
    """
    frame = read_frame(config.path if source is None else source)
    frame.columns = [str(c) for c in frame.columns]
    for key, column in (("series_id", config.series_id), ("label", config.label)):
        if column not in frame.columns:
            raise DataError(
                f"Column {column!r} (data.{key}) is not in the data. "
                f"Columns: {', '.join(frame.columns)}."
            )
    skip = {config.series_id, config.label, config.time_column} - {None}
    features = select_features(frame, config.features, skip)
    _check_numeric(frame, features)
    if frame[config.label].isna().any():
        row = int(np.flatnonzero(frame[config.label].isna())[0])
        raise DataError(f"Label column {config.label!r} has a missing value at {row_words(row)}.")
    sequences, labels, ids = [], [], []
    for key, group in frame.groupby(config.series_id, sort=False):
        if group[config.label].nunique() > 1:
            raise DataError(
                f"Label column {config.label!r} changes within series {key!r} "
                f"({', '.join(map(str, group[config.label].unique()[:3]))}). A whole-sequence "
                "label must be constant within each series."
            )
        if config.time_column:
            _parse_times(group.reset_index(drop=True), config.time_column)
        group = _apply_missing(group.reset_index(drop=True), features, config.missing)
        if group.empty:
            continue
        sequences.append(group[features].to_numpy(dtype=np.float32))
        labels.append(group[config.label].iloc[0])
        ids.append(key)
    return SequenceTable(sequences, np.asarray(labels), tuple(features), tuple(ids))


def sequences_from_arrays(x, y, feature_names=None) -> SequenceTable:
    """Sequences from NumPy: `x` is `(n, time, features)` or a list of `(time, features)`
    arrays, `y` holds one label per sequence.

    Raises:
        DataError: wrong rank, dtype or length, or non-finite values.

    Example:
        >>> table = sequences_from_arrays(np.zeros((3, 5, 2)), [0, 1, 0])
        >>> table.feature_names
        ('f0', 'f1')
    """
    if isinstance(x, np.ndarray) and x.ndim == 3:
        items = list(x)
    elif isinstance(x, (list, tuple)):
        items = list(x)
    else:
        shape = getattr(x, "shape", None)
        raise DataError(
            "Sequences must be an array of shape (samples, time, features) or a list of "
            f"(time, features) arrays. Received: {type(x).__name__} with shape {shape}."
        )
    if not items:
        raise DataError("No sequences given.")
    arrays = []
    for i, item in enumerate(items):
        try:
            item = np.asarray(item)
        except (ValueError, TypeError):  # ragged nested lists
            raise DataError(
                f"Sequence {i} is not a rectangular (time, features) array: its rows have "
                "different lengths."
            ) from None
        if item.ndim != 2 or item.shape[0] < 1:
            raise DataError(
                f"Sequence {i} has shape {item.shape}; each must be (time, features) with at "
                "least one step."
            )
        if (
            not np.issubdtype(item.dtype, np.number)
            or np.issubdtype(item.dtype, np.bool_)
            or np.issubdtype(item.dtype, np.complexfloating)
        ):
            raise DataError(f"Sequence {i} has dtype {item.dtype}; it must hold numbers.")
        if not np.isfinite(item).all():
            raise DataError(f"Sequence {i} holds NaN or inf values. Clean them first.")
        arrays.append(item.astype(np.float32))
    widths = {a.shape[1] for a in arrays}
    if len(widths) > 1:
        raise DataError(f"Sequences have different numbers of features: {sorted(widths)}.")
    try:
        labels = np.asarray(y)
    except (ValueError, TypeError):
        raise DataError(
            f"Expected one label per sequence ({len(arrays)}); received ragged labels."
        ) from None
    if labels.ndim != 1 or len(labels) != len(arrays):
        raise DataError(
            f"Expected one label per sequence ({len(arrays)}); received labels of shape "
            f"{labels.shape}."
        )
    width = widths.pop()
    names = tuple(feature_names) if feature_names else tuple(f"f{i}" for i in range(width))
    if len(names) != width:
        raise DataError(
            f"Sequences have {width} features but {len(names)} feature names were given: "
            f"{list(names)}."
        )
    return SequenceTable(arrays, labels, names, tuple(range(len(arrays))))


def load_texts(source, config: DataConfig) -> tuple[list[str], np.ndarray]:
    """Texts and labels from a CSV of (text, label): `data.features` names the one text column
    and `data.targets` the label column."""
    frame = read_frame(config.path if source is None else source)
    frame.columns = [str(c) for c in frame.columns]
    if not config.features or len(config.features) != 1:
        raise DataError(
            "A text model (model.embedding) needs `data.features` to name exactly one text "
            f"column. Received: data.features={list(config.features or [])}"
        )
    text, label = config.features[0], (config.targets or [None])[0]
    for key, column in (("features", text), ("targets", label)):
        if column not in frame.columns:
            raise DataError(
                f"Column {column!r} (data.{key}) is not in the data. "
                f"Columns: {', '.join(frame.columns)}."
            )
    if frame[label].isna().any():
        row = int(np.flatnonzero(frame[label].isna())[0])
        raise DataError(f"Label column {label!r} has a missing value at {row_words(row)}.")
    return frame[text].fillna("").astype(str).tolist(), frame[label].to_numpy()


def pad(sequences: list, length: int | None = None, dtype=np.float32) -> np.ndarray:
    """Zero-pad sequences at the end to a common length `(n, length, ...)`; longer ones are cut
    (their first `length` steps kept)."""
    length = length or max(len(s) for s in sequences)
    first = np.asarray(sequences[0])
    out = np.full((len(sequences), length, *first.shape[1:]), PAD_VALUE, dtype=dtype)
    for i, seq in enumerate(sequences):
        seq = np.asarray(seq)[:length]
        out[i, : len(seq)] = seq
    return out


TRIM_STEP = 64


class SequenceData:
    """Padded, scaled sequences and their targets, with the `gather` of `WindowData`.

    A gathered batch of padded sequences is cut after its longest sequence (rounded up to a
    multiple of `TRIM_STEP` steps, so Keras sees few distinct shapes): the `Masking` layer skips
    padding anyway, and a batch of short sequences then costs what they do, not what the longest
    sequence of the data set does.

    Args:
        inputs: `(n, length, features)` padded inputs (or `(n, length)` token ids).
        targets: `(n, 1)` targets (class index or scaled value).
        trim: cut each gathered batch after its last valid step (padded numeric sequences;
            token ids keep their fixed length).
    """

    def __init__(self, inputs: np.ndarray, targets: np.ndarray, trim: bool = False):
        self.inputs = inputs
        self.targets = np.asarray(targets, dtype=np.float32).reshape(len(inputs), 1, 1)
        self.lengths = None
        if trim and inputs.ndim == 3:
            valid = np.any(inputs != PAD_VALUE, axis=2)
            self.lengths = np.where(
                valid.any(axis=1), inputs.shape[1] - np.argmax(valid[:, ::-1], axis=1), 1
            )

    def gather(self, rows) -> tuple[np.ndarray, np.ndarray]:
        rows = np.asarray(rows)
        inputs = self.inputs[rows]
        if self.lengths is not None and len(rows):
            steps = -(-int(self.lengths[rows].max()) // TRIM_STEP) * TRIM_STEP
            inputs = inputs[:, : min(steps, inputs.shape[1])]
        return inputs, self.targets[rows]
