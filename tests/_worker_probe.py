"""A fold runner for worker tests that reports what the worker process imported (kept apart
from the test modules, which import TensorFlow themselves)."""

import sys
from dataclasses import dataclass


@dataclass
class Imported:
    tensorflow: bool
    keras_backend: str


def report_imports(prepared, index, out_dir=None, verbose=None) -> Imported:
    import os

    return Imported("tensorflow" in sys.modules, os.environ.get("KERAS_BACKEND", ""))
