"""Retry policy shared by every backend: what to retry, and how long to wait.

Retryable: connection errors, HTTP 408, 409, 429 and 5xx. A timeout is not: the request had its
whole budget (``timeout``), and repeating it would triple the wait for a server that hangs. Waits grow exponentially
with full jitter from ``INITIAL_RETRY_DELAY_S`` up to ``MAX_RETRY_DELAY_S``; a server's
``Retry-After`` (up to ``MAX_RETRY_AFTER_S``) takes precedence.
"""

from __future__ import annotations

import logging

import tenacity

from ..errors import APIStatusError, APITimeoutError, BackendUnavailableError
from ._constants import INITIAL_RETRY_DELAY_S, MAX_RETRY_AFTER_S, MAX_RETRY_DELAY_S, RETRYABLE_STATUS

log = logging.getLogger(__name__)

_jitter = tenacity.wait_random_exponential(multiplier=INITIAL_RETRY_DELAY_S, max=MAX_RETRY_DELAY_S)


def should_retry(exc: BaseException) -> bool:
    """Whether a failed attempt is worth repeating."""
    if isinstance(exc, APITimeoutError):
        return False
    if isinstance(exc, BackendUnavailableError):
        return True
    if isinstance(exc, APIStatusError):
        return exc.status_code in RETRYABLE_STATUS or exc.status_code >= 500
    return False


def backoff(state: tenacity.RetryCallState) -> float:
    """Seconds to wait before the next attempt."""
    exc = state.outcome.exception() if state.outcome else None
    if isinstance(exc, APIStatusError) and exc.retry_after is not None:
        return min(exc.retry_after, MAX_RETRY_AFTER_S)
    return _jitter(state)


def _log_retry(state: tenacity.RetryCallState) -> None:
    exc = state.outcome.exception() if state.outcome else None
    log.warning("attempt %d failed (%s: %s); retrying", state.attempt_number, type(exc).__name__, exc)


def retrying(max_retries: int) -> tenacity.Retrying:
    """A tenacity policy: ``max_retries`` extra attempts, re-raising the last typed error."""
    return tenacity.Retrying(
        retry=tenacity.retry_if_exception(should_retry),
        wait=backoff,
        stop=tenacity.stop_after_attempt(max_retries + 1),
        before_sleep=_log_retry,
        reraise=True,
    )
