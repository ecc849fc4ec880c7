"""tuning: Keras Tuner searches over the keras-lstm pipeline, scored by walk-forward CV.

`tune(config, out_dir=...)` searches `config.tuning.search_space` (see `tuning.search_space`
for its format and `DEFAULT_SEARCH_SPACE`) with `random`, `bayesian` or `hyperband` search;
each trial is a `keras_lstm.cross_validate` of the trial's config and its objective is the mean
validation loss over the folds. The search resumes from its output folder and can run as a
Keras Tuner chief with workers (`keras-lstm tune --chief HOST:PORT [--worker ID]`).

Example:
    >>> import tuning
    >>> sorted(tuning.DEFAULT_SEARCH_SPACE)[:2]
    ['model.cell', 'model.dropout']
"""

from tuning.search_space import DEFAULT_SEARCH_SPACE, SearchSpace

# Keras Tuner imports TensorFlow, which takes seconds: load it on first use.
_LAZY = {
    "tune": "tuning.tuner",
    "TuneResult": "tuning.tuner",
    "TuningError": "tuning.tuner",
    "CVTuner": "tuning.tuner",
    "make_oracle": "tuning.tuner",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'tuning' has no attribute {name!r}")


__all__ = [
    "DEFAULT_SEARCH_SPACE",
    "CVTuner",
    "SearchSpace",
    "TuneResult",
    "TuningError",
    "make_oracle",
    "tune",
]
