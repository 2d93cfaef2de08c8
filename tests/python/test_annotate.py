"""Orchestration: the on-disk cache, resuming, failures that keep finished work, AnnData output."""

from __future__ import annotations

import anndata
import numpy as np
import pandas as pd
import pytest

import cellscribe as cs
from cellscribe.errors import AnnotationError, InputError
from cellscribe.llm import LlamaCppBackend, OutputFormatError

pytestmark = pytest.mark.model

MARKERS = {"0": "CD3D, CD3E, IL7R, CCR7", "1": "MS4A1, CD79A, CD79B, CD19", "2": "LYZ, CD14, S100A8, FCN1"}


class CountingBackend(LlamaCppBackend):
    """The real embedded backend, counting the requests that reach the model."""

    def __init__(self, *args, fail_on: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.calls = 0
        self.fail_on = fail_on

    def _chat(self, messages, **kwargs):
        self.calls += 1
        if self.fail_on and self.fail_on in messages[-1]["content"]:
            raise OutputFormatError("injected: the model answered nonsense")
        return super()._chat(messages, **kwargs)


@pytest.fixture(scope="module")
def qwen15(qwen15_path):
    return qwen15_path


def test_rerun_is_served_from_the_cache(qwen15):
    be = CountingBackend("qwen2.5-coder-1.5b")
    first = cs.annotate(MARKERS, mode="llm", tissue="PBMC", backend=be, explain=False)
    assert be.calls == 3 and first.attrs["stats"] == {"model_calls": 3, "cache_hits": 0, "failed": 0}
    second = cs.annotate(MARKERS, mode="llm", tissue="PBMC", backend=be, explain=False)
    assert be.calls == 3 and second["cached"].all() and second.attrs["stats"]["cache_hits"] == 3
    pd.testing.assert_frame_equal(first.drop(columns=["cached", "seconds"]), second.drop(columns=["cached", "seconds"]))
    # A different tissue is a different question: no stale answer.
    cs.annotate(MARKERS, mode="llm", tissue="liver", backend=be, explain=False)
    assert be.calls == 6


def test_failed_cluster_keeps_finished_work_and_a_rerun_retries_only_it(qwen15):
    be = CountingBackend("qwen2.5-coder-1.5b", fail_on="MS4A1")
    with pytest.raises(AnnotationError, match=r"1 of 3 cluster\(s\) failed \(1: OutputFormatError.*run again") as info:
        cs.annotate(MARKERS, mode="llm", tissue="PBMC", backend=be, explain=False, max_format_retries=0)
    partial = info.value.partial
    assert partial.set_index("cluster").loc[["0", "2"], "label"].notna().all()
    assert info.value.failures.keys() == {"1"}
    be.fail_on, be.calls = None, 0
    df = cs.annotate(MARKERS, mode="llm", tissue="PBMC", backend=be, explain=False)
    assert be.calls == 1 and df["label"].notna().all()


def test_on_error_keep_returns_failed_rows(qwen15):
    be = CountingBackend("qwen2.5-coder-1.5b", fail_on="LYZ")
    df = cs.annotate(MARKERS, mode="llm", tissue="PBMC", backend=be, explain=False, max_format_retries=0,
                     on_error="keep")
    assert df.set_index("cluster").loc["2", "error"].startswith("OutputFormatError")
    assert pd.isna(df.set_index("cluster").loc["2", "label"])


def test_argument_errors():
    with pytest.raises(InputError, match="on_error must be 'raise' or 'keep'"):
        cs.annotate(MARKERS, mode="llm", on_error="ignore")
    with pytest.raises(InputError, match="style='markdown' always explains"):
        cs.annotate(MARKERS, mode="llm", style="markdown", explain=False)
    with pytest.raises(InputError, match="Unknown backend 'gpt5'; choose one of auto, llamacpp, ollama, openai"):
        cs.annotate(MARKERS, mode="llm", backend="gpt5")


@pytest.mark.slow
def test_tl_annotate_writes_obs_and_uns(qwen15, tmp_path):
    from cellscribe.datasets import pbmc68k_reduced

    adata = pbmc68k_reduced(groupby="louvain")
    be = LlamaCppBackend("qwen2.5-coder-1.5b")
    assert cs.tl.annotate(adata, mode="llm", groupby="louvain", tissue="PBMC", backend=be, explain=False) is None
    labels = adata.obs["cellscribe_label"]
    assert isinstance(labels.dtype, pd.CategoricalDtype) and labels.notna().all()
    # every cell of a cluster carries its cluster's label
    assert (adata.obs.groupby("louvain", observed=True)["cellscribe_label"].nunique() == 1).all()
    assert adata.obs["cellscribe_confidence"].between(0, 1).all()
    uns = adata.uns["cellscribe"]
    assert uns["params"]["groupby"] == "louvain" and uns["provenance"]["backend"] == "llamacpp"
    assert set(uns["clusters"]) == set(adata.obs["louvain"].astype(str))
    path = tmp_path / "annotated.h5ad"
    adata.write_h5ad(path)
    back = cs.get.annotations(anndata.read_h5ad(path))
    assert len(back) == adata.obs["louvain"].nunique() and back.attrs["provenance"]["model"] == "qwen2.5-coder-1.5b"
    assert isinstance(back.loc[0, "markers"], list)


@pytest.mark.slow
def test_tl_annotate_computes_markers_when_missing(qwen15):
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    del adata.uns["rank_genes_groups"]
    out = cs.tl.annotate(adata, mode="llm", groupby="bulk_labels", tissue="PBMC",
                         backend=LlamaCppBackend("qwen2.5-coder-1.5b"),
                         explain=False, top_n=5, copy=True, key_added="cs")
    assert "cs_label" in out.obs and "cs_label" not in adata.obs
    assert out.uns["rank_genes_groups"]["params"]["groupby"] == "bulk_labels"


def test_tl_annotate_bad_input():
    adata = anndata.AnnData(np.ones((4, 3)))
    with pytest.raises(InputError, match="adata.obs has no column 'leiden'. Cluster first"):
        cs.tl.annotate(adata)
    adata.obs["leiden"] = "0"
    with pytest.raises(InputError, match="single cluster"):
        cs.tl.annotate(adata)
