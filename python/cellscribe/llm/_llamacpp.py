"""Embedded backend: a GGUF model run in-process by llama-cpp-python (no server).

The loaded model is kept for the life of the process (loading the 1.5B model takes ~3 s), and
llama.cpp reuses the key/value cache of the longest common prompt prefix between calls, so prompts
that put the shared instructions first only pay for the cluster-specific tail.

JSON-schema output is exact by construction: greedy answers to flat schemas (cellscribe's own) are
filled field by field, other schemas are enforced with a llama.cpp grammar, and sampling with
temperature > 0 uses llama-cpp-python's own grammar sampling (see :mod:`._decoding`).
"""

from __future__ import annotations

import atexit
import functools
import json
import os
import threading
import time
from pathlib import Path
from typing import Any

from ..config import settings
from ..errors import APITimeoutError, ModelNotFoundError
from ..progress import phase
from . import local_models
from ._base import Backend, ChatResponse, Message, ModelIdentity, Usage, strip_extensions
from ._decoding import Decoder, Grammar, fill_json, generate, plan

_LOADED: dict[tuple[str, int, int], Any] = {}
_LOAD_LOCK = threading.Lock()


def load_model(path: Path, *, n_ctx: int = 4096, n_threads: int | None = None) -> Any:
    """A llama_cpp.Llama for ``path``, loaded once per process and shared."""
    n_threads = n_threads or settings.n_threads
    key = (str(Path(path).resolve()), n_ctx, n_threads)
    with _LOAD_LOCK:
        if key not in _LOADED:
            from llama_cpp import Llama

            try:
                with phase(f"loading {Path(path).name} ({n_threads} thread{'s' * (n_threads > 1)})"):
                    _LOADED[key] = Llama(
                        model_path=key[0], n_ctx=n_ctx, n_threads=n_threads, n_threads_batch=n_threads,
                        n_batch=512, verbose=False,
                    )
            except ValueError as exc:  # llama-cpp-python's error for unreadable files
                raise ModelNotFoundError(f"llama.cpp could not load {path}: {exc}") from exc
        return _LOADED[key]


@atexit.register
def _free_models() -> None:
    """Free the loaded models at exit while llama_cpp can still do it: left to ``Llama.__del__`` at
    interpreter shutdown, its functions may already be gone ("'NoneType' object is not callable"
    printed after the last line of a run)."""
    with _LOAD_LOCK:
        for llama in _LOADED.values():
            llama.close()
        _LOADED.clear()


@functools.lru_cache(maxsize=32)
def _gbnf(schema_json: str) -> str:
    from llama_cpp.llama_grammar import json_schema_to_gbnf

    return json_schema_to_gbnf(schema_json)


class LlamaCppBackend(Backend):
    """Run a local GGUF model in this process.

    Parameters
    ----------
    model
        A registry name (``qwen2.5-coder-1.5b``, the default; see ``cellscribe models``) or a path
        to any ``.gguf`` file.
    n_ctx
        Context length in tokens.
    n_threads
        CPU threads (default ``settings.n_threads``).
    timeout
        Seconds allowed for one answer; generation stops and :class:`APITimeoutError` is raised.
    """

    name = "llamacpp"
    max_concurrency = 1
    uses_schema_extensions = True

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        *,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.model_name = str(model or local_models.DEFAULT_LOCAL_MODEL)
        self.path = local_models.resolve(self.model_name)
        self.n_ctx = n_ctx
        self.n_threads = n_threads
        self._lock = threading.Lock()
        self._identity: ModelIdentity | None = None
        self._dec: Decoder | None = None

    @property
    def llama(self) -> Any:
        return load_model(self.path, n_ctx=self.n_ctx, n_threads=self.n_threads)

    @property
    def identity(self) -> ModelIdentity:
        if self._identity is None:
            spec = local_models.REGISTRY.get(self.model_name)
            digest = spec.sha256 if spec else local_models.file_sha256(self.path)
            self._identity = ModelIdentity(backend=self.name, model=self.model_name, digest=digest)
        return self._identity

    def check(self) -> None:
        self.llama  # noqa: B018 - loading is the check

    def _decoder(self, llama: Any) -> Decoder:
        if self._dec is None or self._dec.llama is not llama:
            self._dec = Decoder(llama)
        return self._dec

    def _chat(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None,
        temperature: float,
        seed: int,
        max_tokens: int,
    ) -> ChatResponse:
        deadline = time.monotonic() + self.timeout
        try:
            with self._lock:
                llama = self.llama
                if temperature > 0:
                    text, finish, n_prompt, n_gen = self._sample(llama, messages, schema, temperature, seed,
                                                                 max_tokens, deadline)
                else:
                    decoder = self._decoder(llama)
                    fields = plan(schema) if schema is not None else None
                    if fields is not None:
                        result = fill_json(decoder, messages, fields, max_tokens=max_tokens, deadline=deadline)
                    else:
                        grammar = Grammar(llama, _gbnf(json.dumps(strip_extensions(schema)))) if schema else None
                        result = generate(decoder, messages, max_tokens=max_tokens, deadline=deadline,
                                          grammar=grammar)
                    text, finish, n_prompt, n_gen = result
        except APITimeoutError:
            raise APITimeoutError(
                f"{self.model_name} did not finish within {self.timeout:g} s; raise timeout= or ask for a "
                "shorter answer."
            ) from None
        return ChatResponse(content=text, model=self.model_name, finish_reason=finish,
                            usage=Usage(prompt_tokens=n_prompt, completion_tokens=n_gen))

    @staticmethod
    def _sample(llama: Any, messages: list[Message], schema: dict[str, Any] | None, temperature: float,
                seed: int, max_tokens: int, deadline: float) -> tuple[str, str, int, int]:
        """Sampling (temperature > 0) through llama-cpp-python's own chat completion."""
        fmt = {"type": "json_object", "schema": strip_extensions(schema)} if schema is not None else None
        stream = llama.create_chat_completion(messages=messages, temperature=temperature, seed=seed,
                                              max_tokens=max_tokens, response_format=fmt, stream=True)
        parts: list[str] = []
        finish = "stop"
        for chunk in stream:
            choice = chunk["choices"][0]
            if choice["delta"].get("content"):
                parts.append(choice["delta"]["content"])
            finish = choice.get("finish_reason") or finish
            if time.monotonic() > deadline:
                stream.close()
                raise APITimeoutError("generation did not finish within the timeout")
        # One streamed chunk per generated token.
        return "".join(parts), finish, max(0, llama.n_tokens - len(parts)), len(parts)
