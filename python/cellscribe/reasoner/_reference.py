"""Reference cells as cell sentences, and the global gene ranking a run uses.

Shared by the annotator (few-shot exemplars, default candidates) and the fine-tuner (training
examples), so both read genes in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from ..errors import InputError
from ._sentences import _expression, gene_ranking, sentences_from_matrix

if TYPE_CHECKING:
    from anndata import AnnData

#: Where cell sentences and their ranking are written (``obs`` column and ``uns`` key).
SENTENCE_KEY = "cell_sentence"


def reference_sentences(
    reference: AnnData, label_key: str, ranking: list[str], n_genes: int, *,
    use_raw: bool | None = None, layer: str | None = None,
) -> tuple[list[list[str]], list[str]]:
    """Sentences (in ``ranking`` order) and labels of labelled reference cells."""
    if label_key not in reference.obs:
        raise InputError(f"The reference has no obs column {label_key!r}; columns: "
                         f"{', '.join(map(str, reference.obs.columns))}.")
    labels = reference.obs[label_key]
    keep = labels.notna().to_numpy()
    if not keep.any():
        raise InputError(f"reference.obs[{label_key!r}] has no labels.")
    if use_raw is None and layer is None:
        use_raw = reference.raw is not None
    x, genes = _expression(reference, use_raw, layer)
    sentences = sentences_from_matrix(x[keep] if hasattr(x, "shape") else x, genes, ranking, n_genes)
    return sentences, [str(v) for v in labels[keep]]


def resolve_ranking(adata: AnnData, reference: AnnData | None, ranking: Sequence[str] | None,
                    **kwargs: Any) -> list[str]:
    """The global gene order: given, saved with ``adata``, saved with the reference, or computed
    (on the reference when there is one: labelled data define the vocabulary)."""
    if ranking is not None:
        return [str(g) for g in ranking]
    for source in (adata, reference):
        saved = source.uns.get(SENTENCE_KEY) if source is not None else None
        if isinstance(saved, dict) and "ranking" in saved:
            return [str(g) for g in saved["ranking"]]
    return gene_ranking(reference if reference is not None else adata, **kwargs)
