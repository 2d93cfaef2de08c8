"""Every error a user can catch, in one module.

Every error cellscribe raises on purpose derives from :class:`CellscribeError` and carries a
message that names the problem and the fix. The CLI and the R package print the message
without a traceback. Language-model errors are classified by type and status code, never by
message text::

    CellscribeError
    ├── InputError (also a ValueError)   the input or an option is not usable as given
    │   └── MarkerInputError             a marker table is missing columns, empty, unusable genes
    ├── AnnotationError                  some clusters/cells failed; the rest are in ``partial``
    ├── KnowledgeDataError               a knowledge file could not be fetched or fails its sha256
    ├── GeneKnowledgeUnavailableError    the gene databases (org.Hs.eg.db, GO.db) are not installed
    └── LLMError
        ├── BackendUnavailableError      cannot reach the server (connection refused, DNS, ...)
        │   └── APITimeoutError          no answer within the timeout
        ├── APIStatusError               the server answered with an HTTP error (status_code)
        │   ├── AuthenticationError      401 / 403
        │   ├── RateLimitError           429
        │   └── ServerError              5xx
        ├── ModelNotFoundError           model not pulled / not prepared / unknown
        └── OutputFormatError            the answer stayed malformed after repair and retries
"""

from __future__ import annotations

from typing import Any


class CellscribeError(Exception):
    """Base class of every error cellscribe raises on purpose."""


class InputError(CellscribeError, ValueError):
    """The input (marker table, AnnData, file, option) is not usable as given."""


class MarkerInputError(InputError):
    """A marker table is missing columns, empty, or holds unusable gene names."""


class KnowledgeDataError(CellscribeError):
    """A knowledge file could not be fetched or does not match its pinned sha256."""


class GeneKnowledgeUnavailableError(CellscribeError):
    """The Bioconductor gene databases (org.Hs.eg.db, GO.db) are not installed."""


class AnnotationError(CellscribeError):
    """Some clusters (or cells) could not be annotated; the others are in ``partial`` and in the
    cache, and ``failures`` maps each failed one to its error message."""

    def __init__(self, message: str, *, failures: dict[str, str], partial: Any) -> None:
        super().__init__(message)
        self.failures = failures
        self.partial = partial


class LLMError(CellscribeError):
    """Base class of the LLM layer's errors."""


class BackendUnavailableError(LLMError):
    """The backend cannot be reached."""


class APITimeoutError(BackendUnavailableError):
    """The request did not finish within its timeout."""


class APIStatusError(LLMError):
    """The server answered with an HTTP error status."""

    def __init__(self, message: str, *, status_code: int, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.retry_after = retry_after


class AuthenticationError(APIStatusError):
    """The server refused the credentials (401/403)."""


class RateLimitError(APIStatusError):
    """Too many requests (429)."""


class ServerError(APIStatusError):
    """The server failed (5xx)."""


class ModelNotFoundError(LLMError):
    """The requested model is not available to the backend."""


class OutputFormatError(LLMError):
    """The model's answer could not be parsed or repaired into the requested format."""


__all__ = [
    "APIStatusError", "APITimeoutError", "AnnotationError", "AuthenticationError", "BackendUnavailableError",
    "CellscribeError", "GeneKnowledgeUnavailableError", "InputError", "KnowledgeDataError", "LLMError",
    "MarkerInputError", "ModelNotFoundError", "OutputFormatError", "RateLimitError", "ServerError",
]
