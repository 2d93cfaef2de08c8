"""Cells as a Dask array of row chunks, from an AnnData in memory or lazily from ``.h5ad``/``.zarr``.

:func:`open_cells` is the one reader every per-cell computation uses: whatever the input, the
result is a :class:`CellSource` whose ``X`` is a Dask array chunked by cells (each block a
``scipy.sparse.csr_matrix`` or a NumPy array), with ``obs`` and gene symbols in memory. Files are
read with ``anndata.experimental.read_elem_lazy``: only ``obs`` and ``var`` are loaded, blocks of
``X`` are read when a task needs them (in the driver's threads or on a ``dask.distributed`` worker).
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
from scipy import sparse

from ..errors import InputError

if TYPE_CHECKING:
    import dask.array as da
    from anndata import AnnData

#: Default number of cells per chunk: about 160 MB of a sparse block at 2,000 genes per cell.
CHUNK_SIZE = 10_000
#: Target sum of each cell's expression before ``log1p`` (as ``sc.pp.normalize_total(target_sum=1e4)``).
TARGET_SUM = 1e4
#: Above this maximum the values are taken for counts (or TPM) and normalised; at or below, for log values.
LOG_MAX = 30.0

Normalize = Literal["auto", True, False]


@dataclass
class CellSource:
    """Cells ready for chunked work.

    Attributes
    ----------
    X
        Dask array, cells x genes, one chunk per block of ``chunk_size`` cells.
    genes
        Upper-case gene symbols, one per column.
    obs
        The cell table (index: cell names).
    normalize
        Whether blocks hold counts (or TPM) that :func:`log_normalize` turns into log values.
    identity
        A digest of what the cells are (file path, size and time; or the shape and names), for the chunk store.
    path
        The file the cells come from, or ``None`` for an AnnData in memory.
    """

    X: da.Array
    genes: pd.Index
    obs: pd.DataFrame
    normalize: bool
    identity: str
    path: Path | None = None
    handles: list[Any] = field(default_factory=list)

    @property
    def n_obs(self) -> int:
        return int(self.X.shape[0])

    @property
    def n_chunks(self) -> int:
        return len(self.X.chunks[0])

    @property
    def starts(self) -> np.ndarray:
        """First row of every chunk, plus ``n_obs`` at the end."""
        return np.concatenate([[0], np.cumsum(self.X.chunks[0])]).astype(np.int64)


def open_cells(data: AnnData | str | os.PathLike[str], *, layer: str | None = None, use_raw: bool | None = None,
               gene_symbols: str | None = None, chunk_size: int = CHUNK_SIZE,
               normalize: Normalize = "auto") -> CellSource:
    """Open cells for chunked work without loading a file's expression matrix.

    Parameters
    ----------
    data
        An AnnData (``X`` may be NumPy, SciPy sparse or Dask) or the path of an ``.h5ad`` file or
        ``.zarr`` store.
    layer
        Read ``layers[layer]`` instead of ``X``.
    use_raw
        Read ``raw.X``. ``None``: ``raw`` when it exists and ``X`` holds negative (scaled) values.
    gene_symbols
        Column of ``var`` with gene symbols when ``var_names`` are not symbols.
    chunk_size
        Cells per chunk.
    normalize
        ``"auto"``: normalise to 10,000 per cell and ``log1p`` when the values exceed :data:`LOG_MAX`
        (counts, TPM), else take them as log-normalised; ``True`` / ``False`` to force.

    Returns
    -------
    A :class:`CellSource`. Raises :class:`~cellscribe.errors.InputError` for a missing file, layer
    or column, no cells or genes, or scaled values with no ``raw`` to read instead.
    """
    if int(chunk_size) < 1:
        raise InputError(f"chunk_size must be a positive number of cells; got {chunk_size!r}.")
    if isinstance(data, (str, os.PathLike)):
        source = _open_file(Path(data), layer=layer, use_raw=use_raw, gene_symbols=gene_symbols,
                            chunk_size=int(chunk_size))
    else:
        source = _open_anndata(data, layer=layer, use_raw=use_raw, gene_symbols=gene_symbols,
                               chunk_size=int(chunk_size))
    if source.n_obs == 0:
        raise InputError("The data has no cells; nothing to label.")
    if source.X.shape[1] == 0:
        raise InputError("The data has no genes; nothing to score.")
    source.normalize = _decide_normalize(source.X, normalize)
    return source


def log_normalize(block: Any, normalize: bool) -> sparse.csr_matrix:
    """One block of cells as ``float32`` CSR log-normalised expression (``normalize``: scale each cell to
    :data:`TARGET_SUM`, then ``log1p``; otherwise only converted)."""
    m = sparse.csr_matrix(block, dtype=np.float32)
    if normalize:
        totals = np.asarray(m.sum(axis=1), dtype=np.float64).ravel()
        scale = np.divide(TARGET_SUM, totals, out=np.zeros_like(totals), where=totals > 0)
        m = sparse.csr_matrix(sparse.diags(scale.astype(np.float32)) @ m)
        np.log1p(m.data, out=m.data)
    return m


def _decide_normalize(X: da.Array, normalize: Normalize) -> bool:
    if normalize is True or normalize is False:
        return bool(normalize)
    if normalize != "auto":
        raise InputError(f"normalize must be 'auto', True or False; got {normalize!r}.")
    first = X.blocks[0].compute(scheduler="synchronous")
    values = first.data if sparse.issparse(first) else np.asarray(first)
    if values.size and float(values.min()) < 0:
        raise InputError("The expression holds negative values (scaled data). Pass data with counts or log-normalised "
                         "expression: use_raw=True when .raw holds it, or layer= the layer that does.")
    return bool(values.size and float(values.max()) > LOG_MAX)


def _symbols(var: pd.DataFrame, gene_symbols: str | None) -> pd.Index:
    if gene_symbols is not None:
        if gene_symbols not in var.columns:
            listing = ", ".join(map(str, var.columns)) or "none"
            raise InputError(f"var has no column {gene_symbols!r}; columns: {listing}.")
        names = var[gene_symbols].astype(str)
    else:
        names = pd.Series(var.index.astype(str))
    return pd.Index(names.str.strip().str.upper().to_numpy())


def _open_anndata(adata: AnnData, *, layer: str | None, use_raw: bool | None, gene_symbols: str | None,
                  chunk_size: int) -> CellSource:
    import dask.array as da

    if layer is not None and use_raw:
        raise InputError("Pass either layer= or use_raw=True, not both.")
    if layer is not None:
        if layer not in adata.layers:
            raise InputError(f"adata has no layer {layer!r}; layers: {', '.join(adata.layers) or 'none'}.")
        matrix, var = adata.layers[layer], adata.var
    else:
        if use_raw is None:
            use_raw = adata.raw is not None and _has_negative(adata.X)
        if use_raw and adata.raw is None:
            raise InputError("use_raw=True but adata.raw is empty; pass use_raw=False or a layer=.")
        matrix, var = (adata.raw.X, adata.raw.var) if use_raw else (adata.X, adata.var)
    if matrix is None:
        raise InputError("adata.X is empty; pass layer= the layer with expression.")
    if isinstance(matrix, da.Array):
        X = matrix.rechunk((chunk_size, -1))
    else:
        if not sparse.issparse(matrix):
            matrix = np.asarray(matrix)
        else:
            matrix = sparse.csr_matrix(matrix)
        X = da.from_array(matrix, chunks=(chunk_size, -1), asarray=False, fancy=False)
    digest = hashlib.sha256()
    digest.update(f"{X.shape}|{layer}|{use_raw}".encode())
    digest.update("\n".join(map(str, adata.obs_names[:1000])).encode())
    digest.update("\n".join(map(str, var.index[:1000])).encode())
    return CellSource(X=X, genes=_symbols(var, gene_symbols), obs=adata.obs, normalize=False,
                      identity=digest.hexdigest()[:16])


def _has_negative(matrix: Any) -> bool:
    if matrix is None:
        return False
    sample = matrix[: min(200, matrix.shape[0])]
    if hasattr(sample, "compute"):
        sample = sample.compute()
    values = sample.data if sparse.issparse(sample) else np.asarray(sample)
    return bool(values.size and float(values.min()) < 0)


def _open_file(path: Path, *, layer: str | None, use_raw: bool | None, gene_symbols: str | None,
               chunk_size: int) -> CellSource:
    from anndata.experimental import read_elem_lazy
    from anndata.io import read_elem

    if not path.exists():
        raise InputError(f"No such file: {path}. Pass the path of an .h5ad file or a .zarr store.")
    store = _open_store(path, mode="r")
    if "obs" not in store or "var" not in store:
        raise InputError(f"{path} is not an AnnData file (no obs/var). Write it with adata.write_h5ad or write_zarr.")
    if layer is not None and use_raw:
        raise InputError("Pass either layer= or use_raw=True, not both.")
    if layer is not None:
        if "layers" not in store or layer not in store["layers"]:
            raise InputError(f"{path} has no layer {layer!r}.")
        elem, var_elem = store["layers"][layer], store["var"]
    elif use_raw:
        if "raw" not in store:
            raise InputError(f"use_raw=True but {path} has no raw; pass use_raw=False or a layer=.")
        elem, var_elem = store["raw"]["X"], store["raw"]["var"]
    else:
        if "X" not in store:
            raise InputError(f"{path} has no X; pass layer= the layer with expression.")
        elem, var_elem = store["X"], store["var"]
    X = read_elem_lazy(elem, chunks=(chunk_size, -1))
    obs, var = read_elem(store["obs"]), read_elem(var_elem)
    stat = path.stat()
    identity = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}|{layer}|{use_raw}|{X.shape}"
                              .encode()).hexdigest()[:16]
    return CellSource(X=X, genes=_symbols(var, gene_symbols), obs=obs, normalize=False, identity=identity,
                      path=path, handles=[store])


def _open_store(path: Path, mode: str) -> Any:
    if path.suffix == ".zarr" or path.is_dir():
        import zarr

        return zarr.open(str(path), mode=mode)
    import h5py

    try:
        return h5py.File(path, mode)
    except OSError as exc:
        raise InputError(f"Cannot open {path} as .h5ad ({exc}). Pass an .h5ad file or a .zarr store.") from exc
