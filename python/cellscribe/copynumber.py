"""Malignant clusters from copy-number changes inferred from expression.

Tumour cells carry gains and losses of whole chromosome arms; their expression, averaged over a
hundred neighbouring genes, rises and falls with them, while normal cells of any type stay flat.
:func:`copy_number` measures that per cluster, the way inferCNV does (with infercnvpy, on each
cluster's mean log expression):

1. **Reference**: the clusters whose cells express ``PTPRC`` (CD45) well: immune cells, which are not the
   tumour in a solid cancer. Without such a cluster there is nothing to compare with and nothing is
   called (the same when the data are not human, or fewer than :data:`MIN_GENES` genes have a place
   on the autosomes). Blood cancers are therefore never called: their tumour cells are the
   reference. Say less rather than something false.
2. **Changes**: the inferred copy-number change of every gene (windows of :data:`WINDOW` genes along
   each autosome, against the reference clusters' range), then its median over each chromosome arm.
   Sex chromosomes are left out (patients differ in sex, not in tumour), and so are the loci whose
   genes only immune cells express in clusters (:data:`IMMUNE_LOCI`: MHC, immunoglobulin and T-cell
   receptor genes), which would otherwise look like losses in every non-immune cluster.
3. **Call**: a non-reference cluster of at least :data:`MIN_CELLS` cells with at least
   :data:`MIN_ARMS` arms changed by :data:`ARM_CHANGE` or more is malignant (an oligodendroglioma's
   ``1p`` and ``19q`` losses); ``score`` is the mean absolute change over the genome's windows.

:func:`malignant_row` turns a cluster's annotation (a result row) into the malignant cell's: the
label ``malignant cell`` (CL:0001064), the normal type the markers resemble kept as the rival,
bullets written from the measurements (no model), and a caveat that copy number was inferred.
"""

from __future__ import annotations

import io
import logging
from collections.abc import Sequence
from contextlib import redirect_stderr
from dataclasses import dataclass

import anndata as ad
import infercnvpy
import numpy as np
import pandas as pd
import scanpy as sc
import scipy.sparse as sp

from .answers import render_markdown
from .case import join, low_information
from .engine.explanation import KNOWLEDGE
from .io import matrix_kind
from .knowledge import genes
from .knowledge.labels import MALIGNANT_CELL

log = logging.getLogger(__name__)

#: Median change of an arm's genes (log expression) that counts as a gain (or, negative, a loss), and
#: how many changed arms make a cluster malignant. In the bundled data, each of the six malignant
#: Leiden clusters of the oligodendroglioma (``cellscribe run oligodendroglioma``) has 2-5 changed
#: arms (1p and 19q lost in all six, 7 gained in one); no arm of a normal cluster changes by 0.1 (its
#: oligodendrocytes against its microglia and the reverse, the T-cell clusters of wu2020 against
#: their largest), once lineage genes and the immune loci are left out.
ARM_CHANGE = 0.1
MIN_ARMS = 2
#: Genes whose mean log expression in some cluster differs from the reference clusters' by more than
#: this are lineage genes, not copy number (one copy lost or gained moves a gene by about 0.4-0.7):
#: they are left out, so that a cluster of type-specific genes does not look like a gain or loss.
LINEAGE_CHANGE = 1.5
#: Arms with fewer placed genes than this are not judged (a window is 100 genes).
MIN_ARM_GENES = 100
#: Genes per window of the running mean along each chromosome (infercnvpy's default).
WINDOW = 100
#: Fewer genes with a place on the chromosomes than this: no call (windows too wide to mean much).
MIN_GENES = 2000
#: Clusters smaller than this are never called.
MIN_CELLS = 5
#: The reference gene (PTPRC, CD45), and the share of a cluster's cells expressing it and its mean
#: log expression that make the cluster a reference (immune) cluster. Immune clusters in the data we
#: have: share 0.36-1.0, mean 0.50-2.7; deep full-length data detect PTPRC in up to 42 % of the
#: cells of non-immune lines (IMR90 fibroblasts, neural progenitors) but at a mean of 0.03 at most.
REFERENCE_GENE = "PTPRC"
REFERENCE_SHARE = 0.3
REFERENCE_MEAN = 0.3
#: Gene clusters expressed by immune cells only (chromosome, start, end in GRCh38 base pairs): the
#: MHC, the immunoglobulin heavy, kappa and lambda loci, the T-cell receptor alpha and beta loci.
IMMUNE_LOCI = (("chr6", 28_500_000, 33_500_000), ("chr14", 105_500_000, 107_000_000),
               ("chr2", 88_800_000, 90_300_000), ("chr22", 22_000_000, 23_000_000),
               ("chr14", 21_600_000, 22_600_000), ("chr7", 142_200_000, 142_900_000))
#: Confidence of a malignant call. Not fitted: every malignant cluster of the bundled
#: oligodendroglioma (6 of 6) and no normal group of ``benchmarks/bench_copynumber.py`` (0 of 21:
#: pancreas, stem cells, fibroblasts, ...) is called; 0.8 is below the (6 + 1) / (6 + 2) such a
#: record supports. The price is sensitivity: none of seven cancer cell lines is called.
CONFIDENCE = 0.8
#: The caveat every malignant call carries.
CAVEAT = ("Copy-number changes are inferred from expression (infercnvpy, windows of 100 genes against the "
          "PTPRC-expressing clusters); confirm with genotyping or a matched normal sample.")


@dataclass(frozen=True)
class ClusterCopyNumber:
    """The copy-number measurement of one cluster (a row of :func:`copy_number`'s table)."""

    cluster: str
    n_cells: int
    reference: bool
    score: float
    malignant: bool
    gains: tuple[str, ...]
    losses: tuple[str, ...]


def copy_number(adata: ad.AnnData, groupby: str, *, species: str = "human", gene_symbols: str | None = None,
                reference: Sequence[str] | None = None) -> pd.DataFrame | None:
    """Per-cluster copy-number scores and malignant calls, or ``None`` when no call can be made.

    Parameters
    ----------
    adata
        Cells with log-normalised expression in ``adata.raw`` (preferred, when present) or
        ``adata.X``; counts (or TPM) are normalised per cell and log-transformed first. Gene places
        come from ``var`` columns ``chromosome``/``start``/``end`` when present, else from NCBI
        Gene (:func:`cellscribe.knowledge.genes.positions`).
    groupby
        Column of ``adata.obs`` with the clusters.
    species
        Only ``"human"`` is measured (the gene places are human).
    gene_symbols
        Column of ``var`` with gene symbols when ``var_names`` are not symbols.
    reference
        The clusters known to be normal, to compare with; by default those expressing
        :data:`REFERENCE_GENE` well (immune cells).

    Returns
    -------
    A table indexed by cluster (as text) with the fields of :class:`ClusterCopyNumber`; ``None``
    (and the reason logged) for other species, too few placed genes, scaled data or no reference.
    """
    if species != "human":
        log.info("copy number: not measured for %s data (gene places are human)", species)
        return None
    matrix, names = _log_expression(adata, gene_symbols)
    if matrix is None:
        log.info("copy number: not measured (the expression is scaled or has negative values)")
        return None
    labels, inverse = np.unique(adata.obs[groupby].astype(str).to_numpy(), return_inverse=True)
    n_cells = np.bincount(inverse, minlength=len(labels))
    cells = np.arange(len(inverse))
    groups = sp.diags(1.0 / n_cells) @ sp.csr_matrix((np.ones(len(cells)), (inverse, cells)),
                                                      shape=(len(labels), len(cells)))
    means = groups @ matrix
    means = pd.DataFrame(means.toarray() if sp.issparse(means) else np.asarray(means), index=labels, columns=names)
    share = pd.Series(0.0, index=labels)
    if REFERENCE_GENE in names:
        share[:] = groups @ (matrix[:, names.index(REFERENCE_GENE)].toarray().ravel() > 0)
    return copy_number_of_clusters(means, pd.Series(n_cells, index=labels), share, places=_own_places(adata, names),
                                   reference=reference)


def copy_number_of_clusters(means: pd.DataFrame, n_cells: pd.Series, reference_share: pd.Series, *,
                            places: pd.DataFrame | None = None, reference: Sequence[str] | None = None
                            ) -> pd.DataFrame | None:
    """:func:`copy_number` from each cluster's mean expression (what a Seurat object sends).

    Parameters
    ----------
    means
        Mean log-normalised expression, clusters (index, as text) by genes (columns, symbols).
    n_cells
        Cells per cluster.
    reference_share
        Share of each cluster's cells in which :data:`REFERENCE_GENE` is detected.
    places
        ``chromosome``/``start``/``end`` per gene when the data bring them (else NCBI Gene's).
    reference
        As in :func:`copy_number` (then ``reference_share`` is not used).
    """
    means = means.loc[:, ~means.columns.duplicated()]
    means.index = means.index.astype(str)
    places = _places(list(means.columns), places)
    if len(places) < MIN_GENES:
        log.info("copy number: not measured (%d genes have a place on the autosomes; %d needed)",
                 len(places), MIN_GENES)
        return None
    labels = means.index.to_numpy()
    if reference is not None:
        reference = np.isin(labels, [str(r) for r in reference])
    else:
        level = means[REFERENCE_GENE] if REFERENCE_GENE in means.columns else pd.Series(0.0, index=means.index)
        reference = ((reference_share.reindex(labels).fillna(0.0) >= REFERENCE_SHARE)
                     & (level.reindex(labels).fillna(0.0) >= REFERENCE_MEAN)).to_numpy()
    if not reference.any():
        log.info("copy number: not measured (no cluster expresses %s: no immune reference)", REFERENCE_GENE)
        return None
    values = means[places.index].to_numpy(dtype=float)
    lineage = np.abs(values - values[reference].mean(axis=0)).max(axis=0) > LINEAGE_CHANGE
    places, values = places[~lineage], values[:, ~lineage]
    pseudo = ad.AnnData(values, obs=pd.DataFrame({"cluster": labels}, index=labels), var=places.copy())
    with redirect_stderr(io.StringIO()):  # infercnvpy's progress bar for one chunk would only be noise
        infercnvpy.tl.infercnv(pseudo, reference_key="cluster", reference_cat=list(labels[reference]),
                               window_size=WINDOW, calculate_gene_values=True, exclude_chromosomes=None, n_jobs=1)
    cnv = pseudo.obsm["X_cnv"]
    cnv = cnv.toarray() if sp.issparse(cnv) else np.asarray(cnv)
    score = np.abs(cnv).mean(axis=1)
    arms = _arm_medians(pseudo.layers["gene_values_cnv"], places["arm"].to_numpy(), labels)
    sizes = n_cells.reindex(labels).fillna(0).astype(int).to_numpy()
    rows = []
    for i, label in enumerate(labels):
        arm = arms.loc[label]
        gains = tuple(arm[arm >= ARM_CHANGE].sort_values(ascending=False).index)
        losses = tuple(arm[arm <= -ARM_CHANGE].sort_values().index)
        malignant = bool(not reference[i] and sizes[i] >= MIN_CELLS and len(gains) + len(losses) >= MIN_ARMS)
        rows.append(ClusterCopyNumber(
            cluster=label, n_cells=int(sizes[i]), reference=bool(reference[i]), score=round(float(score[i]), 4),
            malignant=malignant, gains=gains, losses=losses).__dict__)
    return pd.DataFrame(rows).set_index("cluster", drop=False)


def relabel(results: pd.DataFrame, calls: pd.DataFrame) -> pd.DataFrame:
    """``results`` (one row per cluster) with the clusters that ``calls`` finds malignant relabelled
    by :func:`malignant_row`; other rows, the columns and ``attrs`` unchanged."""
    malignant = calls.index[calls["malignant"]]
    if malignant.empty:
        return results
    records = [malignant_row(r, calls.loc[str(r["cluster"])]) if str(r["cluster"]) in malignant else r
               for r in results.to_dict("records")]
    out = pd.DataFrame.from_records(records, columns=results.columns)
    out.attrs = dict(results.attrs)
    return out


def malignant_row(row: dict, call: pd.Series | dict) -> dict:
    """The result row of a cluster called malignant: ``row`` (the normal type's annotation) relabelled.

    The label becomes ``malignant cell`` (CL:0001064) with confidence :data:`CONFIDENCE`; the
    normal type the markers resemble becomes the rival and the first candidate after it; the
    three bullets are written from the copy-number measurement and the markers (no model), and
    :data:`CAVEAT` is added to the caveats. ``chosen_by`` is ``"copy number"``.
    """
    markers = list(row.get("markers") or [])
    evidence = list(row.get("evidence_genes") or [])
    # the markers' own label is a lineage only when some marker is well recorded for it and the
    # markers are not mostly low-information genes
    resembles = row.get("label") if evidence and low_information(markers)[0] < 0.5 else None
    candidates = ["malignant cell", *[c for c in (row.get("candidates") or []) if c != "malignant cell"]][:5]
    out = {**row, "label": "malignant cell", "cl_id": MALIGNANT_CELL, "cl_name": "malignant cell",
           "broad_lineage": "malignant cell", "confidence": CONFIDENCE, "chosen_by": "copy number",
           "rival": resembles, "candidates": candidates, "caveats": [*(row.get("caveats") or []), CAVEAT],
           "evidence_genes": evidence if resembles else [], "supporting_markers": []}
    if row.get("bullets"):  # explanations were asked for: the model's, about the normal type, are replaced
        title = "Malignant cell"
        bullets = [_change_bullet(call), _lineage_bullet(resembles, evidence, markers), _reference_bullet()]
        out |= {"title": title, "bullets": bullets, "explanation_markdown": render_markdown(title, bullets),
                "bullet_sources": [KNOWLEDGE] * len(bullets)}
    if "case_markdown" in row:
        out["case_markdown"] = _case(call, row.get("label"), resembles, row.get("case_markdown"))
    return out


def _change_bullet(call: pd.Series | dict) -> str:
    arms = []
    if call["losses"]:
        arms.append("losses of " + join(list(call["losses"])))
    if call["gains"]:
        arms.append("gains of " + join(list(call["gains"])))
    return (f"Expression along the chromosomes shows whole-arm copy-number changes: {' and '.join(arms)} "
            f"(median change of the arm's genes {ARM_CHANGE} or more); normal cells do not carry them.")


def _lineage_bullet(resembles: str | None, evidence: list[str], markers: list[str]) -> str:
    share, classes = low_information(markers)
    if share >= 0.5:
        return (f"Its top markers are mostly {join(classes[:2])} genes, which name no lineage, so the "
                f"normal type these cells came from is not clear from the markers.")
    if resembles and evidence:
        return (f"Its markers ({join(evidence[:3])}) resemble those of the {resembles}, the likeliest "
                f"lineage of the tumour cells, but the copy-number changes say they are not normal {resembles}s.")
    return "Its markers match no normal type well, as expected of tumour cells."


def _reference_bullet() -> str:
    return (f"The changes are measured against the clusters that express {REFERENCE_GENE} (CD45), immune "
            f"cells that are not the tumour; copy number inferred from expression should be confirmed by "
            f"genotyping.")


def _case(call: pd.Series | dict, markers_label: str | None, resembles: str | None, normal_case: str | None
          ) -> str:
    lines = [f"**Copy number** (against the {REFERENCE_GENE}-expressing clusters, {call['n_cells']} cells): "
             f"mean change over the genome {call['score']:.3f}; arms changed by {ARM_CHANGE} or more "
             f"(malignant from {MIN_ARMS}):",
             f"Losses: {', '.join(call['losses']) or 'none over ' + str(ARM_CHANGE)}; "
             f"gains: {', '.join(call['gains']) or 'none over ' + str(ARM_CHANGE)}."]
    if resembles and normal_case:
        lines += ["", f"**The normal type the markers resemble ({resembles})**", "", normal_case]
    elif markers_label and normal_case:
        lines += ["", f"**The markers alone** pointed to {markers_label}, without evidence for a lineage:", "",
                  normal_case]
    return "\n".join(lines)


def _log_expression(adata: ad.AnnData, gene_symbols: str | None) -> tuple[sp.csr_matrix | None, list[str]]:
    """The cells' log-normalised expression (sparse) and the genes' symbols, or ``None`` when scaled
    (what the matrix holds: :func:`cellscribe.io.matrix_kind`)."""
    source = adata.raw if adata.raw is not None else adata
    var = source.var
    names = [str(v) for v in (var[gene_symbols] if gene_symbols and gene_symbols in var else var.index)]
    kind = matrix_kind(source.X)
    if kind == "scaled":
        return None, names
    cells = ad.AnnData(sp.csr_matrix(source.X, dtype=np.float32))
    if kind in ("counts", "unnormalised"):  # counts or TPM: normalised and logged as scanpy does
        sc.pp.normalize_total(cells, target_sum=1e4)
        sc.pp.log1p(cells)
    return sp.csr_matrix(cells.X), names


def _own_places(adata: ad.AnnData, names: list[str]) -> pd.DataFrame | None:
    """The places ``var`` brings (columns ``chromosome``, ``start``, ``end``), or ``None``."""
    var = adata.raw.var if adata.raw is not None else adata.var
    if not {"chromosome", "start", "end"} <= set(var.columns) or len(var) != len(names):
        return None
    own = pd.DataFrame({"chromosome": var["chromosome"].astype(str).to_numpy(),
                        "start": var["start"].to_numpy(), "end": var["end"].to_numpy()}, index=names)
    return own[~own.index.duplicated() & own["start"].notna()]


def _places(names: list[str], own: pd.DataFrame | None) -> pd.DataFrame:
    """Chromosome, start, end and arm of each placed gene among ``names`` (``own`` places first, else
    NCBI Gene's): unique symbols on the autosomes, outside :data:`IMMUNE_LOCI`."""
    places = genes.positions(names)
    if own is not None:
        own = own.loc[own.index.isin(names)].copy()
        own["chromosome"] = [c if c.startswith("chr") else f"chr{c}" for c in own["chromosome"].astype(str)]
        own["arm"] = places["arm"].reindex(own.index).fillna("")
        places = own
    keep = ~places["chromosome"].isin(["chrX", "chrY"])
    for chromosome, start, end in IMMUNE_LOCI:
        keep &= ~((places["chromosome"] == chromosome) & (places["end"] >= start) & (places["start"] <= end))
    return places[keep]


def _arm_medians(values: np.ndarray | sp.spmatrix, arms: np.ndarray, labels: np.ndarray) -> pd.DataFrame:
    """Median inferred change of the genes per cluster (rows) and chromosome arm (columns), for the
    arms with at least :data:`MIN_ARM_GENES` placed genes."""
    values = values.toarray() if sp.issparse(values) else np.asarray(values)
    frame = pd.DataFrame(values, index=labels, columns=arms)
    counts = pd.Series(arms).value_counts()
    judged = [a for a in counts.index if a and counts[a] >= MIN_ARM_GENES]
    return frame.loc[:, frame.columns.isin(judged)].T.groupby(level=0).median().T
