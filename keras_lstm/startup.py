"""Process start-up: importing TensorFlow without the notices its C++ runtime prints.

Used by the CLI and by fold workers; imports nothing of keras-lstm, so anything may use it.
"""

from __future__ import annotations

import os
import sys


def import_tensorflow_quietly() -> None:
    """Import TensorFlow with file descriptor 2 silenced: its C++ runtime prints start-up notices
    to stderr that no log level turns off, and an error must reach the user as one line.

    Example:
        >>> import_tensorflow_quietly()  # doctest: +SKIP
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        import tensorflow  # noqa: F401
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
