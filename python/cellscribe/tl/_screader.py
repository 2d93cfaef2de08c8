"""``cellscribe.tl.screader``: cell types from a frozen language model reading gene embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from anndata import AnnData

    from ..embed import CellClassifier, TrainConfig


def screader(
    adata: AnnData,
    labels_key: str | None = None,
    *,
    model: CellClassifier | str | Path | None = None,
    train_mask: str | np.ndarray | None = None,
    lm: str = "smollm2-135m",
    lm_layers: int | None = None,
    k: int = 64,
    pe_dim: int = 64,
    embedder: str = "minilm",
    species: str = "human",
    llm: Any = None,
    config: TrainConfig | None = None,
    use_raw: bool | None = None,
    layer: str | None = None,
    key_added: str = "screader",
    save_to: str | Path | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Transfer cell-type labels with SCREADER (seed 001): gene text embeddings, top-``k`` ranked genes
    per cell, a frozen causal LM with the instruction "What is the cell type of this given
    embedding?" and a learned ``<cls>`` token, and an MLP head.

    Trains on the cells labelled in ``adata.obs[labels_key]`` (unlabelled cells, NaN, are only
    predicted), or uses a trained ``model``, then predicts every cell.

    Parameters
    ----------
    adata
        Cells x genes; expression from ``.raw`` when present (log-normalised), else ``layer`` or
        ``.X`` (counts are log-normalised on the fly). Gene names are symbols.
    labels_key
        Column of ``adata.obs`` with the reference labels (needed unless ``model`` is given).
    model
        A trained :class:`cellscribe.embed.CellClassifier` or the folder it was saved to; skips training.
    train_mask
        Boolean column name or array selecting the training cells (default: every labelled cell).
    lm
        Frozen causal LM: ``smollm2-135m`` (default), ``qwen2.5-coder-0.5b``, a ``.gguf`` path or a
        transformers model folder.
    lm_layers
        Use only the first ``lm_layers`` layers of the LM (CPU budget); ``None`` uses all.
    k
        Top-ranked genes per cell (the seed used 2048).
    pe_dim
        Width of the rank (positional) encoding.
    embedder
        Text embedder of gene descriptions (:func:`cellscribe.embed.get_embedder`).
    species
        ``"human"`` or ``"mouse"`` gene names.
    llm
        Backend that describes genes without an NCBI Gene record; ``None``: fallback text.
    config
        :class:`cellscribe.embed.TrainConfig` (epochs, batch size, learning rate 5e-5, warm-up, seed, device).
    use_raw, layer
        Where the expression is read.
    key_added
        Prefix of the results.
    save_to
        Also save the trained model to this folder.
    copy
        Work on a copy and return it.

    Returns
    -------
    ``None`` (or the copy when ``copy=True``); writes

    ``adata.obs[f"{key_added}_label"]``
        Predicted cell type (categorical).
    ``adata.obs[f"{key_added}_confidence"]``
        Softmax probability of the predicted type.
    ``adata.obsm[f"X_{key_added}"]``
        The LM's ``<cls>`` hidden state per cell (the SCREADER cell embedding).
    ``adata.uns[key_added]``
        ``params`` (method, hyper-parameters, training settings, ``saved_to``), ``classes``,
        ``history`` (loss per epoch) and ``provenance`` (embedder, gene-knowledge sources, LM sha256,
        package version).
    """
    from ..embed import classify  # optional heavy dependency: embed needs torch (the ml extra)

    adata = adata.copy() if copy else adata
    classify(adata, "screader", labels_key, model=model, train_mask=train_mask, embedder=embedder, species=species,
             llm=llm, config=config, use_raw=use_raw, layer=layer, key_added=key_added, save_to=save_to,
             model_kwargs={"lm": lm, "lm_layers": lm_layers, "k": k, "pe_dim": pe_dim})
    return adata if copy else None
