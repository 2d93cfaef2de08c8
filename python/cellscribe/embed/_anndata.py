"""The AnnData side of GenePT and SCREADER: train on labelled cells, predict every cell, write results.

Used by :func:`cellscribe.tl.genept` and :func:`cellscribe.tl.screader`; see their docstrings for
where results go.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from ..errors import InputError
from . import _cells
from ._classifier import CellClassifier, embeddings_for, train_genept, train_screader
from ._train import TrainConfig

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)


def classify(
    adata: AnnData,
    method: str,
    labels_key: str | None,
    *,
    model: CellClassifier | str | Path | None,
    train_mask: str | np.ndarray | None,
    embedder: str,
    species: str,
    llm: Any,
    config: TrainConfig | None,
    use_raw: bool | None,
    layer: str | None,
    key_added: str,
    save_to: str | Path | None,
    model_kwargs: dict[str, Any],
) -> CellClassifier:
    """Train (unless ``model`` is given) and predict; writes into ``adata`` in place."""
    if isinstance(model, (str, Path)):
        model = CellClassifier.load(model, device=(config or TrainConfig()).device)
    if model is not None and model.method != method:
        raise InputError(f"model is a {model.method} classifier; use cellscribe.tl.{model.method}.")
    X, genes = _cells.expression(adata, use_raw=use_raw, layer=layer)
    _cells.check_cells(X, list(adata.obs_names))
    if model is None:
        if labels_key is None or labels_key not in adata.obs:
            raise InputError(f"adata.obs has no label column {labels_key!r} to train on; pass labels_key= "
                             "(a column of adata.obs) or a trained model=.")
        mask = _train_mask(adata, labels_key, train_mask)
        _, _, ge = embeddings_for(adata, use_raw=use_raw, layer=layer, embedder=embedder, species=species, llm=llm)
        y = adata.obs[labels_key].to_numpy()[mask].astype(str)
        train = train_genept if method == "genept" else train_screader
        model = train(X[mask], genes, y, ge, config=config, **model_kwargs)
        if method == "genept":
            adata.obsm[f"X_{key_added}_init"] = _cells.weighted_mean(X, ge.matrix)
    pred = model.predict_matrix(X, genes)
    adata.obs[f"{key_added}_label"] = pd.Categorical(pred.labels, categories=model.classes)
    adata.obs[f"{key_added}_confidence"] = pred.confidence.astype(np.float32)
    adata.obsm[f"X_{key_added}"] = pred.embedding.astype(np.float32)
    adata.uns[key_added] = _jsonable({
        "params": {"method": method, "labels_key": labels_key, **model.params, "train_config": model.train_config},
        "classes": list(model.classes),
        "history": pd.DataFrame(model.history).to_dict(orient="list") if model.history else {},
        "provenance": model.provenance,
    })
    if save_to is not None:
        model.save(save_to)
        adata.uns[key_added]["params"]["saved_to"] = str(save_to)
    return model


def _train_mask(adata: AnnData, labels_key: str, train_mask: str | np.ndarray | None) -> np.ndarray:
    labelled = adata.obs[labels_key].notna().to_numpy()
    if train_mask is None:
        mask = labelled
    elif isinstance(train_mask, str):
        if train_mask not in adata.obs:
            raise InputError(f"adata.obs has no boolean column {train_mask!r} (train_mask).")
        mask = adata.obs[train_mask].to_numpy(dtype=bool) & labelled
    else:
        mask = np.asarray(train_mask, dtype=bool)
        if mask.shape != (adata.n_obs,):
            raise InputError(f"train_mask must have one entry per cell ({adata.n_obs}); got shape {mask.shape}.")
        mask = mask & labelled
    if mask.sum() == 0:
        raise InputError(f"No labelled cells to train on in adata.obs[{labels_key!r}].")
    return mask


def _jsonable(value: Any) -> Any:
    """Plain Python values (AnnData's .h5ad writer refuses None and tuples in uns)."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, (np.generic,)):
        return value.item()
    return value
