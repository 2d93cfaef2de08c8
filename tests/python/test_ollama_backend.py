"""The `ollama` backend (official `ollama` client) against a loopback server that speaks Ollama's
protocol (/api/tags, /api/chat). Ollama itself cannot be installed on these machines (it is not on
PyPI, Debian or npm); the loopback server answers with a real model (Qwen2.5-Coder-0.5B) through
llama-cpp-python, so the client, the schema, the options and the errors are exercised for real."""

from __future__ import annotations

import logging

import pytest
from _servers import free_port

import cellscribe as cs
from cellscribe.answers import LabelAnswer, json_schema
from cellscribe.llm import BackendUnavailableError, LlamaCppBackend, ModelNotFoundError, OllamaBackend, get_backend
from cellscribe.llm.local_models import file_sha256

pytestmark = pytest.mark.model

MODEL = "qwen2.5-coder:0.5b"


def test_annotate_through_ollama(ollama_server):
    df = cs.annotate({"0": "CD3D, CD3E, IL7R"}, mode="llm", tissue="PBMC", backend="ollama", model=MODEL,
                     host=ollama_server.host, explain=False, seed=7)
    assert df["label"].iloc[0]
    prov = df.attrs["provenance"]
    assert prov["backend"] == "ollama" and prov["digest"] == file_sha256(ollama_server.path)
    req = ollama_server.requests[-1]
    assert req["model"] == MODEL and req["stream"] is False
    assert req["format"] == json_schema(LabelAnswer)  # structured output through `format`
    assert req["options"] == {"temperature": 0.0, "seed": 7, "num_predict": 48}


def test_think_is_passed_for_reasoning_models(ollama_server):
    be = OllamaBackend(MODEL, host=ollama_server.host, think="low")
    be.chat([{"role": "user", "content": "Say OK."}], max_tokens=4)
    assert ollama_server.requests[-1]["think"] == "low"


def test_host_from_the_environment(ollama_server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{ollama_server.port}")
    be = OllamaBackend(MODEL)
    assert be.host == ollama_server.host and be.identity.digest


def test_model_not_pulled_says_how_to_fix(ollama_server):
    with pytest.raises(ModelNotFoundError, match=r"does not have model 'gpt-oss:20b': run `ollama pull gpt-oss:20b`"):
        cs.annotate({"0": "CD3D"}, mode="llm", backend="ollama", host=ollama_server.host)  # default model gpt-oss:20b
    with pytest.raises(ModelNotFoundError, match=r"ollama pull llama3.2"):
        OllamaBackend("llama3.2", host=ollama_server.host).chat([{"role": "user", "content": "hi"}])


def test_server_down_says_how_to_fix():
    host = f"http://127.0.0.1:{free_port()}"
    with pytest.raises(BackendUnavailableError, match=rf"Cannot reach Ollama at {host}. Start it with `ollama serve`"):
        OllamaBackend(MODEL, host=host, max_retries=1).chat([{"role": "user", "content": "hi"}])


def test_auto_prefers_a_reachable_ollama(ollama_server, monkeypatch):
    monkeypatch.setenv("OLLAMA_HOST", ollama_server.host)
    assert isinstance(get_backend("auto", model=MODEL), OllamaBackend)


def test_auto_falls_back_when_ollama_lacks_the_model(ollama_server, qwen15_path, monkeypatch, caplog):
    monkeypatch.setenv("OLLAMA_HOST", ollama_server.host)
    with caplog.at_level(logging.WARNING):
        be = get_backend("auto")
    assert isinstance(be, LlamaCppBackend)
    assert "has no 'gpt-oss:20b' (ollama pull gpt-oss:20b); using the embedded model" in caplog.text
