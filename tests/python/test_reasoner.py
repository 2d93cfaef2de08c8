"""Single-cell reasoning (cellscribe.reasoner): cell sentences, lenient parsing, exact label choices,
the annotation run (deduplication, cache, cluster agreement), stage-2 knowledge, LoRA fine-tuning and
the transformers backend that loads the adapter, and the two commands.

The 135M model answers nonsense: tests use it for plumbing only and never assert what it says, only
that answers are well-formed, labels come from the candidates, and work is not repeated."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import scanpy as sc
from conftest import cli_env

from cellscribe import reasoner
from cellscribe.errors import InputError
from cellscribe.llm import OutputFormatError, get_backend
from cellscribe.llm._decoding import _cut, plan

CANDIDATES = ["CD14+ Monocyte", "CD19+ B", "CD34+", "CD56+ NK", "Dendritic"]


@pytest.fixture(scope="module")
def pbmc():
    return sc.datasets.pbmc68k_reduced()


@pytest.fixture(scope="module")
def split(pbmc):
    """Reference (labelled) and query cells: a seeded half each."""
    order = np.random.default_rng(0).permutation(pbmc.n_obs)
    return pbmc[order[:350]].copy(), pbmc[order[350:]].copy()


# --------------------------------------------------------------------------- cell sentences


def test_sentence_order_follows_the_global_ranking(pbmc):
    adata = pbmc[:60].copy()
    reasoner.cell_sentences(adata, n_genes=12)
    ranking = adata.uns["cell_sentence"]["ranking"]
    # the ranking is scanpy's normalised dispersion, most variable first
    stats = sc.pp.highly_variable_genes(adata.raw.to_adata(), flavor="seurat", inplace=False)
    disp = stats["dispersions_norm"].fillna(-np.inf).to_numpy()  # genes no cell expresses rank last
    order = {g: i for i, g in enumerate(adata.raw.var_names)}
    assert all(disp[order[a]] >= disp[order[b]] for a, b in zip(ranking, ranking[1:], strict=False))
    # each sentence: the cell's expressed genes, in ranking order, the first 12
    dense = adata.raw[:, ranking].X.toarray()
    for row, sentence in zip(dense, adata.obs["cell_sentence"], strict=True):
        expressed = [g for g, v in zip(ranking, row, strict=True) if v > 0]
        assert sentence.split() == expressed[:12]
    # the saved ranking is reused (shorter sentences are prefixes); another ranking is followed
    reasoner.cell_sentences(adata, n_genes=5)
    assert adata.uns["cell_sentence"]["ranking"] == ranking
    reasoner.cell_sentences(adata, n_genes=12, ranking=ranking[::-1], key_added="reversed")
    for fwd, rev, row in zip(adata.obs["cell_sentence"], adata.obs["reversed"], dense, strict=True):
        assert rev.split() == [g for g, v in zip(ranking[::-1], row[::-1], strict=True) if v > 0][:12]
        assert fwd.split() == [g for g, v in zip(ranking, row, strict=True) if v > 0][:5]


def test_sentences_refuse_scaled_data_and_foreign_gene_ids(pbmc):
    with pytest.raises(InputError, match="scaled"):
        reasoner.cell_sentences(pbmc[:10].copy(), use_raw=False)  # X of pbmc68k_reduced is scaled
    with pytest.raises(InputError, match="None of the ranked genes"):
        reasoner.cell_sentences(pbmc[:10].copy(), ranking=["ENSG00000139618", "ENSG00000141510"])


# --------------------------------------------------------------------------- parsing


@pytest.mark.parametrize(
    "text, label, n_evidence",
    [
        ('```json\n{"evidence": ["MS4A1: B cell marker"], "label": "CD19+ B"}\n```\nHope this helps!', "CD19+ B", 1),
        ('{"evidence": ["MS4A1, CD79A: B cell markers", "CD19: B"], "label": "cd19+ b"', "CD19+ B", 2),
        ('{"evidence": "LYZ is high. S100A8 too.", "label": "CD14+ Monocyte cells"}', "CD14+ Monocyte", 2),
        ("Reasoning:\n- GNLY: cytotoxic granules\n- NKG7: NK marker\nFinal answer: **CD56+ NK**", "CD56+ NK", 2),
        ('{"evidence": [{"gene": "FCER1A", "why": "DC"}], "label": "Dendritc"}', "Dendritic", 1),
        ("{'evidence': ['CD34: progenitor'], 'label': 'CD34+'}", "CD34+", 1),
    ],
)
def test_parsing_survives_malformed_answers(text, label, n_evidence):
    answer = reasoner.parse_answer(text, CANDIDATES)
    assert answer.label == label
    assert len(answer.evidence) == n_evidence and all(answer.evidence)


def test_parsing_reports_what_is_wrong():
    with pytest.raises(OutputFormatError, match="JSON"):
        reasoner.parse_answer("I am not sure what this cell is.", CANDIDATES)
    with pytest.raises(OutputFormatError, match="not one of the candidates.*CD19\\+ B"):
        reasoner.parse_answer('{"evidence": ["ALB: liver"], "label": "Hepatocyte"}', CANDIDATES)
    assert reasoner.parse_answer('{"evidence": [], "label": "Hepatocyte"}').label == "Hepatocyte"  # free labels


# --------------------------------------------------------------------------- exact choices, the run


def test_evidence_keeps_its_length_limit_whatever_a_backend_writes():
    """The 72-character limit is the code's promise, not the model's: a server backend that writes
    longer items gets them shortened at a word, and the embedded decoder cuts a value whose last
    token runs past the limit (without breaking the JSON escape it may end in)."""
    long = "GNLY: granulysin marks cytotoxic NK and CD8 T cells, released with perforin and granzymes"
    answer = reasoner.CellAnswer(evidence=[long, "CD3D: T cell receptor", long * 3], label="CD56+ NK")
    assert all(len(e) <= 72 for e in answer.evidence) and answer.evidence[1] == "CD3D: T cell receptor"
    assert answer.evidence[0].endswith("…") and answer.evidence[0].startswith("GNLY: granulysin marks")
    assert _cut(long.encode(), 72) == long[:72].encode()
    assert _cut(b"CD3D \\u00e9 and \\", 17) == b"CD3D \\u00e9 and "  # no dangling backslash
    assert _cut("CD3D \\u00e9".encode(), 9) == b"CD3D "  # no half of a \\uXXXX escape
    for cut in (_cut(b"a \\\\ " * 40, n) for n in range(1, 80)):
        json.loads(b'"' + cut + b'"')


@pytest.mark.model
def test_candidate_labels_are_decoded_exactly(smollm_path, split):
    """A string enum in the schema is decoded as a choice among the candidates' tokens, and long
    evidence is cut at its maximum length without ending the answer (x-truncate)."""
    reference, query = split
    schema = reasoner.answer_schema(CANDIDATES)
    assert [f.kind for f in plan(schema)] == ["strings", "choice"]
    prompt = reasoner.build_prompt(candidates=CANDIDATES, tissue="PBMC")
    reasoner.cell_sentences(query, ranking=reasoner.gene_ranking(reference))
    be = get_backend("llamacpp", model="smollm2-135m")
    for sentence in query.obs["cell_sentence"][:4]:
        response = be.chat(prompt.messages(sentence.split()), schema=schema, max_tokens=240)
        obj = json.loads(response.content)
        assert obj["label"] in CANDIDATES and response.finish_reason == "stop"
        assert len(obj["evidence"]) == 3 and all(len(e) <= 72 for e in obj["evidence"])


@pytest.mark.model
@pytest.mark.slow
def test_annotate_cells_writes_labels_clusters_and_never_repeats_work(smollm_path, split):
    reference, query = split
    cells = query[:6]
    twins = cells[:2].copy()
    twins.obs_names = [f"{n}-twin" for n in twins.obs_names]
    adata = sc.concat([cells, twins])  # two cells appear twice: same sentence
    adata.raw = sc.concat([cells.raw.to_adata(), twins.raw.to_adata()])
    reasoner.annotate_cells(adata, reference=reference, label_key="bulk_labels", shots=1, groupby="louvain",
                            backend="llamacpp", model="smollm2-135m", tissue="PBMC")
    uns = adata.uns["reasoner"]
    assert uns["stats"]["cells"] == 8 and uns["stats"]["distinct_sentences"] == 6
    assert uns["stats"]["model_calls"] == 6 and uns["stats"]["failed"] == 0
    labels = adata.obs["reasoner"].astype(str)
    assert set(labels) <= set(reference.obs["bulk_labels"]) and uns["candidates"] == sorted(
        reference.obs["bulk_labels"].unique())
    assert (labels[:2].to_numpy() == labels[6:].to_numpy()).all()
    assert (adata.obs["reasoner_evidence"].str.count(r" \| ") == 2).all()
    # one exemplar per reference type, from the reference
    exemplar_types = reference.obs.loc[uns["exemplars"], "bulk_labels"]
    assert sorted(exemplar_types) == sorted(reference.obs["bulk_labels"].unique())
    # cluster level: the majority label of each cluster and the agreement with it
    frame = pd.DataFrame({"c": adata.obs["louvain"].astype(str), "l": labels})
    for cluster, group in frame.groupby("c"):
        counts = group["l"].value_counts()
        assert counts[uns["cluster_labels"][cluster]] == counts.max()
    agrees = labels.to_numpy() == adata.obs["reasoner_cluster"].astype(str).to_numpy()
    assert (adata.obs["reasoner_agrees"].to_numpy() == agrees).all()
    assert uns["agreement"] == pytest.approx(agrees.mean())
    # a rerun is served from the answer cache, with the same labels
    again = adata.copy()
    reasoner.annotate_cells(again, reference=reference, label_key="bulk_labels", shots=1, groupby="louvain",
                            backend="llamacpp", model="smollm2-135m", tissue="PBMC")
    assert again.uns["reasoner"]["stats"]["model_calls"] == 0 and again.uns["reasoner"]["stats"]["cache_hits"] == 6
    assert (again.obs["reasoner"].astype(str) == labels).all()


def test_annotate_cells_explains_bad_input(split):
    reference, query = split
    with pytest.raises(InputError, match="reference= and label_key="):
        reasoner.annotate_cells(query[:3].copy(), shots=2)
    with pytest.raises(InputError, match="no obs column 'cell_type'"):
        reasoner.annotate_cells(query[:3].copy(), reference=reference, label_key="cell_type", backend="llamacpp",
                                model="smollm2-135m")


# --------------------------------------------------------------------------- knowledge and LoRA


def test_knowledge_pairs_come_from_cellmarker_and_the_cell_ontology():
    pairs = reasoner.knowledge_pairs(tissue="Blood", n_types=25, max_pairs=None)
    kinds = {p.kind for p in pairs}
    assert kinds == {"type_from_markers", "markers_of_type", "cl_id", "parent", "synonym"}
    b_cell = [p for p in pairs if p.kind == "type_from_markers" and p.answer.startswith("B cell (CL:0000236)")]
    assert b_cell and any(g in b_cell[0].question for g in ("CD19", "MS4A1", "CD79A"))
    assert all(p.answer.startswith("CL:") for p in pairs if p.kind == "cl_id")
    assert {p.source for p in pairs} == {"CellMarker 2.0", "Cell Ontology"}
    with pytest.raises(InputError, match="no normal human records for tissue 'Moon'"):
        reasoner.knowledge_pairs(tissue="Moon")


@pytest.mark.model
@pytest.mark.slow
def test_lora_lowers_the_loss_and_the_adapter_loads_and_generates(smollm_path, split, tmp_path):
    """A few LoRA steps on real reference cells lower the loss on held-out cells; the saved adapter
    loads into the transformers backend (base + adapter merged) and answers through annotate_cells."""
    reference, query = split
    result = reasoner.finetune(reference, "bulk_labels", output_dir=tmp_path / "adapter", stages=(1,), n_per_type=1,
                               n_genes=16, epochs=2, max_steps=6, batch_size=2, learning_rate=2e-3, lora_layers=6,
                               n_eval=6)
    (stage,) = result.stages
    assert stage.n_examples == 10 and stage.steps == 6
    assert stage.eval_loss_after < stage.eval_loss_before * 0.9
    adapter = tmp_path / "adapter"
    assert (adapter / "adapter_config.json").is_file() and (adapter / "stage1" / "adapter_model.safetensors").is_file()
    manifest = reasoner.read_manifest(adapter)
    assert manifest["settings"]["n_genes"] == 16 and len(manifest["stages"]) == 1

    base = get_backend("transformers", model="smollm2-135m")
    tuned = get_backend("transformers", model="smollm2-135m", adapter=adapter)
    assert tuned.identity.digest != base.identity.digest
    cells = query[:2].copy()
    reasoner.annotate_cells(cells, reference=reference, label_key="bulk_labels", n_genes=16,
                            backend="transformers", model="smollm2-135m", adapter=adapter)
    assert cells.uns["cell_sentence"]["ranking"] == manifest["settings"]["ranking"]
    assert set(cells.obs["reasoner"].astype(str)) <= set(reference.obs["bulk_labels"])
    assert cells.uns["reasoner"]["provenance"]["backend"] == "transformers"
    # free text and sampling go through generate-then-validate
    messages = [{"role": "user", "content": "Name one blood cell type."}]
    first = tuned.chat(messages, temperature=0.8, seed=3, max_tokens=12)
    assert first.content == tuned.chat(messages, temperature=0.8, seed=3, max_tokens=12).content
    assert tuned.chat(messages, max_tokens=12).usage.completion_tokens <= 12


# --------------------------------------------------------------------------- the commands


def cli(*args: str) -> subprocess.CompletedProcess:

    env = cli_env(CELLSCRIBE_THREADS="1")
    return subprocess.run([sys.executable, "-m", "cellscribe", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.model
def test_reason_command_writes_a_table_and_an_h5ad(smollm_path, split, tmp_path):
    reference, query = split
    reference.write_h5ad(tmp_path / "ref.h5ad")
    query[:3].copy().write_h5ad(tmp_path / "data.h5ad")
    out = cli("reason", str(tmp_path / "data.h5ad"), "--reference", str(tmp_path / "ref.h5ad"), "--label-key",
              "bulk_labels", "--groupby", "louvain", "--backend", "llamacpp", "--model", "smollm2-135m",
              "--out", str(tmp_path / "out.h5ad"), "--csv", str(tmp_path / "cells.csv"))
    assert out.returncode == 0, out.stderr
    assert "3 cells (3 distinct sentences)" in out.stderr and "agreement" in out.stderr
    table = pd.read_csv(tmp_path / "cells.csv")
    assert list(table.columns[:3]) == ["cell", "reasoner", "reasoner_evidence"]
    assert set(table["reasoner"]) <= set(reference.obs["bulk_labels"])
    written = sc.read_h5ad(tmp_path / "out.h5ad")
    assert list(written.obs["reasoner"].astype(str)) == list(table["reasoner"])


@pytest.mark.parametrize(
    "args, message",
    [
        (["reason", "missing.h5ad"], "DATA missing.h5ad does not exist"),
        (["reason", "missing.h5ad", "--shots", "2"], "--shots needs labelled cells"),
        (["finetune", "ref.h5ad", "--label-key", "x", "--out", "a", "--stages", "one"], "--stages takes numbers"),
    ],
)
def test_commands_report_bad_input_in_one_line(args, message):
    out = cli(*args)
    assert out.returncode == 2 and message in out.stderr and "Traceback" not in out.stderr
