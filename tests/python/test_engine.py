"""The annotation engine: one runner for every mode (cache, concurrency, failures, stats), one
result schema.

The concurrency test talks to a real ``llama_cpp.server`` (SmolLM2-135M) on loopback through the
OpenAI-protocol proxy of ``_servers.py``, which counts how many requests are in flight at once.
"""

from __future__ import annotations

from typing import Any

import pytest

import cellscribe as cs
from cellscribe import results
from cellscribe.engine import MODES, STRATEGIES, Ask, Sampling, Strategy, Unit, run
from cellscribe.errors import AnnotationError, BackendUnavailableError
from cellscribe.llm import LlamaCppBackend

MARKERS = {
    "b": ["MS4A1", "CD79A", "CD79B", "CD19"],
    "nk": ["GNLY", "NKG7", "KLRD1", "KLRF1", "PRF1"],
    "mono": ["CD14", "LYZ", "S100A8", "S100A9", "FCN1"],
    "pdc": ["LILRA4", "IL3RA", "CLEC4C"],
}


class Echo(Strategy):
    """A strategy that asks nothing: it returns its unit's genes, or fails on the unit named "bad"."""

    mode = "echo"

    def answer(self, unit: Unit, ask: Ask) -> dict[str, Any]:
        if unit.id == "bad":
            raise BackendUnavailableError("the server went away")
        return {"cluster": unit.id, "markers": unit.genes}


def test_the_runner_keeps_going_past_a_failure_and_reports_it():
    units = [Unit("a", ["CD3E"]), Unit("bad", ["X"]), Unit("c", ["MS4A1"])]
    out = run(Echo(), units, backend=None, sampling=Sampling(), progress=False, parameters={"p": 1})
    assert set(out.answers) == {"a", "c"} and list(out.failures) == ["bad"]
    assert out.failures["bad"] == "BackendUnavailableError: the server went away"
    assert out.stats == {"model_calls": 0, "cache_hits": 0, "failed": 1}
    assert out.provenance["mode"] == "echo" and out.provenance["parameters"] == {"p": 1}
    assert out.provenance["backend"] is None and out.provenance["cellscribe_version"] == cs.__version__


def test_every_mode_is_a_strategy_and_names_its_columns():
    assert set(STRATEGIES) == set(MODES) == set(results.GROUPS)
    for mode in MODES:
        names = results.columns(*results.GROUPS[mode])
        assert names[:12] == ["cluster", "label", "broad_lineage", "confidence", "title", "bullets",
                              "explanation_markdown", "bullet_sources", "supporting_markers", "markers", "cached",
                              "seconds"]
    assert results.columns(*results.GROUPS["agentic"])[-1] == "agent_tools"


def test_the_result_table_has_the_schema_columns_with_their_kinds():
    df = cs.annotate(MARKERS, tissue="PBMC", explain=False)  # the default mode, no model
    assert list(df.columns) == results.columns(*results.GROUPS["grounded"])
    for name, kind in results.kinds(df.columns).items():
        values = df[name].tolist()
        if kind == "list":
            assert all(isinstance(v, list) for v in values), name
        elif kind == "number":
            assert str(df[name].dtype).startswith("float"), name
    records = results.records(df)
    assert results.from_records(records).columns.tolist() == df.columns.tolist()
    assert records[0]["evidence_genes"] and isinstance(records[0]["confidence"], float)


def test_a_failed_cluster_keeps_the_others_and_says_why(smollm_path):
    """The embedded backend with a one-second budget cannot answer; on_error decides what happens."""
    be = LlamaCppBackend(model="smollm2-135m", timeout=1e-3, max_retries=0)
    kept = cs.annotate({"b": MARKERS["b"]}, mode="llm", backend=be, cache=False, on_error="keep")
    assert kept.columns[-1] == "error" and kept["error"].iloc[0].startswith("APITimeoutError")
    with pytest.raises(AnnotationError) as info:
        cs.annotate({"b": MARKERS["b"]}, mode="llm", backend=be, cache=False)
    assert info.value.failures.keys() == {"b"} and list(info.value.partial["cluster"]) == ["b"]


@pytest.fixture(scope="module")
def tool_server(smollm_path):
    from _servers import LlamaServer

    with LlamaServer(smollm_path, alias="smol", chat_format="chatml-function-calling") as server:
        yield server


@pytest.mark.model
@pytest.mark.slow
@pytest.mark.parametrize("mode", MODES)
def test_every_mode_honours_concurrency_on_a_server_backend(tool_server, mode):
    """Two clusters with concurrency=2: the proxy holds the first two requests until two are in
    flight (or 20 s passed), so a mode that runs one cluster at a time shows one in flight and fails.

    The agentic mode's later rounds are answered by the proxy with a plain answer: llama-cpp-python's
    chatml-function-calling format ignores max_tokens in tool calls, so SmolLM2 can write arguments
    until its context is full (minutes), and a request abandoned at its timeout keeps the one-slot
    server busy into the next test. The first, gated round is the real server's."""
    from _servers import FaultProxy

    later = [("malformed",)] * 8 if mode == "agentic" else []
    with FaultProxy(tool_server.base_url, script=[("gate", 2, 20)] * 2 + later) as proxy:
        df = cs.annotate({k: MARKERS[k] for k in ("b", "nk")}, tissue="PBMC", mode=mode, backend="openai",
                         base_url=proxy.base_url, model=tool_server.alias, tool_results="user", concurrency=2,
                         cache=False, on_error="keep", progress=False, timeout=300, max_retries=0,
                         max_format_retries=0)
    assert len(df) == 2
    assert proxy.max_in_flight == 2, (mode, proxy.max_in_flight, proxy.seen)


@pytest.mark.model
@pytest.mark.slow
def test_the_per_cell_reasoner_honours_concurrency_too(tool_server):
    from _servers import FaultProxy

    from cellscribe import reasoner
    from cellscribe.llm import get_backend

    prompt = reasoner.build_prompt(candidates=["T cell", "B cell"], tissue="PBMC")
    with FaultProxy(tool_server.base_url, script=[("gate", 2, 20)] * 2) as proxy:
        be = get_backend("openai", base_url=proxy.base_url, model=tool_server.alias, max_retries=0)
        answers, failures, stats = reasoner.run_cells(
            be, prompt, [["CD3D", "CD3E", "IL7R"], ["MS4A1", "CD79A", "CD19"]], schema=reasoner.answer_schema(
                ["T cell", "B cell"]), candidates=["T cell", "B cell"], cache=False, progress=False,
            max_format_retries=0, concurrency=2)
    assert stats["distinct_sentences"] == 2 and proxy.max_in_flight == 2, (proxy.max_in_flight, failures)
