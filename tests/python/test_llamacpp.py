"""The embedded backend with real models (Qwen2.5-Coder-1.5B for answers, small ones for plumbing)."""

from __future__ import annotations

import json
import re

import pytest

import cellscribe as cs
from cellscribe import results
from cellscribe.answers import ClusterAnswer, json_schema
from cellscribe.llm import APITimeoutError, LlamaCppBackend, ModelNotFoundError, get_backend

pytestmark = pytest.mark.model

CANONICAL = {
    "T": ("CD3D, CD3E, IL7R, CCR7, LEF1, TCF7", r"\bT[ -]?cells?\b|T lymphocyte"),
    "B": ("MS4A1, CD79A, CD79B, CD19, BANK1", r"\bB[ -]?cells?\b|B lymphocyte"),
    "Mono": ("LYZ, CD14, S100A8, S100A9, FCN1", r"[Mm]onocyte"),
}


@pytest.fixture(scope="module")
def qwen(qwen15_path):
    return LlamaCppBackend("qwen2.5-coder-1.5b")


@pytest.fixture(scope="module")
def canonical(qwen):
    return cs.annotate({k: v[0] for k, v in CANONICAL.items()}, tissue="PBMC", backend=qwen, cache=False,
                       mode="llm")


@pytest.mark.parametrize("cluster", list(CANONICAL))
def test_canonical_markers_get_the_right_label(canonical, cluster):
    row = canonical.set_index("cluster").loc[cluster]
    assert re.search(CANONICAL[cluster][1], row["label"]), row["label"]


def test_each_explanation_has_an_h2_title_and_exactly_three_bullets(canonical):
    for md, bullets in zip(canonical["explanation_markdown"], canonical["bullets"], strict=True):
        lines = [ln for ln in md.splitlines() if ln.strip()]
        assert re.fullmatch(r"## \*\*.+\*\*", lines[0])
        assert len(lines) == 4 and all(ln.startswith("- ") for ln in lines[1:])
        assert len(bullets) == 3 and len(md.split()) <= 300


def test_result_columns_and_provenance(canonical):
    assert list(canonical.columns) == results.columns(*results.GROUPS["llm"])
    prov = canonical.attrs["provenance"]
    assert prov["backend"] == "llamacpp" and prov["model"] == "qwen2.5-coder-1.5b"
    assert prov["digest"] == "cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046"
    assert len(prov["prompt_hash"]) == 64 and prov["parameters"]["temperature"] == 0.0
    assert prov["cellscribe_version"] == cs.__version__
    assert all(0 <= c <= 1 for c in canonical["confidence"])
    for row in canonical.itertuples():
        assert set(row.supporting_markers) <= set(row.markers)


def test_label_only_gives_the_same_label_faster(qwen, canonical):
    fast = cs.annotate({k: v[0] for k, v in CANONICAL.items()}, tissue="PBMC", backend=qwen, explain=False,
                       cache=False, mode="llm")
    assert fast["label"].tolist() == canonical["label"].tolist()
    assert fast["title"].isna().all() and fast["explanation_markdown"].isna().all()


@pytest.mark.slow
def test_runs_are_deterministic_whatever_ran_before(qwen, canonical):
    markers = {k: v[0] for k, v in reversed(CANONICAL.items())}  # other order: other cache history
    again = cs.annotate(markers, tissue="PBMC", backend=qwen, cache=False, mode="llm").set_index("cluster")
    first = canonical.set_index("cluster")
    cols = ["label", "broad_lineage", "confidence", "title", "bullets"]
    assert again.loc[first.index, cols].to_dict() == first[cols].to_dict()


def test_generic_schema_goes_through_the_grammar(qwen):
    schema = {"type": "object", "properties": {"lineage": {"type": "string", "enum": ["lymphoid", "myeloid"]}},
              "required": ["lineage"]}
    r = qwen.chat([{"role": "user", "content": "Is a monocyte lymphoid or myeloid? Answer in JSON."}], schema=schema,
                  max_tokens=20)
    assert json.loads(r.content)["lineage"] in ("lymphoid", "myeloid")


def test_schema_fill_is_valid_json_even_for_a_tiny_model(smollm_path):
    small = LlamaCppBackend("smollm2-135m")
    r = small.chat([{"role": "user", "content": "Markers: CD3D, CD3E. Cell type? JSON."}],
                   schema=json_schema(ClusterAnswer), max_tokens=200)
    data = json.loads(r.content)  # the structure is exact whatever the model writes
    assert list(data) == ["label", "broad_lineage", "confidence", "title", "bullets"] and len(data["bullets"]) == 3


def test_timeout_stops_generation(smollm_path):
    slow = LlamaCppBackend("smollm2-135m", timeout=0.0, max_retries=0)
    with pytest.raises(APITimeoutError, match=r"did not finish within 0 s"):
        slow.chat([{"role": "user", "content": "Write a long story."}], max_tokens=200)


def test_unknown_or_missing_models_say_how_to_fix(tmp_path):
    with pytest.raises(ModelNotFoundError, match="Unknown local model 'no-such-model'. Use one of qwen2.5-coder-1.5b"):
        get_backend("llamacpp", model="no-such-model")
    with pytest.raises(ModelNotFoundError, match="GGUF file not found"):
        get_backend("llamacpp", model=str(tmp_path / "missing.gguf"))
    cs.settings.cache_dir = tmp_path  # an empty cache: nothing prepared
    with pytest.raises(ModelNotFoundError, match=r"cellscribe models prepare qwen2.5-coder-1.5b"):
        get_backend("llamacpp")


def test_auto_falls_back_to_the_embedded_model_when_no_ollama(qwen15_path, monkeypatch):
    from _servers import free_port

    monkeypatch.setenv("OLLAMA_HOST", f"127.0.0.1:{free_port()}")  # nothing listens there
    backend = get_backend("auto")
    assert isinstance(backend, LlamaCppBackend) and backend.model_name == "qwen2.5-coder-1.5b"
