"""``cellscribe.tl.genept``: cell types from the expression-weighted mean of gene text embeddings."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    from anndata import AnnData

    from ..embed import CellClassifier, TrainConfig


def genept(
    adata: AnnData,
    labels_key: str | None = None,
    *,
    model: CellClassifier | str | Path | None = None,
    train_mask: str | np.ndarray | None = None,
    hidden: tuple[int, ...] = (512, 256),
    embedder: str = "minilm",
    species: str = "human",
    llm: Any = None,
    config: TrainConfig | None = None,
    use_raw: bool | None = None,
    layer: str | None = None,
    key_added: str = "genept",
    save_to: str | Path | None = None,
    copy: bool = False,
) -> AnnData | None:
    """Transfer cell-type labels with the GenePT baseline: each cell is the expression-weighted mean of
    its genes' text embeddings (GenePT-w), classified by an MLP.

    Trains on the cells labelled in ``adata.obs[labels_key]`` (NaN: only predicted), or uses a trained
    ``model``, then predicts every cell. Parameters as in :func:`cellscribe.tl.screader`, plus
    ``hidden`` (the MLP's hidden sizes).

    Returns
    -------
    ``None`` (or the copy when ``copy=True``); writes

    ``adata.obs[f"{key_added}_label"]``
        Predicted cell type (categorical).
    ``adata.obs[f"{key_added}_confidence"]``
        Softmax probability of the predicted type.
    ``adata.obsm[f"X_{key_added}"]``
        The MLP's last hidden layer per cell (the learned GenePT cell embedding).
    ``adata.obsm[f"X_{key_added}_init"]``
        The training-free weighted-mean embedding (the "initial" cell embedding; when trained here).
    ``adata.uns[key_added]``
        ``params``, ``classes``, ``history`` and ``provenance`` as for :func:`cellscribe.tl.screader`.
    """
    from ..embed import classify  # optional heavy dependency: embed needs torch (the ml extra)

    adata = adata.copy() if copy else adata
    classify(adata, "genept", labels_key, model=model, train_mask=train_mask, embedder=embedder, species=species,
             llm=llm, config=config, use_raw=use_raw, layer=layer, key_added=key_added, save_to=save_to,
             model_kwargs={"hidden": tuple(hidden)})
    return adata if copy else None
