"""Per-cell results into an AnnData's ``obs``, a file's ``obs`` (without reading ``X``), or a sidecar CSV."""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import pandas as pd

from ..errors import InputError
from ._source import _open_store

if TYPE_CHECKING:
    from anndata import AnnData

DEFAULT_KEY = "cellscribe_cells"


def obs_columns(table: pd.DataFrame, key: str = DEFAULT_KEY) -> pd.DataFrame:
    """``table`` with every column renamed ``f"{key}_{column}"`` (``label`` -> ``f"{key}_label"``)."""
    return table.rename(columns={c: f"{key}_{c}" for c in table.columns})


def write_results(table: pd.DataFrame, target: AnnData | str | os.PathLike[str], *, key: str = DEFAULT_KEY,
                  how: Literal["obs", "csv"] = "obs") -> Path | None:
    """Write per-cell results (one row per cell, index: cell names) next to the cells.

    Parameters
    ----------
    table
        E.g. :attr:`CellLabels.table` or :func:`transfer_labels`'s result.
    target
        An AnnData (written into ``obs``) or the ``.h5ad``/``.zarr`` the cells came from.
    key
        Column prefix: ``obs[f"{key}_label"]``, ``obs[f"{key}_cl_id"]``, ...
    how
        For files: ``"obs"`` rewrites only the file's ``obs`` group (``X`` is never read);
        ``"csv"`` writes a sidecar ``<file>.<key>.csv`` and leaves the file untouched.

    Returns
    -------
    The path written (``None`` for an AnnData). Raises :class:`~cellscribe.errors.InputError` when the
    cell names do not match the target's.
    """
    columns = obs_columns(table, key)
    if not isinstance(target, (str, os.PathLike)):
        if not target.obs_names.equals(table.index):
            raise InputError("The results' cell names differ from adata.obs_names; label this AnnData itself.")
        for c in columns.columns:
            target.obs[c] = columns[c].to_numpy() if not isinstance(columns[c].dtype, pd.CategoricalDtype) \
                else columns[c].values
        return None
    path = Path(target)
    if how == "csv":
        out = path.with_name(f"{path.name}.{key}.csv")
        columns.to_csv(out, index_label="cell")
        return out
    if how != "obs":
        raise InputError(f"how must be 'obs' or 'csv'; got {how!r}.")
    from anndata.io import read_elem, write_elem

    store = _open_store(path, mode="r+" if path.suffix != ".zarr" else "a")
    try:
        obs = read_elem(store["obs"])
        if not obs.index.equals(table.index):
            raise InputError(f"The results' cell names differ from {path}'s obs; label that file itself.")
        for c in columns.columns:
            obs[c] = columns[c].values
        del store["obs"]
        write_elem(store, "obs", obs)
    finally:
        if hasattr(store, "close"):
            store.close()
    return path
