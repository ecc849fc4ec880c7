"""Silencing the C++ notices of TensorFlow and LiteRT, which write to file descriptor 2 whatever
the log level. Standard library only: the device-side predictor imports it too.
"""

from __future__ import annotations

import contextlib
import os
import sys


@contextlib.contextmanager
def native_stderr_silenced():
    """File descriptor 2 goes to /dev/null inside the block: for the C++ notices of TensorFlow
    and LiteRT (`Created TensorFlow Lite XNNPACK delegate for CPU.`, the quantizer's
    `fully_quantize: 0, ...`) that no log level turns off. Python exceptions still propagate;
    Python's own `sys.stderr` writes inside the block are lost too, so keep blocks small.

    Example:
        >>> with native_stderr_silenced():
        ...     os.write(2, b"a notice nobody needs\n")
        23
    """
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)
