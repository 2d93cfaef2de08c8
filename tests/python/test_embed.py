"""Gene descriptions, gene embeddings, cell representations, GenePT and SCREADER (cellscribe.embed).

Everything runs for real: NCBI Gene / GO from Debian's org.Hs.eg.db and GO.db, the offline MiniLM
sentence-transformers model, scanpy's bundled pbmc68k_reduced, and SmolLM2-135M loaded from its
GGUF file by transformers as the frozen LM. The OpenAI and Ollama embedding clients are tested
against a loopback server that speaks those two protocols (``/v1/embeddings``, ``/api/embed``,
``/api/tags``) and answers with the real MiniLM model, since no Ollama or hosted API runs here.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
from scipy import sparse

import cellscribe
from cellscribe import embed
from cellscribe.errors import InputError

TYPES = ["CD14+ Monocyte", "CD19+ B", "CD56+ NK"]


class CountingEmbedder(embed.SentenceTransformerEmbedder):
    """The real MiniLM embedder, counting the texts it is asked to embed."""

    def __init__(self) -> None:
        super().__init__("minilm")
        self.n_texts = 0

    def embed(self, texts):
        self.n_texts += len(texts)
        return super().embed(texts)


@pytest.fixture(scope="module")
def pbmc(tmp_path_factory, _gene_index_file):
    """60 PBMCs of three types x 120 genes (markers + the most variable), with their gene embeddings."""
    import scanpy as sc

    from cellscribe.knowledge import genes as gene_kb

    adata = sc.datasets.pbmc68k_reduced()
    adata = adata[adata.obs["bulk_labels"].isin(TYPES)]
    picked = np.concatenate([np.flatnonzero(adata.obs["bulk_labels"] == t)[:20] for t in TYPES])
    raw = adata.raw.to_adata()[picked]
    var = np.asarray(raw.X.toarray().var(axis=0)).ravel()
    markers = ["MS4A1", "CD79A", "CD14", "LYZ", "GNLY", "NKG7", "FCGR3A", "CD3E", "HLA-DRA", "S100A8"]
    order = [g for g in raw.var_names[np.argsort(-var)] if g not in markers]
    small = raw[:, [g for g in markers if g in raw.var_names] + order[:110]].copy()
    small.obs["cell_type"] = small.obs["bulk_labels"].astype(str)
    small.raw = None
    cache = tmp_path_factory.mktemp("embed-cache")
    (cache / "knowledge").mkdir()
    (cache / "knowledge" / gene_kb.index_path().name).symlink_to(_gene_index_file)
    old = cellscribe.settings.cache_dir
    cellscribe.settings.cache_dir = cache
    try:
        ge = embed.gene_embeddings(small.var_names, progress=False)
    finally:
        cellscribe.settings.cache_dir = old
    return small, ge, cache / "embeddings.sqlite"


def _reuse_vectors(store: Path) -> None:
    """Give this test's cache the vectors the fixture computed (the tools look them up there)."""
    shutil.copy(store, cellscribe.settings.cache_dir / "embeddings.sqlite")


def test_ms4a1_description(gene_index):
    d = embed.gene_descriptions(["MS4A1", "RP11-782C8.1"])
    text = d.loc["MS4A1", "description"]
    assert "membrane spanning 4-domains A1" in text and "Official Symbol: MS4A1" in text
    assert "B cell activation" in text and "immunoglobulin binding" in text and "CD20" in text
    assert d.loc["MS4A1", "source"] == "ncbi_gene"
    assert d.loc["RP11-782C8.1", "source"] == "fallback" and "without a record" in d.loc["RP11-782C8.1", "description"]


@pytest.mark.model
def test_llm_describes_genes_without_a_record(gene_index, smollm_path):
    """With llm= the seed's question goes to a real (tiny) model; answers are cached, known genes never asked."""
    from cellscribe.llm import LlamaCppBackend

    class Counting(LlamaCppBackend):
        calls = 0

        def _chat(self, messages, **kw):
            Counting.calls += 1
            assert "functions, distribution, and expression of human gene RP11-782C8.1" in messages[0]["content"]
            return super()._chat(messages, **kw)

    backend = Counting("smollm2-135m", n_threads=1)
    d = embed.gene_descriptions(["MS4A1", "RP11-782C8.1"], llm=backend)
    assert d["source"].tolist() == ["ncbi_gene", "llm"] and Counting.calls == 1
    text = d.loc["RP11-782C8.1", "description"]
    assert text.startswith("Official Symbol: RP11-782C8.1. ") and len(text) > len("Official Symbol: RP11-782C8.1. ")
    again = embed.gene_descriptions(["RP11-782C8.1"], llm=backend)
    assert Counting.calls == 1 and again.loc["RP11-782C8.1", "description"] == text


def test_embeddings_are_stored_and_computed_once(gene_index):
    genes = ["MS4A1", "CD3E", "LYZ", "NKG7", "RP11-782C8.1"]
    counter = CountingEmbedder()
    first = embed.gene_embeddings(genes, embedder=counter, progress=False)
    assert first.matrix.shape == (5, 384) and first.n_computed == 5 and counter.n_texts == 5
    assert np.allclose(np.linalg.norm(first.matrix, axis=1), 1, atol=1e-3)
    again = embed.gene_embeddings(list(reversed(genes)), embedder=counter, progress=False)
    assert again.n_computed == 0 and counter.n_texts == 5  # nothing computed the second time
    assert np.array_equal(again.matrix, first.matrix[::-1])
    # a changed description is a new text: only it is embedded
    d = embed.gene_descriptions(genes)
    d.loc["LYZ", "description"] += " Extra note."
    third = embed.gene_embeddings(genes, embedder=counter, descriptions=d, progress=False)
    assert third.n_computed == 1 and counter.n_texts == 6
    assert (cellscribe.settings.cache_dir / "embeddings.sqlite").is_file()


def test_openai_and_ollama_embedding_clients(gene_index):
    """Both HTTP clients against a loopback server speaking each protocol, backed by the real MiniLM."""
    from _servers import EmbeddingServer

    texts = ["B lymphocyte surface antigen", "T cell receptor complex"]
    local = embed.get_embedder("minilm").embed(texts)
    with EmbeddingServer() as server:
        oa = embed.get_embedder("openai", model=server.model_name, base_url=server.base_url)
        ol = embed.get_embedder("ollama", model=server.model_name, host=server.host)
        assert np.allclose(oa.embed(texts), local, atol=1e-5)
        assert np.allclose(ol.embed(texts), local, atol=1e-5)
        assert ol.key.endswith("@sha256:00000") and oa.key.startswith(f"openai:{server.model_name}@http://127.0.0.1")
        ge = embed.gene_embeddings(["MS4A1", "CD3E"], embedder=ol, progress=False)
        assert ge.n_computed == 2 and ge.embedder["endpoint"] == server.host
        assert [p for p, _ in server.requests] == ["/v1/embeddings", "/api/embed", "/api/embed"]
        missing = embed.get_embedder("openai", model="nope", base_url=server.base_url, max_retries=0)
        with pytest.raises(cellscribe.llm.ModelNotFoundError):
            missing.embed(texts)
    with pytest.raises(InputError, match="Unknown embedder"):
        embed.get_embedder("word2vec")


def test_cell_representations():
    X = sparse.csr_matrix(np.array([[0, 3.0, 1.0, 2.0], [0, 0, 0.5, 0]], dtype=np.float32))
    r = embed.rank_genes(X, 3)
    assert r.index.tolist() == [[1, 3, 2], [2, 0, 0]] and r.mask.tolist() == [[True] * 3, [True, False, False]]
    assert r.value[0].tolist() == [3.0, 2.0, 1.0] and r.value[1, 1:].tolist() == [0, 0]
    medians = embed.gene_medians(X)
    assert medians.tolist() == [1.0, 3.0, 0.75, 2.0]
    by_median = embed.rank_genes(X, 2, scale=medians)  # 3/3, 1/0.75, 2/2: the rarely high gene first
    assert by_median.index[0].tolist() == [2, 1] and by_median.value[0].tolist() == [1.0, 3.0]
    pe = embed.positional_encoding(3, 8)
    assert pe.shape == (3, 8) and not np.allclose(pe[0], pe[1])
    E = np.eye(4, dtype=np.float32)
    wm = embed.weighted_mean(X, E)
    assert np.allclose(wm[1], [0, 0, 1, 0]) and np.allclose(np.linalg.norm(wm, axis=1), 1)
    with pytest.raises(InputError, match="express no gene"):
        embed.rank_genes(sparse.csr_matrix(np.array([[1.0, 0], [0, 0]])), 2)
    with pytest.raises(InputError, match="at least 1"):
        embed.rank_genes(X, 0)


def test_expression_reads_counts_and_refuses_scaled():
    import anndata as ad

    counts = ad.AnnData(np.array([[1, 0, 3], [2, 2, 0]], dtype=np.float32))
    X, names = embed.expression(counts)
    assert np.allclose(X.toarray()[0], np.log1p(np.array([1, 0, 3]) / 4 * 1e4)) and names == ["0", "1", "2"]
    with pytest.raises(InputError, match="negative values"):
        embed.expression(ad.AnnData(np.array([[-1.0, 0.5]], dtype=np.float32)))


def test_genept_tool_writes_results_and_reloads(pbmc, gene_index, tmp_path):
    adata, ge, store = pbmc
    adata = adata.copy()
    _reuse_vectors(store)
    adata.obs.loc[adata.obs_names[::4], "cell_type"] = np.nan  # unlabelled cells are predicted, not trained on
    config = embed.TrainConfig(epochs=40, lr=2e-3, batch_size=16)
    cellscribe.tl.genept(adata, "cell_type", config=config, save_to=tmp_path / "genept")
    assert list(adata.obs["genept_label"].cat.categories) == sorted(TYPES)
    assert adata.obsm["X_genept"].shape == (60, 256) and adata.obsm["X_genept_init"].shape == (60, 384)
    assert adata.obs["genept_confidence"].between(0, 1).all()
    uns = adata.uns["genept"]
    assert uns["params"]["train_config"]["lr"] == 2e-3 and len(uns["history"]["loss"]) == 40
    assert uns["history"]["loss"][-1] < uns["history"]["loss"][0]
    assert uns["provenance"]["n_train_cells"] == 45 and uns["provenance"]["embedder"]["model"] == "minilm"
    adata.write_h5ad(tmp_path / "out.h5ad")  # every field is storable
    again = adata.copy()
    cellscribe.tl.genept(again, model=tmp_path / "genept", key_added="reloaded")
    assert (again.obs["reloaded_label"] == adata.obs["genept_label"]).all()
    assert "labels_key" not in again.uns["reloaded"]["params"]  # None is left out: the .h5ad writer refuses it
    again.write_h5ad(tmp_path / "reloaded.h5ad")


@pytest.mark.model
@pytest.mark.slow
def test_screader_tiny_training_lowers_loss_and_predicts(pbmc, gene_index, smollm_path, tmp_path):
    adata, ge, _ = pbmc
    X, genes = embed.expression(adata)
    y = adata.obs["cell_type"].to_numpy()
    test = np.zeros(len(y), dtype=bool)
    test[np.concatenate([np.flatnonzero(y == t)[-4:] for t in TYPES])] = True
    config = embed.TrainConfig(epochs=4, lr=1e-3, batch_size=16, seed=0)
    clf = embed.train_screader(X[~test], genes, y[~test], ge, config=config, k=16, pe_dim=16, lm_layers=2)
    losses = [h["loss"] for h in clf.history]
    assert len(losses) == 4 and losses[-1] < losses[0]
    assert clf.provenance["lm"]["sha256"] == "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
    assert clf.provenance["lm"]["layers_used"] == 2 and clf.provenance["lm"]["layers_total"] == 30
    pred = clf.predict_matrix(X[test], genes)
    assert pred.proba.shape == (12, 3) and np.allclose(pred.proba.sum(1), 1, atol=1e-5)
    assert pred.embedding.shape == (12, 576) and set(pred.labels) <= set(TYPES)
    clf.save(tmp_path / "model")
    again = embed.CellClassifier.load(tmp_path / "model")
    assert np.allclose(again.predict_matrix(X[test], genes).proba, pred.proba, atol=1e-5)


def test_bad_inputs_give_clear_errors(pbmc, gene_index):
    import anndata as ad

    adata, ge, _ = pbmc
    X, genes = embed.expression(adata)
    with pytest.raises(InputError, match="at least two cell types"):
        embed.train_genept(X, genes, np.array(["T cell"] * adata.n_obs), ge)
    with pytest.raises(InputError, match="no embedding"):
        embed.train_genept(X, [*genes[:-1], "NOT_A_GENE"], adata.obs["cell_type"].to_numpy(), ge)
    unknown = ad.AnnData(np.ones((3, 4), dtype=np.float32), var={"x": range(4)})
    unknown.var_names = ["ENSMUSG00000000001", "FOO1x", "BAR2y", "MS4A1"]
    with pytest.raises(InputError, match="3 of 4 genes are missing from the gene knowledge base"):
        embed.embeddings_for(unknown)
    empty = adata.copy()
    empty.X[0] = 0
    with pytest.raises(InputError, match=r"express no gene \(e.g. " + empty.obs_names[0]):
        cellscribe.tl.genept(empty, "cell_type")
    with pytest.raises(InputError, match="no label column 'nope'"):
        cellscribe.tl.genept(adata.copy(), "nope")
    clf = embed.train_genept(X, genes, adata.obs["cell_type"].to_numpy(), ge, config=embed.TrainConfig(epochs=1))
    other = ad.AnnData(np.ones((2, 3), dtype=np.float32))
    other.var_names = ["A1", "B2", "C3"]
    with pytest.raises(InputError, match=f"Only 0 of the model's {len(genes)} genes"):
        clf.predict(other)
    with pytest.raises(InputError, match="not a saved cellscribe classifier"):
        embed.CellClassifier.load(Path("/nonexistent-model-folder"))
