"""User-facing error types.

Every error cellscribe raises on purpose derives from :class:`CellscribeError` and carries a
message that names the problem and the fix. The CLI and the R package print the message
without a traceback.
"""

from __future__ import annotations


class CellscribeError(Exception):
    """Base class of every error cellscribe raises on purpose."""


class InputError(CellscribeError, ValueError):
    """The input (marker table, AnnData, file, option) is not usable as given."""


class MarkerInputError(InputError):
    """A marker table is missing columns, empty, or holds unusable gene names."""
