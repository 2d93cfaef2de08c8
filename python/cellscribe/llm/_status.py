"""Typed errors of the LLM layer.

Classified by type and status code, never by message text::

    LLMError
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

from ..errors import CellscribeError


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


def status_error(message: str, status_code: int, retry_after: float | None = None) -> APIStatusError:
    """The most specific :class:`APIStatusError` subclass for an HTTP status."""
    cls: type[APIStatusError] = APIStatusError
    if status_code in (401, 403):
        cls = AuthenticationError
    elif status_code == 429:
        cls = RateLimitError
    elif status_code >= 500:
        cls = ServerError
    return cls(message, status_code=status_code, retry_after=retry_after)


def parse_retry_after(value: str | None) -> float | None:
    """Seconds from a ``Retry-After`` header (delta-seconds form); ``None`` if absent or a date."""
    if value is None:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
