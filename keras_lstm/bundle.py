"""`Bundle`: the unit that leaves training.

A bundle holds the Keras model, the fitted preprocessing (as JSON, never pickle), calibration
windows, the config it came from and its metrics. On disk it is a folder:

```
model.keras  preprocessing.json  calibration_train.npy  calibration_test.npy
config.yaml  metrics.json  manifest.json  *.png
```

The calibration files hold scaled input windows of the refit's training part and of the test
part (`.npy`, no pickle): what int8 calibration and parity checks need, so a bundle never reads
its training data again. `manifest.json` holds the SHA-256 of every other file, so a truncated
or edited file is caught at load time with a message naming it. Models load with Keras' safe
mode (no arbitrary code). `Bundle.load` also takes a run folder (the one `keras-lstm train --out`
writes), whose `bundle` subfolder it loads.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from keras_lstm.config import Config, load_config
from keras_lstm.data.preprocessing import FORMAT_VERSION, Preprocessing, series_scalers_dict
from keras_lstm.data.windows import input_windows
from keras_lstm.errors import BundleError, ConfigError
from keras_lstm.files import atomic_folder, file_sha256
from keras_lstm.normalization import WindowNormalized
from keras_lstm.plots import save_plots
from keras_lstm.sequence_layers import SEQUENCE_LAYERS

MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
RUN_BUNDLE_FOLDER = "bundle"
CALIBRATION_FILES = {"train": "calibration_train.npy", "test": "calibration_test.npy"}
# windows stored per part: at least what `tflite_export.export` asks for (its default
# `export.representative_windows` for train, its 256 validation windows for test)
CALIBRATION_WINDOWS = {"train": 1000, "test": 256}
_REQUIRED = (MODEL_FILE, PREPROCESSING_FILE, CONFIG_FILE, METRICS_FILE)


def preprocessing_dict(prepared, fold_data) -> dict:
    """The JSON-able preprocessing of a prepared dataset and the scalers of its refit."""
    config = prepared.config
    out = {
        "format": FORMAT_VERSION,
        "kind": prepared.kind,
        "task": config.task,
        "feature_names": list(prepared.feature_names),
        "target_names": list(prepared.target_names),
        "lookback": config.data.lookback,
        "horizon": config.data.horizon if prepared.kind == "series" else 1,
        "time_column": config.data.time_column,
        "missing": config.data.missing,
        "feature_scaler": fold_data.feature_scaler.to_dict() if fold_data.feature_scaler else None,
        "target_scaler": fold_data.target_scaler.to_dict() if fold_data.target_scaler else None,
        "classes": list(prepared.classes) if prepared.classes is not None else None,
        "other_columns": list(prepared.table.other_columns) if prepared.table else [],
    }
    if prepared.kind == "series" and (config.data.future_features or config.data.calendar):
        out["future_features"] = list(config.data.future_features or ())
        out["calendar"] = list(config.data.calendar or ())
    if prepared.starts is not None:
        out["series_id"] = config.data.series_id
    if fold_data.series_scalers:
        out["series_scalers"] = series_scalers_dict(fold_data.series_scalers)
    if prepared.kind == "sequences":
        out["series_id"] = config.data.series_id
        out["label"] = config.data.label
        out["mask_value"] = prepared.mask_value
        # the padded length: the fixed input length of an exported model
        out["lookback"] = max(len(s) for s in prepared.sequences.sequences)
    if prepared.kind == "text":
        out["vocabulary"] = fold_data.vocabulary
        out["sequence_length"] = config.data.lookback
    return out


def _spread(rows: np.ndarray, n: int) -> np.ndarray:
    """At most `n` of `rows`, evenly spread from the first to the last."""
    return rows[np.unique(np.linspace(0, len(rows) - 1, min(n, len(rows))).astype(int))]


def _representative_windows(prepared, feature_scaler, counts: dict) -> dict:
    """Scaled input windows of a prepared dataset's refit, for each part of `counts` (`train`:
    the refit's training part, `test`: the test part) at most that many, evenly spread: arrays
    `(n, lookback, features)` of float32, or `(n, length)` int32 token ids for texts."""
    final = prepared.plan.final
    picks = {
        part: _spread(final.train if part == "train" else final.validation, n)
        for part, n in counts.items()
    }
    per_series = prepared.starts is not None and prepared.config.data.scale_per_series
    if prepared.kind == "series" and not per_series:
        features = feature_scaler.transform(prepared.table.features)
        lookback = prepared.config.data.lookback
        windows = input_windows(features, lookback)
        return {part: np.ascontiguousarray(windows[r - lookback]) for part, r in picks.items()}
    # series scaled one by one, sequences and texts: the refit's own inputs, built once
    samples = prepared.fold_data(final).windows
    return {part: np.ascontiguousarray(samples.gather(rows)[0]) for part, rows in picks.items()}


_sha256 = file_sha256


class Bundle:
    """A trained model with its preprocessing, config and metrics.

    Args:
        model: the trained Keras model.
        preprocessing: the JSON-able preprocessing (`preprocessing_dict`).
        config: the `Config` it was trained with.
        metrics: the metrics dict (as in `metrics.json`).
        calibration: scaled input windows per part (`{"train": array, "test": array}`), as
            `sample_windows` returns them; `Bundle.load` passes the bundle's own. Without them a
            bundle draws the windows from the prepared data `fit` leaves on it.

    Example:
        >>> bundle = keras_lstm.fit("config.yaml")  # doctest: +SKIP
        >>> bundle.save("run/bundle")  # doctest: +SKIP
        >>> Bundle.load("run/bundle").predict(frame)  # doctest: +SKIP
    """

    def __init__(
        self,
        model,
        preprocessing: dict,
        config: Config,
        metrics: dict | None = None,
        calibration: dict | None = None,
    ):
        self.model = model
        self.preprocessing = preprocessing
        self.config = config
        self.metrics = metrics or {}
        self.calibration = calibration
        self.directory = None  # the folder `Bundle.load` read, if any
        self.report = None  # in-memory training details (histories, test predictions) for plots
        self.pre = Preprocessing.from_dict(preprocessing)
        self.feature_scaler = self.pre.feature_scaler
        self.target_scaler = self.pre.target_scaler

    # --- prediction ----------------------------------------------------------------------------

    def predict_scaled(self, windows: np.ndarray) -> np.ndarray:
        """Raw model outputs for scaled input windows `(n, lookback, features)`.

        Runs the compiled model with `predict_on_batch` (not `model.predict`, whose per-call
        set-up costs tens of milliseconds) in chunks of 1024 windows, on whichever Keras backend
        this process uses.
        """
        if self.preprocessing.get("kind") != "text":
            windows = np.asarray(windows, dtype=np.float32)
        outputs = [
            np.asarray(self.model.predict_on_batch(windows[start : start + 1024]))
            for start in range(0, len(windows), 1024)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)

    def predict(self, source) -> pd.DataFrame:
        """Predict for every sample of `source`, in real units, through the bundle's
        preprocessing object (`self.pre`, one class per data kind in
        `keras_lstm.data.preprocessing`).

        Args:
            source: a DataFrame (or CSV path) with the training feature columns (the time column
                and target columns may be present too); for whole sequences also an array
                `(n, time, features)` or a list of `(time, features)` arrays; for texts a list
                of strings.

        Returns:
            Windows of a series: one row per complete window, indexed by the time of the first
            predicted step (past the end of `source`, times continue at the data's median
            step); many series: the same per series, with the series id as first column;
            sequences and texts: one row per sample. Regression columns: each target (horizon
            1), or `TARGET@t+K` for step K. A classification has `label` and a `p(CLASS)`
            column per class.

        Raises:
            DataError: a feature column is missing, an unknown column is present, or there are
                too few rows.

        Example:
            >>> Bundle.load("run").predict("new_rows.csv").tail(1)  # doctest: +SKIP
        """
        return self.pre.predict(source, self.predict_scaled)

    def sample_windows(self, n: int, part: str = "train") -> np.ndarray:
        """`n` scaled input windows, evenly spread over the refit's training windows (`train`)
        or the test windows (`test`); for calibration and parity checks.

        A loaded bundle reads them from its own calibration files (never the training data);
        a bundle fresh from `fit` takes them from its prepared data.

        Args:
            n: the most windows to return (fewer when the part has fewer).
            part: `train` or `test`.

        Returns:
            A contiguous array `(n, lookback, features)` of float32, or `(n, length)` int32
            token ids for a text model.

        Raises:
            ValueError: `part` is neither `train` nor `test`.
            BundleError: the bundle has neither calibration windows nor prepared data (it
                was saved by an older keras-lstm).
        """
        if part not in CALIBRATION_FILES:
            raise ValueError(f"Expected `part` 'train' or 'test'. Received: part={part!r}")
        if self.calibration is not None:
            stored = self.calibration[part]
            return np.ascontiguousarray(stored[_spread(np.arange(len(stored)), n)])
        return _representative_windows(self._prepared(), self.feature_scaler, {part: n})[part]

    def _prepared(self):
        """The prepared data `fit` left on a fresh bundle (it may have come from a DataFrame).

        A bundle never reads its training data again, so one without calibration windows and
        without prepared data (saved by an older keras-lstm, or built by hand) has none."""
        prepared = getattr(self, "prepared", None)
        if prepared is not None:
            return prepared
        where = f"Bundle {str(self.directory)!r}" if self.directory else "This bundle"
        raise BundleError(
            f"{where} has no calibration windows ({', '.join(CALIBRATION_FILES.values())}; "
            "bundles saved by an older keras-lstm lack them). Without them the training data "
            f"({self.config.data.path}) is needed, and a bundle never reads it again: train "
            "again with this keras-lstm, whose bundles carry their calibration windows."
        )

    def _calibration_windows(self) -> dict:
        """The windows `save` writes: the stored ones, or as many as export asks for."""
        if self.calibration is not None:
            return self.calibration
        counts = dict(CALIBRATION_WINDOWS)
        asked = getattr(getattr(self.config, "export", None), "representative_windows", 0)
        counts["train"] = max(counts["train"], asked or 0)
        return _representative_windows(self._prepared(), self.feature_scaler, counts)

    # --- saving --------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the bundle folder atomically: into a temporary sibling, then renamed.

        The folder holds the calibration windows export needs (`calibration_train.npy`,
        `calibration_test.npy`), so it never needs the training data again.

        Returns:
            The folder's path.

        Raises:
            BundleError: the bundle has neither calibration windows nor prepared data (one
                loaded from a folder an older keras-lstm saved).
            OutputError: the folder could not be written (a full disk); a bundle that was
                there before is unchanged.
        """
        directory = Path(directory)
        calibration = self._calibration_windows()
        with atomic_folder(directory) as tmp:
            self.model.save(tmp / MODEL_FILE)
            for part, name in CALIBRATION_FILES.items():
                np.save(tmp / name, calibration[part], allow_pickle=False)
            (tmp / PREPROCESSING_FILE).write_text(json.dumps(self.preprocessing, indent=2))
            self.config.save(tmp / CONFIG_FILE)
            (tmp / METRICS_FILE).write_text(json.dumps(self.metrics, indent=2))
            if self.report is not None:
                save_plots(self, tmp)
            manifest = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Bundle:
        """Load a bundle folder, checking every file against its manifest.

        Args:
            directory: a bundle folder, or a run folder (what `keras-lstm train --out RUN`
                writes), whose `bundle` subfolder is loaded.

        Returns:
            The `Bundle`, with its calibration windows; `.directory` is the folder read.

        Raises:
            BundleError: the folder is neither a bundle nor a run folder, a file is missing,
                truncated, edited or a link out of the folder, or the model holds layers that
                Keras' safe mode refuses (such as `Lambda`).

        Example:
            >>> Bundle.load("run").predict("recent.csv")  # doctest: +SKIP
        """
        import keras

        directory = _bundle_folder(Path(directory))
        root = directory.resolve()
        for name in (*_REQUIRED, MANIFEST_FILE):
            _check_own_file(directory, root, name)
        try:
            manifest = json.loads((directory / MANIFEST_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BundleError(f"{directory / MANIFEST_FILE} is not valid JSON.") from None
        if not isinstance(manifest, dict):
            raise BundleError(f"{directory / MANIFEST_FILE} must hold a JSON object.")
        # bundles saved before calibration windows existed have neither file; one that has
        # either (on disk or in its manifest) must have both
        calibration_names = list(CALIBRATION_FILES.values())
        if not any(n in manifest or os.path.lexists(directory / n) for n in calibration_names):
            calibration_names = []
        for name in calibration_names:
            _check_own_file(directory, root, name)
        for name in (*_REQUIRED, *calibration_names):
            if manifest.get(name) != _sha256(directory / name):
                raise BundleError(
                    f"{directory / name} was changed or truncated after the bundle was saved "
                    "(its checksum differs from manifest.json). Train again or restore it."
                )
        try:
            preprocessing = json.loads((directory / PREPROCESSING_FILE).read_text())
            metrics = json.loads((directory / METRICS_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise BundleError(
                f"A JSON file of bundle {str(directory)!r} is invalid: {err}"
            ) from None
        Preprocessing.from_dict(preprocessing, str(directory / PREPROCESSING_FILE))  # names it
        try:
            config = load_config(directory / CONFIG_FILE)
        except ConfigError as err:
            raise BundleError(f"{directory / CONFIG_FILE} is invalid: {err}") from None
        try:
            model = keras.models.load_model(
                directory / MODEL_FILE,
                safe_mode=True,
                compile=False,
                custom_objects={"WindowNormalized": WindowNormalized, **SEQUENCE_LAYERS},
            )
        except Exception as err:  # Keras raises ValueError, TypeError, OSError, zip errors...
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BundleError(
                f"{directory / MODEL_FILE} cannot be loaded safely: {first}"
            ) from None
        calibration = None
        if calibration_names:
            calibration = {
                part: _load_windows(directory / name, model, preprocessing["kind"])
                for part, name in CALIBRATION_FILES.items()
            }
        bundle = cls(model, preprocessing, config, metrics, calibration)
        bundle.directory = directory
        return bundle


def _bundle_folder(directory: Path) -> Path:
    """`directory` if it is a bundle folder, its `bundle` subfolder if it is a run folder."""
    if not directory.is_dir():
        raise BundleError(
            f"Bundle folder {str(directory)!r} does not exist. Pass the folder written by "
            "`keras-lstm train --out RUN` (RUN or RUN/bundle)."
        )
    inner = directory / RUN_BUNDLE_FOLDER
    if not os.path.lexists(directory / MODEL_FILE) and inner.is_dir():
        return inner
    # a run folder has metrics.json (and maybe config.yaml) too: only these mark a bundle
    names = (MODEL_FILE, PREPROCESSING_FILE, MANIFEST_FILE, *CALIBRATION_FILES.values())
    if any(os.path.lexists(directory / name) for name in names):
        return directory  # a bundle, maybe a damaged one: its own checks name what is wrong
    raise BundleError(
        f"{str(directory)!r} is neither a bundle folder (it has no {MODEL_FILE}) nor a run "
        f"folder (it has no {RUN_BUNDLE_FOLDER}/ subfolder). Pass the folder written by "
        "`keras-lstm train --out RUN` (RUN or RUN/bundle)."
    )


def _check_own_file(directory: Path, root: Path, name: str) -> None:
    """A bundle file must exist and be the folder's own (not a link to a file elsewhere)."""
    if not (directory / name).is_file():
        raise BundleError(
            f"Bundle {str(directory)!r} has no {name}. The bundle is incomplete: "
            "train again or restore the file."
        )
    if (directory / name).resolve().parent != root:
        raise BundleError(
            f"{directory / name} points outside the bundle folder (a link). A bundle "
            "only reads its own files: copy the real file in."
        )


def _load_windows(path: Path, model, kind: str) -> np.ndarray:
    """A calibration file: a pickle-free array of the model's input shape (float windows, or
    integer token ids for texts)."""
    try:
        windows = np.load(path, allow_pickle=False)
    except (ValueError, OSError, EOFError) as err:
        raise BundleError(f"{path} is not a valid NumPy array file: {err}") from None
    expected = tuple(getattr(model, "input_shape", None) or ())[1:]
    shape = windows.shape[1:]
    fits = windows.dtype.kind in ("iu" if kind == "text" else "f") and len(shape) == len(expected)
    if not fits or any(size not in (None, got) for size, got in zip(expected, shape, strict=True)):
        raise BundleError(
            f"{path} holds windows of shape {windows.shape} and dtype {windows.dtype}; the model "
            f"takes {'integer' if kind == 'text' else 'float'} inputs of shape "
            f"(n, {', '.join(str(d) for d in expected)}). The bundle is damaged: train again."
        )
    return windows
