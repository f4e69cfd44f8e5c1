"""The user-error types: faults in what a user gave (a file, a folder, a config, an argument).

``brats`` commands catch :class:`BratsUserError` only and print its message as one line with exit status 2;
every other exception is an internal error and keeps its traceback. Raise these at validation points, with
a message that names the file, key or argument and the fault; never wrap arbitrary ``ValueError`` in them.
Both subclass ``ValueError`` too, so library callers that catch ``ValueError`` keep working.
"""

from __future__ import annotations


class BratsUserError(Exception):
    """A fault in the user's input; the ``brats`` command line prints the message and exits with status 2."""


class BratsInputError(BratsUserError, ValueError):
    """Input data that cannot be used; the message names the file or folder and the fault."""


class BratsConfigError(BratsUserError, ValueError):
    """A configuration, argument or run directory that cannot be used; the message names the key or path."""


__all__ = ["BratsConfigError", "BratsInputError", "BratsUserError"]
