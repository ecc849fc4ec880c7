"""The SavedModel export for TensorFlow Serving: its `serving_default` signature gives the Keras
model's outputs, and a failed export leaves nothing behind."""

import numpy as np
import pytest
import tensorflow as tf
from test_export import _bundle, raw_frame  # noqa: F401 (the fixture)

from keras_lstm.errors import ExportError
from tflite_export.saved_model import export_saved_model


def test_serving_signature_gives_the_keras_outputs(tmp_path, raw_frame):  # noqa: F811
    bundle, windows = _bundle("lstm", raw_frame)
    out = export_saved_model(bundle, tmp_path / "serving")
    assert (out / "saved_model.pb").is_file()
    serve = tf.saved_model.load(str(out)).signatures["serving_default"]
    (got,) = serve(window=tf.constant(windows)).values()
    expected = np.asarray(bundle.model(windows, training=False))
    np.testing.assert_allclose(got.numpy(), expected, atol=1e-6)
    # any batch size: one window alone gives its own row
    (one,) = serve(window=tf.constant(windows[3:4])).values()
    np.testing.assert_allclose(one.numpy(), expected[3:4], atol=1e-6)


def test_a_failed_saved_model_export_leaves_nothing(tmp_path):
    with pytest.raises(ExportError, match="needs a keras-lstm Bundle or a Keras model"):
        export_saved_model(object(), tmp_path / "serving")
    assert list(tmp_path.iterdir()) == []
