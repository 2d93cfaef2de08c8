"""Agentic annotation (mode="agentic"): the model calls cellscribe's local tools over OpenAI's
tool-call protocol.

The server is a real ``llama_cpp.server`` on loopback with the 1.5B model and
``--chat_format chatml-function-calling`` (llama-cpp-python's tool-calling chat format). Its
template drops ``tool`` messages, so the backend sends tool results as user messages
(``tool_results="user"``); the tool calls themselves are the server's real OpenAI-format
``tool_calls``.
"""

from __future__ import annotations

import pytest

import cellscribe as cs
from cellscribe.errors import InputError

MARKERS = {"pDC": ["LILRA4", "IL3RA", "CLEC4C", "GZMB", "IRF7"]}


@pytest.fixture(scope="module")
def tool_server(qwen15_path):
    from _servers import LlamaServer

    with LlamaServer(qwen15_path, alias="qwen-tools", chat_format="chatml-function-calling") as server:
        yield server


@pytest.mark.model
@pytest.mark.slow
def test_agent_looks_up_markers_names_the_type_and_resumes_from_the_cache(tool_server, gene_index):
    options = {"mode": "agentic", "backend": "openai", "base_url": tool_server.base_url, "model": tool_server.alias,
               "tool_results": "user", "timeout": 600, "explain": False, "tissue": "PBMC"}
    df = cs.annotate(MARKERS, **options)
    row = df.iloc[0]
    assert row["agent_tools"][0] == "lookup_markers"  # the model chose to call the marker lookup first
    assert row["cl_id"] == "CL:0000784" and row["chosen_by"] == "agent"  # plasmacytoid dendritic cell
    assert 0 < row["confidence"] <= 1 and {"LILRA4", "CLEC4C"} <= set(row["evidence_genes"])
    prov = df.attrs["provenance"]
    assert prov["mode"] == "agentic" and prov["tools"] == ["lookup_markers", "gene_info", "ontology_lookup"]
    assert df.attrs["stats"]["model_calls"] == 1

    again = cs.annotate(MARKERS, **options)
    assert again.attrs["stats"] == {"model_calls": 0, "cache_hits": 1, "failed": 0}
    assert again["label"].tolist() == df["label"].tolist()


def test_agentic_mode_needs_a_backend_with_tool_calls(smollm_path):
    with pytest.raises(InputError, match="The llamacpp backend cannot call tools.*backend='openai'"):
        cs.annotate(MARKERS, mode="agentic", backend="llamacpp", model="smollm2-135m")
    with pytest.raises(InputError, match="web_search= takes a function .* only applies to mode='agentic'"):
        cs.annotate(MARKERS, mode="grounded", backend="llamacpp", web_search=print)
    with pytest.raises(InputError, match="mode must be one of 'grounded', 'llm', 'agentic'; got 'agent'"):
        cs.annotate(MARKERS, mode="agent")


def test_web_search_is_a_tool_only_when_given():
    from cellscribe.engine.modes import agentic as _agent

    assert [t["function"]["name"] for t in _agent.tools()] == ["lookup_markers", "gene_info", "ontology_lookup"]
    assert _agent.tools(web_search=True)[-1]["function"]["name"] == "web_search"
    assert _agent._final_type('{"cell_type": "B cell"}') == "B cell"
    assert _agent._final_type("Natural killer cell.\nBecause GNLY ...") == "Natural killer cell"
    assert _agent._final_type("") is None
