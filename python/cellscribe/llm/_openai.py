"""OpenAI backend, through the official ``openai`` client, for OpenAI and compatible servers.

``base_url`` points it at any OpenAI-compatible server: vLLM, LM Studio, the llama.cpp server,
Ollama's ``/v1``. The API key is read from an environment variable (``OPENAI_API_KEY`` unless the
user names another) when the client is made, and is never logged, cached or written to provenance.

Structured output: OpenAI itself gets ``response_format={"type": "json_schema", ...}``; other
servers get ``{"type": "json_object", "schema": ...}``, which the llama.cpp server enforces with a
grammar (it answers ``json_schema`` with HTTP 500) and others treat as JSON mode. Either way the
answer is validated afterwards. ``response_format=`` overrides the choice.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from typing import Any, Literal

import httpx

from ..errors import APITimeoutError, AuthenticationError, BackendUnavailableError, InputError, ModelNotFoundError
from ._base import Backend, ChatResponse, Message, ModelIdentity, ToolCall, ToolTurn, Usage
from ._constants import DEFAULT_API_KEY_ENV, DEFAULT_CONNECT_TIMEOUT_S, DEFAULT_OPENAI_MODEL
from ._status import parse_retry_after, status_error

OPENAI_URL = "https://api.openai.com/v1"
ResponseFormat = Literal["auto", "json_schema", "json_object", "none"]


class OpenAIBackend(Backend):
    """Chat with OpenAI or an OpenAI-compatible server.

    Parameters
    ----------
    model
        Model name on the server; default ``gpt-4o-mini`` on OpenAI. Compatible servers often
        accept any name for their single model.
    base_url
        Server URL (e.g. ``http://127.0.0.1:8000/v1``); default ``OPENAI_BASE_URL`` or OpenAI.
    api_key_env
        Name of the environment variable holding the key (default ``OPENAI_API_KEY``). Required
        for OpenAI itself; optional for other servers.
    response_format
        ``"auto"`` (see the module docstring), ``"json_schema"``, ``"json_object"`` or ``"none"``.
    max_concurrency
        Parallel requests.
    tool_results
        How tool results go back in agentic mode: ``"tool"`` messages (OpenAI's protocol, the
        default) or ``"user"`` messages naming the call (for llama-cpp-python's server, whose
        ``chatml-function-calling`` template drops ``tool`` messages).
    """

    name = "openai"

    def __init__(
        self,
        model: str | None = None,
        *,
        base_url: str | None = None,
        api_key_env: str = DEFAULT_API_KEY_ENV,
        response_format: ResponseFormat = "auto",
        max_concurrency: int = 4,
        tool_results: str = "tool",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        import openai  # heavy (~0.35 s): imported when an OpenAI backend is made, not with cellscribe.llm

        self.base_url = (base_url or os.environ.get("OPENAI_BASE_URL") or OPENAI_URL).rstrip("/")
        self.is_openai = self.base_url == OPENAI_URL
        self.model = model or DEFAULT_OPENAI_MODEL
        self.api_key_env = api_key_env
        self.max_concurrency = max_concurrency
        if response_format not in ("auto", "json_schema", "json_object", "none"):
            raise InputError("response_format must be auto, json_schema, json_object or none; "
                             f"got {response_format!r}.")
        self.response_format = (
            ("json_schema" if self.is_openai else "json_object") if response_format == "auto" else response_format
        )
        if tool_results not in ("tool", "user"):
            raise InputError(f"tool_results must be 'tool' or 'user'; got {tool_results!r}.")
        self.tool_results = tool_results
        key = os.environ.get(api_key_env)
        if not key and self.is_openai:
            raise AuthenticationError(
                f"No API key: set the environment variable {api_key_env} (or name another one with "
                "api_key_env=). Keys are read from the environment only.", status_code=401,
            )
        self._client = openai.OpenAI(
            base_url=self.base_url, api_key=key or "not-needed",
            timeout=httpx.Timeout(self.timeout, connect=DEFAULT_CONNECT_TIMEOUT_S),
            max_retries=0,  # cellscribe's retry policy applies to every backend alike
        )

    @property
    def identity(self) -> ModelIdentity:
        return ModelIdentity(backend=self.name, model=self.model, digest=None, endpoint=self.base_url)

    @property
    def client(self) -> Any:
        """The ``openai.OpenAI`` this backend talks through, for requests other than chat (embeddings);
        wrap them in :meth:`translating_errors`."""
        return self._client

    @property
    def _where(self) -> str:
        """How messages name the server: ``"OpenAI"`` or ``"the server at <base_url>"``."""
        return "OpenAI" if self.is_openai else f"the server at {self.base_url}"

    @contextlib.contextmanager
    def translating_errors(self) -> Iterator[None]:
        """OpenAI-client exceptions as cellscribe's typed errors."""
        import openai  # heavy (~0.35 s): imported when an OpenAI backend is made, not with cellscribe.llm

        where = self._where
        try:
            yield
        except openai.APITimeoutError:
            raise APITimeoutError(f"{where} did not answer within {self.timeout:g} s; check that it "
                                  "runs and is not stuck, or raise timeout=.") from None
        except openai.APIConnectionError:
            raise BackendUnavailableError(f"Cannot reach {where}; check base_url and that the server runs.") from None
        except (openai.AuthenticationError, openai.PermissionDeniedError) as exc:
            raise AuthenticationError(
                f"{where} refused the API key (HTTP {exc.status_code}); check ${self.api_key_env}.",
                status_code=exc.status_code,
            ) from None
        except openai.NotFoundError:
            raise ModelNotFoundError(f"{where} has no model {self.model!r} (HTTP 404); check model=.") from None
        except openai.APIStatusError as exc:
            raise status_error(
                f"{where} answered HTTP {exc.status_code}.", exc.status_code,
                parse_retry_after(exc.response.headers.get("retry-after")),
            ) from None

    def check(self) -> None:
        """List the server's models (a server that is down or stuck fails here, before any work)."""
        with self.translating_errors(), self.probing(self._where[:1].upper() + self._where[1:]):
            names = [m.id for m in self._client.models.list()]
        if self.is_openai and self.model not in names:
            raise ModelNotFoundError(f"OpenAI has no model {self.model!r} for this key.")

    def _format(self, schema: dict[str, Any] | None) -> dict[str, Any] | None:
        if schema is None or self.response_format == "none":
            return None
        if self.response_format == "json_schema":
            return {"type": "json_schema", "json_schema": {"name": "answer", "schema": schema}}
        return {"type": "json_object", "schema": schema}

    def _chat(
        self,
        messages: list[Message],
        *,
        schema: dict[str, Any] | None,
        temperature: float,
        seed: int,
        max_tokens: int,
    ) -> ChatResponse:
        kwargs: dict[str, Any] = {"max_completion_tokens" if self.is_openai else "max_tokens": max_tokens}
        fmt = self._format(schema)
        if fmt is not None:
            kwargs["response_format"] = fmt
        with self.translating_errors():
            r = self._client.chat.completions.create(
                model=self.model, messages=messages, temperature=temperature, seed=seed, **kwargs
            )
        if not r.choices:
            raise status_error(f"The server at {self.base_url} returned no choices.", 502)
        choice = r.choices[0]
        usage = Usage(r.usage.prompt_tokens, r.usage.completion_tokens) if r.usage else Usage()
        return ChatResponse(
            content=choice.message.content or "", model=r.model or self.model,
            finish_reason=choice.finish_reason, usage=usage,
            reasoning=getattr(choice.message, "reasoning_content", None),
        )

    def _chat_tools(self, messages: list[dict[str, Any]], tools: list[dict[str, Any]], *, temperature: float,
                    seed: int, max_tokens: int) -> ToolTurn:
        kwargs: dict[str, Any] = {"max_completion_tokens" if self.is_openai else "max_tokens": max_tokens}
        with self.translating_errors():
            r = self._client.chat.completions.create(
                model=self.model, messages=messages, tools=tools, tool_choice="auto", temperature=temperature,
                seed=seed, **kwargs,
            )
        if not r.choices:
            raise status_error(f"The server at {self.base_url} returned no choices.", 502)
        msg = r.choices[0].message
        calls = []
        for tc in msg.tool_calls or []:
            try:
                args = json.loads(tc.function.arguments or "{}")
            except ValueError:
                args = {"_unparsed": tc.function.arguments}
            calls.append(ToolCall(id=tc.id, name=tc.function.name, arguments=args if isinstance(args, dict) else {}))
        message: dict[str, Any] = {"role": "assistant", "content": msg.content or ""}
        if calls:
            message["tool_calls"] = [{"id": c.id, "type": "function",
                                      "function": {"name": c.name, "arguments": json.dumps(c.arguments)}}
                                     for c in calls]
        return ToolTurn(content=msg.content or "", tool_calls=calls, message=message)

    def tool_message(self, call: ToolCall, content: str) -> dict[str, Any]:
        """A ``tool`` message (OpenAI's protocol), or with ``tool_results="user"`` a user message
        naming the call: llama-cpp-python's ``chatml-function-calling`` template drops ``tool``
        messages, so its server never shows the model the result otherwise."""
        if self.tool_results == "user":
            return {"role": "user", "content": f"Result of {call.name}({json.dumps(call.arguments)}): {content}"}
        return {"role": "tool", "tool_call_id": call.id, "content": content}

    def close(self) -> None:
        self._client.close()
