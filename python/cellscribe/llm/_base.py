"""The one small interface every backend implements, and the response type they share.

A backend turns chat messages (OpenAI shape: ``{"role": ..., "content": ...}``) into a
:class:`ChatResponse`. Network-level retries (connection errors, timeouts, 408/409/429/5xx) are
done here, once, for all backends; subclasses implement :meth:`Backend._chat` and raise the typed
errors of :mod:`cellscribe.errors`.
"""

from __future__ import annotations

import abc
import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from typing import Any

from ..errors import InputError
from ._constants import DEFAULT_MAX_RETRIES, DEFAULT_TIMEOUT_S, SLOW_PROBE_S
from ._retry import retrying

log = logging.getLogger(__name__)

Message = dict[str, str]

#: Schema keyword (a cellscribe extension) that ends a string value after that many sentences
#: while decoding; backends that cannot use it receive the schema without it.
MAX_SENTENCES_KEY = "x-max-sentences"
#: Schema keyword (a cellscribe extension): ``true`` cuts a string value at its ``maxLength`` and
#: goes on with the next field, instead of ending the answer with finish reason ``"length"``.
TRUNCATE_KEY = "x-truncate"


def strip_extensions(schema: Any) -> Any:
    """The schema without cellscribe's ``x-`` keywords (for servers and grammar converters)."""
    if isinstance(schema, dict):
        return {k: strip_extensions(v) for k, v in schema.items() if not str(k).startswith("x-")}
    if isinstance(schema, list):
        return [strip_extensions(v) for v in schema]
    return schema


@dataclass
class Usage:
    prompt_tokens: int = 0
    completion_tokens: int = 0


@dataclass
class ChatResponse:
    """What a backend returns for one chat request.

    Attributes
    ----------
    content
        The assistant's text (JSON text when a schema was given).
    model
        The model that answered, as the backend names it.
    finish_reason
        ``"stop"``, ``"length"`` (hit ``max_tokens``) or what the backend reports.
    usage
        Prompt and completion token counts when the backend reports them.
    reasoning
        Separate reasoning text of reasoning models (Ollama ``think``), else ``None``.
    elapsed_s
        Wall time of the request, including retries.
    """

    content: str
    model: str
    finish_reason: str | None = None
    usage: Usage = field(default_factory=Usage)
    reasoning: str | None = None
    elapsed_s: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ModelIdentity:
    """Which model answers, precisely enough for provenance and cache keys.

    ``digest`` is the GGUF file's sha256 (llamacpp), the Ollama digest, or ``None`` where a hosted
    API does not expose one. Secrets never appear here.
    """

    backend: str
    model: str
    digest: str | None = None
    endpoint: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class ToolCall:
    """One function call the model asked for: ``arguments`` already parsed from JSON."""

    id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class ToolTurn:
    """The model's reply in a tool-calling conversation.

    ``message`` is the assistant message to append to the conversation as it is; the answer is
    final when ``tool_calls`` is empty (then ``content`` holds it).
    """

    content: str
    tool_calls: list[ToolCall]
    message: dict[str, Any]
    elapsed_s: float = 0.0


class Backend(abc.ABC):
    """A chat model.

    Parameters
    ----------
    timeout
        Seconds allowed for one request (connection attempts are capped shorter by HTTP backends).
    max_retries
        Extra attempts after a retryable failure (connection error, timeout, 408, 409, 429, 5xx),
        with exponential backoff and jitter, honouring ``Retry-After``.
    """

    #: Registry name, e.g. ``"llamacpp"``.
    name: str = ""
    #: How many requests may run at once against this backend.
    max_concurrency: int = 1
    #: Whether :meth:`_chat` understands cellscribe's ``x-`` schema keywords.
    uses_schema_extensions: bool = False

    def __init__(self, *, timeout: float = DEFAULT_TIMEOUT_S, max_retries: int = DEFAULT_MAX_RETRIES) -> None:
        self.timeout = float(timeout)
        self.max_retries = int(max_retries)

    @property
    @abc.abstractmethod
    def identity(self) -> ModelIdentity:
        """The model behind this backend (for provenance and cache keys)."""

    @contextlib.contextmanager
    def probing(self, where: str) -> Iterator[None]:
        """Wrap the model-list request that checks a server before any work (allowed ``timeout``):
        after :data:`SLOW_PROBE_S` without an answer, a warning says what the run is waiting for."""
        timer = threading.Timer(SLOW_PROBE_S, log.warning, args=(
            "%s has not listed its models in %g s: it is stuck, or busy with another request; waiting up to "
            "%g s (timeout=).", where, SLOW_PROBE_S, self.timeout))
        timer.daemon = True
        timer.start()
        try:
            yield
        finally:
            timer.cancel()

    def chat(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None = None,
        temperature: float = 0.0,
        seed: int = 0,
        max_tokens: int = 512,
    ) -> ChatResponse:
        """Send one chat request, retrying transient failures.

        Parameters
        ----------
        messages
            ``[{"role": "system"|"user"|"assistant", "content": str}, ...]``.
        schema
            A JSON schema the answer must follow (constrained decoding where the backend has it);
            ``None`` for free text.
        temperature, seed
            Sampling controls; temperature 0 with a fixed seed is deterministic.
        max_tokens
            Upper bound on generated tokens.
        """
        if schema is not None and not self.uses_schema_extensions:
            schema = strip_extensions(schema)
        start = time.perf_counter()
        response = retrying(self.max_retries)(
            self._chat, messages, schema=schema, temperature=temperature, seed=seed, max_tokens=max_tokens
        )
        response.elapsed_s = time.perf_counter() - start
        return response

    @abc.abstractmethod
    def _chat(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None,
        temperature: float,
        seed: int,
        max_tokens: int,
    ) -> ChatResponse:
        """One attempt; raise the typed errors of :mod:`cellscribe.errors`."""

    def chat_tools(
        self,
        messages: list[dict[str, Any]],
        tools: list[dict[str, Any]],
        *,
        temperature: float = 0.0,
        seed: int = 0,
        max_tokens: int = 512,
    ) -> ToolTurn:
        """One turn of a tool-calling conversation (OpenAI's function-calling format), retrying
        transient failures like :meth:`chat`.

        ``tools`` are ``{"type": "function", "function": {"name", "description", "parameters"}}``
        objects; answer a :class:`ToolCall` by appending :meth:`tool_message`. Backends without
        tool calls raise :class:`~cellscribe.errors.InputError`.
        """
        if not self.supports_tools:
            raise InputError(
                f"The {self.name} backend cannot call tools. Agentic annotation needs an OpenAI-compatible "
                "server with tool calls (backend='openai': OpenAI, vLLM, llama.cpp's server, Ollama's /v1); "
                "mode='grounded' works with every backend."
            )
        start = time.perf_counter()
        turn = retrying(self.max_retries)(
            self._chat_tools, messages, tools, temperature=temperature, seed=seed, max_tokens=max_tokens
        )
        turn.elapsed_s = time.perf_counter() - start
        return turn

    @property
    def supports_tools(self) -> bool:
        """Whether this backend can hold a tool-calling conversation (:meth:`chat_tools`)."""
        return type(self)._chat_tools is not Backend._chat_tools

    def _chat_tools(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *, temperature: float,
                    seed: int, max_tokens: int) -> ToolTurn:
        """One tool-calling attempt; backends that support tools override it."""
        raise NotImplementedError

    def tool_message(self, call: ToolCall, content: str) -> dict[str, Any]:
        """The message that answers ``call`` with ``content`` (a JSON string)."""
        return {"role": "tool", "tool_call_id": call.id, "content": content}

    @contextlib.contextmanager
    def translating_errors(self) -> Iterator[None]:
        """Raise the client library's errors from inside the block as the typed errors of
        :mod:`cellscribe.errors` (what :meth:`chat` does for its own requests); for other requests
        through this backend's connection, e.g. embeddings. Backends with a client library override it."""
        yield

    def check(self) -> None:  # noqa: B027 - optional hook; backends that can check override it
        """Raise a typed error if the backend cannot serve its model (server down, model missing)."""

    def close(self) -> None:  # noqa: B027 - optional hook; backends with connections override it
        """Release resources (HTTP connections); models stay loaded for reuse."""

    def __enter__(self) -> Backend:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
