"""The `openai` backend against a real OpenAI-compatible server: llama-cpp-python's llama_cpp.server
started on loopback with the real Qwen2.5-Coder-1.5B model. Faults are injected by a loopback proxy
in front of that server (see _servers.FaultProxy)."""

from __future__ import annotations

import json
import logging
import signal
import socket
import sqlite3
import subprocess
import sys
import time

import pytest
from _servers import FaultProxy, free_port
from conftest import cli_env

import cellscribe as cs
from cellscribe.llm import (
    SLOW_PROBE_S,
    APITimeoutError,
    AuthenticationError,
    BackendUnavailableError,
    OpenAIBackend,
    RateLimitError,
    ServerError,
    get_backend,
)

pytestmark = pytest.mark.model

MARKERS = {"T": "CD3D, CD3E, IL7R, CCR7, LEF1, TCF7", "B": "MS4A1, CD79A, CD79B, CD19, BANK1"}


def backend(url: str, **kw) -> OpenAIBackend:
    return get_backend("openai", model="local-qwen", base_url=url, **kw)


def test_annotates_through_a_real_server(llama_server):
    df = cs.annotate(MARKERS, mode="llm", tissue="PBMC", backend=backend(llama_server.base_url))
    assert len(df) == 2 and df["label"].str.len().gt(0).all()
    assert all(len(b) == 3 for b in df["bullets"])
    prov = df.attrs["provenance"]
    assert prov["backend"] == "openai" and prov["endpoint"] == llama_server.base_url
    assert "key" not in json.dumps(prov).lower()


def test_key_comes_from_the_named_environment_variable_and_is_never_stored(llama_server, monkeypatch):
    secret = "sk-test-" + "x" * 20
    monkeypatch.setenv("MY_LAB_KEY", secret)
    df = cs.annotate(MARKERS, mode="llm", tissue="PBMC", backend="openai", model="local-qwen",
                     base_url=llama_server.base_url, api_key_env="MY_LAB_KEY", explain=False)
    assert secret not in json.dumps(df.attrs["provenance"])
    db = sqlite3.connect(cs.settings.response_cache_path)
    assert all(secret not in v for (v,) in db.execute("SELECT key || value FROM responses"))


def test_hosted_openai_without_a_key_says_which_variable(monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    with pytest.raises(AuthenticationError, match="set the environment variable OPENAI_API_KEY"):
        get_backend("openai")


def test_http_500_is_retried(llama_server):
    with FaultProxy(llama_server.base_url, [("status", 500)]) as proxy:
        df = cs.annotate({"T": MARKERS["T"]}, mode="llm", backend=backend(proxy.base_url), explain=False)
    assert proxy.seen == 2 and proxy.forwarded == 1 and df["label"].iloc[0]


def test_http_429_honours_retry_after_then_gives_a_clear_error(llama_server):
    script = [("status", 429, 0)] * 3
    with FaultProxy(llama_server.base_url, script) as proxy:
        with pytest.raises(RateLimitError, match=r"answered HTTP 429"):
            backend(proxy.base_url, max_retries=2).chat([{"role": "user", "content": "hi"}], max_tokens=4)
    assert proxy.seen == 3 and proxy.forwarded == 0


def test_persistent_500_ends_in_a_server_error(llama_server):
    with FaultProxy(llama_server.base_url, [("status", 503)] * 2) as proxy:
        with pytest.raises(ServerError, match="HTTP 503"):
            backend(proxy.base_url, max_retries=1).chat([{"role": "user", "content": "hi"}], max_tokens=4)
    assert proxy.seen == 2


def test_a_timeout_is_reported_at_once_not_repeated(llama_server):
    """timeout= is a request's whole budget: a request that used it up is not sent again."""
    with FaultProxy(llama_server.base_url, [("sleep", 3)] * 2) as proxy:
        with pytest.raises(APITimeoutError, match=r"did not answer within 1 s; check that it runs"):
            backend(proxy.base_url, timeout=1, max_retries=1).chat([{"role": "user", "content": "hi"}], max_tokens=4)
    assert proxy.seen == 1


@pytest.fixture
def hung_server():
    """A loopback socket that accepts connections (the kernel completes them) and never answers:
    a stuck server process."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/v1"


def test_a_hung_server_is_reported_once_before_any_work(hung_server, tmp_path):
    """The model-list probe has the request timeout, once: not one timeout per cluster and retry."""
    start = time.monotonic()
    with pytest.raises(APITimeoutError, match=rf"the server at {hung_server} did not answer within 3 s"):
        cs.annotate(MARKERS, mode="llm", backend="openai", base_url=hung_server, model="x", timeout=3)
    assert time.monotonic() - start < 15  # once: not 2 clusters x 3 attempts x 3 s (18 s)
    markers = tmp_path / "markers.csv"
    markers.write_text("cluster,gene\n0,CD3D\n0,CD3E\n1,MS4A1\n")
    out = subprocess.run([sys.executable, "-m", "cellscribe", "annotate", str(markers), "--backend", "openai",
                          "--base-url", hung_server, "--model", "x", "--timeout", "3"], env=cli_env(),
                         capture_output=True, text=True, timeout=120)
    assert out.returncode != 0 and "Traceback" not in out.stderr, out.stderr
    assert out.stderr.strip().splitlines()[-1].startswith("Error: the server at"), out.stderr


def test_a_busy_server_is_waited_for_and_the_wait_is_said(llama_server, caplog):
    """llama-cpp-python's server answers nothing else while it generates: a model list that takes
    longer than SLOW_PROBE_S (the proxy delays it) is waited for within timeout=, with a warning."""
    with FaultProxy(llama_server.base_url) as proxy:
        proxy.list_delay = SLOW_PROBE_S + 1
        with caplog.at_level(logging.WARNING, logger="cellscribe.llm"):
            backend(proxy.base_url, timeout=60).check()
    assert f"The server at {proxy.base_url} has not listed its models in 10 s" in caplog.text
    assert "busy with another request; waiting up to 60 s (timeout=)" in caplog.text


def test_malformed_answer_is_asked_again(llama_server):
    with FaultProxy(llama_server.base_url, [("malformed",)]) as proxy:
        df = cs.annotate({"B": MARKERS["B"]}, mode="llm", backend=backend(proxy.base_url), explain=False)
    assert proxy.seen == 2 and proxy.forwarded == 1 and df["label"].iloc[0]
    # the second request carried the problem back to the model
    assert proxy.seen == 2


def test_malformed_answers_end_in_a_clear_error(llama_server):
    from cellscribe.errors import AnnotationError

    with FaultProxy(llama_server.base_url, [("malformed",)] * 3) as proxy:
        with pytest.raises(AnnotationError, match=r"stayed malformed after 3 attempts \(the answer is not a JSON"):
            cs.annotate({"B": MARKERS["B"]}, mode="llm", backend=backend(proxy.base_url), explain=False)
    assert proxy.forwarded == 0


def test_server_down_is_a_clear_error():
    url = f"http://127.0.0.1:{free_port()}/v1"
    with pytest.raises(BackendUnavailableError, match=f"Cannot reach the server at {url}"):
        backend(url, max_retries=1).chat([{"role": "user", "content": "hi"}])


@pytest.mark.slow
def test_killed_run_resumes_without_recomputing_finished_clusters(llama_server, tmp_path):
    """A CLI run is killed while cluster 3 of 5 is with the model; the rerun asks only for the rest."""
    markers = tmp_path / "markers.csv"
    genes = {"0": "CD3D,CD3E,IL7R", "1": "MS4A1,CD79A,CD19", "2": "LYZ,CD14,FCN1",
             "3": "GNLY,NKG7,PRF1", "4": "PPBP,PF4,GNG11"}
    markers.write_text("cluster,gene\n" + "".join(f"{c},{g}\n" for c, gs in genes.items() for g in gs.split(",")))
    cmd = [sys.executable, "-m", "cellscribe", "annotate", str(markers), "--backend", "openai", "--model", "local-qwen",
           "--base-url", None, "--mode", "llm", "--no-explain", "--format", "json", "--concurrency", "1"]
    env = cli_env()
    with FaultProxy(llama_server.base_url, [("pass",), ("pass",), ("hang",)]) as proxy:
        cmd[cmd.index(None)] = proxy.base_url  # the same endpoint both times: it is part of the cache key
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        deadline = time.monotonic() + 120
        while proxy.seen < 3 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert proxy.seen == 3, proc.stderr.read() if proc.poll() is not None else "not reached"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proxy.release.set()
        proxy.forwarded = 0
        out = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["cluster"] for r in rows] == list(genes) and all(r["label"] for r in rows)
    assert proxy.forwarded == 3  # clusters 0 and 1 came from the cache
    assert "3 answered, 2 from cache" in out.stderr
