"""Read single-cell data from disk and tell what kind of values its matrix holds.

:func:`read` takes the formats users have: ``.h5ad``; 10x Genomics ``.h5`` (Cell Ranger's
``filtered_feature_bc_matrix.h5``); a 10x ``matrix.mtx`` folder (``matrix.mtx[.gz]``,
``features.tsv[.gz]`` or ``genes.tsv``, ``barcodes.tsv[.gz]``); and Seurat / SingleCellExperiment
``.rds`` files through :func:`cellscribe.interop.read_rds` (the ``interop`` extra and R).

The pipeline needs to know whether a matrix holds raw counts. :func:`matrix_kind` classifies one:

``"counts"``
    non-negative integers (UMI or read counts);
``"unnormalised"``
    non-negative, non-integer values too large to be logarithms (TPM, CPM, counts scaled per cell);
``"log_normalised"``
    non-negative, non-integer, largest value at most :data:`LOG_MAX` (``log1p`` of normalised data);
``"scaled"``
    negative values present (``sc.pp.scale`` output, z-scores).

:func:`find_counts` looks for raw counts where scanpy users keep them: ``layers["counts"]``, then
``.raw``, then ``.X``.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import numpy as np
from scipy import sparse

from .errors import InputError

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

MatrixKind = Literal["counts", "unnormalised", "log_normalised", "scaled"]

#: The largest value a log-normalised matrix holds (log1p of 1e4-normalised data stays below ~12;
#: of CPM below ~14). Non-integer matrices with larger values are taken as unnormalised.
LOG_MAX = 20.0
#: Rows inspected by :func:`matrix_kind` (enough to classify, cheap on a million cells).
SAMPLE_ROWS = 2000
#: Layers that hold raw counts by convention, searched in this order.
COUNTS_LAYERS = ("counts", "raw_counts")

FORMATS = ".h5ad, 10x .h5, a 10x matrix.mtx folder (or its matrix.mtx[.gz] file), or .rds (with the interop extra)"


def read(path: str | Path) -> AnnData:
    """Read a dataset, choosing the reader by what ``path`` is.

    Parameters
    ----------
    path
        ``.h5ad`` file; 10x ``.h5`` file; a folder with ``matrix.mtx[.gz]`` (or that file itself);
        ``.rds`` file holding a Seurat or SingleCellExperiment object.

    Returns
    -------
    The AnnData, cells as rows. 10x data gets gene symbols as ``var_names`` (made unique) and
    the Ensembl IDs in ``var["gene_ids"]``. Raises :class:`~cellscribe.errors.InputError` for a
    missing path, an unknown format, a file the reader rejects, or an empty matrix.
    """
    path = Path(path).expanduser()
    if not path.exists():
        raise InputError(f"Data file not found: {path}")
    mtx_dir = _mtx_folder(path)
    if mtx_dir is not None:
        adata = _read_with(lambda: _read_mtx(mtx_dir), path, "a 10x matrix.mtx folder")
    else:
        suffix = path.suffix.lower()
        if path.is_dir():
            raise InputError(
                f"{path} is a folder without a matrix.mtx or matrix.mtx.gz file. Give {FORMATS}."
            )
        if suffix == ".h5ad":
            import anndata

            adata = _read_with(lambda: anndata.read_h5ad(path), path, ".h5ad")
        elif suffix == ".h5":
            adata = _read_with(lambda: _read_10x_h5(path), path, "a 10x Genomics .h5 file")
        elif suffix == ".rds":
            adata = _read_rds(path)
        else:
            raise InputError(f"Unknown data format {path.suffix or '(no suffix)'!r} ({path.name}). Give {FORMATS}.")
    check_not_empty(adata, str(path))
    return adata


def check_not_empty(adata: AnnData, what: str = "the data") -> None:
    """Raise :class:`InputError` when ``adata`` has no cells, no genes, or only zeros."""
    if adata.n_obs == 0 or adata.n_vars == 0:
        raise InputError(
            f"{what} holds an empty matrix ({adata.n_obs} cells x {adata.n_vars} genes). "
            "Check that the file is the expression matrix you meant (e.g. Cell Ranger's filtered_feature_bc_matrix)."
        )
    X = adata.X
    nonzero = X.count_nonzero() if sparse.issparse(X) else np.count_nonzero(np.asarray(X))
    if nonzero == 0:
        raise InputError(
            f"{what} holds only zeros ({adata.n_obs} cells x {adata.n_vars} genes): no expression to analyse."
        )


def matrix_kind(X) -> MatrixKind:
    """Classify a matrix by its values (see the module docstring); inspects at most
    :data:`SAMPLE_ROWS` rows spread over the matrix."""
    values = _sample_values(X)
    if values.size == 0:
        return "counts"
    if np.nanmin(values) < 0:
        return "scaled"
    if np.all(np.mod(values, 1) == 0):
        return "counts"
    return "log_normalised" if np.nanmax(values) <= LOG_MAX else "unnormalised"


def find_counts(adata: AnnData) -> tuple[str, AnnData] | None:
    """Where ``adata`` keeps raw counts, as an AnnData whose ``.X`` holds them.

    Searches ``layers["counts"]``, ``layers["raw_counts"]``, ``.raw`` and ``.X`` in that order and
    takes the first whose values are non-negative integers.

    Returns
    -------
    ``(source, counts)`` with ``source`` one of ``'layers["counts"]'``, ``'layers["raw_counts"]'``,
    ``".raw"``, ``".X"``, and ``counts``: ``adata`` itself when the counts are in ``.X``, otherwise
    a new AnnData with a copy of the counts as ``.X`` and ``adata``'s ``obs``, ``var`` (``.raw.var``
    for counts from ``.raw``), ``obsm`` and ``uns``; ``None`` when no raw counts are found.
    """
    import anndata

    for layer in COUNTS_LAYERS:
        if layer in adata.layers and matrix_kind(adata.layers[layer]) == "counts":
            out = anndata.AnnData(X=adata.layers[layer].copy(), obs=adata.obs.copy(), var=adata.var.copy(),
                                  obsm=dict(adata.obsm), uns=dict(adata.uns))
            return f'layers["{layer}"]', out
    if adata.raw is not None and matrix_kind(adata.raw.X) == "counts":
        out = anndata.AnnData(X=adata.raw.X.copy(), obs=adata.obs.copy(), var=adata.raw.var.copy(),
                              obsm=dict(adata.obsm), uns=dict(adata.uns))
        return ".raw", out
    if matrix_kind(adata.X) == "counts":
        return ".X", adata
    return None


def describe_missing_counts(adata: AnnData) -> str:
    """One sentence naming what each place holds, for errors about missing raw counts."""
    parts = [f".X looks {matrix_kind(adata.X).replace('_', '-')} ({_range(adata.X)})"]
    for layer in COUNTS_LAYERS:
        if layer in adata.layers:
            parts.append(f'layers["{layer}"] looks {matrix_kind(adata.layers[layer]).replace("_", "-")}')
    if adata.raw is not None:
        parts.append(f".raw looks {matrix_kind(adata.raw.X).replace('_', '-')}")
    else:
        parts.append("there is no .raw")
    if not any(layer in adata.layers for layer in COUNTS_LAYERS):
        parts.append('no layers["counts"]')
    return "; ".join(parts)


# --------------------------------------------------------------------------- helpers


def _sample_values(X) -> np.ndarray:
    n = X.shape[0]
    rows = np.unique(np.linspace(0, n - 1, min(n, SAMPLE_ROWS)).astype(int)) if n else np.array([], dtype=int)
    sub = X[rows]
    if sparse.issparse(sub):
        return np.asarray(sub.data, dtype=float)
    sub = np.asarray(sub, dtype=float)
    return sub[sub != 0]


def _range(X) -> str:
    v = _sample_values(X)
    if v.size == 0:
        return "all zeros"
    integer = "integers" if np.all(np.mod(v, 1) == 0) else "non-integer values"
    return f"{integer} from {np.nanmin(v):.3g} to {np.nanmax(v):.3g}"


def _mtx_folder(path: Path) -> Path | None:
    if path.is_dir():
        if any((path / name).is_file() for name in ("matrix.mtx", "matrix.mtx.gz")):
            return path
        return None
    if path.name in ("matrix.mtx", "matrix.mtx.gz"):
        return path.parent
    return None


def _read_mtx(folder: Path) -> AnnData:
    import scanpy as sc

    adata = sc.read_10x_mtx(folder, var_names="gene_symbols", make_unique=True, cache=False)
    return adata


def _read_10x_h5(path: Path) -> AnnData:
    import scanpy as sc

    adata = sc.read_10x_h5(path)
    adata.var_names_make_unique()
    return adata


def _read_with(reader, path: Path, kind: str) -> AnnData:
    try:
        return reader()
    except InputError:
        raise
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise InputError(f"Could not read {path} as {kind}: {exc}. Give {FORMATS}.") from None


def _read_rds(path: Path) -> AnnData:
    try:
        # imported here: the interop module needs R and rpy2, which only .rds input requires
        from .interop import read_rds

        return read_rds(path)
    except ImportError as exc:  # no interop module, or rpy2 / anndata2ri / R missing
        raise InputError(
            f"Reading {path.name} (.rds) needs R and the interop extra: `pip install cellscribe[interop]` "
            f"(rpy2 and anndata2ri; R 4.2+ with SingleCellExperiment and Seurat). It failed with: {exc}"
        ) from None
