"""A SavedModel for TensorFlow Serving, traced through `keras.export.ExportArchive`."""

from __future__ import annotations

import os
from pathlib import Path

import keras
import tensorflow as tf

from keras_lstm.errors import ExportError, OutputError
from keras_lstm.files import atomic_folder


def export_saved_model(bundle_or_model, out_dir: str | os.PathLike) -> Path:
    """Write a SavedModel whose `serving_default` signature maps scaled windows to outputs.

    The folder is written beside its final place and renamed, so a failure leaves nothing.

    Args:
        bundle_or_model: a `Bundle` (anything with `.model`) or a Keras model.
        out_dir: the SavedModel folder to write (replaced if present).

    Returns:
        The folder's path.

    Raises:
        ExportError: Keras could not trace the model.
    """
    model = getattr(bundle_or_model, "model", bundle_or_model)
    if not isinstance(model, keras.Model):
        raise ExportError(
            "A SavedModel export needs a keras-lstm Bundle or a Keras model; received "
            f"{type(bundle_or_model).__name__}."
        )
    out_dir = Path(out_dir)
    shape = [None, *model.input_shape[1:]]
    try:
        with atomic_folder(out_dir) as tmp:
            archive = keras.export.ExportArchive()
            archive.track(model)
            archive.add_endpoint(
                "serving_default",
                lambda x: model(x, training=False),
                input_signature=[tf.TensorSpec(shape, tf.float32, name="window")],
            )
            archive.write_out(str(tmp), verbose=False)
    except OutputError:
        raise
    except Exception as err:
        raise ExportError(f"SavedModel export failed: {err}") from err
    return out_dir
