"""The errors a user can fix. The command line prints the first line of a `LowresError` and exits
with code 2; any other exception is a bug in lowres and is reported as an internal error.

Each class also derives from the builtin it refines (`ConfigError` is a `ValueError`, ...), so
code that catches the builtin keeps working.
"""

from __future__ import annotations


class LowresError(Exception):
    """A problem with the user's input, settings or files; the message says what and what to do."""


class ConfigError(LowresError, ValueError):
    """A setting (gin binding, dataclass field, command-line option) with a wrong type or value."""


class DataError(LowresError, ValueError):
    """A data source, file or record that cannot be read as asked."""


class MissingFileError(LowresError, FileNotFoundError):
    """A file or directory the user named (or a run needs) is not there."""


class NotWritableError(LowresError, PermissionError):
    """An output location that cannot be written."""


class UsageError(LowresError, ValueError):
    """A command line (or an option of one) that cannot be run as written."""


class NonFiniteError(LowresError, FloatingPointError):
    """Training produced non-finite values and stopped before saving them."""
