"""HTTP status helpers of the LLM layer; the error classes live in :mod:`cellscribe.errors`."""

from __future__ import annotations

from ..errors import APIStatusError, AuthenticationError, RateLimitError, ServerError


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
