"""Trained cell-type classifiers (GenePT or SCREADER): training, prediction, saving and loading.

>>> from cellscribe import embed
>>> ge = embed.gene_embeddings(adata.raw.var_names)                        # cached on disk
>>> clf = embed.train_screader(adata, "cell_type", gene_embeddings=ge, k=64)
>>> pred = clf.predict(query_adata)                                        # labels, probabilities, embeddings
>>> clf.save("my_screader"); clf = embed.CellClassifier.load("my_screader")

A saved model is a folder with ``config.json`` (method, classes, genes, hyper-parameters, training
settings and history, provenance: embedder, gene-knowledge sources, LM file sha256, package
version) and ``weights.pt`` (the trained parameters and the gene embedding matrix; the frozen LM is
not copied, it is loaded again from its registry name or path and checked against its sha256).
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from scipy import sparse

from ..errors import InputError
from ..knowledge import genes as gene_kb
from ..version import __version__
from . import _cells
from ._models import INSTRUCTION, GenePTModel, ScreaderModel, lm_source, load_lm, resolve_device
from ._store import GeneEmbeddings, gene_embeddings
from ._train import TrainConfig, check_labels, fit, infer

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

METHODS = ("genept", "screader")
#: Below this share of the model's genes present in a query, prediction is refused.
MIN_GENE_OVERLAP = 0.5


@dataclass
class Prediction:
    """What a classifier says about some cells.

    Attributes
    ----------
    labels
        Predicted class per cell.
    proba
        ``(cells, classes)`` softmax probabilities, columns in ``classes`` order.
    embedding
        ``(cells, dim)`` learned cell embeddings (GenePT: last hidden layer; SCREADER: ``ê_cls``).
    classes
        Class names.
    seconds
        Wall time of inference.
    """

    labels: np.ndarray
    proba: np.ndarray
    embedding: np.ndarray
    classes: list[str]
    seconds: float = 0.0

    @property
    def confidence(self) -> np.ndarray:
        return self.proba.max(axis=1)


@dataclass
class CellClassifier:
    """A trained GenePT or SCREADER model with everything needed to use it again.

    Attributes
    ----------
    method
        ``"genept"`` or ``"screader"``.
    classes
        Class names (output order).
    genes
        Gene names of the gene embedding matrix (the model's vocabulary).
    params
        Hyper-parameters (``k``, ``pe_dim``, ``hidden``, ``lm``, ``lm_layers``, ``instruction``).
    train_config
        :class:`TrainConfig` as a dict.
    history
        Per-epoch ``loss``, ``train_accuracy``, ``seconds``, ``cells_per_s``.
    provenance
        Embedder identity, gene-knowledge sources, LM identity, package version, training cells.
    module
        The torch module.
    """

    method: str
    classes: list[str]
    genes: list[str]
    params: dict[str, Any]
    train_config: dict[str, Any]
    module: torch.nn.Module
    history: list[dict[str, float]] = field(default_factory=list)
    provenance: dict[str, Any] = field(default_factory=dict)
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))

    # ------------------------------------------------------------------ prediction

    def inputs(self, X: sparse.csr_matrix, genes: list[str]) -> list[torch.Tensor]:
        """Model inputs for cells ``X`` (log-normalised, columns named ``genes``)."""
        X = _align(X, genes, self.genes)
        if self.method == "genept":
            gm = self.module.gene_matrix.cpu().numpy()
            return [torch.as_tensor(_cells.weighted_mean(X, gm))]
        scale = self.module.gene_scale.cpu().numpy() if self.params.get("rank_by") == "median" else None
        r = _cells.rank_genes(X, self.params["k"], scale)
        return [torch.as_tensor(r.index), torch.as_tensor(r.value), torch.as_tensor(r.mask)]

    def predict_matrix(self, X: sparse.csr_matrix, genes: list[str], batch_size: int = 64) -> Prediction:
        """Predict cells given as a matrix (log-normalised) and its gene names."""
        start = time.perf_counter()
        proba, emb = infer(self.module, self.inputs(X, genes), self.device, batch_size)
        labels = np.asarray(self.classes, dtype=object)[proba.argmax(1)]
        return Prediction(labels, proba, emb, list(self.classes), time.perf_counter() - start)

    def predict(self, adata: AnnData, *, use_raw: bool | None = None, layer: str | None = None,
                batch_size: int = 64) -> Prediction:
        """Predict every cell of ``adata`` (expression as in :func:`cellscribe.embed.expression`)."""
        X, genes = _cells.expression(adata, use_raw=use_raw, layer=layer)
        _cells.check_cells(X, list(adata.obs_names))
        return self.predict_matrix(X, genes, batch_size)

    # ------------------------------------------------------------------ persistence

    def save(self, path: str | Path) -> Path:
        """Write ``config.json`` and ``weights.pt`` into the folder ``path``."""
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        config = {"method": self.method, "classes": self.classes, "genes": self.genes, "params": self.params,
                  "train_config": self.train_config, "history": self.history, "provenance": self.provenance}
        state = {k: v.cpu() for k, v in self.module.state_dict().items()}
        torch.save(state, path / "weights.pt")
        (path / "config.json").write_text(json.dumps(config, indent=1, default=str))
        return path

    @classmethod
    def load(cls, path: str | Path, *, device: str = "auto") -> CellClassifier:
        """Load a model saved by :meth:`save` (SCREADER reloads its frozen LM and checks its sha256)."""
        path = Path(path)
        if not (path / "config.json").is_file() or not (path / "weights.pt").is_file():
            raise InputError(f"{path} is not a saved cellscribe classifier (config.json and weights.pt expected).")
        config = json.loads((path / "config.json").read_text())
        state = torch.load(path / "weights.pt", map_location="cpu", weights_only=True)
        gm = state["gene_matrix"].numpy()
        p = config["params"]
        dev = resolve_device(device)
        if config["method"] == "genept":
            module: torch.nn.Module = GenePTModel(gm, len(config["classes"]), tuple(p["hidden"]), p.get("dropout", 0.1))
            module.load_state_dict(state)
        else:
            want = config["provenance"].get("lm", {}).get("sha256")
            _, _, ident = lm_source(p["lm"])
            if want and ident["sha256"] != want:
                raise InputError(f"The language model {p['lm']!r} on this machine (sha256 {ident['sha256']}) is not "
                                 f"the one this classifier was trained with ({want}).")
            lm, tok, _ = load_lm(p["lm"], p["lm_layers"])
            module = ScreaderModel(lm, tok, gm, len(config["classes"]), k=p["k"], pe_dim=p["pe_dim"],
                                   proj_hidden=tuple(p["proj_hidden"]), head_hidden=tuple(p["head_hidden"]),
                                   instruction=p["instruction"], dropout=p.get("dropout", 0.1))
            module.load_state_dict(state)
            module.lm_to(dev)
        module.to(dev).eval()
        return cls(config["method"], config["classes"], config["genes"], p, config["train_config"], module,
                   config["history"], config["provenance"], dev)


# --------------------------------------------------------------------------- training


def train_genept(X: sparse.csr_matrix, genes: list[str], y: np.ndarray, gene_emb: GeneEmbeddings, *,
                 config: TrainConfig | None = None, hidden: tuple[int, ...] = (512, 256),
                 dropout: float = 0.1) -> CellClassifier:
    """Train GenePT on cells ``X`` (log-normalised, columns ``genes``) with labels ``y``."""
    config = config or TrainConfig()
    classes, target = _targets(y)
    gm = _gene_matrix(gene_emb, genes)
    device = resolve_device(config.device)
    torch.manual_seed(config.seed)
    module = GenePTModel(gm, len(classes), tuple(hidden), dropout).to(device)
    clf = CellClassifier("genept", classes, list(genes), {"hidden": list(hidden), "dropout": dropout},
                         config.to_dict(), module, device=device)
    clf.history = fit(module, clf.inputs(X, genes), target, config, device, label="GenePT")
    clf.provenance = _provenance(gene_emb, len(y))
    return clf


def train_screader(X: sparse.csr_matrix, genes: list[str], y: np.ndarray, gene_emb: GeneEmbeddings, *,
                   config: TrainConfig | None = None, lm: str = "smollm2-135m", lm_layers: int | None = None,
                   k: int = 64, pe_dim: int = 64, rank_by: str = "expression", proj_hidden: tuple[int, ...] = (512,),
                   head_hidden: tuple[int, ...] = (256,), instruction: str = INSTRUCTION,
                   dropout: float = 0.1) -> CellClassifier:
    """Train SCREADER on cells ``X`` (log-normalised, columns ``genes``) with labels ``y``.

    ``rank_by="expression"`` (default) ranks each cell's genes by expression, as the seed's step 1;
    ``"median"`` by expression over the gene's median non-zero expression in the training cells
    (Geneformer's normalisation; it favours rarely expressed genes).
    """
    if rank_by not in ("median", "expression"):
        raise InputError(f"rank_by must be 'median' or 'expression'; got {rank_by!r}.")
    config = config or TrainConfig()
    classes, target = _targets(y)
    gm = _gene_matrix(gene_emb, genes)
    device = resolve_device(config.device)
    lm_model, tokenizer, lm_identity = load_lm(lm, lm_layers)
    torch.manual_seed(config.seed)
    scale = _cells.gene_medians(X) if rank_by == "median" else None
    module = ScreaderModel(lm_model, tokenizer, gm, len(classes), k=k, pe_dim=pe_dim, proj_hidden=tuple(proj_hidden),
                           head_hidden=tuple(head_hidden), instruction=instruction, dropout=dropout,
                           gene_scale=scale)
    module.lm_to(device)
    module.to(device)
    params = {"k": k, "pe_dim": pe_dim, "rank_by": rank_by, "proj_hidden": list(proj_hidden),
              "head_hidden": list(head_hidden), "lm": lm, "lm_layers": lm_layers, "instruction": instruction,
              "dropout": dropout}
    clf = CellClassifier("screader", classes, list(genes), params, config.to_dict(), module, device=device)
    clf.history = fit(module, clf.inputs(X, genes), target, config, device, label="SCREADER")
    clf.provenance = {**_provenance(gene_emb, len(y)), "lm": lm_identity}
    return clf


def _targets(y: np.ndarray) -> tuple[list[str], torch.Tensor]:
    y = np.asarray(y).astype(str)
    classes = check_labels(y)
    return classes, torch.as_tensor(np.searchsorted(classes, y), dtype=torch.long)


def _gene_matrix(gene_emb: GeneEmbeddings, genes: list[str]) -> np.ndarray:
    pos = {g: i for i, g in enumerate(gene_emb.genes)}
    missing = [g for g in genes if g not in pos]
    if missing:
        raise InputError(f"{len(missing)} gene(s) of the data have no embedding (e.g. {', '.join(missing[:5])}); "
                         "compute gene_embeddings() for the same gene list as the data.")
    return gene_emb.matrix[[pos[g] for g in genes]]


def _align(X: sparse.csr_matrix, genes: list[str], model_genes: list[str]) -> sparse.csr_matrix:
    """Reorder the columns of ``X`` to the model's genes (absent genes read as 0)."""
    if list(genes) == list(model_genes):
        return X
    pos = {g: i for i, g in enumerate(genes)}
    shared = [j for j, g in enumerate(model_genes) if g in pos]
    if len(shared) < MIN_GENE_OVERLAP * len(model_genes):
        raise InputError(f"Only {len(shared)} of the model's {len(model_genes)} genes are in the data; "
                         "are the gene names of the same kind (symbols vs Ensembl IDs) and species?")
    cols = np.array([pos[model_genes[j]] for j in shared])
    sel = sparse.csr_matrix((np.ones(len(shared), dtype=np.float32), (cols, shared)),
                            shape=(len(genes), len(model_genes)))
    return (X @ sel).tocsr()


def _provenance(gene_emb: GeneEmbeddings, n_train: int) -> dict[str, Any]:
    sources = gene_emb.descriptions["source"].value_counts().to_dict() if "source" in gene_emb.descriptions else {}
    return {"embedder": gene_emb.embedder, "gene_knowledge": gene_kb.source_info(), "description_sources": sources,
            "n_train_cells": int(n_train), "cellscribe_version": __version__, "torch": str(torch.__version__)}


def embeddings_for(adata: AnnData, *, use_raw: bool | None = None, layer: str | None = None,
                   embedder: str = "minilm", species: str = "human", llm: Any = None,
                   max_unknown: float = 0.5) -> tuple[sparse.csr_matrix, list[str], GeneEmbeddings]:
    """Expression, gene names and gene embeddings of ``adata``, refusing data whose genes are mostly unknown.

    More than ``max_unknown`` of the genes without an NCBI Gene record usually means the wrong
    species or gene IDs the knowledge base does not hold; the error says so.
    """
    X, genes = _cells.expression(adata, use_raw=use_raw, layer=layer)
    _cells.check_cells(X, list(adata.obs_names))
    unknown = gene_kb.unknown(genes, species=species)
    if llm is None and len(unknown) > max_unknown * len(genes):
        raise InputError(
            f"{len(unknown)} of {len(genes)} genes are missing from the gene knowledge base (e.g. "
            f"{', '.join(unknown[:5])}). Use gene symbols (adata.var_names), set species='mouse' for mouse "
            "data, or pass llm= to describe unknown genes with a language model.")
    if unknown:
        log.warning("%d of %d genes have no NCBI Gene record; they get %s", len(unknown), len(genes),
                    "LLM descriptions" if llm is not None else "the fallback description")
    return X, genes, gene_embeddings(genes, embedder=embedder, species=species, llm=llm)
