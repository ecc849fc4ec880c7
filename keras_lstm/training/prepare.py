"""Turn a config and its data into per-fold, leak-free window data."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from keras_lstm.config import Config, data_kind
from keras_lstm.data.loading import Table, load_table, read_frame, with_future_inputs
from keras_lstm.data.scaling import Scaler
from keras_lstm.data.sequences import (
    PAD_VALUE,
    SequenceData,
    SequenceTable,
    load_sequences,
    load_texts,
    pad,
    sequences_from_arrays,
)
from keras_lstm.data.splits import (
    Fold,
    SplitPlan,
    plan_panel_splits,
    plan_sample_splits,
    plan_splits,
)
from keras_lstm.data.text import fit_vocabulary, vectorize
from keras_lstm.data.windows import WindowData
from keras_lstm.errors import ConfigError, DataError, row_words

# `data.scaler: cv` on whole sequences: the scalers the cross-validation chooses between
# (`keras_lstm.training.loop.choose_scaler`), the one kept on a tie first
SEQUENCE_SCALERS = ("sequence", "standard")
# training sequences whose per-channel level and log spread vary across sequences by less
# than this (in training-standardized units) look the same to the model under either scaler
ALIKE_SPREAD = 0.1
# the scalers of whole sequences only, and what each does (for the error elsewhere)
SEQUENCE_ONLY_SCALERS = {
    "sequence": "standardizes each whole sequence by its own statistics",
    "cv": "chooses between a per-sequence and a global scaler",
}


@dataclass(frozen=True)
class FoldData:
    """The windows (or padded sequences) and fitted preprocessing of one fold."""

    windows: WindowData | SequenceData
    feature_scaler: Scaler | None
    target_scaler: Scaler | None
    vocabulary: list | None = None
    series_scalers: dict | None = None  # series id -> (feature Scaler, target Scaler)


@dataclass(frozen=True)
class Prepared:
    """A loaded, checked series with its split plan.

    Attributes:
        config: the config it was prepared for.
        table: the checked series (training history followed by the test part), for `series`.
        plan: walk-forward folds (or sample folds), the refit split and the test samples.
        classes: class labels in index order (classification), else None.
        labels: per row (series) or per sample (sequences, text): the class index
            (classification) or the target value (whole-sequence regression).
        kind: `series` (windows over one series), `sequences` (one labelled sequence per
            sample) or `text` (one labelled text per sample).
        sequences: the `SequenceTable` of a `sequences` task.
        texts: the texts of a `text` task.
    """

    config: Config
    table: Table | None
    plan: SplitPlan
    classes: tuple | None = None
    labels: np.ndarray | None = None
    kind: str = "series"
    sequences: SequenceTable | None = None
    texts: list | None = None
    starts: np.ndarray | None = None
    series_ids: tuple | None = None

    def row_starts(self, rows) -> np.ndarray:
        """The first row of the series each of `rows` belongs to (0 for a single series)."""
        rows = np.asarray(rows)
        if self.starts is None:
            return np.zeros_like(rows)
        return self.starts[np.searchsorted(self.starts, rows, side="right") - 1]

    def row_series(self, rows) -> np.ndarray:
        """The series id of each of `rows` (many series only)."""
        position = np.searchsorted(self.starts, np.asarray(rows), side="right") - 1
        return np.asarray(self.series_ids, dtype=object)[position]

    @property
    def feature_names(self) -> tuple[str, ...]:
        if self.kind == "series":
            return self.table.feature_names
        if self.kind == "sequences":
            return self.sequences.feature_names
        return tuple(self.config.data.features)

    @property
    def target_names(self) -> tuple[str, ...]:
        if self.kind == "series":
            return self.table.target_names
        data = self.config.data
        return (data.label,) if data.label else tuple(data.targets or ("label",))

    @property
    def input_shape(self):
        if self.kind == "text":
            return (self.config.data.lookback,)
        if self.kind == "sequences":
            return (None, len(self.sequences.feature_names))
        return (self.config.data.lookback, len(self.table.feature_names))

    @property
    def sequence_length(self) -> int | None:
        """The median length of the training sequences (whole sequences; else None): what
        `auto` pooling follows (`keras_lstm.factory.conv_front`). The
        training part only, so the test file's lengths change nothing in training."""
        if self.kind != "sequences":
            return None
        seqs = self.sequences.sequences
        return int(np.median([len(seqs[i]) for i in self.plan.final.train]))

    @property
    def output_shape(self):
        if self.classes is not None:
            return len(self.classes)
        if self.kind != "series":
            return (1, 1)
        return (self.config.data.horizon, len(self.table.target_names))

    def sample_index(self, rows) -> pd.Index:
        """The time (series) or id (sequences, text) that names each sample of `rows`."""
        if self.kind == "series":
            return self.table.index[rows]
        if self.kind == "sequences":
            return pd.Index(np.asarray(self.sequences.ids, dtype=object)[rows], name="series")
        return pd.Index(np.asarray(rows), name="sample")

    @property
    def scaler(self) -> str:
        """`data.scaler` with `auto` resolved: `window` for forecasting series (one or many)
        whose targets are among the inputs, `sequence` for whole sequences, else
        `standard`. `cv` (whole sequences) is `sequence` until `choose_scaler` has chosen."""
        chosen = self.config.data.scaler
        if chosen in SEQUENCE_ONLY_SCALERS and self.kind != "sequences":
            raise ConfigError(
                f"`data.scaler: {chosen}` {SEQUENCE_ONLY_SCALERS[chosen]}; it needs whole "
                f"sequences (`data.series_id` with `data.label`), not {self.kind}. Choose "
                "`window` for a series, or `standard`, `minmax`, `robust` or `none`."
            )
        if chosen == "cv":
            return "sequence"
        if chosen != "auto":
            return chosen
        if self.kind == "sequences":
            return "sequence"
        if self.kind != "series" or self.classes is not None:
            return "standard"
        inputs = set(self.table.feature_names)
        return "window" if set(self.table.target_names) <= inputs else "standard"

    @property
    def scaler_candidates(self) -> tuple[str, ...]:
        """The scalers the cross-validation chooses between (`choose_scaler`).

        With `data.scaler: cv`, whole sequences whose training sequences differ in level or
        spread per channel try both `SEQUENCE_SCALERS`: the per-sequence scaler keeps the
        shape at any scale, the global one keeps the level and spread as the values
        themselves, and either may be what tells the classes apart. Sequences already alike
        in level and spread (`sequences_alike`, such as z-normalized ones) look the same
        under both, so they take `sequence` without a second cross-validation. Anything
        else (`auto` among them: on the development suite the cross-validation's choice lost
        to the per-sequence scaler, BENCHMARKS.md) has the one `scaler`.

        Example:
            >>> prepare(config, frame).scaler_candidates  # doctest: +SKIP
            ('sequence', 'standard')
        """
        if self.config.data.scaler != "cv" or self.kind != "sequences":
            return (self.scaler,)
        seqs = self.sequences.sequences
        if sequences_alike([seqs[i] for i in self.plan.final.train]):
            return (self.scaler,)
        return SEQUENCE_SCALERS

    def with_scaler(self, name: str) -> Prepared:
        """The same data prepared for `data.scaler: name`, its fold backups (a set
        `training.backup_dir`) in their own `scaler-NAME` subfolder."""
        changes = {"data.scaler": name}
        if self.config.training.backup_dir:
            changes["training.backup_dir"] = os.path.join(
                self.config.training.backup_dir, f"scaler-{name}"
            )
        return replace(self, config=self.config.replace(**changes))

    @property
    def window_channels(self) -> tuple[int, ...] | None:
        """With window scaling, the input channel of each target (none for classification,
        whose output is not mapped back); else None."""
        if self.scaler != "window":
            return None
        if self.kind != "series":
            raise ConfigError(
                "`data.scaler: window` scales windows of a series by their own statistics; "
                f"{self.kind} samples cannot use it. Choose `standard`, `minmax`, `robust` or "
                "`none`."
            )
        if self.classes is not None:
            return ()
        names = self.table.feature_names
        missing = [t for t in self.table.target_names if t not in names]
        if missing:
            raise ConfigError(
                f"`data.scaler: window` maps the forecast back through each target's own input "
                f"channel, but target {missing[0]!r} is not among `data.features` "
                f"{list(names)}. Add it to the features or choose another `data.scaler`."
            )
        return tuple(names.index(t) for t in self.table.target_names)

    @property
    def scaler_kind(self) -> str:
        """The scaler fitted on training rows: `standard` under window normalization."""
        return "standard" if self.scaler in ("window", "sequence") else self.scaler

    @property
    def mask_value(self) -> float | None:
        """The padding value a `Masking` layer must skip (whole sequences), else None."""
        return PAD_VALUE if self.kind == "sequences" else None

    def _sample_targets(self, train) -> tuple[np.ndarray, Scaler | None]:
        if self.classes is not None:
            return self.labels.astype(np.float32), None
        scaler = Scaler.fit(self.scaler_kind, self.labels[train][:, None])
        return scaler.transform(self.labels[:, None])[:, 0], scaler

    def fold_data(self, fold: Fold) -> FoldData:
        """Fit the preprocessing on `fold`'s training part only and build its samples."""
        if self.kind == "sequences":
            seqs = self.sequences.sequences
            kind = self.scaler_kind
            scaler = Scaler.fit(kind, np.concatenate([seqs[i] for i in fold.train]))
            inputs = pad([scaler.transform(s) for s in seqs])
            targets, target_scaler = self._sample_targets(fold.train)
            return FoldData(SequenceData(inputs, targets, trim=True), scaler, target_scaler)
        if self.kind == "text":
            vocabulary = fit_vocabulary(
                [self.texts[i] for i in fold.train], self.config.model.embedding["vocab_size"]
            )
            inputs = vectorize(self.texts, vocabulary, self.config.data.lookback)
            targets, target_scaler = self._sample_targets(fold.train)
            return FoldData(SequenceData(inputs, targets), None, target_scaler, vocabulary)
        rows = fold.scaler_rows()
        kind = self.scaler_kind
        feature_scaler = Scaler.fit(kind, self.table.features[rows])
        if self.starts is not None and self.config.data.scale_per_series:
            return self._per_series_fold_data(rows, feature_scaler)
        features = feature_scaler.transform(self.table.features)
        if self.classes is not None:
            targets, target_scaler = self.labels[:, None].astype(np.float32), None
        else:
            target_scaler = Scaler.fit(kind, self.table.targets[rows])
            targets = target_scaler.transform(self.table.targets)
        windows = WindowData(features, targets, self.config.data.lookback, self.config.data.horizon)
        return FoldData(windows, feature_scaler, target_scaler)

    def _per_series_fold_data(self, rows, feature_scaler: Scaler) -> FoldData:
        """Scalers fitted on each series' own rows before the cut; a series with fewer than two
        such rows uses the scalers fitted on all series."""
        kind, table = self.scaler_kind, self.table
        target_scaler = Scaler.fit(kind, table.targets[rows])
        fit = np.zeros(len(table.features), bool)
        fit[rows] = True
        features = np.empty(table.features.shape, np.float32)
        targets = np.empty(table.targets.shape, np.float32)
        scalers = {}
        for key, first, end in zip(self.series_ids, self.starts[:-1], self.starts[1:], strict=True):
            own = np.arange(first, end)[fit[first:end]]
            if len(own) >= 2:
                pair = (Scaler.fit(kind, table.features[own]), Scaler.fit(kind, table.targets[own]))
            else:
                pair = (feature_scaler, target_scaler)
            features[first:end] = pair[0].transform(table.features[first:end])
            targets[first:end] = pair[1].transform(table.targets[first:end])
            scalers[str(key)] = pair
        windows = WindowData(features, targets, self.config.data.lookback, self.config.data.horizon)
        return FoldData(windows, feature_scaler, target_scaler, series_scalers=scalers)


def sequences_alike(sequences: list[np.ndarray], spread: float = ALIKE_SPREAD) -> bool:
    """Whether every channel's per-sequence mean and log standard deviation vary across
    `sequences` by less than `spread` (standard deviations, in units of the pooled
    standardized values): then a per-sequence and a global scaler give the model the same
    values, up to constants.

    Example:
        >>> rng = np.random.default_rng(0)
        >>> z = [(s - s.mean(0)) / s.std(0) for s in rng.normal(size=(20, 30, 2))]
        >>> sequences_alike(z), sequences_alike([s * 10**k for k, s in enumerate(z)])
        (True, False)
    """
    pooled = np.concatenate(sequences).astype(np.float64)
    mean, std = pooled.mean(axis=0), pooled.std(axis=0)
    std = np.where(std > 0, std, 1.0)
    levels, spreads = [], []
    for s in sequences:
        z = (np.asarray(s, np.float64) - mean) / std
        levels.append(z.mean(axis=0))
        spreads.append(np.log(z.std(axis=0) + 1e-6))
    return bool(np.std(levels, axis=0).max() < spread and np.std(spreads, axis=0).max() < spread)


def _concat(train: Table, test: Table) -> Table:
    if test.feature_names != train.feature_names:
        raise DataError(
            f"The test file's feature columns {list(test.feature_names)} differ from the training "
            f"data's {list(train.feature_names)}. Use the same columns in `data.test_path`."
        )
    index = train.index.append(test.index)
    if isinstance(index, pd.DatetimeIndex) and not index.is_monotonic_increasing:
        raise DataError(
            "The test file (`data.test_path`) must start after the training data ends: its "
            f"first time {test.index[0]} is not after {train.index[-1]}."
        )
    return Table(
        features=np.concatenate([train.features, test.features]),
        targets=np.concatenate([train.targets, test.targets]),
        feature_names=train.feature_names,
        target_names=train.target_names,
        index=index,
    )


def _load_texts(config: Config, data) -> tuple[list, np.ndarray, int]:
    """Texts and labels, those of `data.test_path` appended; with the test count."""
    d = config.data
    texts, labels = load_texts(data, d)
    if not d.test_path:
        return texts, labels, 0
    test_texts, test_labels = load_texts(d.test_path, d)
    return texts + test_texts, np.concatenate([labels, test_labels]), len(test_texts)


def _load_sequences(config: Config, data) -> SequenceTable:
    """Labelled sequences from arrays or a long table, those of `data.test_path` appended."""
    d = config.data
    if isinstance(data, tuple):
        sequences = sequences_from_arrays(*data)
    else:
        sequences = load_sequences(data, d)
    if not d.test_path:
        return sequences
    test = load_sequences(d.test_path, d)
    if test.feature_names != sequences.feature_names:
        raise DataError(
            f"The test file's feature columns {list(test.feature_names)} differ from the "
            f"training data's {list(sequences.feature_names)}."
        )
    return SequenceTable(
        sequences.sequences + test.sequences,
        np.concatenate([sequences.labels, test.labels]),
        sequences.feature_names,
        sequences.ids + test.ids,
        len(test.sequences),
    )


def _prepare_samples(
    config: Config, kind: str, labels, test_count: int, sequences=None, texts=None
) -> Prepared:
    """One labelled sample per sequence or text: labels encoded, stratified split plan."""
    d = config.data
    classes = None
    if config.task == "classification":
        classes, labels = _encode_labels(labels, "label")
    else:
        try:
            labels = np.asarray(labels, dtype=np.float64)
        except ValueError:
            name = d.label or (d.targets or ["label"])[0]
            bad = next(v for v in labels if not _is_number(v))
            raise DataError(
                f"Label column {name!r} holds {bad!r}, which is not a number. A regression "
                "label must be numeric; for classes set `task: classification`."
            ) from None
    named = np.asarray(classes, dtype=object)[labels] if classes is not None else labels
    plan = plan_sample_splits(
        named, d, config.training, config.seed, config.task == "classification", test_count
    )
    return Prepared(
        config, None, plan, classes, labels, kind=kind, sequences=sequences, texts=texts
    )


def _is_number(value) -> bool:
    try:
        float(value)
    except (TypeError, ValueError):
        return False
    return True


def _encode_labels(raw, name: str) -> tuple[tuple, np.ndarray]:
    raw = pd.Series(raw)
    if raw.isna().any():
        raise DataError(
            f"Label column {name!r} has a missing value at "
            f"{row_words(np.flatnonzero(raw.isna())[0])}. Fill or drop it."
        )
    classes = tuple(sorted(raw.unique().tolist(), key=str))
    if len(classes) < 2:
        raise DataError(
            f"Label column {name!r} holds one class only ({classes[0]!r}); "
            "classification needs at least two."
        )
    lookup = {c: i for i, c in enumerate(classes)}
    return classes, raw.map(lookup).to_numpy(dtype=np.int64)


def _prepare_panel(config: Config, data, first_target=None) -> Prepared:
    """Many series in one long table: stacked, split at common times, one global model."""
    d = config.data
    if d.test_path:
        raise ConfigError(
            "`data.test_path` is not supported with `data.series_id`: the test part is the "
            "last `data.test_size` share of times, cut across every series."
        )
    if config.task == "classification":
        raise ConfigError(
            "Many-series classification of the next step is not supported; use `data.label` "
            "for one label per sequence."
        )
    frame = read_frame(d.path if data is None else data)
    frame.columns = [str(c) for c in frame.columns]
    if d.series_id not in frame.columns:
        raise DataError(
            f"Series column {d.series_id!r} (data.series_id) is not in the data. "
            f"Columns: {', '.join(frame.columns)}."
        )
    tables, ids = [], []
    for key, group in frame.groupby(d.series_id, sort=False):
        try:
            one = load_table(group.reset_index(drop=True), d, config.task, check_constant=False)
            tables.append(with_future_inputs(one, d))
        except DataError as err:
            raise DataError(f"Series {key!r}: {err}") from None
        ids.append(key)
    names = tables[0].feature_names
    features = np.concatenate([t.features for t in tables])
    for i, column in enumerate(names):
        if np.ptp(features[:, i]) == 0:
            raise DataError(
                f"Feature column {column!r} is constant across every series. Leave it out of "
                "`data.features`."
            )
    lengths = [len(t) for t in tables]
    starts = np.concatenate([[0], np.cumsum(lengths)]).astype(int)
    if d.time_column:
        index = tables[0].index.append([t.index for t in tables[1:]])
        times = np.asarray(index.to_numpy()).astype("int64")
    else:
        index = pd.Index(np.concatenate([np.arange(-n, 0) for n in lengths]), name="step")
        times = index.to_numpy()
    table = Table(
        features=features,
        targets=np.concatenate([t.targets for t in tables]),
        feature_names=names,
        target_names=tables[0].target_names,
        index=index,
        other_columns=tables[0].other_columns,
    )
    plan = plan_panel_splits(starts, times, d, config.training)
    return Prepared(config, table, plan, starts=starts, series_ids=tuple(ids))


def prepare(config: Config, data=None, first_target: int | None = None) -> Prepared:
    """Load the config's data (or `data`), check it and plan its splits.

    Args:
        config: the whole config.
        data: a DataFrame or CSV path; default `config.data.path`. For whole-sequence tasks
            also a tuple `(x, y)`: `x` an array `(n, time, features)` or a list of
            `(time, features)` arrays, `y` one label per sequence.
        first_target: the earliest row a window may predict (default `data.lookback`); tuning
            sets it to the longest lookback searched so every trial scores the same targets.

    Returns:
        A `Prepared`.

    Raises:
        ConfigError: settings that contradict each other.
        DataError: the data cannot be used.
    """
    prepared = _prepare_any(config, data, first_target)
    prepared.window_channels  # noqa: B018 - raises now for settings `window` cannot use
    return prepared


def _prepare_any(config: Config, data, first_target: int | None) -> Prepared:
    return PREPARERS[data_kind(config, data)](config, data, first_target)


def _prepare_sequences(config: Config, data, first_target=None) -> Prepared:
    """Labelled whole sequences, from a long table (`series_id`, `label`) or arrays."""
    _refuse_forecast_inputs(config)
    d = config.data
    if not isinstance(data, tuple) and not (d.label and d.series_id):
        if d.label:
            raise ConfigError(
                "`data.label` (one label per sequence) needs `data.series_id` to say which rows "
                "form each sequence."
            )
        raise ConfigError(
            "`data.kind: sequences` from a table needs `data.series_id` (which rows form "
            "each sequence) and `data.label` (one label per sequence); arrays `(x, y)` "
            "need neither."
        )
    sequences = _load_sequences(config, data)
    return _prepare_samples(
        config, "sequences", sequences.labels, sequences.test_count, sequences=sequences
    )


def _prepare_text(config: Config, data, first_target=None) -> Prepared:
    """Labelled texts (`model.embedding`)."""
    _refuse_forecast_inputs(config)
    texts, labels, test_count = _load_texts(config, data)
    return _prepare_samples(config, "text", labels, test_count, texts=texts)


def _refuse_forecast_inputs(config: Config) -> None:
    if config.data.future_features or config.data.calendar:
        raise ConfigError(
            "`data.future_features` and `data.calendar` are inputs known ahead of a "
            "forecast; whole sequences and texts have no forecast horizon. Remove them."
        )


def _prepare_series(config: Config, data, first_target: int | None) -> Prepared:
    """One series: checked, with its walk-forward plan."""
    if config.task == "classification" and config.data.horizon != 1:
        raise ConfigError(
            "Classification predicts the label of the next step: set `data.horizon` to 1. "
            f"Received: data.horizon={config.data.horizon}"
        )
    if config.task == "classification" and len(config.data.targets or ()) != 1:
        raise ConfigError(
            "Classification needs exactly one label column in `data.targets`. "
            f"Received: data.targets={list(config.data.targets or ())}"
        )
    table = load_table(data, config.data, config.task)
    test_start = None
    if config.data.test_path:
        test = load_table(config.data.test_path, config.data, config.task)
        test_start = len(table)
        table = _concat(table, test)
    table = with_future_inputs(table, config.data)
    plan = plan_splits(len(table), config.data, config.training, test_start, first_target)
    if config.task != "classification":
        return Prepared(config, table, plan)
    classes, labels = _encode_labels(table.targets[:, 0], table.target_names[0])
    return Prepared(config, table, plan, classes, labels)


# how each data kind (`keras_lstm.config.KINDS`) is loaded, checked and planned
PREPARERS = {
    "series": _prepare_series,
    "panel": _prepare_panel,
    "sequences": _prepare_sequences,
    "text": _prepare_text,
}
