"""Defaults of the LLM layer, in one place."""

from __future__ import annotations

import os

#: Seconds allowed for one request (generation included): the whole budget of a request, since a
#: request that timed out is not repeated (a server that did not answer in this time is reported).
DEFAULT_TIMEOUT_S = 120.0
#: Seconds allowed to open a connection to a server.
DEFAULT_CONNECT_TIMEOUT_S = 5.0
#: Seconds after which a run still waiting for a server to list its models (the check before any
#: work, allowed the request ``timeout``) says so: the server is stuck, or busy with another client's
#: request (llama-cpp-python's server answers nothing else while it generates).
SLOW_PROBE_S = 10.0
#: Extra attempts after a retryable failure (connection refused or reset, HTTP 408/409/429/5xx).
DEFAULT_MAX_RETRIES = 2
#: First and largest wait between attempts (seconds); waits double with jitter.
INITIAL_RETRY_DELAY_S = 0.5
MAX_RETRY_DELAY_S = 8.0
#: Longest ``Retry-After`` we honour before giving up waiting (seconds).
MAX_RETRY_AFTER_S = 60.0
#: HTTP statuses worth another attempt.
RETRYABLE_STATUS = frozenset({408, 409, 429})

DEFAULT_OLLAMA_HOST = "http://127.0.0.1:11434"
DEFAULT_OLLAMA_MODEL = "gpt-oss:20b"
DEFAULT_OPENAI_MODEL = "gpt-4o-mini"
DEFAULT_API_KEY_ENV = "OPENAI_API_KEY"


def ollama_host() -> str:
    """The Ollama address: ``OLLAMA_HOST`` when set (``host:port`` or a URL), else the default."""
    host = os.environ.get("OLLAMA_HOST", "").strip()
    if not host:
        return DEFAULT_OLLAMA_HOST
    if "://" not in host:
        host = "http://" + host
    if host.count(":") == 1:  # scheme only, no port
        host += ":11434"
    return host.rstrip("/")
