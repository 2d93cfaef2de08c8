"""Benchmark of cellscribe.embed: logistic regression vs GenePT vs SCREADER, k-fold, on CPU.

Datasets (both install offline):

* ``pbmc``: scanpy's ``pbmc68k_reduced``, 700 cells, the 765 genes of its log-normalised ``.raw``,
  labels ``obs["bulk_labels"]`` (10 types).
* ``wu2020``: scirpy's 200-cell subset of Wu et al. 2020 tumour T cells, raw counts (normalised to
  10,000 per cell and ``log1p``), labels ``obs["cluster_orig"]`` (16 expert subclusters; the three
  with fewer cells than folds, 8.4-Chrom, 8.5-Mitosis and 8.6-KLRB1, 7 cells in all, are dropped).
  Genes: the ``--hvg`` most variable (scanpy ``highly_variable_genes``, seurat flavour), as the seed
  kept its top 2,048 variable genes; every method sees the same genes.

Every method runs on the same stratified folds. Gene embeddings are computed once per run in a
fresh store (so the genes/s figure is real), with the default MiniLM embedder unless
``--embedder mpnet``. Prints the table, embedding throughput, training time per epoch, peak memory
and the load average; writes ``scores.csv``, ``predictions.csv``, ``summary.md`` and, with
``--plots``, UMAPs (initial / GenePT / SCREADER embeddings of fold 0's models) and confusion
matrices into ``--out``.

    .venv/bin/python benchmarks/bench_embed.py                      # the documented CPU setting
    .venv/bin/python benchmarks/bench_embed.py --datasets wu2020 --folds 2 --screader-epochs 1   # smoke run
"""

from __future__ import annotations

import argparse
import logging
import os
import resource
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

WU2020_REQUIREMENT = "scirpy==0.22.5"
WU2020_MEMBER = "scirpy/tests/data/wu2020_200_v0_11.h5ad"


def load(name: str, hvg: int):
    """(AnnData, labels column) of a benchmark dataset."""
    import scanpy as sc

    if name == "pbmc":
        return sc.datasets.pbmc68k_reduced(), "bulk_labels"
    import cellscribe.datasets

    adata = cellscribe.datasets.wu2020() if hasattr(cellscribe.datasets, "wu2020") else _wu2020_from_wheel()
    counts = adata.obs["cluster_orig"].value_counts()
    adata = adata[adata.obs["cluster_orig"].isin(counts.index[counts >= 5])].copy()
    adata.obs["cluster_orig"] = adata.obs["cluster_orig"].astype(str)
    norm = adata.copy()
    sc.pp.filter_genes(norm, min_cells=3)
    sc.pp.normalize_total(norm, target_sum=1e4)
    sc.pp.log1p(norm)
    sc.pp.highly_variable_genes(norm, n_top_genes=hvg)
    return norm[:, norm.var["highly_variable"]].copy(), "cluster_orig"


def _wu2020_from_wheel():
    """Read the file straight out of the scirpy wheel (before ``cellscribe.datasets.wu2020`` existed)."""
    import zipfile

    import anndata

    from cellscribe import wheels
    from cellscribe.errors import KnowledgeDataError

    with tempfile.TemporaryDirectory() as tmp:
        (wheel,) = wheels.download((WU2020_REQUIREMENT,), Path(tmp), error=KnowledgeDataError, what="wu2020")
        with zipfile.ZipFile(wheel) as zf:
            zf.extract(WU2020_MEMBER, tmp)
        return anndata.read_h5ad(Path(tmp) / WU2020_MEMBER)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--datasets", default="pbmc,wu2020")
    ap.add_argument("--methods", default="logreg,genept,screader")
    ap.add_argument("--folds", type=int, default=5)
    ap.add_argument("--embedder", default="minilm")
    ap.add_argument("--hvg", type=int, default=1000, help="variable genes kept for wu2020")
    ap.add_argument("--lm", default="smollm2-135m")
    ap.add_argument("--lm-layers", type=int, default=4, help="first layers of the frozen LM used (0: all)")
    ap.add_argument("--k", type=int, default=32, help="top-ranked genes per cell (the seed: 2048)")
    ap.add_argument("--pe-dim", type=int, default=64)
    ap.add_argument("--screader-epochs", type=int, default=5)
    ap.add_argument("--genept-epochs", type=int, default=50)
    ap.add_argument("--lr", type=float, default=1e-3, help="SCREADER learning rate (the seed: 5e-5 for 10 epochs)")
    ap.add_argument("--genept-lr", type=float, default=1e-3)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("CELLSCRIBE_THREADS", "1")),
                    help="torch threads (1 is fastest on a shared, busy 2-core machine)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--rank-by", default="expression", choices=["expression", "median"])
    ap.add_argument("--cache", default=None,
                    help="cache folder to use instead of a fresh one (stored vectors are reused; genes/s then "
                         "counts only new genes)")
    ap.add_argument("--plots", action="store_true")
    ap.add_argument("--out", default="benchmarks/results/embed")
    args = ap.parse_args(argv)

    import torch

    import cellscribe
    from cellscribe import embed
    from cellscribe.knowledge import genes as gene_kb

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", stream=sys.stderr)
    torch.set_num_threads(args.threads)
    cellscribe.settings.progress = False
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    methods = args.methods.split(",")
    lm_layers = args.lm_layers or None
    load_before = os.getloadavg()
    print(f"load average at start: {load_before[0]:.2f} {load_before[1]:.2f} {load_before[2]:.2f} "
          f"(2 cores); torch threads {args.threads}; device {embed._models.resolve_device('auto')}")

    # A fresh vector store, so every embedding is computed and timed; models and the gene index are shared.
    user_cache = Path(cellscribe.settings.cache_dir)
    gene_kb.lookup("CD3E")  # build or open the gene index in the user cache first
    fresh = Path(args.cache) if args.cache else Path(tempfile.mkdtemp(prefix="bench-embed-"))
    for sub in ("models", "knowledge"):
        if not (fresh / sub).exists():
            (fresh / sub).symlink_to(user_cache / sub, target_is_directory=True)
    print(f"vector store: {fresh / 'embeddings.sqlite'}")
    cellscribe.settings.cache_dir = fresh

    all_scores, lines, plots = [], [], []
    if "screader" in methods:  # loaded once and shared by every fold; its load time is not training time
        _, _, ident = embed.load_lm(args.lm, lm_layers)
        lines.append(f"frozen LM {args.lm}: {ident['layers_used']}/{ident['layers_total']} layers, hidden "
                     f"{ident['hidden_size']}, GGUF dequantised and loaded in {ident['load_seconds']} s, "
                     f"process RSS after loading {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:.0f} MiB")
        print(lines[-1], flush=True)
    for name in args.datasets.split(","):
        adata, key = load(name, args.hvg)
        X, genes, ge = embed.embeddings_for(adata, embedder=args.embedder)
        y = adata.obs[key].astype(str).to_numpy()
        rate = ge.n_computed / ge.seconds if ge.seconds else float("nan")
        src = ge.descriptions["source"].value_counts().to_dict()
        lines.append(f"{name}: {adata.n_obs} cells x {len(genes)} genes, {len(set(y))} classes; "
                     f"embedded {ge.n_computed} gene descriptions in {ge.seconds:.1f} s = {rate:.1f} genes/s "
                     f"({ge.embedder['model']}); description sources {src}")
        print(lines[-1], flush=True)
        kept: dict[str, object] = {}

        def keep(fold, method, model, tr, te, kept=kept):
            if fold == 0 and method != "logreg":
                kept[method] = model

        cfg_s = embed.TrainConfig(epochs=args.screader_epochs, lr=args.lr, batch_size=args.batch_size, seed=args.seed)
        cfg_g = embed.TrainConfig(epochs=args.genept_epochs, lr=args.genept_lr, batch_size=args.batch_size,
                                  seed=args.seed)
        scores, preds = embed.cross_validate(
            X, genes, y, ge, methods=methods, n_splits=args.folds, seed=args.seed, on_fold=keep,
            genept={"config": cfg_g},
            screader={"config": cfg_s, "lm": args.lm, "lm_layers": lm_layers, "k": args.k, "pe_dim": args.pe_dim,
                      "rank_by": args.rank_by},
        )
        scores.insert(0, "dataset", name)
        preds.insert(0, "dataset", name)
        all_scores.append(scores)
        preds.to_csv(out / f"predictions_{name}.csv", index=False)
        if args.plots:  # drawn after every dataset's folds: UMAP's numba threads would slow the training
            plots.append((adata, X, genes, y, ge, kept, name, out))

    scores = pd.concat(all_scores, ignore_index=True)
    scores.to_csv(out / "scores.csv", index=False)
    load_after = os.getloadavg()
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    for job in plots:
        _plots(*job)
    table = _table(scores)
    settings = (f"CPU, torch threads {args.threads}; folds {args.folds} (stratified, seed {args.seed}); "
                f"SCREADER: {args.lm}, {'all' if lm_layers is None else lm_layers} layers, k={args.k}, "
                f"pe_dim={args.pe_dim}, ranked by {args.rank_by}, {args.screader_epochs} epochs, lr {args.lr}, "
                f"batch {args.batch_size}, "
                f"warm-up 10% of steps; GenePT: MLP 512-256, {args.genept_epochs} epochs, lr {args.genept_lr}; "
                f"logistic regression: C=1 on log-normalised expression; embedder {args.embedder}")
    report = "\n".join([
        "## cellscribe.embed benchmark", "", settings, "", table, "", *[f"- {line}" for line in lines],
        f"- peak memory (max RSS of the process): {peak:.0f} MiB",
        f"- load average: start {load_before[0]:.2f} / {load_before[1]:.2f} / {load_before[2]:.2f}, "
        f"end {load_after[0]:.2f} / {load_after[1]:.2f} / {load_after[2]:.2f} (2 cores)",
    ])
    (out / "summary.md").write_text(report + "\n")
    print(report)
    return 0


def _table(scores: pd.DataFrame) -> str:
    rows = ["| dataset | method | accuracy | macro precision | macro recall | macro F1 | train cells/s | "
            "infer cells/s | s/epoch |", "|---|---|---|---|---|---|---|---|---|"]
    for (ds, method), g in scores.groupby(["dataset", "method"], sort=False):
        def ms(col, g=g):
            return f"{g[col].mean():.3f} ± {g[col].std():.3f}"
        epoch = f"{g['s_per_epoch'].mean():.1f}" if "s_per_epoch" in g and g["s_per_epoch"].notna().any() else "-"
        rows.append(f"| {ds} | {method} | {ms('accuracy')} | {ms('precision')} | {ms('recall')} | {ms('f1')} | "
                    f"{g['train_cells_per_s'].mean():.1f} | {g['infer_cells_per_s'].mean():.0f} | {epoch} |")
    return "\n".join(rows)


def _plots(adata, X, genes, y, ge, kept, name, out):
    import anndata as ad

    import cellscribe
    from cellscribe import embed

    view = ad.AnnData(obs=pd.DataFrame({"label": y}, index=adata.obs_names))
    view.obsm["X_initial"] = embed.weighted_mean(X, ge.matrix)
    bases, titles = ["X_initial"], ["initial (weighted mean)"]
    for method in ("genept", "screader"):
        if method in kept:
            view.obsm[f"X_{method}"] = kept[method].predict_matrix(X, genes).embedding
            bases.append(f"X_{method}")
            titles.append({"genept": "GenePT", "screader": "SCREADER"}[method] + " (fold-0 model)")
    cellscribe.pl.embedding_umaps(view, bases, "label", titles=titles, path=out / f"umap_{name}.png")
    preds = pd.read_csv(out / f"predictions_{name}.csv")
    for method, g in preds.groupby("method"):
        cm = embed.confusion(g["true"], g["predicted"])
        cm.to_csv(out / f"confusion_{name}_{method}.csv")
    np.save(out / f"embeddings_{name}_initial.npy", view.obsm["X_initial"])


if __name__ == "__main__":
    sys.exit(main())
