"""Test set-up: quiet TensorFlow, and two logical CPU devices so MirroredStrategy can be tested
without a GPU. Logical devices must be configured before TensorFlow initialises its runtime."""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
import pytest  # noqa: E402
import tensorflow as tf  # noqa: E402

_cpus = tf.config.list_physical_devices("CPU")
tf.config.set_logical_device_configuration(
    _cpus[0], [tf.config.LogicalDeviceConfiguration(), tf.config.LogicalDeviceConfiguration()]
)


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
