"""Test set-up: the suite runs on the backend a user gets.

`keras_lstm` is imported before anything else imports Keras or TensorFlow, so it chooses the
backend exactly as it does for a user's script or the CLI: JAX, unless `KERAS_BACKEND` names
another. Tests that only make sense on TensorFlow (`MirroredStrategy` on logical devices, SHAP's
gradient explainer, TensorFlow's own objects) carry `@pytest.mark.tensorflow` and run in a second
call with `KERAS_BACKEND=tensorflow` (the README's test command runs both). On TensorFlow the
CPU is split into two logical devices, which must happen before its runtime starts, so that
`MirroredStrategy` can be tested without a GPU.
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
REQUESTED_BACKEND = os.environ.get("KERAS_BACKEND")  # None: the default a user gets

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402

import keras_lstm  # noqa: E402, F401  (chooses the Keras backend, as for a user)
from keras_lstm.startup import choose_keras_backend  # noqa: E402

BACKEND = choose_keras_backend()

if BACKEND == "tensorflow":
    import tensorflow as tf

    _cpus = tf.config.list_physical_devices("CPU")
    tf.config.set_logical_device_configuration(
        _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
    )


def pytest_collection_modifyitems(config, items):
    """Tests marked `tensorflow` are skipped on another backend (run them with
    `KERAS_BACKEND=tensorflow python -m pytest -m tensorflow`)."""
    if BACKEND == "tensorflow":
        return
    skip = pytest.mark.skip(reason="needs KERAS_BACKEND=tensorflow (run with -m tensorflow)")
    for item in items:
        if "tensorflow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def sine_frame():
    """A noisy sine (period 40) with a second feature, 400 daily rows."""
    rng = np.random.default_rng(0)
    t = np.arange(400)
    return pd.DataFrame(
        {
            "date": pd.date_range("2020-01-01", periods=400, freq="D").strftime("%Y-%m-%d"),
            "y": np.sin(2 * np.pi * t / 40) + 0.1 * rng.standard_normal(400),
            "x": np.cos(2 * np.pi * t / 40) + 0.1 * rng.standard_normal(400),
        }
    )
