"""The search space: plain data in the config, turned into Keras Tuner hyperparameters.

`tuning.search_space` maps dotted config keys (any key of the `data`, `model` and `training`
sections) to either

- a list of choices, e.g. `model.units: [[32], [64, 32]]` or `model.cell: [lstm, gru]`, or
- a range `{min, max, step, sampling}`: integers when `min` and `max` are integers (and `step`,
  if given), else floats; `sampling` is `linear` (default), `log` or `reverse_log`.

Keras Tuner's `Choice` takes scalars of one type only, so a list of choices holding lists, nulls
or mixed types is encoded as JSON strings (`"[64, 32]"`) and decoded again for the config.

When the search space is empty, `DEFAULT_SEARCH_SPACE` is searched:

```yaml
model.units: [[32], [64], [64, 32]]
model.cell: [lstm, gru]
model.dropout: {min: 0.0, max: 0.4, step: 0.1}
training.learning_rate: {min: 1.0e-4, max: 1.0e-2, sampling: log}
```

Example:
    >>> from keras_lstm.config import load_config
    >>> space = SearchSpace.from_config(load_config({"tuning": {"search_space": {
    ...     "model.units": [[16], [32, 16]], "data.lookback": {"min": 8, "max": 24, "step": 8}}}}))
    >>> space.max_lookback
    24
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass

from keras_lstm.config import Config
from keras_lstm.errors import ConfigError

DEFAULT_SEARCH_SPACE = {
    "model.units": [[32], [64], [64, 32]],
    "model.cell": ["lstm", "gru"],
    "model.dropout": {"min": 0.0, "max": 0.4, "step": 0.1},
    "training.learning_rate": {"min": 1.0e-4, "max": 1.0e-2, "sampling": "log"},
}

SECTIONS = ("data", "model", "training")
RANGE_KEYS = {"min", "max", "step", "sampling"}
SAMPLINGS = ("linear", "log", "reverse_log")
# Keras Tuner's Hyperband oracle adds these to every trial; `tuner/epochs` is the epoch budget.
HYPERBAND_EPOCHS = "tuner/epochs"


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


@dataclass(frozen=True)
class Dimension:
    """One searched key.

    Attributes:
        key: the dotted config key, also the hyperparameter's name.
        choices: the values of a list of choices (decoded), or None for a range.
        encoded: the choices are JSON strings in Keras Tuner.
        low, high, step, sampling: the range, or None for a list of choices.
        integer: the range is of integers.
    """

    key: str
    choices: tuple | None = None
    encoded: bool = False
    low: float | None = None
    high: float | None = None
    step: float | None = None
    sampling: str = "linear"
    integer: bool = False

    def declare(self, hp) -> None:
        """Declare this dimension on a Keras Tuner `HyperParameters`, default first."""
        if self.choices is not None:
            values = [json.dumps(c) for c in self.choices] if self.encoded else list(self.choices)
            hp.Choice(self.key, values, ordered=False if self.encoded else None)
        elif self.integer:
            hp.Int(self.key, int(self.low), int(self.high), step=self.step, sampling=self.sampling)
        else:
            hp.Float(self.key, self.low, self.high, step=self.step, sampling=self.sampling)

    def decode(self, value):
        """The config value of a hyperparameter value."""
        if self.encoded:
            return json.loads(value)
        if self.integer:
            return int(value)
        return value

    def extremes(self) -> list:
        """The values to validate up front: every choice, or a range's ends."""
        if self.choices is not None:
            return list(self.choices)
        return [self.low, self.high]


def _parse(key, spec) -> Dimension:
    if isinstance(spec, (list, tuple)):
        if not spec:
            raise ConfigError(
                f"Search space key `{key}` has no choices. Give a non-empty list or a range "
                "{min, max}."
            )
        choices = tuple(spec)
        kinds = {type(c) for c in choices}
        scalar = all(isinstance(c, (str, int, float, bool)) for c in choices)
        encoded = not scalar or len(kinds) > 1 and kinds != {int, float}
        if not encoded and kinds == {int, float}:
            choices = tuple(float(c) for c in choices)
        if len({json.dumps(c) for c in choices}) != len(choices):
            raise ConfigError(
                f"Search space key `{key}` repeats a choice. Received: {key}={list(spec)!r}"
            )
        return Dimension(key, choices=choices, encoded=encoded)
    if isinstance(spec, Mapping):
        unknown = set(spec) - RANGE_KEYS
        if unknown or not {"min", "max"} <= set(spec):
            raise ConfigError(
                f"Search space key `{key}` must be a list of choices or a range with keys "
                f"min, max and optionally step, sampling. Received: {key}={dict(spec)!r}"
            )
        low, high, step = spec["min"], spec["max"], spec.get("step")
        sampling = spec.get("sampling", "linear")
        if not all(_is_number(v) and math.isfinite(v) for v in (low, high)):
            raise ConfigError(
                f"Search space key `{key}`: min and max must be numbers. Received: "
                f"{key}={dict(spec)!r}"
            )
        if low > high:
            raise ConfigError(
                f"Search space key `{key}`: min must not exceed max. Received: min={low}, "
                f"max={high}"
            )
        if step is not None and (not _is_number(step) or step <= 0):
            raise ConfigError(
                f"Search space key `{key}`: step must be a positive number. Received: step={step}"
            )
        if sampling not in SAMPLINGS:
            raise ConfigError(
                f"Search space key `{key}`: sampling must be one of {', '.join(SAMPLINGS)}. "
                f"Received: sampling={sampling!r}"
            )
        if sampling != "linear" and low <= 0:
            raise ConfigError(
                f"Search space key `{key}`: {sampling} sampling needs min > 0. Received: min={low}"
            )
        integer = _is_int(low) and _is_int(high) and (step is None or _is_int(step))
        if not integer:
            low, high = float(low), float(high)
            step = None if step is None else float(step)
        return Dimension(key, low=low, high=high, step=step, sampling=sampling, integer=integer)
    raise ConfigError(
        f"Search space key `{key}` must be a list of choices or a range {{min, max, step, "
        f"sampling}}. Received: {key}={spec!r}"
    )


@dataclass(frozen=True)
class SearchSpace:
    """The parsed, validated search space of a config.

    Args:
        dimensions: one `Dimension` per searched key, in the config's order.
        base: the config every trial starts from.
    """

    dimensions: tuple[Dimension, ...]
    base: Config

    @classmethod
    def from_config(cls, config: Config) -> SearchSpace:
        """Parse `config.tuning.search_space` (or `DEFAULT_SEARCH_SPACE` when it is empty).

        Raises:
            ConfigError: a key outside the `data`, `model` and `training` sections or unknown
                to the config, an empty list of choices, a malformed range (min > max, ...) or
                a value the config itself rejects; the message names the key.
        """
        raw = config.tuning.search_space or DEFAULT_SEARCH_SPACE
        dimensions = []
        for key, spec in raw.items():
            if not isinstance(key, str) or key.split(".")[0] not in SECTIONS or "." not in key:
                raise ConfigError(
                    f"Search space key `{key}` must be a dotted key of the data, model or "
                    "training section, e.g. `model.units`."
                )
            dimension = _parse(key, spec)
            for value in dimension.extremes():
                try:
                    config.replace(**{key: value})
                except ConfigError as err:
                    raise ConfigError(f"Search space key `{key}`: {err}") from None
            dimensions.append(dimension)
        return cls(tuple(dimensions), config)

    def declare(self, hp) -> None:
        """Declare every dimension on a Keras Tuner `HyperParameters`."""
        for dimension in self.dimensions:
            dimension.declare(hp)

    @property
    def max_lookback(self) -> int:
        """The longest lookback any trial can use: every trial is scored from this row on."""
        for dimension in self.dimensions:
            if dimension.key == "data.lookback":
                return int(max(dimension.extremes()))
        return self.base.data.lookback

    def values(self, hyperparameters) -> dict:
        """The dotted config changes of a trial's hyperparameters (decoded)."""
        values = hyperparameters.values
        changes = {d.key: d.decode(values[d.key]) for d in self.dimensions if d.key in values}
        if HYPERBAND_EPOCHS in values:
            changes["training.epochs"] = int(values[HYPERBAND_EPOCHS])
        return changes

    def config_for(self, hyperparameters) -> Config:
        """The full config of a trial."""
        return self.base.replace(**self.values(hyperparameters))
