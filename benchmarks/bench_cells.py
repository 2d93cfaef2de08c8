"""Per-cell labels: accuracy against expert labels, and scale on synthetic atlases on disk.

    python benchmarks/bench_cells.py accuracy                 # table per dataset and method
    python benchmarks/bench_cells.py tune                     # leave-one-dataset-out choice of the refinement margins
    python benchmarks/bench_cells.py calibration              # fit of cells.CALIBRATION, ECE before/after (LODO)
    python benchmarks/bench_cells.py scale A.h5ad [B.h5ad ..] # cells, wall, cells/s, peak RSS per file

accuracy: pbmc68k_reduced (clusters: louvain), wu2020 and oligodendroglioma (clusters: leiden on
log-normalised counts, seed 0). Methods, all scored with cellscribe.evaluate.cell_accuracy
(Cell Ontology agreement: exact / mean GPTCelltype agreement) on the same held-out cells:
per-cell grounded (cellscribe.cells.label_cells, with and without the ontology refinement), every
cell its cluster's grounded label, and
reference label transfer (cellscribe.cells.transfer_labels, logistic regression) fitted on the other
half: split by patient where the data has one (wu2020), else a random stratified 50/50 (seed 0).
tune: for every (refine_margin, up_margin) in a grid, the per-cell accuracy (exact + mean agreement on the
held-out halves) of each dataset; for each dataset held out, the setting best on the other two and its
figure on the held-out one (leave-one-dataset-out).
calibration: the held-out cells' uncalibrated softmax probabilities (``calibration=None``) and their
GPTCelltype agreement (1 / 0.5 / 0, cellscribe.evaluate.score_labels); for each dataset held out, the
Platt map ``sigmoid(a + b * logit(p))`` fitted on the other two (all cells pooled, logistic loss) and
the expected calibration error (10 equal bins, cellscribe.benchmark.expected_calibration_error) before
and after; then the map fitted on all three (the value to ship as cellscribe.cells.CALIBRATION) and, not
part of the fit, each dataset labelled without clusters (pseudo-clusters) under the shipped map.
``--reasoner N`` also runs the reasoner on the N least confident held-out cells (slow: ~3 cells/min; the
answer cache is off so that the seconds are the model's), with how many it answered and changed.

scale: each file is labelled end to end from disk in a fresh process (clusters: obs["louvain"],
shipped with the atlas; threaded scheduler, default chunks); peak RSS is the process's maximum
resident set (getrusage, children included).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
import warnings

import numpy as np
import pandas as pd


def _clusters(name: str, adata):
    import scanpy as sc

    if name == "pbmc68k_reduced":
        return "louvain"
    b = adata.copy()
    sc.pp.normalize_total(b, target_sum=1e4)
    sc.pp.log1p(b)
    sc.pp.pca(b, random_state=0)
    sc.pp.neighbors(b, random_state=0)
    sc.tl.leiden(b, key_added="leiden", flavor="igraph", n_iterations=2, random_state=0)
    adata.obs["leiden"] = b.obs["leiden"].to_numpy()
    return "leiden"


def _split(name: str, adata) -> tuple[np.ndarray, str]:
    rng = np.random.default_rng(0)
    if "patient" in adata.obs:
        patients = np.array(sorted(adata.obs["patient"].astype(str).unique()))
        test_p = set(rng.permutation(patients)[: len(patients) // 2])
        return adata.obs["patient"].astype(str).isin(test_p).to_numpy(), "by patient"
    from sklearn.model_selection import train_test_split

    idx = np.arange(adata.n_obs)
    y = adata.obs.iloc[:, 0].astype(str)
    _tr, te = train_test_split(idx, test_size=0.5, random_state=0, stratify=None if y.nunique() > 50 else None)
    mask = np.zeros(adata.n_obs, dtype=bool)
    mask[te] = True
    return mask, "random 50/50"


NAMES = ("pbmc68k_reduced", "wu2020", "oligodendroglioma")
REFINE_GRID = (0.25, 0.5, 0.75, 1.0, 1.5, 2.0)
UP_GRID = (0.0, 0.25, 0.5, 1.0, float("inf"))


def tune() -> None:
    from cellscribe import cells, datasets
    from cellscribe.evaluate import cell_accuracy

    scores: dict[tuple[float, float], dict[str, tuple[float, float]]] = {}
    for name in NAMES:
        d = datasets.REGISTRY[name]
        adata = d.load()
        groupby = _clusters(name, adata)
        truth = adata.obs[d.truth_readable].astype(str)
        test, _how = _split(name, adata)
        for rm in REFINE_GRID:
            for um in UP_GRID:
                table = cells.label_cells(adata, groupby, tissue=d.tissue, species=d.species, progress=False,
                                          refine_margin=rm, up_margin=um).table
                acc = cell_accuracy(table["label"].astype(str)[test], truth[test])
                scores.setdefault((rm, um), {})[name] = (acc.exact, acc.mean_agreement)
        print(f"{name}: {len(scores)} settings", flush=True)

    def objective(p: tuple[float, float], names: list[str]) -> float:
        return float(np.mean([sum(scores[p][n]) for n in names]))

    grid = sorted(scores)
    for held in NAMES:
        train = [n for n in NAMES if n != held]
        best = max(grid, key=lambda p: (round(objective(p, train), 6), p[0], -p[1]))
        e, a = scores[best][held]
        print(f"held out {held}: chosen refine_margin={best[0]}, up_margin={best[1]} "
              f"(train {objective(best, train):.3f}); held-out exact {e:.3f}, mean agreement {a:.3f}")
    for p in sorted(grid, key=lambda p: -objective(p, list(NAMES)))[:5]:
        print(p, {n: tuple(round(x, 3) for x in scores[p][n]) for n in NAMES})


def fit_calibration(prob: np.ndarray, agreement: np.ndarray) -> tuple[float, float]:
    """``(a, b)`` of ``sigmoid(a + b * logit(prob))`` minimising the logistic loss against ``agreement``
    (a soft outcome in [0, 1]: each cell counts as a right answer with weight ``agreement`` and as a
    wrong one with weight ``1 - agreement``)."""
    from sklearn.linear_model import LogisticRegression

    p = np.clip(np.asarray(prob, dtype=float), 1e-7, 1 - 1e-7)
    x = np.log(p / (1 - p))[:, None]
    y = np.r_[np.ones(len(x)), np.zeros(len(x))]
    weight = np.r_[agreement, 1 - np.asarray(agreement, dtype=float)]
    model = LogisticRegression(C=1e6, max_iter=1000).fit(np.vstack([x, x]), y, sample_weight=weight)
    return float(model.intercept_[0]), float(model.coef_[0, 0])


def calibration() -> None:
    from cellscribe import cells, datasets
    from cellscribe.benchmark import expected_calibration_error
    from cellscribe.evaluate import score_labels

    prob, agree, exact, loose = {}, {}, {}, {}
    for name in NAMES:
        d = datasets.REGISTRY[name]
        adata = d.load()
        groupby = _clusters(name, adata)
        test = _split(name, adata)[0]
        truth = adata.obs[d.truth_readable].astype(str)[test]
        table = cells.label_cells(adata, groupby, tissue=d.tissue, species=d.species, progress=False,
                                  calibration=None).table[test]
        grounded = (table["source"] == "grounded").to_numpy()  # copy-number calls have their own confidence
        table, truth = table[grounded], truth[grounded]
        scored = score_labels(table["label"].astype(str), truth)
        prob[name], agree[name] = table["confidence"].to_numpy(dtype=float), scored["agreement"].to_numpy(dtype=float)
        exact[name] = float((scored["level"] == "exact").mean())
        truth = adata.obs[d.truth_readable].astype(str)[test]
        table = cells.label_cells(adata, None, tissue=d.tissue, species=d.species, progress=False).table[test]
        loose[name] = (table["confidence"].to_numpy(dtype=float),
                       score_labels(table["label"].astype(str), truth)["agreement"].to_numpy(dtype=float))
    def ece(conf: np.ndarray, outcome: np.ndarray) -> float:
        return expected_calibration_error(conf, outcome, bins=10)[0]

    rows = []
    for held in NAMES:
        train = [n for n in NAMES if n != held]
        a, b = fit_calibration(np.concatenate([prob[n] for n in train]), np.concatenate([agree[n] for n in train]))
        after = cells.calibrate(prob[held], (a, b))
        shipped = cells.calibrate(prob[held], cells.CALIBRATION)
        y = agree[held]
        rows.append({"dataset": held, "n": len(y), "exact": exact[held], "mean_agreement": y.mean(),
                     "conf_before": prob[held].mean(), "ece_before": ece(prob[held], y),
                     "fold_a_b": f"{a:.3f}, {b:.3f}", "conf_after_cv": after.mean(), "ece_after_cv": ece(after, y),
                     "conf_shipped": shipped.mean(),
                     "ece_shipped": ece(shipped, y), "no_clusters_agreement": loose[held][1].mean(),
                     "no_clusters_conf": loose[held][0].mean(), "no_clusters_ece": ece(*loose[held])})
    with pd.option_context("display.width", 250, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(pd.DataFrame(rows).to_string(index=False))
    a, b = fit_calibration(np.concatenate(list(prob.values())), np.concatenate(list(agree.values())))
    print(f"fitted on all three: CALIBRATION = ({a:.3f}, {b:.3f}); shipped: {cells.CALIBRATION}")


def accuracy(reasoner: int, only: list[str] | None = None) -> None:
    from cellscribe import cells, datasets
    from cellscribe.benchmark import expected_calibration_error
    from cellscribe.evaluate import cell_accuracy, score_labels

    rows = []
    for name in only or NAMES:
        d = datasets.REGISTRY[name]
        adata = d.load()
        groupby = _clusters(name, adata)
        truth = adata.obs[d.truth_readable].astype(str)
        test, how = _split(name, adata)
        t0 = time.perf_counter()
        result = cells.label_cells(adata, groupby, tissue=d.tissue, species=d.species, progress=False)
        seconds = time.perf_counter() - t0
        table = result.table
        flat = cells.label_cells(adata, groupby, tissue=d.tissue, species=d.species, progress=False, refine=False).table
        preds = {"per-cell grounded, no ontology refinement": flat["label"].astype(str),
                 "per-cell grounded": table["label"].astype(str),
                 "cluster grounded (every cell its cluster's label)": table["cluster_label"].astype(str)}
        ref = adata[~test].copy()
        transferred = cells.transfer_labels(adata[test].copy(), ref, d.truth_readable, progress=False)
        for method, p in preds.items():
            acc = cell_accuracy(p[test], truth[test])
            rows.append({"dataset": name, "method": method, "split": how, "n": acc.n, "exact": acc.exact,
                         "mean_agreement": acc.mean_agreement, "seconds": round(seconds, 1)})
        acc = cell_accuracy(transferred["label"].astype(str), truth[test])
        rows.append({"dataset": name, "method": "reference LR transfer", "split": how, "n": acc.n, "exact": acc.exact,
                     "mean_agreement": acc.mean_agreement,
                     "seconds": round(transferred.attrs["stats"]["seconds_fit"]
                                      + transferred.attrs["stats"]["seconds_predict"], 1)})
        conf = table["confidence"][test].to_numpy()
        agreement = score_labels(table["label"].astype(str)[test], truth[test])["agreement"].to_numpy(dtype=float)
        rows[-3]["ece"] = round(expected_calibration_error(conf, agreement)[0], 3)
        rows[-3]["mean_confidence"] = round(float(conf.mean()), 3)
        if reasoner:
            from cellscribe.tl import refine_with_reasoner

            sub = adata[test].copy()
            base = table[test]
            refined, stats = refine_with_reasoner(sub, base, result.panel, reasoner, tissue=d.tissue, progress=False,
                                                  cache=False)
            picked = np.zeros(len(base), dtype=bool)  # the cells sent, answered or not (refine_with_reasoner's order)
            picked[np.argsort(base["confidence"].to_numpy(), kind="stable")[:stats["reasoner_cells"]]] = True
            before = cell_accuracy(base["label"].astype(str)[picked], truth[test][picked])
            after = cell_accuracy(refined["label"].astype(str)[picked], truth[test][picked])
            rows.append({"dataset": name, "method": f"reasoner on {reasoner} least confident (before -> after)",
                         "split": how, "n": int(picked.sum()), "exact": f"{before.exact:.3f}->{after.exact:.3f}",
                         "mean_agreement": f"{before.mean_agreement:.3f}->{after.mean_agreement:.3f}",
                         "seconds": stats["reasoner_seconds"], "answered": stats["reasoner_answered"],
                         "changed": stats["reasoner_changed"]})
    out = pd.DataFrame(rows)
    with pd.option_context("display.width", 200, "display.max_columns", 20, "display.float_format", "{:.3f}".format):
        print(out.to_string(index=False))


def one(path: str, groupby: str | None) -> None:
    from cellscribe import cells

    t0 = time.perf_counter()
    result = cells.label_cells(path, groupby, tissue="PBMC", progress=True)
    wall = time.perf_counter() - t0
    rss = max(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
              resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
    import h5py
    from anndata.io import read_elem

    from cellscribe.evaluate import cell_accuracy

    with h5py.File(path, "r") as f:
        truth = read_elem(f["obs"])["bulk_labels"].astype(str)
    a = cell_accuracy(result.table["label"].astype(str), truth)
    acc = {"exact": round(a.exact, 3), "mean_agreement": round(a.mean_agreement, 3)}
    print(json.dumps({"path": path, "cells": result.stats["cells"], "wall_s": round(wall, 1),
                      "cells_per_s": round(result.stats["cells"] / wall, 1), "peak_rss_gb": round(rss / 1e6, 2),
                      "first_pass_s": result.stats["seconds_first_pass"], "scoring_s": result.stats["seconds_scoring"],
                      "accuracy_vs_bulk_labels": acc}))


def scale(paths: list[str], groupby: str | None) -> None:
    rows = []
    for path in paths:
        cmd = [sys.executable, __file__, "_one", path] + (["--groupby", groupby] if groupby else [])
        out = subprocess.run(cmd, capture_output=True, text=True, check=True)
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), flush=True)
    table = pd.DataFrame(rows)
    print(table.to_string(index=False))
    if len(rows) >= 2:
        ratio = rows[-1]["wall_s"] / rows[0]["wall_s"]
        print(f"cost ratio {rows[0]['cells']} -> {rows[-1]['cells']} cells: {ratio:.2f}")


def main() -> None:
    warnings.filterwarnings("ignore")
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["accuracy", "tune", "calibration", "scale", "_one"])
    parser.add_argument("paths", nargs="*")
    parser.add_argument("--groupby", default="louvain")
    parser.add_argument("--reasoner", type=int, default=0)
    parser.add_argument("--dataset", action="append", choices=NAMES, help="accuracy: only these datasets")
    args = parser.parse_args()
    if args.what == "accuracy":
        accuracy(args.reasoner, args.dataset)
    elif args.what == "tune":
        tune()
    elif args.what == "calibration":
        calibration()
    elif args.what == "scale":
        scale(args.paths, args.groupby)
    else:
        one(args.paths[0], args.groupby)


if __name__ == "__main__":
    main()
