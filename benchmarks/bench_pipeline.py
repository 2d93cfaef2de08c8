"""The end-to-end pipeline (``cellscribe run``) on the three bundled datasets with expert labels.

For each of pbmc68k_reduced (PBMC, no raw counts), wu2020 (tumour T cells, raw counts) and
oligodendroglioma (brain tumour, TPM-like values) it runs, in a fresh process,
``cellscribe.pipeline.run`` (QC with the default strategy where there are counts, clustering,
markers, annotation by the embedded Qwen2.5-Coder-1.5B, plots, report, .h5ad) and prints:

* pipeline time per stage (read, QC, cluster, annotate, write) and in total;
* peak memory: the process's resident set sampled every 20 ms, highest value during the data
  stages (read, QC, clustering) and during the whole run (the model adds ~1.9 GB);
* cluster-level accuracy (each cluster's label against the majority expert label of its cells)
  and cell-level accuracy (every cell's label against its own expert label), both as the mean
  GPTCelltype agreement (1 / 0.5 / 0, ontology-aware, :mod:`cellscribe.evaluate`) and the share
  of full matches; and the per-cluster table.

Expert labels: pbmc68k_reduced ``bulk_labels``; wu2020 ``expert_label`` (readable names of its 16
``cluster_orig`` codes, :data:`cellscribe.datasets.WU2020_LABELS`); oligodendroglioma
``expert_label`` (tumour cells as ``malignant cell``). The model is asked for labels only (the same
prompt gives the same label with explanations, see :mod:`cellscribe.prompts`); ``--explain`` adds
them. Answers are cached between runs; ``--no-cache`` times the model every time. ``--mode`` picks the
annotation mode (default ``grounded``, as ``cellscribe run``; ``llm`` for the model alone).

Run: ``.venv/bin/python benchmarks/bench_pipeline.py [--datasets wu2020 ...] [--explain]``.
Outputs (reports, plots, per-cluster CSV) go to ``benchmarks/results/pipeline/<dataset>/``.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path

DATASETS = ("pbmc68k_reduced", "wu2020", "oligodendroglioma")
OUT = Path(__file__).parent / "results" / "pipeline"


class RssSampler(threading.Thread):
    """Samples this process's resident set size (psutil) every ``interval`` seconds."""

    def __init__(self, interval: float = 0.02) -> None:
        super().__init__(daemon=True)
        import psutil

        self._proc = psutil.Process()
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.is_set():
            self.samples.append((time.perf_counter(), self._proc.memory_info().rss))
            self._done.wait(self.interval)

    def stop(self) -> None:
        self._done.set()
        self.join()

    def peak(self, start: float, end: float) -> int:
        return max((rss for t, rss in self.samples if start <= t <= end), default=0)


def one(name: str, args: argparse.Namespace) -> dict:
    """Run the pipeline on one dataset in this (fresh) process; return the figures."""
    import resource

    import scanpy  # noqa: F401  (imported before the clock: import time is not pipeline time)

    import cellscribe
    from cellscribe import datasets, pipeline

    spec = datasets.REGISTRY[name]
    out = Path(args.out) / name
    sampler = RssSampler()
    sampler.start()
    start = time.perf_counter()
    rss_start = sampler.samples[-1][1] if sampler.samples else 0
    result = pipeline.run(name, tissue=spec.tissue, species=spec.species, backend=args.backend, model=args.model,
                          explain=args.explain, mode=args.mode, resolution=args.resolution, truth=spec.truth_readable,
                          out=out,
                          cache=not args.no_cache, progress=False)
    end = time.perf_counter()
    sampler.stop()
    seconds = dict(result.seconds)
    data_end = start + seconds["read"] + seconds["qc"] + seconds["cluster"]

    from cellscribe import evaluate as ev

    obs = result.adata.obs
    cluster_acc, table = ev.cluster_accuracy(obs["leiden"], obs["cellscribe_label"], obs[spec.truth_readable],
                                             return_table=True)
    cell_acc = ev.cell_accuracy(obs["cellscribe_label"], obs[spec.truth_readable])
    table.to_csv(out / "cluster_accuracy.csv", index=False)
    qc = result.adata.uns.get("cellscribe_qc", {})
    return {
        "dataset": name,
        "cells_in": int(result.adata.n_obs) if result.qc == "none" else int(qc["params"]["n_cells"]),
        "cells": int(result.adata.n_obs),
        "genes": int(result.adata.n_vars),
        "clusters": int(obs["leiden"].nunique()),
        "qc": result.qc,
        "seconds": {k: round(v, 2) for k, v in seconds.items()},
        "peak_rss_mb_data": round(sampler.peak(start, data_end) / 2**20),
        "peak_rss_mb_run": round(sampler.peak(start, end) / 2**20),
        "rss_mb_before": round(rss_start / 2**20),
        "max_rss_mb_process": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
        "cluster": cluster_acc.to_dict(),
        "cell": cell_acc.to_dict(),
        "table": table[["cluster", "n_cells", "predicted", "truth", "truth_share", "agreement", "level"]]
        .assign(truth_share=lambda d: d["truth_share"].round(2)).to_dict("records"),
        "model": result.adata.uns["cellscribe"]["provenance"].get("model"),
        "version": cellscribe.__version__,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=DATASETS)
    parser.add_argument("--backend", default="llamacpp")
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--explain", action="store_true", help="Ask for explanations too (slower).")
    parser.add_argument("--mode", default="grounded", choices=["grounded", "llm", "agentic"],
                        help="Annotation mode (grounded: marker databases + re-ranker, the model explains).")
    parser.add_argument("--resolution", type=float, default=1.0)
    parser.add_argument("--no-cache", action="store_true", help="Do not use cached model answers.")
    parser.add_argument("--out", default=str(OUT))
    parser.add_argument("--one", help=argparse.SUPPRESS)  # internal: run one dataset in this process
    args = parser.parse_args()
    if args.one:
        print(json.dumps(one(args.one, args)))
        return

    rows = []
    for name in args.datasets:
        load_before = os.getloadavg()
        cmd = [sys.executable, __file__, "--one", name, "--backend", args.backend, "--model", args.model,
               "--resolution", str(args.resolution), "--out", args.out, "--mode", args.mode]
        cmd += ["--explain"] if args.explain else []
        cmd += ["--no-cache"] if args.no_cache else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        if proc.returncode != 0:
            print(f"{name}: failed\n{proc.stderr[-3000:]}", file=sys.stderr)
            continue
        row = json.loads(proc.stdout.strip().splitlines()[-1])
        row["load"] = (load_before, os.getloadavg())
        rows.append(row)
        print(f"\n== {name}: {row['cells']} cells ({row['qc']} QC of {row['cells_in']}), {row['clusters']} clusters, "
              f"mode {args.mode}, labels by {row['model'] or 'marker databases'}")
        print(f"{'cluster':>7} {'cells':>5}  {'predicted':<34} {'expert (majority)':<44} {'share':>5}  agreement")
        for t in row["table"]:
            print(f"{t['cluster']:>7} {t['n_cells']:>5}  {str(t['predicted'])[:34]:<34} {str(t['truth'])[:44]:<44} "
                  f"{t['truth_share']:>5.2f}  {t['agreement']:.1f} ({t['level']})")

    print("\nPipeline on the bundled datasets (fresh process each; times in s, memory in MB; "
          "accuracy = mean agreement / share of full matches)")
    head = (f"{'dataset':<18} {'cells':>6} {'clus':>4} {'qc':<6} {'read':>5} {'qc':>5} {'clust':>6} {'annot':>6} "
            f"{'write':>6} {'total':>6} {'RSSdata':>8} {'RSSrun':>7} {'cluster acc':>12} {'cell acc':>12}  load avg")
    print(head)
    for r in rows:
        s = r["seconds"]
        print(f"{r['dataset']:<18} {r['cells']:>6} {r['clusters']:>4} {r['qc']:<6} {s['read']:>5.1f} {s['qc']:>5.1f} "
              f"{s['cluster']:>6.1f} {s['annotate']:>6.1f} {s['write']:>6.1f} {s['total']:>6.1f} "
              f"{r['peak_rss_mb_data']:>8} {r['peak_rss_mb_run']:>7} "
              f"{r['cluster']['mean_agreement']:>6.2f} / {r['cluster']['exact']:.2f} "
              f"{r['cell']['mean_agreement']:>5.2f} / {r['cell']['exact']:.2f}  "
              f"{r['load'][0][0]:.1f} -> {r['load'][1][0]:.1f}")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "summary.json").write_text(json.dumps(rows, indent=1, default=str))


if __name__ == "__main__":
    main()
