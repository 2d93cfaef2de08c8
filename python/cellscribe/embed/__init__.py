"""Gene and cell embeddings from gene knowledge; the SCREADER classifier and the GenePT baseline.

The seed (SCREADER) pipeline, one module per step:

1. :func:`gene_descriptions` (``_descriptions``): text about each gene from NCBI Gene and GO
   (:mod:`cellscribe.knowledge.genes`), an LLM or a fallback for genes without a record.
2. :func:`gene_embeddings` (``_store``): the descriptions embedded by a pluggable text embedder
   (:func:`get_embedder`, ``_embedders``: MiniLM by default, MPNet, OpenAI-compatible, Ollama),
   stored on disk by model and description hash.
3. Cell representations (``_cells``): :func:`rank_genes` (top-``k`` genes per cell, for SCREADER)
   and :func:`weighted_mean` (GenePT-w).
4. Models (``_models``, ``_train``, ``_classifier``): :func:`train_genept`, :func:`train_screader`
   -> :class:`CellClassifier` (``predict``, ``save``, ``load``), settings in :class:`TrainConfig`.
5. Evaluation (``_evaluate``): :func:`metrics`, :func:`confusion`, :class:`LogisticReference`,
   :func:`cross_validate`, :func:`summarize`.

On AnnData, use :func:`cellscribe.tl.genept` and :func:`cellscribe.tl.screader` (labels into
``adata.obs``) and :func:`cellscribe.pl.embedding_umaps` / :func:`cellscribe.pl.confusion_matrix`.
"""

from ._anndata import classify
from ._cells import RankedCells, expression, gene_medians, positional_encoding, rank_genes, weighted_mean
from ._classifier import CellClassifier, Prediction, embeddings_for, train_genept, train_screader
from ._descriptions import describe, gene_descriptions
from ._embedders import (
    OllamaEmbedder,
    OpenAIEmbedder,
    SentenceTransformerEmbedder,
    TextEmbedder,
    get_embedder,
    prepare_mpnet,
)
from ._evaluate import LogisticReference, confusion, cross_validate, metrics, summarize
from ._models import INSTRUCTION, load_lm
from ._store import GeneEmbeddings, gene_embeddings
from ._train import TrainConfig

__all__ = [
    "INSTRUCTION", "CellClassifier", "GeneEmbeddings", "LogisticReference", "OllamaEmbedder", "OpenAIEmbedder",
    "Prediction", "RankedCells", "SentenceTransformerEmbedder", "TextEmbedder", "TrainConfig", "classify", "confusion",
    "cross_validate", "describe", "embeddings_for", "expression", "gene_descriptions", "gene_embeddings",
    "gene_medians", "get_embedder", "load_lm", "metrics", "positional_encoding", "prepare_mpnet", "rank_genes",
    "summarize", "train_genept", "train_screader", "weighted_mean",
]
