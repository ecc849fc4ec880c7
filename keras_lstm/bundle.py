"""`Bundle`: the unit that leaves training.

A bundle holds the Keras model, the fitted preprocessing (as JSON, never pickle), the config it
came from and its metrics. On disk it is a folder:

```
model.keras  preprocessing.json  config.yaml  metrics.json  manifest.json  *.png
```

`manifest.json` holds the SHA-256 of every other file, so a truncated or edited file is caught
at load time with a message naming it. Models load with Keras' safe mode (no arbitrary code).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from keras_lstm.config import Config, load_config
from keras_lstm.data import Scaler, input_windows
from keras_lstm.data.loading import load_features
from keras_lstm.errors import BundleError, ConfigError, DataError
from keras_lstm.normalization import WindowNormalized

FORMAT_VERSION = 1
MODEL_FILE = "model.keras"
PREPROCESSING_FILE = "preprocessing.json"
CONFIG_FILE = "config.yaml"
METRICS_FILE = "metrics.json"
MANIFEST_FILE = "manifest.json"
_REQUIRED = (MODEL_FILE, PREPROCESSING_FILE, CONFIG_FILE, METRICS_FILE)
_PREPROCESSING_KEYS = {
    "format": int,
    "kind": str,
    "task": str,
    "feature_names": list,
    "target_names": list,
    "lookback": int,
    "horizon": int,
}


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
    if prepared.starts is not None:
        out["series_id"] = config.data.series_id
    if fold_data.series_scalers:
        out["series_scalers"] = {
            key: {"feature_scaler": f.to_dict(), "target_scaler": t.to_dict()}
            for key, (f, t) in fold_data.series_scalers.items()
        }
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


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_preprocessing(raw, path: Path) -> dict:
    if not isinstance(raw, dict):
        raise BundleError(f"{path} must hold a JSON object. The bundle is damaged: train again.")
    for key, kind in _PREPROCESSING_KEYS.items():
        if not isinstance(raw.get(key), kind):
            raise BundleError(
                f"{path} has no valid `{key}`. The bundle is damaged or was edited: train again."
            )
    if raw["format"] != FORMAT_VERSION:
        raise BundleError(
            f"{path} is bundle format {raw['format']}; this keras-lstm reads format "
            f"{FORMAT_VERSION}. Train again with this version."
        )
    if raw["kind"] not in ("series", "sequences", "text"):
        raise BundleError(f"{path} has an unknown `kind` {raw['kind']!r}. The bundle is damaged.")
    if raw["kind"] == "text" and not isinstance(raw.get("vocabulary"), list):
        raise BundleError(f"{path} has no valid `vocabulary`. The bundle is damaged.")
    try:
        if raw["kind"] != "text":
            Scaler.from_dict(raw["feature_scaler"])
        if raw.get("target_scaler"):
            Scaler.from_dict(raw["target_scaler"])
    except (KeyError, TypeError, ValueError):
        raise BundleError(f"{path} holds an invalid scaler. The bundle is damaged.") from None
    for names, scaler in (("feature_names", "feature_scaler"), ("target_names", "target_scaler")):
        fitted = raw.get(scaler)
        if fitted and len(fitted["center"]) != len(raw[names]):
            raise BundleError(
                f"{path}: `{names}` has {len(raw[names])} entries but `{scaler}` has "
                f"{len(fitted['center'])} columns. The bundle was edited: train again."
            )
    return raw


class Bundle:
    """A trained model with its preprocessing, config and metrics.

    Args:
        model: the trained Keras model.
        preprocessing: the JSON-able preprocessing (`preprocessing_dict`).
        config: the `Config` it was trained with.
        metrics: the metrics dict (as in `metrics.json`).

    Example:
        >>> bundle = keras_lstm.fit("config.yaml")  # doctest: +SKIP
        >>> bundle.save("run/bundle")  # doctest: +SKIP
        >>> Bundle.load("run/bundle").predict(frame)  # doctest: +SKIP
    """

    def __init__(self, model, preprocessing: dict, config: Config, metrics: dict | None = None):
        self.model = model
        self.preprocessing = preprocessing
        self.config = config
        self.metrics = metrics or {}
        self.report = None  # in-memory training details (histories, test predictions) for plots
        self._compiled = None
        raw_features = preprocessing.get("feature_scaler")
        self.feature_scaler = Scaler.from_dict(raw_features) if raw_features else None
        raw_target = preprocessing.get("target_scaler")
        self.target_scaler = Scaler.from_dict(raw_target) if raw_target else None

    # --- prediction ----------------------------------------------------------------------------

    def predict_scaled(self, windows: np.ndarray) -> np.ndarray:
        """Raw model outputs for scaled input windows `(n, lookback, features)`.

        Runs a compiled `tf.function` of the model (not `model.predict`, whose per-call set-up
        costs tens of milliseconds), in chunks of 1024 windows.
        """
        import tensorflow as tf

        if self._compiled is None:
            model = self.model
            self._compiled = tf.function(lambda x: model(x, training=False), reduce_retracing=True)
        if self.preprocessing.get("kind") != "text":
            windows = np.asarray(windows, dtype=np.float32)
        outputs = [
            self._compiled(tf.constant(windows[start : start + 1024])).numpy()
            for start in range(0, len(windows), 1024)
        ]
        return np.concatenate(outputs) if outputs else np.zeros((0,), np.float32)

    def predict(self, frame) -> pd.DataFrame:
        """Predict for every complete window of `frame`, in real units.

        Args:
            frame: a DataFrame (or CSV path) with the training feature columns (the time column
                and target columns may be present too); at least `lookback` rows.

        Returns:
            One row per window, indexed by the time of the first predicted step (the row after
            the window; past the end of `frame`, times continue at the data's median step).
            Regression columns: each target (horizon 1), or `TARGET@t+K` for step K. A
            classification has `label` and a `p(CLASS)` column per class.

        Raises:
            DataError: a feature column is missing, an unknown column is present, or there are
                too few rows.
        """
        pre = self.preprocessing
        if pre["kind"] == "sequences":
            return self._predict_sequences(frame)
        if pre["kind"] == "text":
            return self._predict_texts(frame)
        if pre.get("series_id"):
            return self._predict_panel(frame)
        features, index = load_features(
            frame,
            pre["feature_names"],
            allowed=[*pre["target_names"], pre.get("time_column"), *pre.get("other_columns", [])],
            time_column=pre.get("time_column"),
            missing=pre.get("missing", "error"),
            lookback=pre["lookback"],
        )
        windows = input_windows(self.feature_scaler.transform(features), pre["lookback"])
        raw = self.predict_scaled(windows)
        rows = np.arange(pre["lookback"], len(features) + 1)
        times = _times_after(index, rows)
        if pre["task"] == "classification":
            probabilities = np.concatenate([1 - raw, raw], 1) if raw.shape[1] == 1 else raw
            classes = pre["classes"]
            out = pd.DataFrame(probabilities, index=times, columns=[f"p({c})" for c in classes])
            out.insert(0, "label", [classes[i] for i in probabilities.argmax(1)])
            return out
        return prediction_frame(pre, self.target_scaler.inverse_transform(raw), times)

    def _predict_panel(self, source) -> pd.DataFrame:
        """Predictions of every series in a long table, with the series id as first column."""
        from keras_lstm.data import read_frame

        column = self.preprocessing["series_id"]
        frame = read_frame(source)
        if column not in frame.columns:
            raise DataError(
                f"Series column {column!r} is missing from the input; the model was trained on "
                "many series and needs it to tell them apart."
            )
        parts = []
        for key, group in frame.groupby(column, sort=False):
            single = self._one_series(key).predict(group.drop(columns=[column]))
            single.insert(0, column, key)
            parts.append(single)
        return pd.concat(parts)

    def _one_series(self, key) -> Bundle:
        """This bundle as a single-series one, with `key`'s own scalers when it has them."""
        singles = self.__dict__.setdefault("_singles", {})
        if key not in singles:
            pre = {
                k: v
                for k, v in self.preprocessing.items()
                if k not in ("series_id", "series_scalers")
            }
            scalers = self.preprocessing.get("series_scalers")
            if scalers is not None:
                if str(key) not in scalers:
                    raise DataError(
                        f"Series {key!r} was not in the training data; this model scales each "
                        "series by its own statistics (data.scale_per_series) and has none for it."
                    )
                pre.update(scalers[str(key)])
            singles[key] = Bundle(self.model, pre, self.config, self.metrics)
            singles[key].predict_scaled = self.predict_scaled  # one compiled model call for all
        return singles[key]

    def _labelled(self, raw: np.ndarray, index) -> pd.DataFrame:
        """Class probabilities (and the most likely label), or a value in real units."""
        pre = self.preprocessing
        if pre["task"] != "classification":
            real = self.target_scaler.inverse_transform(raw.reshape(len(raw), -1))
            return pd.DataFrame(real, index=index, columns=pre["target_names"])
        probabilities = np.concatenate([1 - raw, raw], 1) if raw.shape[1] == 1 else raw
        return prediction_frame(pre, probabilities, index)

    def _predict_sequences(self, source) -> pd.DataFrame:
        """One prediction per sequence: `source` is a long table with the series id column, an
        array `(n, time, features)` or a list of `(time, features)` arrays."""
        from keras_lstm.config import DataConfig
        from keras_lstm.data.sequences import load_sequences, sequences_from_arrays

        pre = self.preprocessing
        if isinstance(source, (list, tuple, np.ndarray)):
            table = sequences_from_arrays(source, np.zeros(len(source)), pre["feature_names"])
        else:
            frame = source if isinstance(source, pd.DataFrame) else None
            if frame is not None and pre["label"] not in frame.columns:
                frame = frame.assign(**{pre["label"]: 0})
            config = DataConfig(
                series_id=pre["series_id"],
                label=pre["label"],
                features=tuple(pre["feature_names"]),
                time_column=pre.get("time_column"),
                missing=pre.get("missing", "error"),
            )
            table = load_sequences(frame if frame is not None else source, config)
        if table.feature_names != tuple(pre["feature_names"]):
            raise DataError(
                f"Expected {len(pre['feature_names'])} features {pre['feature_names']}; "
                f"received {list(table.feature_names)}."
            )
        # one sequence at a time, unpadded: exactly what a device does
        raw = np.concatenate(
            [self.predict_scaled(self.feature_scaler.transform(s)[None]) for s in table.sequences]
        )
        return self._labelled(raw, pd.Index(table.ids, name="series"))

    def _predict_texts(self, source) -> pd.DataFrame:
        """One prediction per text: a list of strings or a frame with the text column."""
        from keras_lstm.training.prepare import vectorize

        pre = self.preprocessing
        column = pre["feature_names"][0]
        if isinstance(source, (pd.DataFrame, str, os.PathLike)):
            from keras_lstm.data import read_frame

            frame = read_frame(source)
            if column not in frame.columns:
                raise DataError(f"Text column {column!r} is missing from the input.")
            texts = frame[column].fillna("").astype(str).tolist()
        else:
            texts = [str(t) for t in source]
        ids = vectorize(texts, pre["vocabulary"], pre["sequence_length"])
        return self._labelled(self.predict_scaled(ids), pd.RangeIndex(len(texts), name="sample"))

    def sample_windows(self, n: int, part: str = "train") -> np.ndarray:
        """`n` scaled input windows, evenly spread over the refit's training windows (`train`)
        or the test windows (`test`) of the bundle's own data; for calibration and parity checks.

        Raises:
            BundleError: the training data named in the config cannot be read.
        """
        from keras_lstm.training.prepare import prepare

        try:
            # a bundle fresh from `fit` keeps its prepared data (it may have come from a
            # DataFrame); a loaded one reads `data.path` again
            prepared = getattr(self, "prepared", None) or prepare(self.config)
        except (DataError, ConfigError) as err:
            raise BundleError(
                f"The bundle's training data ({self.config.data.path}) is needed for "
                f"representative windows but cannot be used: {err}"
            ) from None
        final = prepared.plan.final
        rows = final.train if part == "train" else final.validation
        picks = rows[np.unique(np.linspace(0, len(rows) - 1, min(n, len(rows))).astype(int))]
        if prepared.kind == "series" and not self.preprocessing.get("series_scalers"):
            features = self.feature_scaler.transform(prepared.table.features)
            lookback = self.config.data.lookback
            return np.ascontiguousarray(input_windows(features, lookback)[picks - lookback])
        inputs, _ = prepared.fold_data(final).windows.gather(picks)
        return np.ascontiguousarray(inputs)

    # --- saving --------------------------------------------------------------------------------

    def save(self, directory: str | os.PathLike) -> Path:
        """Write the bundle folder atomically: into a temporary sibling, then renamed.

        Returns:
            The folder's path.
        """
        directory = Path(directory)
        directory.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
        try:
            self.model.save(tmp / MODEL_FILE)
            (tmp / PREPROCESSING_FILE).write_text(json.dumps(self.preprocessing, indent=2))
            self.config.save(tmp / CONFIG_FILE)
            (tmp / METRICS_FILE).write_text(json.dumps(self.metrics, indent=2))
            if self.report is not None:
                from keras_lstm.plots import save_plots

                save_plots(self, tmp)
            manifest = {p.name: _sha256(p) for p in sorted(tmp.iterdir()) if p.is_file()}
            (tmp / MANIFEST_FILE).write_text(json.dumps(manifest, indent=2))
            old = None
            if directory.exists():
                old = directory.with_name(f".{directory.name}.old-{os.getpid()}")
                os.replace(directory, old)
            os.replace(tmp, directory)
            if old is not None:
                shutil.rmtree(old, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        return directory

    @classmethod
    def load(cls, directory: str | os.PathLike) -> Bundle:
        """Load a bundle folder, checking every file against its manifest.

        Raises:
            BundleError: the folder or a file is missing, truncated or edited, or the model
                holds layers that Keras' safe mode refuses (such as `Lambda`).
        """
        import keras

        directory = Path(directory)
        if not directory.is_dir():
            raise BundleError(
                f"Bundle folder {str(directory)!r} does not exist. Pass the folder written by "
                "`keras-lstm train` (its `bundle` subfolder)."
            )
        root = directory.resolve()
        for name in (*_REQUIRED, MANIFEST_FILE):
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
        try:
            manifest = json.loads((directory / MANIFEST_FILE).read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise BundleError(f"{directory / MANIFEST_FILE} is not valid JSON.") from None
        if not isinstance(manifest, dict):
            raise BundleError(f"{directory / MANIFEST_FILE} must hold a JSON object.")
        for name in _REQUIRED:
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
        preprocessing = _check_preprocessing(preprocessing, directory / PREPROCESSING_FILE)
        try:
            config = load_config(directory / CONFIG_FILE)
        except ConfigError as err:
            raise BundleError(f"{directory / CONFIG_FILE} is invalid: {err}") from None
        try:
            model = keras.models.load_model(
                directory / MODEL_FILE,
                safe_mode=True,
                compile=False,
                custom_objects={"WindowNormalized": WindowNormalized},
            )
        except Exception as err:  # Keras raises ValueError, TypeError, OSError, zip errors...
            first = str(err).strip().splitlines()[0] if str(err).strip() else type(err).__name__
            raise BundleError(
                f"{directory / MODEL_FILE} cannot be loaded safely: {first}"
            ) from None
        return cls(model, preprocessing, config, metrics)


def prediction_frame(pre: dict, values: np.ndarray, index) -> pd.DataFrame:
    """Predictions as a DataFrame: class probabilities `(n, classes)` become `label` and a
    `p(CLASS)` column per class; real-unit forecasts `(n, horizon, targets)` a column per target
    (horizon 1) or `TARGET@t+K` per step. Shared by `Bundle` and `LitePredictor` output."""
    if pre.get("task") == "classification":
        classes = pre.get("classes") or list(range(values.shape[1]))
        out = pd.DataFrame(values, index=index, columns=[f"p({c})" for c in classes])
        out.insert(0, "label", [classes[i] for i in values.argmax(1)])
        return out
    names = pre["target_names"]
    horizon = values.shape[1] if values.ndim == 3 else 1
    if horizon == 1:
        columns = names
    else:
        columns = [f"{name}@t+{k + 1}" for k in range(horizon) for name in names]
    return pd.DataFrame(values.reshape(len(values), -1), index=index, columns=columns)


def _times_after(index: pd.Index, rows: np.ndarray) -> pd.Index:
    """The time of row `r` for each of `rows`, extending past the end at the median step."""
    n = len(index)
    if isinstance(index, pd.DatetimeIndex):
        step = pd.Series(index).diff().median() if n > 1 else pd.Timedelta(1, "D")
        last = index[-1]
        return pd.DatetimeIndex(
            [index[r] if r < n else last + (r - n + 1) * step for r in rows], name=index.name
        )
    values = np.asarray(index)
    step = np.median(np.diff(values)) if n > 1 else 1
    return pd.Index(
        [values[r] if r < n else values[-1] + (r - n + 1) * step for r in rows], name=index.name
    )
