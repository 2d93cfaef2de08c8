"""Language-model backends behind one small interface.

>>> from cellscribe.llm import get_backend
>>> backend = get_backend("llamacpp")              # embedded default model, no server
>>> backend = get_backend("ollama", model="gpt-oss:20b")
>>> backend = get_backend("openai", model="gpt-4o-mini")        # key from OPENAI_API_KEY
>>> backend = get_backend("openai", base_url="http://127.0.0.1:8000/v1", model="local")
>>> backend.chat([{"role": "user", "content": "Hi"}]).content

``"auto"`` picks Ollama when a server answers and has the model, otherwise the embedded model.
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import httpx

from ..errors import (
    APIStatusError,
    APITimeoutError,
    AuthenticationError,
    BackendUnavailableError,
    InputError,
    LLMError,
    ModelNotFoundError,
    OutputFormatError,
    RateLimitError,
    ServerError,
)
from ._base import (
    MAX_SENTENCES_KEY,
    TRUNCATE_KEY,
    Backend,
    ChatResponse,
    Message,
    ModelIdentity,
    ToolCall,
    ToolTurn,
    Usage,
)
from ._constants import DEFAULT_API_KEY_ENV, DEFAULT_OLLAMA_MODEL, DEFAULT_TIMEOUT_S, SLOW_PROBE_S, ollama_host
from ._llamacpp import LlamaCppBackend
from ._ollama import OllamaBackend
from ._openai import OpenAIBackend
from ._retry import retrying
from ._transformers import DEFAULT_TRANSFORMERS_MODEL, TransformersBackend, load_base
from .local_models import DEFAULT_LOCAL_MODEL, REGISTRY

log = logging.getLogger(__name__)

BACKENDS: dict[str, type[Backend]] = {
    LlamaCppBackend.name: LlamaCppBackend,
    OllamaBackend.name: OllamaBackend,
    OpenAIBackend.name: OpenAIBackend,
    TransformersBackend.name: TransformersBackend,
}
BACKEND_NAMES: tuple[str, ...] = ("auto", *BACKENDS)

__all__ = [
    "BACKENDS", "BACKEND_NAMES", "DEFAULT_API_KEY_ENV", "DEFAULT_TIMEOUT_S", "DEFAULT_TRANSFORMERS_MODEL",
    "MAX_SENTENCES_KEY", "SLOW_PROBE_S", "TRUNCATE_KEY",
    "APIStatusError", "APITimeoutError", "AuthenticationError", "Backend", "BackendUnavailableError", "ChatResponse",
    "LLMError", "LlamaCppBackend", "Message", "ModelIdentity", "ModelNotFoundError", "OllamaBackend", "OpenAIBackend",
    "OutputFormatError", "RateLimitError", "ServerError", "ToolCall", "ToolTurn", "TransformersBackend", "Usage",
    "get_backend", "load_base", "ollama_host", "ollama_models", "retrying",
]


def get_backend(name: str | Backend = "auto", *, model: str | None = None, **options: Any) -> Backend:
    """Make a backend by name.

    Parameters
    ----------
    name
        ``"auto"``, ``"llamacpp"``, ``"ollama"``, ``"openai"`` or ``"transformers"`` (a :class:`Backend`
        instance is returned as is).
    model
        Model for that backend (registry name or GGUF path for ``llamacpp``, a tag for
        ``ollama``, a model name for ``openai``); each backend has a default.
    **options
        Passed to the backend class (``timeout``, ``max_retries``, ``host``, ``base_url``, ...).
    """
    if isinstance(name, Backend):
        return name
    if name == "auto":
        return _auto(model, **options)
    if name not in BACKENDS:
        raise InputError(f"Unknown backend {name!r}; choose one of {', '.join(BACKEND_NAMES)}.")
    return BACKENDS[name](model, **options)


def ollama_models(host: str | None = None, timeout: float = 1.0) -> dict[str, str] | None:
    """``{name: digest}`` from a running Ollama server, or ``None`` when none answers."""
    try:
        r = httpx.get(f"{(host or ollama_host()).rstrip('/')}/api/tags", timeout=timeout)
        r.raise_for_status()
        return {m["name"]: m.get("digest", "") for m in r.json().get("models", [])}
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None


def _accepted(cls: type[Backend], options: dict[str, Any]) -> dict[str, Any]:
    """The options that ``cls`` takes (``auto`` receives options meant for either backend)."""
    names = set(inspect.signature(cls.__init__).parameters) | set(inspect.signature(Backend.__init__).parameters)
    return {k: v for k, v in options.items() if k in names}


def _auto(model: str | None, **options: Any) -> Backend:
    if model is not None and (model in REGISTRY or str(model).endswith(".gguf")):
        return LlamaCppBackend(model, **_accepted(LlamaCppBackend, options))
    wanted = model or DEFAULT_OLLAMA_MODEL
    models = ollama_models(options.get("host"))
    if models is not None and (wanted in models or f"{wanted}:latest" in models):
        log.info("auto: using Ollama at %s with %s", options.get("host") or ollama_host(), wanted)
        return OllamaBackend(wanted, **_accepted(OllamaBackend, options))
    reason = ("no Ollama server answers" if models is None
              else f"Ollama is running but has no {wanted!r} (ollama pull {wanted})")
    if model is not None:  # a model the user named is never silently replaced by another
        raise ModelNotFoundError(
            f"Model {model!r} is not a local model ({', '.join(REGISTRY)} or a .gguf path) and {reason}. "
            "Name a local model, pull it into Ollama, or pick the backend (--backend openai --base-url ...).")
    log.warning("auto: %s; using the embedded model %s", reason, DEFAULT_LOCAL_MODEL)
    return LlamaCppBackend(None, **_accepted(LlamaCppBackend, options))
