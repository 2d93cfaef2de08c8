"""Seurat and SingleCellExperiment ``.rds`` files for Python users (rpy2 + anndata2ri).

Needs R (4.2+) with SeuratObject / Seurat and SingleCellExperiment, and the ``interop`` extra
(``pip install 'cellscribe[interop]'``: ``rpy2>=3.5.2,<3.6`` for R 4.2, ``anndata2ri``). R runs
embedded in this Python process. Never call this module from R through reticulate (R -> Python ->
R aborts R); R users have the cellscribe R package instead.

>>> from cellscribe.interop import read_rds, write_labels_rds
>>> adata = read_rds("pbmc.rds")                       # Seurat or SingleCellExperiment
>>> cs.tl.annotate(adata, groupby="ident", tissue="PBMC")
>>> write_labels_rds(adata, "pbmc.rds", "pbmc_annotated.rds")
"""

from __future__ import annotations

import contextlib
import json
import logging
from collections.abc import Iterator
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .errors import InputError
from .get import annotations
from .results import json_ready

log = logging.getLogger(__name__)

if TYPE_CHECKING:
    import pandas as pd
    from anndata import AnnData

__all__ = ["read_rds", "write_labels_rds"]

# Run inside the embedded R. `read` returns a SingleCellExperiment whose first assay is the
# normalised data (it becomes AnnData.X), and the class of the object read.
_R_HELPERS = r"""
local({
  quiet <- function(expr) suppressWarnings(suppressPackageStartupMessages(expr))
  need <- function(pkg) {
    if (!quiet(requireNamespace(pkg, quietly = TRUE))) {
      stop(sprintf("the R package %s is not installed (Debian: r-cran-%s or r-bioc-%s)", pkg,
                   tolower(pkg), tolower(pkg)), call. = FALSE)
    }
  }
  kind <- function(obj) {
    if (inherits(obj, "Seurat")) return("Seurat")
    if (inherits(obj, "SingleCellExperiment")) return("SingleCellExperiment")
    stop(sprintf("it holds a %s, not a Seurat or SingleCellExperiment object",
                 paste(class(obj), collapse = "/")), call. = FALSE)
  }
  read <- function(path, assay) {
    obj <- readRDS(path)
    cls <- kind(obj)
    need("SingleCellExperiment")
    if (cls == "Seurat") {
      need("SeuratObject")
      # rpy2 hooks a warning on reticulate's loading, which Seurat triggers; it does not apply
      # here (reticulate does not start Python on load).
      setHook(packageEvent("reticulate", "onLoad"), NULL, "replace")
      need("Seurat")
      if (is.null(assay)) assay <- SeuratObject::DefaultAssay(obj)
      obj <- quiet(Seurat::as.SingleCellExperiment(obj, assay = assay))
    }
    names <- SummarizedExperiment::assayNames(obj)
    first <- intersect(c("logcounts", "data"), names)
    if (length(first)) {
      SummarizedExperiment::assays(obj) <- SummarizedExperiment::assays(obj)[c(first[1], setdiff(names, first[1]))]
    }
    list(sce = obj, kind = cls, x = if (length(names)) SummarizedExperiment::assayNames(obj)[1] else "")
  }
  write <- function(path, out, payload, key) {
    obj <- readRDS(path)
    cls <- kind(obj)
    need("jsonlite")
    data <- jsonlite::fromJSON(payload, simplifyVector = TRUE)
    cells <- colnames(obj)
    row <- match(cells, data$cells)
    meta <- data.frame(row.names = cells)
    for (name in names(data$columns)) {
      col <- data$columns[[name]]
      values <- col$values[row]
      if (!is.null(col$levels)) values <- factor(values, levels = col$levels)
      meta[[name]] <- values
    }
    misc <- data$misc
    if (cls == "Seurat") {
      need("SeuratObject")
      if (ncol(meta)) obj <- SeuratObject::AddMetaData(obj, metadata = meta)
      if (!is.null(misc)) obj@misc[[key]] <- misc
    } else {
      for (name in names(meta)) SummarizedExperiment::colData(obj)[[name]] <- meta[[name]]
      if (!is.null(misc)) S4Vectors::metadata(obj)[[key]] <- misc
    }
    saveRDS(obj, out)
    sum(!is.na(row))
  }
  list(read = read, write = write)
})
"""


def read_rds(path: str | Path, *, assay: str | None = None) -> AnnData:
    """Read a Seurat or SingleCellExperiment object saved with ``saveRDS()`` into an AnnData.

    A Seurat object is converted with ``Seurat::as.SingleCellExperiment`` (its ``assay``, default
    the default assay), then to AnnData with anndata2ri.

    Parameters
    ----------
    path
        The ``.rds`` file.
    assay
        Seurat assay to read (default: the object's default assay). Ignored for a
        SingleCellExperiment.

    Returns
    -------
    AnnData with

    ``X``
        The normalised data (Seurat's ``data`` slot, an SCE's ``logcounts``), or the first assay
        when there is neither.
    ``layers[name]``
        Every other assay under its SCE name: ``counts`` (raw counts), ``scaledata`` when Seurat
        had scaled every gene.
    ``obs``
        The cell metadata (Seurat ``meta.data`` / SCE ``colData``); for a Seurat object,
        ``obs["ident"]`` holds the active identities (categorical, in level order).
    ``var``
        Feature metadata (SCE ``rowData``).
    ``obsm["X_pca"]``, ``obsm["X_tsne"]``, ``obsm["X_umap"]``, ...
        The reductions (cell embeddings), named the scanpy way.
    ``uns["rds"]``
        ``{"path", "class", "X"}``: where it came from and which assay ``X`` is.
    """
    path = _existing(path)
    ro, helpers = _r()
    try:
        import anndata2ri
    except ImportError as exc:  # pragma: no cover - the interop extra installs both
        raise _missing_extra(exc) from None
    from rpy2.rinterface_lib.embedded import RRuntimeError
    from rpy2.robjects.conversion import localconverter

    try:
        with _r_errors_not_echoed():
            res = helpers.rx2("read")(str(path), ro.NULL if assay is None else assay)
    except RRuntimeError as exc:
        raise InputError(f"Cannot read {path}: {_r_message(exc)}") from None
    kind = res.rx2("kind")[0]
    x_name = res.rx2("x")[0]
    with localconverter(ro.default_converter + anndata2ri.converter):
        adata = ro.conversion.get_conversion().rpy2py(res.rx2("sce"))
    adata.obs_names = adata.obs_names.astype(str)
    adata.var_names = adata.var_names.astype(str)
    if "ident" in adata.obs and adata.obs["ident"].dtype.name != "category":
        adata.obs["ident"] = adata.obs["ident"].astype(str).astype("category")
    adata.uns["rds"] = {"path": str(path), "class": kind, "X": x_name}
    return adata


def write_labels_rds(
    labels: AnnData | pd.DataFrame,
    rds: str | Path,
    out: str | Path,
    *,
    columns: list[str] | None = None,
    key: str = "cellscribe",
) -> Path:
    """Copy a Seurat or SingleCellExperiment ``.rds`` with cellscribe's results added.

    Parameters
    ----------
    labels
        An AnnData annotated by :func:`cellscribe.tl.annotate` (its ``obs`` and ``uns[key]``), or
        a DataFrame indexed by cell name.
    rds
        The original ``.rds`` (not modified).
    out
        Where to save the annotated copy (may equal ``rds`` to replace it).
    columns
        Columns of ``obs`` / the DataFrame to write; default those starting with ``f"{key}_"``
        (``cellscribe_label``, ``cellscribe_confidence``, ``cellscribe_lineage``).
    key
        Prefix of the default columns, and the name of the per-cluster results in R.

    Returns
    -------
    ``out``, having written into the object (cells matched by name; cells absent from
    ``labels`` get ``NA``):

    per-cell columns
        Seurat ``meta.data`` / SCE ``colData``: the ``columns``, categoricals as factors with
        the same levels.
    ``object@misc[[key]]`` (Seurat) or ``metadata(object)[[key]]`` (SCE)
        When ``labels`` is an AnnData with ``uns[key]``: ``clusters`` (a data.frame, one row per
        cluster: ``cluster, label, broad_lineage, confidence, title, explanation, bullets,
        supporting_markers, markers``), ``provenance`` and ``params``: the layout the cellscribe
        R package's ``annotate_seurat()`` writes.
    """
    import pandas as pd

    rds = _existing(rds)
    out = Path(out)
    if not out.parent.is_dir():
        raise InputError(f"The folder of {out} does not exist.")
    obs, misc = _labels_frame(labels, key)
    if columns is None:
        columns = [c for c in obs.columns if str(c).startswith(f"{key}_")]
    missing = [c for c in columns if c not in obs.columns]
    if missing:
        raise InputError(f"No column(s) {', '.join(map(repr, missing))} in the labels; "
                         f"columns: {', '.join(map(str, obs.columns)) or 'none'}.")
    if not columns and misc is None:
        raise InputError(f"Nothing to write: no {key}_* columns and no uns[{key!r}]. Run "
                         "cellscribe.tl.annotate(adata, ...) first, or pass columns=.")
    payload = {"cells": [str(c) for c in obs.index], "columns": {}, "misc": misc}
    for col in columns:
        series = obs[col]
        levels = None
        if isinstance(series.dtype, pd.CategoricalDtype):
            levels = [str(v) for v in series.cat.categories]
            series = series.astype(object)
        payload["columns"][str(col)] = {"values": [json_ready(v) for v in series], "levels": levels}

    ro, helpers = _r()
    from rpy2.rinterface_lib.embedded import RRuntimeError

    try:
        with _r_errors_not_echoed():
            matched = helpers.rx2("write")(str(rds), str(out), json.dumps(payload), key)[0]
    except RRuntimeError as exc:
        raise InputError(f"Cannot write labels into {rds}: {_r_message(exc)}") from None
    if int(matched) == 0:
        raise InputError(f"None of the {len(obs)} cell names of the labels is a cell of {rds}; "
                         "nothing was written. Were the cells renamed?")
    return out


# --------------------------------------------------------------------------- helpers


@cache
def _r() -> tuple[Any, Any]:
    """rpy2's robjects and the R helper functions (R starts once per process)."""
    try:
        import rpy2.robjects as ro
    except ImportError as exc:
        raise _missing_extra(exc) from None
    except Exception as exc:  # rpy2 raises various errors when R itself cannot start
        raise InputError(f"R could not be started through rpy2 ({exc}). Install R 4.2+ and "
                         "rpy2<3.6 (pip install 'cellscribe[interop]').") from None
    return ro, ro.r(_R_HELPERS)


@contextlib.contextmanager
def _r_errors_not_echoed() -> Iterator[None]:
    """R's own error text is not echoed to the console (rpy2 logs it as a warning): it is part of
    the InputError raised from the RRuntimeError, so it would be printed twice."""
    from rpy2.rinterface_lib import callbacks

    saved = callbacks.consolewrite_warnerror
    callbacks.consolewrite_warnerror = lambda text: log.debug("R: %s", text.rstrip())
    try:
        yield
    finally:
        callbacks.consolewrite_warnerror = saved


def _missing_extra(exc: ImportError) -> InputError:
    return InputError(f"Reading .rds files needs the interop extra ({exc.name} is missing): "
                      "pip install 'cellscribe[interop]' (rpy2<3.6 with R 4.2, anndata2ri).")


def _existing(path: str | Path) -> Path:
    path = Path(path).expanduser()
    if not path.is_file():
        raise InputError(f"File not found: {path}")
    return path.resolve()


def _labels_frame(labels: Any, key: str) -> tuple[pd.DataFrame, dict[str, Any] | None]:
    import pandas as pd

    if isinstance(labels, pd.DataFrame):
        return labels, None
    if type(labels).__name__ == "AnnData":
        misc = None
        if key in labels.uns and "clusters" in labels.uns[key]:
            table = annotations(labels, key=key).rename(columns={"explanation_markdown": "explanation"})
            misc = {
                "clusters": [{k: json_ready(v) for k, v in rec.items()} for rec in table.to_dict("records")],
                "provenance": json_ready(dict(labels.uns[key].get("provenance", {}))),
                "params": json_ready(dict(labels.uns[key].get("params", {}))),
            }
        return labels.obs, misc
    raise InputError(f"labels must be an AnnData or a pandas DataFrame indexed by cell; got {type(labels).__name__}.")


def _r_message(exc: Exception) -> str:
    text = str(exc).strip()
    return text.removeprefix("Error:").strip() or type(exc).__name__
