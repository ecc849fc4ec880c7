"""Process start-up: importing TensorFlow without the notices its C++ runtime prints.

Used by the CLI and by fold workers; imports nothing of keras-lstm, so anything may use it.
"""

from __future__ import annotations

import os
import sys

from keras_lstm.stderr import native_stderr_silenced


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 silenced: its C++ runtime prints start-up notices
    to stderr that no log level turns off, and an error must reach the user as one line.

    Example:
        >>> import_tensorflow_quietly()  # doctest: +SKIP
    """
    with native_stderr_silenced():
        import tensorflow  # noqa: F401


def tensorflow_installed() -> bool:
    """Whether TensorFlow can be imported here (without importing it)."""
    import importlib.util

    try:
        return importlib.util.find_spec("tensorflow") is not None
    except ValueError:  # its entry in sys.modules is None: imports of it are blocked
        return False


TRAINING_BACKEND = "jax"


def choose_keras_backend() -> str:
    """The Keras backend of this process: `KERAS_BACKEND` when it is set; otherwise JAX when it
    is installed and Keras is not imported yet (training steps of the LSTM stacks keras-lstm
    builds run 3-5x faster there on a CPU than on TensorFlow: BENCHMARKS.md, Speed); otherwise
    whatever Keras chooses. Sets `KERAS_BACKEND` so worker processes use the same backend.

    Example:
        >>> choose_keras_backend() in ("jax", "tensorflow", "torch", "numpy")  # doctest: +SKIP
        True
    """
    chosen = os.environ.get("KERAS_BACKEND")
    if chosen:
        return chosen
    if sys.modules.get("keras") is not None:  # too late: Keras reads the variable on import
        os.environ["KERAS_BACKEND"] = sys.modules["keras"].backend.backend()
        return os.environ["KERAS_BACKEND"]
    import importlib.util

    try:
        found = importlib.util.find_spec(TRAINING_BACKEND) is not None
    except ValueError:  # its entry in sys.modules is None: imports of it are blocked
        found = False
    if found:
        os.environ["KERAS_BACKEND"] = TRAINING_BACKEND
        return TRAINING_BACKEND
    return "tensorflow"


def import_keras_quietly() -> None:
    """Import Keras on this process's backend (`choose_keras_backend`), TensorFlow's start-up
    notices silenced when the backend is TensorFlow.

    Example:
        >>> import_keras_quietly()  # doctest: +SKIP
    """
    if choose_keras_backend() == "tensorflow" and "tensorflow" not in sys.modules:
        import_tensorflow_quietly()
    import keras  # noqa: F401
