"""Errors that mean "the user gave us something we cannot use".

The CLI turns a FacediagError into one line on stderr and exit code 2; anything
else that escapes is an internal error (exit code 3).
"""


class FacediagError(Exception):
    """Bad input or usage: reported as one clear line, exit code 2."""


class CheckpointError(FacediagError):
    """A weights file that cannot be loaded safely and strictly."""


class DataError(FacediagError):
    """A dataset that cannot be indexed or split as asked."""


class WriteError(FacediagError, OSError):
    """An output the environment will not take (a full disk, a quota, a read-only file system):
    one line, exit 2, with nothing half-written left behind. Still an OSError for code that
    handles those."""

    def __str__(self) -> str:
        return str(self.strerror)
