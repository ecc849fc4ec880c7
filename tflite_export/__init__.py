"""tflite_export: builtin-ops TFLite files from keras-lstm models, quantized and verified.

`export` converts a `Bundle` (or a factory-built Keras model) to a `.tflite` file that uses only
builtin LiteRT ops (LSTMs become fused `UNIDIRECTIONAL_SEQUENCE_LSTM` ops), checks it against
Keras on held-out windows and writes a JSON report beside it. `LitePredictor` runs such a file on
raw feature rows and returns predictions in real units; it needs only NumPy, pandas and LiteRT
(`ai_edge_litert`), not TensorFlow.

Example:
    >>> from tflite_export import LitePredictor, export
    >>> report = export(bundle, "int8-full", "model.tflite")  # doctest: +SKIP
    >>> LitePredictor("model.tflite").predict(frame)  # doctest: +SKIP
"""

from tflite_export.predictor import LitePredictor


def __getattr__(name):
    # `export` needs TensorFlow's converter, which takes seconds to import and which a device
    # running `LitePredictor` does not have: it is loaded on first use.
    if name == "export":
        from tflite_export.exporter import export

        return export
    raise AttributeError(f"module 'tflite_export' has no attribute {name!r}")


__all__ = ["LitePredictor", "export"]
