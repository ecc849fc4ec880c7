"""Why a model predicts what it does: permutation importance on the held-out test part.

`explain(bundle, data)` scores the bundle's model on the test part of its own data (the part
`fit` held out, scaled by the bundle's scalers), then again with one input column shuffled
across the test samples, and reports the damage in real units: the rise in RMSE (regression)
or the fall in accuracy (classification), with its spread over `repeats` shuffles. A column
the model ignores costs nothing when shuffled; the column it leans on costs the most.

- **Columns** (every data kind): each input column (a calendar feature's `_sin` and `_cos`
  channels together, under the feature's name). Windows of a series swap the column's whole
  lookback slice with another window's; whole sequences take the column of another sequence,
  resampled to their own length (so the padding stays where it was); texts have one column,
  so they are explained by **tokens** instead: the damage when every occurrence of one of the
  most frequent tokens of the test texts is replaced by the unknown token.
- **Lags** (series): the same for one step of one column (lag 1 is the window's last step),
  so the lag x column table shows which past steps drive the forecast.

`Explanation.save(DIR)` writes `explain.json` (plain JSON, fields in `Explanation.to_dict`),
`importance.png` (a bar per column, the spread as error bars) and, for series, `lags.png` (a
heat map of lag x column). `keras-lstm explain RUN --input data.csv --out DIR` does all of it.

Example:
    >>> from keras_lstm.bundle import Bundle
    >>> result = explain(Bundle.load("run/bundle"), "data.csv")  # doctest: +SKIP
    >>> print(result.summary())  # doctest: +SKIP
    Most important columns (rise in test RMSE when shuffled): sales 41.2, price 3.1, ...
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from keras_lstm.data.sequences import PAD_VALUE
from keras_lstm.errors import ConfigError, DataError
from keras_lstm.files import atomic_write_text
from keras_lstm.training.loop import score_outputs
from keras_lstm.training.prepare import prepare

# shuffles per column: the mean and spread reported
DEFAULT_REPEATS = 5
# the most frequent tokens of the test texts that are explained
TEXT_TOKENS = 20
FORMAT_VERSION = 1


@dataclass
class Explanation:
    """The permutation importances of one model on its test part.

    Attributes:
        metric: `rmse` (the importance is its rise) or `accuracy` (its fall).
        score: the unshuffled test score.
        columns: per input column (or token, for text) `{"mean", "std", "repeats"}` of the
            importance, most important first.
        lags: per series column, the mean importance of each lag (`lags[name][k]` is lag
            `k + 1`, lag 1 the window's last step); empty for other data kinds.
        kind: the data kind (`series`, `panel`, `sequences`, `text`).
        samples: test samples scored.
        repeats: shuffles per column.
        seconds: the time the explanation took.
    """

    metric: str
    score: float
    columns: dict[str, dict]
    lags: dict[str, list[float]] = field(default_factory=dict)
    kind: str = "series"
    samples: int = 0
    repeats: int = DEFAULT_REPEATS
    seconds: float = 0.0
    shap_lags: dict[str, list[float]] = field(default_factory=dict)
    shap_values: np.ndarray | None = None
    shap_index: list | None = None
    paths: dict | None = None
    attention: dict | None = None

    @property
    def unit(self) -> str:
        return "rise in test RMSE" if self.metric == "rmse" else "fall in test accuracy"

    def top_columns(self, k: int = 3) -> list[str]:
        """The `k` most important columns."""
        return list(self.columns)[:k]

    def top_lags(self, k: int = 3, table: dict | None = None) -> list[tuple[str, int]]:
        """The `k` most important `(column, lag)` pairs of `lags` (or of another lag table,
        such as `shap_lags`); empty for data kinds without lags."""
        table = self.lags if table is None else table
        cells = [(v, name, lag + 1) for name, row in table.items() for lag, v in enumerate(row)]
        return [(name, lag) for _, name, lag in sorted(cells, key=lambda c: -c[0])[:k]]

    def summary(self) -> str:
        """Two lines naming the three most important columns and lags."""
        columns = ", ".join(f"{n} {self.columns[n]['mean']:.4g}" for n in self.top_columns(3))
        lines = [
            f"Test {self.metric} {self.score:.4g} on {self.samples} samples. Most important "
            f"{'tokens' if self.kind == 'text' else 'columns'} ({self.unit} when shuffled, "
            f"mean of {self.repeats}): {columns}."
        ]
        if self.lags:
            lags = ", ".join(f"{n} lag {lag}" for n, lag in self.top_lags(3))
            lines.append(f"Most important lags (lag 1 is the last step): {lags}.")
        if self.shap_lags:
            cells = ", ".join(f"{n} lag {lag}" for n, lag in self.top_lags(3, self.shap_lags))
            lines.append(f"Largest mean |SHAP| attributions: {cells}.")
        if self.paths:
            size = self.paths["mean_abs"]
            lines.append(
                f"Linear path: {self.paths['linear_share']:.0%} of the learnt part of the "
                f"forecast (mean |linear| {size['linear']:.4g} against |recurrent| "
                f"{size['recurrent']:.4g}, real units)."
            )
        return "\n".join(lines)

    def to_dict(self) -> dict:
        """`explain.json`: `format`, `kind`, `metric`, `score`, `importance` (what a column's
        value means), `samples`, `repeats`, `seconds`, `columns` (name -> mean, std and each
        repeat), `lags` (name -> mean per lag, lag 1 first) and `top_columns` /
        `top_lags`."""
        return {
            "format": FORMAT_VERSION,
            "kind": self.kind,
            "metric": self.metric,
            "score": self.score,
            "importance": f"{self.unit} when the column is shuffled across the test samples",
            "samples": self.samples,
            "repeats": self.repeats,
            "seconds": self.seconds,
            "columns": self.columns,
            "lags": self.lags,
            "top_columns": self.top_columns(3),
            "top_lags": [{"column": n, "lag": lag} for n, lag in self.top_lags(3)],
            "shap_lags": self.shap_lags,
            "top_shap_lags": [
                {"column": n, "lag": lag} for n, lag in self.top_lags(3, self.shap_lags)
            ],
            "paths": self.paths,
            "attention": self.attention,
        }

    def save(self, directory) -> list[Path]:
        """Write `explain.json`, `importance.png` and (series) `lags.png` into `directory`."""
        from keras_lstm.plots import attention_figure, importance_figure, lag_figure, save_figure

        directory = Path(directory)
        directory.mkdir(parents=True, exist_ok=True)
        path = directory / "explain.json"
        atomic_write_text(path, json.dumps(self.to_dict(), indent=2))
        written = [path, save_figure(importance_figure(self), directory / "importance.png")]
        if self.lags:
            figure = lag_figure(self.lags, self.unit, "Permutation importance per lag and column")
            written.append(save_figure(figure, directory / "lags.png"))
        if self.shap_lags:
            figure = lag_figure(
                self.shap_lags, "mean |SHAP| (real units)", "SHAP per lag and column"
            )
            written.append(save_figure(figure, directory / "shap.png"))
        if self.shap_values is not None:
            written.append(self._save_shap_values(directory / "shap_per_forecast.csv"))
        if self.attention:
            figure = attention_figure(self.attention)
            written.append(save_figure(figure, directory / "attention.png"))
        return written

    def _save_shap_values(self, path: Path) -> Path:
        """Each test forecast's SHAP attribution per (lag, column), one row per forecast:
        `COLUMN@lagK` columns, real units."""
        import pandas as pd

        names = list(self.shap_lags)
        lookback = self.shap_values.shape[1]
        columns = [f"{n}@lag{lag}" for n in names for lag in range(1, lookback + 1)]
        flat = self.shap_values[:, ::-1, :].transpose(0, 2, 1).reshape(len(self.shap_values), -1)
        frame = pd.DataFrame(flat, columns=columns, index=pd.Index(self.shap_index, name="time"))
        atomic_write_text(path, frame.to_csv())
        return path


def explain(
    bundle,
    data=None,
    *,
    repeats: int = DEFAULT_REPEATS,
    seed=None,
    lags: bool = True,
    shap: bool = False,
    per_forecast: bool = False,
):
    """Permutation importance of `bundle`'s model on the test part of `data`.

    Args:
        bundle: a `Bundle` (fresh from `fit` or loaded).
        data: the data the bundle was trained on (a DataFrame or CSV path; default the
            config's `data.path`): its test part is the one `fit` held out.
        repeats: shuffles per column (the spread is over them; one for text, whose token
            removal is the same every time).
        seed: the shuffles' seed (default the config's).
        lags: also the importance of each (lag, column) of a series (one shuffle each).
        shap: also SHAP attributions per (lag, column) of a series (`shap_attributions`; the
            `explain` extra, on the TensorFlow backend).
        per_forecast: with `shap`, keep each test forecast's attributions
            (`shap_per_forecast.csv` when saved).

    Returns:
        An `Explanation`.

    Raises:
        DataError: `data` is not the bundle's training data (its scalers differ), or no data
            was given and the config has no `data.path`.

    Example:
        >>> result = explain(bundle, "sales.csv")  # doctest: +SKIP
        >>> result.top_columns(1)  # doctest: +SKIP
        ['price']
    """
    started = time.perf_counter()
    if isinstance(repeats, bool) or not isinstance(repeats, int) or repeats < 1:
        raise DataError(f"repeats must be a whole number >= 1; received {repeats!r}.")
    config = bundle.config
    prepared, fold_data, x, y = _test_part(bundle, data)
    final = prepared.plan.final
    scorer = _Scorer(bundle, prepared, fold_data, x, y)
    rng = np.random.default_rng(config.seed if seed is None else seed)
    groups = _token_groups(x) if prepared.kind == "text" else _column_groups(prepared)
    if prepared.kind == "text":
        repeats = 1  # removing a token is the same every time
    columns = _column_importance(scorer, x, groups, rng, repeats)
    if prepared.kind == "text":
        vocabulary = fold_data.vocabulary
        columns = {vocabulary[int(token)]: v for token, v in columns.items()}
    columns = dict(sorted(columns.items(), key=lambda item: -item[1]["mean"]))
    lag_table = {}
    if lags and prepared.kind == "series":
        lag_table = _lag_importance(scorer, x, groups, rng)
    shap_lags, shap_values = {}, None
    if shap:
        background = _background(fold_data, final, rng)
        values = shap_attributions(bundle, x, background, prepared)
        shap_lags = {
            name: np.abs(values[:, ::-1, channels]).sum(axis=2).mean(axis=0).tolist()
            for name, channels in groups.items()
        }
        if per_forecast:
            shap_values = np.stack(
                [values[:, :, channels].sum(axis=2) for channels in groups.values()], axis=2
            )
    return Explanation(
        paths=path_shares(bundle, x),
        attention=attention_weights(bundle, x, prepared.sample_index(final.validation)),
        shap_lags=shap_lags,
        shap_values=shap_values,
        shap_index=[str(i) for i in prepared.sample_index(final.validation)]
        if per_forecast
        else None,
        metric=scorer.metric,
        score=scorer.base,
        columns=columns,
        lags=lag_table,
        kind="panel" if prepared.starts is not None else prepared.kind,
        samples=len(x),
        repeats=repeats,
        seconds=time.perf_counter() - started,
    )


def _test_part(bundle, data):
    """`(prepared, fold_data, x, y)` of the test part of `data`, checked to be the data the
    bundle was trained on."""
    config = bundle.config
    if data is None and not config.data.path:
        raise DataError(
            "The bundle was trained on data given in Python (its config has no data.path): "
            "pass the same data to explain (explain(bundle, frame) or --input FILE)."
        )
    prepared = prepare(config, data)
    final = prepared.plan.final
    fold_data = prepared.fold_data(final)
    _check_training_data(bundle, prepared, fold_data)
    x, y = fold_data.windows.gather(final.validation)
    if len(x) < 2:
        raise DataError(
            f"The test part has {len(x)} sample(s); shuffling needs at least 2. Give more data "
            "or a larger data.test_size."
        )
    return prepared, fold_data, x, y


class _Scorer:
    """The bundle's test score (RMSE or accuracy) of inputs, and how much worse than on the
    unshuffled inputs (`damage`: positive when shuffling hurts)."""

    def __init__(self, bundle, prepared, fold_data, x, y):
        self.bundle, self.prepared, self.fold_data, self.y = bundle, prepared, fold_data, y
        self.metric = "accuracy" if prepared.classes is not None else "rmse"
        self.base = self(x)

    def __call__(self, inputs) -> float:
        raw = self.bundle.predict_scaled(inputs)
        final = self.prepared.plan.final
        scored = score_outputs(
            self.prepared, final, self.fold_data, inputs, self.y, raw, baselines=False
        )
        return float(scored["metrics"][self.metric])

    def damage(self, inputs) -> float:
        shuffled = self(inputs)
        return shuffled - self.base if self.metric == "rmse" else self.base - shuffled


def _column_importance(scorer: _Scorer, x, groups: dict, rng, repeats: int) -> dict:
    """Per column group: the damage of `repeats` shuffles, their mean and spread."""
    kind = scorer.prepared.kind
    columns = {}
    for name, channels in groups.items():
        values = [scorer.damage(_shuffle(x, channels, rng, kind)) for _ in range(repeats)]
        columns[name] = {
            "mean": float(np.mean(values)),
            "std": float(np.std(values)),
            "repeats": [float(v) for v in values],
        }
    return columns


def _lag_importance(scorer: _Scorer, x, groups: dict, rng) -> dict:
    """Per column group, the damage of shuffling each lag (1 = the last step) alone."""
    lookback = x.shape[1]
    return {
        name: [
            scorer.damage(_shuffle(x, channels, rng, "series", step=lookback - lag))
            for lag in range(1, lookback + 1)
        ]
        for name, channels in groups.items()
    }


ATTENTION_SAMPLES = 20  # test samples whose attention weights are kept


def path_shares(bundle, x: np.ndarray) -> dict | None:
    """How much of the forecast each path carries, for models with a linear path
    (`model.linear_path`): the mean absolute `recurrent` and `linear` terms and `base`
    (the last value or seasonal naive the window normalization maps back onto) over the test
    windows `x`, in the first target's real units, and `linear_share`, the linear path's part
    of the two learnt terms; None without a linear path.

    Example:
        >>> path_shares(bundle, x)["linear_share"]  # doctest: +SKIP
        0.62
    """
    layer = next((a for a in bundle.model.layers if type(a).__name__ == "WindowNormalized"), None)
    if layer is None or layer.highway is None:
        return None
    parts = {name: np.asarray(value, np.float64) for name, value in layer.parts(x).items()}
    target = bundle.preprocessing.get("target_scaler")
    scale = abs(float(target["scale"][0])) if target is not None else 1.0
    size = {name: float(np.mean(np.abs(value[..., 0]))) * scale for name, value in parts.items()}
    learnt = size["linear"] + size["recurrent"]
    return {"mean_abs": size, "linear_share": size["linear"] / learnt if learnt else 0.0}


def attention_weights(bundle, x: np.ndarray, index, count: int = ATTENTION_SAMPLES):
    """For models with attention pooling (`model.pooling: attention`), the weight of each
    step of the first `count` test samples `x`: `{"stride": S, "samples": {id: [weights]}}`,
    where weight `k` covers input steps `k * S` to `(k + 1) * S - 1` (S is the pooling of the
    convolutional front; 1 without one) and the weights of a sample's valid steps add up to
    one. None without attention pooling.
    """
    import keras

    from keras_lstm.sequence_layers import AttentionPooling, AttentionWeights

    pools = [a for a in bundle.model.layers if isinstance(a, AttentionPooling)]
    if not pools:
        return None
    features, mask = _layer_input(pools[0])
    probe = keras.Model(bundle.model.inputs, AttentionWeights(pools[0])(features, mask=mask))
    some = np.asarray(x[:count], np.float32)
    weights = np.asarray(probe.predict(some, verbose=0), np.float64)
    stride = max(1, int(round(some.shape[1] / weights.shape[1])))
    valid = np.any(some != PAD_VALUE, axis=-1).sum(axis=1) if some.ndim == 3 else None
    samples, inputs = {}, {}
    for i, key in enumerate(index[:count]):
        steps = weights.shape[1] if valid is None else -(-int(valid[i]) // stride)
        samples[str(key)] = weights[i, :steps].tolist()
        if some.ndim == 3:  # the first input channel under the weights (scaled units)
            inputs[str(key)] = some[i, : int(valid[i]), 0].astype(float).tolist()
    return {"stride": stride, "samples": samples, "inputs": inputs}


def _layer_input(layer):
    """The symbolic input of a layer of a functional or `Sequential` model, and the mask it
    was called with (Keras records a masked call's input as `[inputs, mask]`)."""
    inputs = layer.input
    if isinstance(inputs, (list, tuple)):
        return inputs[0], inputs[1] if len(inputs) > 1 else None
    return inputs, None


SHAP_BACKGROUND = 100  # training windows SHAP integrates from
SHAP_SAMPLES = 200  # its samples per explained window


def shap_attributions(bundle, x: np.ndarray, background: np.ndarray, prepared) -> np.ndarray:
    """SHAP's `GradientExplainer` (expected gradients) on the bundle's Keras model: the
    attribution of each (step, channel) of each scaled window of `x` `(n, lookback,
    channels)` to its forecast, from `background` windows of the training part, summed over
    the outputs (horizon steps and targets, each in its target's real units).

    Needs the `shap` library (`pip install "keras-lstm[explain]"`) and the TensorFlow
    backend (SHAP's gradients are TensorFlow's or PyTorch's; a bundle loads on either Keras
    backend, and `keras-lstm explain --shap` runs on TensorFlow).

    Raises:
        ConfigError: not a series, `shap` missing, or another Keras backend.
    """
    import keras

    if prepared.kind != "series":
        raise ConfigError(
            "SHAP attributions per (lag, column) are for windows of a series; whole "
            f"sequences and texts ({prepared.kind}) are explained by permutation importance."
        )
    if keras.backend.backend() != "tensorflow":
        raise ConfigError(
            "SHAP's GradientExplainer needs the TensorFlow backend; this process runs Keras on "
            f"{keras.backend.backend()!r}. Set KERAS_BACKEND=tensorflow before importing "
            "keras_lstm (a bundle loads on either backend), or run `keras-lstm explain --shap`."
        )
    try:
        import shap
    except ImportError as err:
        raise ConfigError(
            'SHAP attributions need the shap library: pip install "keras-lstm[explain]".'
        ) from err
    inputs = keras.Input(tuple(x.shape[1:]))
    flat = keras.Model(inputs, keras.layers.Flatten()(bundle.model(inputs)))
    explainer = shap.GradientExplainer(flat, background.astype(np.float32))
    values = np.asarray(explainer.shap_values(x.astype(np.float32), nsamples=SHAP_SAMPLES))
    values = values.reshape(*x.shape, -1)  # (n, lookback, channels, outputs)
    target = bundle.preprocessing.get("target_scaler")
    if target is not None:  # each output in its target's units
        scale = np.resize(np.abs(np.asarray(target["scale"], float)), values.shape[-1])
        values = values * scale
    return values.sum(axis=-1)


def _forecast_times(prepared, final) -> list[str]:
    return [str(t) for t in prepared.sample_index(final.validation)]


def _background(fold_data, final, rng) -> np.ndarray:
    """Up to `SHAP_BACKGROUND` training windows of the refit, drawn with `rng`."""
    rows = np.asarray(final.train)
    rows = np.sort(rng.choice(rows, min(SHAP_BACKGROUND, len(rows)), replace=False))
    return fold_data.windows.gather(rows)[0]


def _column_groups(prepared) -> dict[str, list[int]]:
    """Input channel indices per user-facing column: a calendar feature's two channels
    (`NAME_sin`, `NAME_cos`) under its name."""
    calendar = set(prepared.config.data.calendar or ())
    groups: dict[str, list[int]] = {}
    for index, name in enumerate(prepared.feature_names):
        stem, _, tail = name.rpartition("_")
        key = stem if tail in ("sin", "cos") and stem in calendar else name
        groups.setdefault(key, []).append(index)
    return groups


def _token_groups(x: np.ndarray) -> dict[int, list[int]]:
    """The `TEXT_TOKENS` most frequent known tokens of the test texts (ids; 0 pads, 1 is
    unknown), most frequent first."""
    ids, counts = np.unique(x[x > 1], return_counts=True)
    top = ids[np.argsort(-counts, kind="stable")][:TEXT_TOKENS]
    return {int(token): [int(token)] for token in top}


def _shuffle(x, channels, rng, kind: str, step: int | None = None) -> np.ndarray:
    """A copy of `x` with `channels` shuffled across samples (at one time `step` only, when
    given); for text, the token `channels[0]` replaced by the unknown token."""
    x = np.array(x, copy=True)
    if kind == "text":
        x[x == channels[0]] = 1
        return x
    order = rng.permutation(len(x))
    if kind == "sequences":
        return _shuffle_sequences(x, channels, order)
    where = slice(None) if step is None else step
    for channel in channels:
        x[:, where, channel] = x[order][:, where, channel]
    return x


def _shuffle_sequences(x, channels, order) -> np.ndarray:
    """Each padded sequence takes `channels` of sequence `order[i]`, resampled (linearly) to
    its own valid length, so the padding and the mask stay where they were."""
    source = x.copy()
    valid = np.any(source != PAD_VALUE, axis=-1)
    lengths = valid.sum(axis=1)
    for i, j in enumerate(order):
        n, m = int(lengths[i]), int(lengths[j])
        if n == 0 or m == 0:
            continue
        positions = np.linspace(0, m - 1, n)
        for channel in channels:
            x[i, :n, channel] = np.interp(positions, np.arange(m), source[j, :m, channel])
    return x


def _check_training_data(bundle, prepared, fold_data) -> None:
    """Refuse data whose refit scalers differ from the bundle's: its test part would not be
    the one the bundle held out, and the model would see other units."""
    from keras_lstm.bundle import preprocessing_dict

    mine = preprocessing_dict(prepared, fold_data)
    theirs = bundle.preprocessing
    for key in ("feature_scaler", "target_scaler", "series_scalers", "vocabulary"):
        if not _same(mine.get(key), theirs.get(key)):
            raise DataError(
                f"The data given is not the data this bundle was trained on (its {key} "
                "differs from the bundle's): explain scores the test part that training held "
                "out, so give the training data (the file of the config's data.path)."
            )


def _same(a, b) -> bool:
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            return False
        try:
            return bool(np.allclose(np.asarray(a, float), np.asarray(b, float), rtol=1e-5))
        except (TypeError, ValueError):
            return all(_same(u, v) for u, v in zip(a, b, strict=True))
    if isinstance(a, float) and isinstance(b, float):
        return bool(np.isclose(a, b, rtol=1e-5))
    return a == b
