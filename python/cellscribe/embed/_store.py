"""Gene embeddings, stored on disk and computed only for what is missing.

Vectors live in ``<settings.cache_dir>/embeddings.sqlite``, keyed by the embedder's key (backend,
model, weights digest) and the sha256 of the description text. A gene whose description did not
change is never embedded twice, whatever dataset it came from; a changed description (a newer
NCBI Gene release, an LLM description) gets a new vector. Each batch is committed as it is
computed, so an interrupted run keeps its work.
"""

from __future__ import annotations

import hashlib
import logging
import sqlite3
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..config import settings
from ..progress import Progress
from ._descriptions import gene_descriptions
from ._embedders import TextEmbedder, get_embedder

if TYPE_CHECKING:
    from ..llm import Backend

log = logging.getLogger(__name__)


@dataclass
class GeneEmbeddings:
    """Embeddings of a list of genes.

    Attributes
    ----------
    genes
        Gene names in the order of the rows (as given, e.g. ``adata.var_names``).
    matrix
        ``(n_genes, dim)`` float32.
    descriptions
        The texts embedded (:func:`cellscribe.embed.gene_descriptions` output).
    embedder
        Identity of the embedder (backend, model, digest).
    n_computed
        How many vectors this call computed (the rest came from the store).
    seconds
        Wall time spent embedding.
    """

    genes: list[str]
    matrix: np.ndarray
    descriptions: pd.DataFrame
    embedder: dict[str, Any]
    n_computed: int = 0
    seconds: float = 0.0

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[1])

    def to_frame(self) -> pd.DataFrame:
        """Genes x dimensions."""
        return pd.DataFrame(self.matrix, index=pd.Index(self.genes, name="gene"))


def store_path() -> Path:
    """``<settings.cache_dir>/embeddings.sqlite``."""
    return Path(settings.cache_dir) / "embeddings.sqlite"


def gene_embeddings(
    genes: Iterable[str],
    *,
    embedder: str | TextEmbedder = "minilm",
    species: str = "human",
    llm: str | Backend | None = None,
    descriptions: pd.DataFrame | None = None,
    progress: bool | None = None,
) -> GeneEmbeddings:
    """Embed the text description of every gene, reusing stored vectors.

    Parameters
    ----------
    genes
        Gene names (``adata.var_names``).
    embedder
        Name for :func:`cellscribe.embed.get_embedder` or an embedder instance.
    species
        ``"human"`` or ``"mouse"``.
    llm
        Backend that describes genes without an NCBI Gene record (see
        :func:`cellscribe.embed.gene_descriptions`); ``None`` uses the fallback text.
    descriptions
        Precomputed descriptions (a DataFrame with a ``description`` column indexed by gene).
    progress
        Show a progress bar (default ``settings.progress``).

    Returns
    -------
    :class:`GeneEmbeddings` with one row per gene, in input order.
    """
    names = [str(g) for g in genes]
    emb = get_embedder(embedder)
    if descriptions is None:
        descriptions = gene_descriptions(names, species=species, llm=llm)
    texts = descriptions.loc[names, "description"].tolist()
    hashes = [hashlib.sha256(t.encode()).hexdigest() for t in texts]
    start = time.perf_counter()
    with _Store() as store:
        found = store.get(emb.key, set(hashes))
        todo = list(dict.fromkeys(h for h in hashes if h not in found))
        if todo:
            by_hash = dict(zip(hashes, texts, strict=True))
            log.info("embedding %d new gene descriptions with %s", len(todo), emb.key)
            for batch in _batches(todo, emb.batch_size, progress, f"embedding gene descriptions with {emb.key}"):
                vecs = emb.embed([by_hash[h] for h in batch])
                store.put(emb.key, batch, vecs)
                found.update(zip(batch, vecs, strict=True))
    matrix = np.stack([found[h] for h in hashes]).astype(np.float32, copy=False)
    return GeneEmbeddings(genes=names, matrix=matrix, descriptions=descriptions.loc[names],
                          embedder=emb.identity(), n_computed=len(todo), seconds=time.perf_counter() - start)


def _batches(items: list[str], size: int, show: bool | None, label: str) -> Iterable[list[str]]:
    batches = [items[i:i + size] for i in range(0, len(items), size)]
    with Progress(len(items), label, unit="genes", show=show) as advance:
        for b in batches:
            yield b
            advance(len(b))


class _Store:
    def __init__(self) -> None:
        path = store_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        self.db = sqlite3.connect(path, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("CREATE TABLE IF NOT EXISTS vectors (model TEXT, text_sha256 TEXT, dim INTEGER, "
                        "vector BLOB, PRIMARY KEY (model, text_sha256))")

    def get(self, model: str, hashes: set[str]) -> dict[str, np.ndarray]:
        out: dict[str, np.ndarray] = {}
        items = sorted(hashes)
        for i in range(0, len(items), 500):
            chunk = items[i:i + 500]
            rows = self.db.execute(
                f"SELECT text_sha256, vector FROM vectors WHERE model = ? AND text_sha256 IN "
                f"({','.join('?' * len(chunk))})", (model, *chunk))
            out.update((h, np.frombuffer(blob, dtype=np.float32)) for h, blob in rows)
        return out

    def put(self, model: str, hashes: list[str], vectors: np.ndarray) -> None:
        vectors = np.asarray(vectors, dtype=np.float32)
        self.db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?, ?, ?)",
                            [(model, h, vectors.shape[1], v.tobytes()) for h, v in zip(hashes, vectors, strict=True)])
        self.db.commit()

    def __enter__(self) -> _Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.db.close()
