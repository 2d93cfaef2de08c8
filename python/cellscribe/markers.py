"""Marker genes per cluster: read, validate and select the top N.

Three inputs are accepted and all become a :class:`MarkerTable`:

* Seurat ``FindAllMarkers()`` output (a DataFrame or CSV with ``p_val, avg_log2FC, pct.1, pct.2,
  p_val_adj, cluster, gene``; Seurat 3's ``avg_logFC`` is accepted too);
* scanpy ``rank_genes_groups`` results stored in an AnnData;
* a plain mapping ``{cluster: [genes]}`` or a two-column table/CSV (``cluster, gene``), genes in
  order of importance.

Selection (documented defaults): positive markers only (``avg_log2FC > 0``), ranked by adjusted
p-value and then by fold change (Seurat's own order, and what GPTCelltype used), first
``top_n=10`` per cluster. ``min_log2fc``, ``min_pct`` and ``max_padj`` tighten the filter.
"""

from __future__ import annotations

import gzip
import io
import logging
import re
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from .errors import MarkerInputError
from .knowledge import genes

if TYPE_CHECKING:
    from anndata import AnnData

log = logging.getLogger(__name__)

DEFAULT_TOP_N = 10
SEURAT_COLUMNS = ("p_val", "avg_log2FC", "pct.1", "pct.2", "p_val_adj", "cluster", "gene")
#: Columns of ``sc.get.rank_genes_groups_df`` output and the Seurat columns they stand for.
SCANPY_EXPORT_COLUMNS = {"group": "cluster", "names": "gene", "logfoldchanges": "avg_log2FC",
                         "pvals_adj": "p_val_adj", "pvals": "p_val", "pct_nz_group": "pct.1",
                         "pct_nz_reference": "pct.2"}
#: Columns read from marker files as text, exactly as written (cluster "01" stays "01", "3.10" is
#: not "3.1").
TEXT_COLUMNS = ("cluster", "gene", "group", "names")
#: Missing-value words in the other columns of a marker file (pandas' own list).
NA_WORDS = ("", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN", "<NA>", "N/A",
            "NA", "NULL", "NaN", "None", "n/a", "nan", "null")
SPECIES = ("human", "mouse")

_ENSEMBL = re.compile(r"^ENS[A-Z]*G\d{6,}(\.\d+)?$")
#: GENCODE clone-based names (RP11-290F20.3, CTD-2006K23.1, AC092580.4): real transcripts that NCBI Gene
#: does not list under these names, so they are not reported as unknown.
_CLONE_BASED = re.compile(r"^(?:(?:RP\d+|CT[A-D]|XX[a-z]+)-[\w.]+|A[CLP]\d{6}\.\d+)$")
# Mouse symbols are capitalised (Cd3e, Ms4a1); human ones are upper case (CD3E). Human
# open-reading-frame names (C1orf112) are the known mixed-case exception.
_MOUSE_STYLE = re.compile(r"^[A-Z][a-z][a-z0-9]*(-[a-z0-9]+)?$|^[A-Z][a-z0-9]*\d[a-z][a-z0-9]*$")
_HUMAN_ORF = re.compile(r"^C\d+orf\d+$")


class MarkerWarning(UserWarning):
    """Marker input was usable but something in it was dropped or looks odd."""


@dataclass(frozen=True)
class MarkerTable:
    """Selected marker genes per cluster.

    Attributes
    ----------
    genes
        ``{cluster: [gene, ...]}``, genes in rank order, at most ``top_n`` each; clusters in
        natural order (numeric when all cluster names are numbers).
    species
        ``"human"`` or ``"mouse"``.
    source
        ``"seurat"``, ``"scanpy"`` or ``"mapping"``.
    stats
        The selected rows with their statistics (long format, Seurat column names), when the
        source had statistics; otherwise ``None``.
    dropped
        Clusters left without any marker after filtering, with the reason.
    """

    genes: dict[str, list[str]]
    species: str = "human"
    source: str = "mapping"
    stats: pd.DataFrame | None = None
    dropped: dict[str, str] = field(default_factory=dict)

    @property
    def clusters(self) -> list[str]:
        return list(self.genes)

    def __len__(self) -> int:
        return len(self.genes)

    def to_frame(self) -> pd.DataFrame:
        """Long table ``cluster, rank, gene`` (plus statistics when known)."""
        if self.stats is not None:
            return self.stats.copy()
        rows = [(c, i + 1, g) for c, gs in self.genes.items() for i, g in enumerate(gs)]
        return pd.DataFrame(rows, columns=["cluster", "rank", "gene"])


# --------------------------------------------------------------------------- entry point


def read_markers(
    markers: Any,
    *,
    species: str = "human",
    top_n: int = DEFAULT_TOP_N,
    min_log2fc: float = 0.0,
    min_pct: float | None = None,
    max_padj: float | None = None,
    key: str = "rank_genes_groups",
    gene_symbols: str | None = None,
) -> MarkerTable:
    """Turn any supported marker input into a validated :class:`MarkerTable`.

    Parameters
    ----------
    markers
        A :class:`MarkerTable` (returned as is), a Seurat ``FindAllMarkers`` DataFrame, a two-column
        ``cluster, gene`` DataFrame, a ``{cluster: [genes]}`` mapping, an AnnData holding
        ``rank_genes_groups`` results, or a path to a ``.csv``/``.tsv``/``.h5ad`` file.
    species
        ``"human"`` or ``"mouse"``; used to check gene-symbol style.
    top_n
        Markers kept per cluster.
    min_log2fc
        Keep rows with ``avg_log2FC > min_log2fc`` (statistics tables only). Default 0: positive
        markers only.
    min_pct
        Keep rows with ``pct.1 >= min_pct``; ``None`` applies no filter.
    max_padj
        Keep rows with ``p_val_adj <= max_padj``; ``None`` applies no filter.
    key
        ``adata.uns`` key of the ``rank_genes_groups`` results (AnnData input).
    gene_symbols
        Column of ``adata.var`` with gene symbols, when ``var_names`` are not symbols.

    Returns
    -------
    The validated marker table. Raises :class:`~cellscribe.errors.MarkerInputError` with a message
    naming the problem and the fix; recoverable oddities (duplicated genes, clusters emptied by
    the filters) are reported as :class:`MarkerWarning`.
    """
    if isinstance(markers, MarkerTable):
        return markers
    _check_species(species)
    if not isinstance(top_n, (int, np.integer)) or top_n < 1:
        raise MarkerInputError(f"top_n must be a positive integer, got {top_n!r}.")
    filters = dict(top_n=int(top_n), min_log2fc=min_log2fc, min_pct=min_pct, max_padj=max_padj)

    if isinstance(markers, (str, Path)):
        markers = _read_path(Path(markers))
    if _is_anndata(markers):
        return from_scanpy(markers, species=species, key=key, gene_symbols=gene_symbols, **filters)
    if isinstance(markers, pd.DataFrame):
        if {"group", "names"} <= set(markers.columns) and "cluster" not in markers.columns:
            # sc.get.rank_genes_groups_df() output: scanpy's names for Seurat's columns
            markers = markers.rename(columns=SCANPY_EXPORT_COLUMNS)
            if "avg_log2FC" not in markers.columns:
                return from_long(markers, species=species, top_n=int(top_n))
        if _looks_like_seurat(markers):
            return from_seurat(markers, species=species, **filters)
        return from_long(markers, species=species, top_n=int(top_n))
    if isinstance(markers, Mapping):
        return from_mapping(markers, species=species, top_n=int(top_n))
    raise MarkerInputError(
        f"Cannot read markers from a {type(markers).__name__}. Pass Seurat FindAllMarkers() output "
        "(DataFrame or CSV), an AnnData with rank_genes_groups results, or a {cluster: [genes]} mapping."
    )


# --------------------------------------------------------------------------- readers


def from_seurat(
    df: pd.DataFrame,
    *,
    species: str = "human",
    top_n: int = DEFAULT_TOP_N,
    min_log2fc: float = 0.0,
    min_pct: float | None = None,
    max_padj: float | None = None,
) -> MarkerTable:
    """Select markers from a Seurat ``FindAllMarkers`` table (see :func:`read_markers`).

    Rows are ranked by ``p_val_adj`` (ascending) and then ``avg_log2FC`` (descending) when the
    table has adjusted p-values, by ``avg_log2FC`` alone otherwise.
    """
    df = df.rename(columns={"avg_logFC": "avg_log2FC"})
    required = ("cluster", "gene", "avg_log2FC")
    missing = [c for c in required if c not in df.columns]
    if missing:
        raise MarkerInputError(
            f"The marker table is missing column(s) {', '.join(map(repr, missing))}. Expected Seurat "
            f"FindAllMarkers() output with columns {', '.join(SEURAT_COLUMNS)}; found "
            f"{', '.join(map(str, df.columns)) or 'no columns'}."
        )
    clusters = _cluster_order(df["cluster"].dropna())
    df = _check_rows(df)
    numeric = [c for c in ("avg_log2FC", "p_val_adj", "pct.1") if c in df.columns]
    bad = df[numeric].apply(pd.to_numeric, errors="coerce").isna().any(axis=1)
    if bad.any():
        _warn(f"Dropped {int(bad.sum())} marker row(s) with missing or non-numeric statistics "
              f"(first: gene {df.loc[bad, 'gene'].iloc[0]!r}).")
        df = df.loc[~bad]
    df = df.astype({c: float for c in numeric})
    by, ascending = (["p_val_adj", "avg_log2FC"], [True, False]) if "p_val_adj" in df else (["avg_log2FC"], [False])
    df = df.sort_values(by, ascending=ascending, kind="stable")
    return _select(df, clusters, species=species, source="seurat", top_n=top_n,
                   min_log2fc=min_log2fc, min_pct=min_pct, max_padj=max_padj)


def from_scanpy(
    adata: AnnData,
    *,
    species: str = "human",
    key: str = "rank_genes_groups",
    gene_symbols: str | None = None,
    top_n: int = DEFAULT_TOP_N,
    min_log2fc: float = 0.0,
    min_pct: float | None = None,
    max_padj: float | None = None,
) -> MarkerTable:
    """Select markers from ``sc.tl.rank_genes_groups`` results in ``adata.uns[key]``.

    Genes keep scanpy's rank (by score); ``logfoldchanges`` plays the role of ``avg_log2FC``
    and ``pct_nz_group`` (with ``pts=True``) the role of ``pct.1``.
    """
    if key not in adata.uns:
        raise MarkerInputError(
            f"adata.uns has no {key!r}: run sc.tl.rank_genes_groups(adata, groupby='leiden') first, "
            "or pass key= with the name you used."
        )
    import scanpy as sc

    if gene_symbols is not None and gene_symbols not in adata.var:
        raise MarkerInputError(f"gene_symbols={gene_symbols!r} is not a column of adata.var "
                               f"(columns: {', '.join(map(str, adata.var.columns)) or 'none'}).")
    groups = [str(g) for g in adata.uns[key]["names"].dtype.names]
    df = sc.get.rank_genes_groups_df(adata, group=None, key=key, gene_symbols=gene_symbols)
    if "group" not in df.columns:  # a single group comes back without the column
        df.insert(0, "group", groups[0])
    out = pd.DataFrame({
        "cluster": df["group"].astype(str),
        "gene": df[gene_symbols or "names"].astype(str),
        # Methods without fold changes (e.g. logreg) rank by score alone.
        "avg_log2FC": df["logfoldchanges"].fillna(np.inf) if "logfoldchanges" in df else np.inf,
    })
    for src, dst in (("pvals", "p_val"), ("pvals_adj", "p_val_adj"),
                     ("pct_nz_group", "pct.1"), ("pct_nz_reference", "pct.2")):
        if src in df:
            out[dst] = df[src].to_numpy()
    if min_pct is not None and "pct.1" not in out:
        raise MarkerInputError("min_pct was given but rank_genes_groups was run without pts=True.")
    if max_padj is not None and "p_val_adj" not in out:
        raise MarkerInputError("max_padj was given but the rank_genes_groups results have no p-values.")
    return _select(_check_rows(out), groups, species=species, source="scanpy", top_n=top_n,
                   min_log2fc=min_log2fc, min_pct=min_pct, max_padj=max_padj)


def _select(df: pd.DataFrame, clusters: list[str], *, species: str, source: str, top_n: int,
            min_log2fc: float, min_pct: float | None, max_padj: float | None) -> MarkerTable:
    """Filter a ranked long table and keep the first ``top_n`` genes of each cluster."""
    if max_padj is not None and "p_val_adj" not in df:
        raise MarkerInputError("max_padj was given but the marker table has no 'p_val_adj' column.")
    if min_pct is not None and "pct.1" not in df:
        raise MarkerInputError("min_pct was given but the marker table has no 'pct.1' column.")
    keep = df["avg_log2FC"] > min_log2fc
    if min_pct is not None:
        keep &= df["pct.1"] >= min_pct
    if max_padj is not None:
        keep &= df["p_val_adj"] <= max_padj
    selected = _dedupe(df.loc[keep]).groupby("cluster", sort=False).head(top_n)
    genes: dict[str, list[str]] = {}
    dropped: dict[str, str] = {}
    present = set(df["cluster"])
    for cl in clusters:
        gs = selected.loc[selected["cluster"] == cl, "gene"].tolist()
        if gs:
            genes[cl] = gs
        elif cl not in present:
            dropped[cl] = "none of its rows has usable statistics (missing or non-numeric p-values or fold changes)"
        else:
            dropped[cl] = _filter_description(min_log2fc, min_pct, max_padj)
    _finish_checks(genes, dropped, species)
    order = {cl: i for i, cl in enumerate(genes)}
    stats = selected[selected["cluster"].isin(order)].copy()
    _check_significance(stats)
    stats["rank"] = stats.groupby("cluster", sort=False).cumcount() + 1
    stats = stats.sort_values(["cluster", "rank"], key=lambda s: s.map(order) if s.name == "cluster" else s)
    return MarkerTable(genes=genes, species=species, source=source,
                       stats=stats.reset_index(drop=True), dropped=dropped)


def from_mapping(
    mapping: Mapping[Any, Sequence[str] | str], *, species: str = "human", top_n: int = DEFAULT_TOP_N
) -> MarkerTable:
    """Take ``{cluster: [genes]}`` (genes in rank order; a comma-separated string also works)."""
    if not mapping:
        raise MarkerInputError("The marker mapping is empty: give at least one cluster with its genes.")
    genes: dict[str, list[str]] = {}
    dropped: dict[str, str] = {}
    for cl, gs in mapping.items():
        if isinstance(gs, str):
            gs = [g for g in re.split(r"[,;\s]+", gs) if g]
        gs = [str(g).strip() for g in gs if g is not None and str(g).strip() and str(g) != "nan"]
        gs = _dedupe_list(str(cl), gs)
        if gs:
            genes[str(cl)] = gs[:top_n]
        else:
            dropped[str(cl)] = "no genes given"
    _finish_checks(genes, dropped, species)
    return MarkerTable(genes=genes, species=species, source="mapping", dropped=dropped)


def from_long(df: pd.DataFrame, *, species: str = "human", top_n: int = DEFAULT_TOP_N) -> MarkerTable:
    """Take a two-column ``cluster, gene`` table, genes in rank order within each cluster."""
    cols = {c.lower(): c for c in map(str, df.columns)}
    if "cluster" in cols and "gene" in cols:
        df = df[[cols["cluster"], cols["gene"]]].set_axis(["cluster", "gene"], axis=1)
    else:
        raise MarkerInputError(
            "The marker table is missing column(s) 'cluster' and 'gene'. Give Seurat FindAllMarkers() "
            f"output ({', '.join(SEURAT_COLUMNS)}) or a two-column table cluster, gene; found "
            f"{', '.join(map(str, df.columns)) or 'no columns'}."
        )
    df = _check_rows(df)
    mapping = {cl: df.loc[df["cluster"] == cl, "gene"].tolist() for cl in _cluster_order(df["cluster"])}
    return from_mapping(mapping, species=species, top_n=top_n)


# --------------------------------------------------------------------------- helpers


def _read_path(path: Path) -> Any:
    if not path.exists():
        raise MarkerInputError(f"Marker file not found: {path}")
    suffix = "".join(path.suffixes[-2:]).lower() if path.suffix == ".gz" else path.suffix.lower()
    if suffix == ".h5ad":
        import anndata

        return anndata.read_h5ad(path)
    if suffix in (".csv", ".tsv", ".txt", ".csv.gz", ".tsv.gz", ".txt.gz"):
        raw = path.read_bytes()
        if suffix.endswith(".gz"):
            try:
                raw = gzip.decompress(raw)
            except (OSError, EOFError) as exc:
                raise MarkerInputError(f"{path} is not a readable gzip file ({exc}).") from None
        text = _decode(raw, path)
        header = text.lstrip().split("\n", 1)[0]
        sep = "\t" if ".tsv" in suffix else _separator(header)
        try:
            # names are text as written ("NA", "null", "None" are cluster IDs or genes, not missing);
            # pandas' missing-value words apply to the numeric columns only
            names = pd.read_csv(io.StringIO(text), sep=sep, nrows=0).columns
            df = pd.read_csv(io.StringIO(text), sep=sep, dtype={c: str for c in TEXT_COLUMNS}, keep_default_na=False,
                             na_values={c: list(NA_WORDS) for c in names if c not in TEXT_COLUMNS})
        except pd.errors.EmptyDataError:
            raise MarkerInputError(f"The marker file {path} is empty.") from None
        except pd.errors.ParserError as exc:
            raise MarkerInputError(f"{path} is not a readable {'tab' if sep == chr(9) else repr(sep)}-separated "
                                   f"table ({' '.join(str(exc).split())}).") from None
        # Seurat's write.csv(FindAllMarkers(...)) adds an unnamed row-name column.
        return df.drop(columns=[c for c in df.columns if str(c).startswith("Unnamed:")])
    raise MarkerInputError(
        f"Unknown marker file type {path.suffix!r} ({path.name}); use .csv, .tsv or .h5ad."
    )


def _decode(raw: bytes, path: Path) -> str:
    """The text of a marker file: UTF-8 (with or without a BOM), UTF-16 with a BOM (Excel's
    "Unicode text"), else Windows-1252, or Latin-1 (which decodes any bytes), with a warning."""
    if raw.startswith((b"\xff\xfe", b"\xfe\xff")):
        return raw.decode("utf-16")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        where = exc.start
    try:
        text, encoding = raw.decode("cp1252"), "cp1252"
    except UnicodeDecodeError:
        text, encoding = raw.decode("latin-1"), "latin-1"
    _warn(f"{path.name} is not UTF-8 (byte {where}); read it as {encoding}. Save it as UTF-8 to be sure "
          "gene and cluster names are read as written.")
    return text


def _separator(header: str) -> str:
    """The separator the header line uses: comma, tab or semicolon (whatever the file is named)."""
    counts = {sep: header.count(sep) for sep in (",", "\t", ";")}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else ","


def _is_anndata(obj: Any) -> bool:
    return type(obj).__name__ == "AnnData" and hasattr(obj, "uns")


def _looks_like_seurat(df: pd.DataFrame) -> bool:
    return bool({"avg_log2FC", "avg_logFC", "p_val_adj"} & set(df.columns))


def _check_species(species: str) -> None:
    if species not in SPECIES:
        raise MarkerInputError(f"species must be one of {', '.join(SPECIES)}; got {species!r}.")


def _check_rows(df: pd.DataFrame) -> pd.DataFrame:
    if df.empty:
        raise MarkerInputError(
            "The marker table is empty (0 rows). Did FindAllMarkers()/rank_genes_groups find no markers? "
            "Check the clustering, or relax the test thresholds."
        )
    for col in ("cluster", "gene"):
        missing = df[col].isna() | (df[col].astype(str).str.strip() == "")
        if missing.any():
            rows = ", ".join(str(i + 1) for i in np.flatnonzero(missing.to_numpy())[:5])
            raise MarkerInputError(
                f"{int(missing.sum())} marker row(s) have an empty {col!r} (row(s) {rows}). "
                "Remove them or fill in the value."
            )
    df = df.copy()
    df["cluster"] = df["cluster"].astype(str)
    df["gene"] = df["gene"].astype(str).str.strip()
    return df


def _cluster_order(clusters: pd.Series) -> list[str]:
    if isinstance(clusters.dtype, pd.CategoricalDtype):
        present = set(clusters.astype(str))
        return [str(c) for c in clusters.cat.categories if str(c) in present]
    uniq = list(dict.fromkeys(clusters.astype(str)))
    try:
        return sorted(uniq, key=float)
    except ValueError:
        return uniq


def _dedupe(df: pd.DataFrame) -> pd.DataFrame:
    dup = df.duplicated(["cluster", "gene"], keep="first")
    if dup.any():
        first = df.loc[dup].iloc[0]
        _warn(f"Dropped {int(dup.sum())} duplicated gene(s) within a cluster (first: {first['gene']!r} "
              f"in cluster {first['cluster']!r}); kept the best-ranked occurrence.")
    return df.loc[~dup]


def _dedupe_list(cluster: str, genes: list[str]) -> list[str]:
    uniq = list(dict.fromkeys(genes))
    if len(uniq) < len(genes):
        dups = sorted({g for g in genes if genes.count(g) > 1})
        _warn(f"Cluster {cluster!r} lists gene(s) more than once ({', '.join(dups[:5])}); kept the first.")
    return uniq


def _filter_description(min_log2fc: float, min_pct: float | None, max_padj: float | None) -> str:
    parts = [f"avg_log2FC > {min_log2fc:g}"]
    if min_pct is not None:
        parts.append(f"pct.1 >= {min_pct:g}")
    if max_padj is not None:
        parts.append(f"p_val_adj <= {max_padj:g}")
    return "no marker passes " + " and ".join(parts)


#: A cluster none of whose selected markers has an adjusted p-value at or below this is reported.
SIGNIFICANT_PADJ = 0.05


def _check_significance(stats: pd.DataFrame) -> None:
    """Warn about clusters whose markers are not significant (random data, over-clustering): a
    label drawn from them rests on noise."""
    if "p_val_adj" not in stats or stats.empty:
        return
    best = stats.groupby("cluster", sort=False)["p_val_adj"].min()
    weak = best[best > SIGNIFICANT_PADJ]
    if len(weak):
        _warn(f"{len(weak)} of {len(best)} cluster(s) have no marker with adjusted p <= {SIGNIFICANT_PADJ:g} "
              f"({', '.join(f'{c}: best {p:.2g}' for c, p in list(weak.items())[:5])}): their labels rest on "
              "noise. Check the clustering (fewer clusters, lower resolution) or whether the data has structure.")


def _finish_checks(genes: dict[str, list[str]], dropped: dict[str, str], species: str) -> None:
    if not genes:
        reasons = "; ".join(sorted(set(dropped.values()))) or "no clusters"
        raise MarkerInputError(
            f"No cluster has a usable marker ({reasons}). Relax the filters (min_log2fc, min_pct, "
            "max_padj) or check that the table holds positive markers (FindAllMarkers(only.pos = TRUE))."
        )
    if dropped:
        _warn(f"Skipped {len(dropped)} cluster(s) with no usable markers: "
              + "; ".join(f"{c} ({r})" for c, r in list(dropped.items())[:10]))
    _check_gene_names([g for gs in genes.values() for g in gs], species)


def _check_gene_names(all_genes: list[str], species: str) -> None:
    n = len(all_genes)
    ensembl = [g for g in all_genes if _ENSEMBL.match(g)]
    if len(ensembl) > n / 2:
        raise MarkerInputError(
            f"{len(ensembl)} of {n} markers look like Ensembl IDs (e.g. {ensembl[0]}), not gene symbols. "
            "Language models and marker databases know symbols: map the IDs to symbols first "
            "(for AnnData, pass gene_symbols='<adata.var column with symbols>')."
        )
    if ensembl:
        _warn(f"{len(ensembl)} marker(s) look like Ensembl IDs (e.g. {ensembl[0]}); they are passed as is.")
    mouse_like = [g for g in all_genes if _MOUSE_STYLE.match(g) and not _HUMAN_ORF.match(g)]
    if species == "human" and len(mouse_like) > n / 2:
        raise MarkerInputError(
            f"{len(mouse_like)} of {n} markers are mouse-style symbols (e.g. {', '.join(mouse_like[:3])}) "
            "but species='human'. Pass species='mouse' if this is mouse data."
        )
    if species == "mouse":
        upper = [g for g in all_genes if g.isupper() and len(g) > 2 and not _ENSEMBL.match(g)]
        if len(upper) > n / 2:
            _warn(f"species='mouse' but {len(upper)} of {n} markers are upper-case human-style "
                  f"symbols (e.g. {', '.join(upper[:3])}); check the species.")
    if species == "human":
        _check_known([g for g in all_genes if not (_ENSEMBL.match(g) or _CLONE_BASED.match(g))])


def _check_known(symbols: list[str]) -> None:
    """Warn about human symbols NCBI Gene does not know (typos, retired or made-up names).

    Uses :mod:`cellscribe.knowledge.genes` (its index is built once per cache, ~8 s); when the
    Bioconductor gene databases are not installed the check is skipped with a debug log line.
    Mouse symbols are not checked: the gene index holds human genes only.
    """
    try:
        unknown = genes.unknown(symbols)
    except genes.GeneKnowledgeUnavailableError as exc:
        log.debug("unknown-gene check skipped: %s", exc)
        return
    if unknown:
        _warn(f"{len(unknown)} marker(s) are not human gene symbols known to NCBI Gene "
              f"({', '.join(unknown[:8])}{', ...' if len(unknown) > 8 else ''}): check for typos, "
              "retired names or the wrong species. They are used as they are.")


def _warn(message: str) -> None:
    warnings.warn(message, MarkerWarning, stacklevel=3)
