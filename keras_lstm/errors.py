"""The exceptions keras-lstm raises for problems a user can fix.

Every error names the key, column, row or file at fault and says what to do. The CLI prints the
message on one line and exits with code 2 for these (bad input or config), 1 for anything else.
"""


class KerasLSTMError(Exception):
    """Base class of every error keras-lstm raises on purpose."""


class ConfigError(KerasLSTMError, ValueError):
    """A config key is unknown, has the wrong type, or holds a value outside its allowed range."""


class DataError(KerasLSTMError, ValueError):
    """The data (a CSV, a DataFrame or arrays) cannot be used as given."""


class BundleError(KerasLSTMError):
    """A saved bundle or exported file is missing, incomplete or has been altered."""


class ExportError(KerasLSTMError):
    """A model cannot be converted to TFLite with builtin ops, or fails its parity check."""


class WorkerError(KerasLSTMError, RuntimeError):
    """A worker process fitting folds (`training.fold_workers`) failed or was killed."""


class TrainingError(KerasLSTMError, RuntimeError):
    """Training diverged (a loss that is not finite), or a run folder is in use by another run."""


class OutputError(KerasLSTMError, OSError):
    """A file or folder could not be written (a full disk, no permission); whatever was there
    before is unchanged."""


def row_words(row: int) -> str:
    """A data row named for an error message, both as a position in the table (from 0, as
    pandas counts) and as the line an editor shows in a CSV file with a header row.

    Example:
        >>> row_words(5)
        'row 5 (line 7 of a CSV file)'
    """
    return f"row {int(row)} (line {int(row) + 2} of a CSV file)"
