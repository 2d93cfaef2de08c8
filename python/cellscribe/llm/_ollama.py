"""Ollama backend, through the official ``ollama`` client (``/api/chat``, ``/api/tags``).

The seed paper's setup: a local Ollama server with ``gpt-oss:20b``. Structured output uses
Ollama's ``format`` (a JSON schema), sampling goes in ``options`` (temperature, seed,
``num_predict``), and ``think`` is passed to reasoning models. The model digest from
``/api/tags`` is recorded in provenance and cache keys.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import httpx

from ..errors import APITimeoutError, BackendUnavailableError, ModelNotFoundError
from ._base import Backend, ChatResponse, Message, ModelIdentity, Usage
from ._constants import DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_OLLAMA_MODEL, ollama_host
from ._status import status_error


def _full_name(model: str) -> str:
    return model if ":" in model else f"{model}:latest"


class OllamaBackend(Backend):
    """Chat with a model served by Ollama.

    Parameters
    ----------
    model
        Ollama model name; default ``gpt-oss:20b``.
    host
        Server address; default ``OLLAMA_HOST`` or ``http://127.0.0.1:11434``.
    think
        Reasoning control for thinking models (``True``/``False`` or ``"low"``, ``"medium"``,
        ``"high"`` for gpt-oss); ``None`` leaves the model's default.
    keep_alive
        How long Ollama keeps the model loaded after a request (e.g. ``"10m"``).
    max_concurrency
        Parallel requests (match the server's ``OLLAMA_NUM_PARALLEL``).
    """

    name = "ollama"

    def __init__(
        self,
        model: str | None = None,
        *,
        host: str | None = None,
        think: bool | str | None = None,
        keep_alive: str | float | None = None,
        max_concurrency: int = 2,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        import ollama  # imported when an Ollama backend is made, not with cellscribe.llm (~0.1 s)

        self.model = model or DEFAULT_OLLAMA_MODEL
        self.host = (host or ollama_host()).rstrip("/")
        self.think = think
        self.keep_alive = keep_alive
        self.max_concurrency = max_concurrency
        self._client = ollama.Client(
            host=self.host, timeout=httpx.Timeout(self.timeout, connect=DEFAULT_CONNECT_TIMEOUT_S)
        )
        self._identity: ModelIdentity | None = None

    @property
    def client(self) -> Any:
        """The ``ollama.Client`` this backend talks through, for requests other than chat (embeddings);
        wrap them in :meth:`translating_errors`."""
        return self._client

    @contextlib.contextmanager
    def translating_errors(self) -> Iterator[None]:
        """Ollama-client exceptions as cellscribe's typed errors."""
        import ollama  # imported when an Ollama backend is made, not with cellscribe.llm (~0.1 s)

        try:
            yield
        except ollama.ResponseError as exc:
            if exc.status_code == 404:
                raise ModelNotFoundError(
                    f"Ollama at {self.host} does not have model {self.model!r}: run `ollama pull {self.model}`."
                ) from None
            raise status_error(f"Ollama at {self.host} answered HTTP {exc.status_code}: {exc.error}",
                               exc.status_code) from None
        except httpx.TimeoutException:
            raise APITimeoutError(f"Ollama at {self.host} did not answer within {self.timeout:g} s; "
                                  "check that it runs and is not stuck, or raise timeout=.") from None
        except (ConnectionError, httpx.TransportError):
            raise BackendUnavailableError(
                f"Cannot reach Ollama at {self.host}. Start it with `ollama serve`, or point host= / "
                "OLLAMA_HOST at the running server."
            ) from None

    def available_models(self) -> dict[str, str]:
        """``{name: digest}`` of the models the server has (``/api/tags``)."""
        with self.translating_errors(), self.probing(f"Ollama at {self.host}"):
            listing = self._client.list()
        return {m.model: m.digest or "" for m in listing.models if m.model}

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            models = self.available_models()
            digest = models.get(self.model) or models.get(_full_name(self.model))
            if digest is None:
                raise ModelNotFoundError(
                    f"Ollama at {self.host} does not have model {self.model!r}: run `ollama pull {self.model}`."
                    + (f" Available: {', '.join(sorted(models))}." if models else "")
                )
            self._identity = ModelIdentity(backend=self.name, model=self.model, digest=digest, endpoint=self.host)
        return self._identity

    def check(self) -> None:
        self.identity  # noqa: B018 - resolving the digest checks server and model

    def _chat(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None,
        temperature: float,
        seed: int,
        max_tokens: int,
    ) -> ChatResponse:
        options = {"temperature": temperature, "seed": seed, "num_predict": max_tokens}
        with self.translating_errors():
            r = self._client.chat(
                model=self.model, messages=messages, format=schema, options=options,
                think=self.think, keep_alive=self.keep_alive,
            )
        return ChatResponse(
            content=r.message.content or "",
            model=r.model or self.model,
            finish_reason=r.done_reason,
            usage=Usage(prompt_tokens=r.prompt_eval_count or 0, completion_tokens=r.eval_count or 0),
            reasoning=r.message.thinking,
        )

    def close(self) -> None:
        self._client.close()
