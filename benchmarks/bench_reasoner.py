"""Benchmark of cellscribe.reasoner on scanpy's pbmc68k_reduced: accuracy, throughput, fine-tuning.

The 700 cells are split 50/50, stratified by ``bulk_labels`` (seed 0): the first half is the
labelled reference (exemplars, candidate labels, gene ranking, fine-tuning data), ``--n-cells``
cells of the second half (a stratified draw, seed 0) are annotated. Figures:

* **1.5B** (``qwen2.5-coder-1.5b`` through llama.cpp): zero-shot and k-shot (one exemplar per
  type), both with the reference's labels as candidates. Exact accuracy (the label equals the
  expert label; failed cells count as wrong) and the ontology-aware mean agreement of
  :func:`cellscribe.evaluate.cell_accuracy` (1 / 0.5 / 0 per cell).
* **Throughput** on the first ``--n-throughput`` of those cells with the k-shot prompt, same cells,
  same run: *naive* resets the llama.cpp state before every call and goes in input order (one
  full prompt evaluation per cell); *fast* is :func:`cellscribe.reasoner.run_cells`
  (shared-prefix reuse, sorted sentences, one call per distinct sentence) on a fresh answer cache.
  Decoding is greedy, so the labels must be identical (asserted). The fast pass runs first, so it
  pays any warm-up.
* **SmolLM2-135M** through ``backend="transformers"``: zero-shot with candidates before
  fine-tuning and with the adapter after each of the three stages (:func:`cellscribe.reasoner.finetune`;
  stage 1 scaffold from reference cells, stage 2 CellMarker/Cell Ontology Q&A for blood, stage 3
  fusion), on the same held-out cells, plus the seconds, losses and peak RSS of every stage from
  the adapter's manifest.

The k-shot accuracy run reuses the fast pass's answers (same cells, same prompt, same model).
Prints the tables and the load average; writes ``results.json`` and ``cells.csv`` into ``--out``.
Run single-threaded on a shared machine (``CELLSCRIBE_THREADS=1``: oversubscribed threads make
llama.cpp and torch several times slower).

Parts can run separately into one ``--out`` (``--skip-large`` / ``--skip-small`` with ``--merge``);
the table then combines them.

Last run (2 shared cores, 1 thread, load average 3.5-6 from other jobs; 40 held-out cells, 10 for
throughput; ``--n-cells 40 --skip-large``, then ``--n-cells 40 --n-throughput 10 --skip-small --merge``):

    setting               exact  agreement
    SmolLM2 base          0.150  0.312
    SmolLM2 + stage 1     0.325  0.550     (agreement vs base: 22 cells better, 8 worse, Wilcoxon p 0.014)
    SmolLM2 + stage 2     0.175  0.425
    SmolLM2 + stage 3     0.200  0.450
    1.5B zero-shot        0.175  0.312
    1.5B k-shot (1/type)  0.200  0.312
    throughput, k-shot prompt (2,056 shared tokens): naive 0.91 cells/min, fast 3.38 cells/min, 3.70x,
    labels identical (load 5.6 during the naive pass, 3.6 during the fast one)
    fine-tuning (71 / 120 / 107 examples, 40 / 10 / 20 steps, lr 2e-3, top 8 layers, rank 16):
    344 s / 64 s / 157 s, peak RSS 2.2 GB

A constant "Dendritic" answer would score 0.35 exact on these 40 cells (pbmc68k_reduced's
``bulk_labels`` make Dendritic the largest class); no setting here beats it.

    CELLSCRIBE_THREADS=1 .venv/bin/python benchmarks/bench_reasoner.py                # the full run
    CELLSCRIBE_THREADS=1 .venv/bin/python benchmarks/bench_reasoner.py --n-cells 10 --n-throughput 4 \\
        --steps 2,1,1 --out /tmp/bench_reasoner_smoke                               # smoke run
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

LABEL_KEY = "bulk_labels"
TISSUE = "PBMC"
LARGE = "qwen2.5-coder-1.5b"
SMALL = "smollm2-135m"


def split(seed: int = 0):
    """(reference, held-out) halves of pbmc68k_reduced, stratified by label."""
    import scanpy as sc
    from sklearn.model_selection import train_test_split

    adata = sc.datasets.pbmc68k_reduced()
    ref_idx, test_idx = train_test_split(np.arange(adata.n_obs), test_size=0.5, random_state=seed,
                                         stratify=adata.obs[LABEL_KEY].astype(str))
    return adata[np.sort(ref_idx)].copy(), adata[np.sort(test_idx)].copy()


def draw(held_out, n: int, seed: int = 0):
    """``n`` held-out cells, stratified by label where ``n`` allows, in a fixed shuffled order."""
    from sklearn.model_selection import train_test_split

    labels = held_out.obs[LABEL_KEY].astype(str)
    if n >= held_out.n_obs:
        idx = np.random.default_rng(seed).permutation(held_out.n_obs)
    elif n >= labels.nunique():
        idx, _ = train_test_split(np.arange(held_out.n_obs), train_size=n, random_state=seed, stratify=labels)
    else:
        idx = np.random.default_rng(seed).choice(held_out.n_obs, size=n, replace=False)
    return held_out[idx].copy()


def score(predicted, truth) -> dict[str, float]:
    """Exact accuracy (unlabelled cells count as wrong) and the ontology-aware mean agreement."""
    from cellscribe.evaluate import cell_accuracy

    pred = pd.Series(predicted, dtype=object).astype(object)
    true = pd.Series(truth, dtype=object).astype(str)
    exact = float((pred.to_numpy() == true.to_numpy()).mean())
    acc = cell_accuracy(pred.where(pred.notna(), "unlabelled").tolist(), true.tolist())
    return {"exact": exact, "agreement": float(acc.mean_agreement), "n": len(true)}


def load_avg() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def annotate(cells, reference, *, shots: int, backend, n_genes: int, cache, adapter=None, model=None):
    """Labels of ``cells`` (a list aligned with them), and the run's stats."""
    from cellscribe import reasoner

    cells = cells.copy()
    options = {"adapter": adapter} if adapter is not None else {}
    reasoner.annotate_cells(cells, reference=reference, label_key=LABEL_KEY, shots=shots, n_genes=n_genes,
                            backend=backend, model=model, tissue=TISSUE, cache=cache, progress=False,
                            on_error="keep", **options)
    labels = cells.obs["reasoner"].astype(object).where(cells.obs["reasoner"].notna(), None).tolist()
    return labels, cells.uns["reasoner"]["stats"]


def kshot_prompt(cells, reference, *, n_genes: int, seed: int = 0):
    """The k-shot prompt of annotate_cells (one exemplar per type, reference labels as candidates)
    and the cells' sentences."""
    from cellscribe import reasoner
    from cellscribe.reasoner._reference import reference_sentences

    ranking = reasoner.gene_ranking(reference)
    ref_sentences, ref_labels = reference_sentences(reference, LABEL_KEY, ranking, n_genes)
    markers = reasoner.SentenceMarkers.fit(ref_sentences, ref_labels)
    idx = reasoner.pick_cells(ref_labels, 1, sentences=ref_sentences, markers=markers, seed=seed)
    exemplars = [(ref_sentences[i], reasoner.explain(ref_sentences[i], ref_labels[i], markers)) for i in idx]
    candidates = sorted(set(ref_labels))
    prompt = reasoner.build_prompt(candidates=candidates, tissue=TISSUE, exemplars=exemplars)
    work = cells.copy()
    reasoner.cell_sentences(work, n_genes=n_genes, ranking=ranking)
    return prompt, candidates, [s.split() for s in work.obs["cell_sentence"]]


def throughput(be, cells, reference, *, n_genes: int, cache_path: Path) -> dict:
    """Naive (state reset before every call, input order) against fast (run_cells), same cells."""
    from cellscribe import reasoner
    from cellscribe.engine import Sampling, ask_structured

    prompt, candidates, sentences = kshot_prompt(cells, reference, n_genes=n_genes)
    schema = reasoner.answer_schema(candidates)
    prefix_tokens = len(be._decoder(be.llama).prompt_tokens(prompt.messages([])))
    be.llama.reset()
    load_fast = load_avg()
    start = time.perf_counter()
    answers, failures, stats = reasoner.run_cells(be, prompt, sentences, schema=schema, candidates=candidates,
                                         cache=cache_path, progress=False)
    fast_s = time.perf_counter() - start
    if failures:
        raise RuntimeError(f"the fast pass failed on {len(failures)} cell(s): {list(failures.values())[:2]}")
    load_naive = load_avg()
    naive_labels = []
    start = time.perf_counter()
    for sentence in sentences:
        be.llama.reset()  # forget the cached prompt: every call evaluates the whole prompt
        answer = ask_structured(be, prompt.messages(sentence), parse=lambda t: reasoner.parse_answer(t, candidates),
                                schema=schema, sampling=Sampling(max_tokens=reasoner.MAX_TOKENS)).value
        naive_labels.append(answer.label)
    naive_s = time.perf_counter() - start
    fast_labels = [answers[" ".join(s)].label for s in sentences]
    assert naive_labels == fast_labels, f"naive and fast labels differ: {naive_labels} vs {fast_labels}"
    n = len(sentences)
    return {"cells": n, "distinct_sentences": stats["distinct_sentences"], "prompt_prefix_tokens": prefix_tokens,
            "naive_s": round(naive_s, 1), "fast_s": round(fast_s, 1), "naive_cells_per_s": n / naive_s,
            "fast_cells_per_s": n / fast_s, "speedup": naive_s / fast_s, "labels_identical": True,
            "load_fast": load_fast, "load_naive": load_naive, "load_end": load_avg()}


def table(rows: list[dict], columns: list[str]) -> str:
    frame = pd.DataFrame(rows)[columns]
    return frame.to_string(index=False, float_format=lambda x: f"{x:.3f}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n-cells", type=int, default=100, help="held-out cells annotated (stratified draw)")
    ap.add_argument("--n-large", type=int, default=None, help="cells for the 1.5B accuracy (default --n-cells)")
    ap.add_argument("--n-throughput", type=int, default=24, help="cells of the naive/fast comparison (0: skip)")
    ap.add_argument("--n-genes", type=int, default=32, help="genes per cell sentence for the 1.5B model")
    ap.add_argument("--small-n-genes", type=int, default=20, help="genes per cell sentence for SmolLM2")
    ap.add_argument("--steps", default="40,10,20", help="LoRA steps of stages 1,2,3")
    ap.add_argument("--n-per-type", type=int, default=8, help="stage-1 reference cells per type")
    ap.add_argument("--n-knowledge", type=int, default=120, help="stage-2 Q&A pairs")
    ap.add_argument("--lr", type=float, default=2e-3, help="LoRA learning rate")
    ap.add_argument("--lora-layers", type=int, default=8, help="adapt only the top N layers")
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--batch-size", type=int, default=4)
    ap.add_argument("--timeout", type=float, default=1800, help="seconds allowed per model answer")
    ap.add_argument("--skip-large", action="store_true", help="no 1.5B accuracy or throughput")
    ap.add_argument("--skip-small", action="store_true", help="no SmolLM2 fine-tuning")
    ap.add_argument("--adapter", default=None, help="reuse this finetune output folder instead of training")
    ap.add_argument("--out", default="bench_reasoner_out")
    ap.add_argument("--merge", action="store_true",
                    help="keep the figures of parts skipped here from an earlier run into the same --out")
    args = ap.parse_args(argv)

    import logging

    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    from cellscribe import reasoner
    from cellscribe.config import settings
    from cellscribe.llm import get_backend

    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    steps = [int(s) for s in args.steps.split(",")]
    if len(steps) != 3:
        ap.error("--steps takes three numbers (stages 1, 2, 3)")
    t0 = time.perf_counter()
    reference, held_out = split(0)
    cells = draw(held_out, args.n_cells)
    truth = cells.obs[LABEL_KEY].astype(str).tolist()
    print(f"pbmc68k_reduced: reference {reference.n_obs} cells, held-out {held_out.n_obs}; annotating "
          f"{cells.n_obs} held-out cells ({', '.join(f'{k} {v}' for k, v in pd.Series(truth).value_counts().items())})",
          flush=True)
    print(f"threads {settings.n_threads}; load average at start {load_avg()}", flush=True)
    results: dict = {"n_cells": cells.n_obs, "threads": settings.n_threads, "load_start": load_avg(),
                     "args": vars(args)}
    rows: list[dict] = []
    per_cell = pd.DataFrame({"cell": cells.obs_names, "truth": truth})
    if args.merge and (out / "results.json").is_file():
        # the parts this invocation skips come from the earlier run (same cells: same --n-cells)
        earlier = json.loads((out / "results.json").read_text(encoding="utf-8"))
        if earlier.get("n_cells") != cells.n_obs:
            ap.error(f"--merge: {out} holds a run on {earlier.get('n_cells')} cells, not {cells.n_obs}")
        keep_small, keep_large = args.skip_small, args.skip_large
        rows = [r for r in earlier.get("rows", [])
                if (keep_small and r["model"] == SMALL) or (keep_large and r["model"] == LARGE)]
        for key, keep in (("finetune", keep_small), ("throughput", keep_large)):
            if keep and key in earlier:
                results[key] = earlier[key]
        results["earlier_run"] = {k: earlier.get(k) for k in ("load_start", "load_end", "seconds", "args")}
        if (out / "cells.csv").is_file():
            old = pd.read_csv(out / "cells.csv")
            for r in rows:
                if r["setting"] in old:
                    per_cell[r["setting"]] = old[r["setting"]].where(old[r["setting"]].notna(), None)

    def record(name: str, model: str, labels: list, stats: dict | None) -> None:
        s = score(labels[: len(truth)], truth[: len(labels)])
        row = {"setting": name, "model": model, "cells": s["n"], "exact": s["exact"], "agreement": s["agreement"],
               "failed": sum(lab is None for lab in labels),
               "seconds": stats.get("seconds", float("nan")) if stats else float("nan"), "load": load_avg()}
        rows.append(row)
        per_cell.loc[: len(labels) - 1, name] = labels
        print(f"  {name}: exact {row['exact']:.3f}, agreement {row['agreement']:.3f} on {row['cells']} cells "
              f"({row['seconds']:.0f} s, load {row['load']})", flush=True)
        _save(out, results, rows, per_cell)

    if not args.skip_small:
        adapter = Path(args.adapter) if args.adapter else out / "adapter"
        if not args.adapter:
            print(f"fine-tuning {SMALL}: stages 1,2,3, steps {steps}, {args.n_per_type} cells per type, "
                  f"lr {args.lr}, top {args.lora_layers} layers, rank {args.lora_r}", flush=True)
            reasoner.finetune(reference, LABEL_KEY, output_dir=adapter, model=SMALL, stages=(1, 2, 3),
                              n_per_type=args.n_per_type, n_genes=args.small_n_genes, tissue=TISSUE,
                              knowledge_tissue="Blood", n_knowledge=args.n_knowledge, epochs=100,
                              max_steps=dict(zip((1, 2, 3), steps, strict=True)), batch_size=args.batch_size,
                              learning_rate=args.lr, lora_r=args.lora_r, lora_alpha=2 * args.lora_r,
                              lora_layers=args.lora_layers, progress=False)
        manifest = reasoner.read_manifest(adapter)
        results["finetune"] = manifest["stages"]
        print(table(manifest["stages"], ["stage", "name", "n_examples", "steps", "seconds", "train_loss_first",
                                         "train_loss_last", "eval_loss_before", "eval_loss_after", "peak_rss_mb"]),
              flush=True)
        n_genes = manifest["settings"]["n_genes"]
        for name, folder in [("SmolLM2 base", None), ("SmolLM2 + stage 1", adapter / "stage1"),
                             ("SmolLM2 + stage 2", adapter / "stage2"), ("SmolLM2 + stage 3", adapter / "stage3")]:
            labels, stats = annotate(cells, reference, shots=0, backend="transformers", model=SMALL,
                                     adapter=folder, n_genes=n_genes, cache=False)
            record(name, SMALL, labels, stats)

    if not args.skip_large:
        be = get_backend("llamacpp", model=LARGE, timeout=args.timeout)
        be.check()
        large_cells = cells[: args.n_large or cells.n_obs].copy()
        kshot_cache = out / f"kshot-{int(time.time())}.sqlite"
        if args.n_throughput:
            print(f"throughput, {LARGE}, k-shot prompt, {args.n_throughput} cells: fast pass then naive pass",
                  flush=True)
            tp = throughput(be, large_cells[: args.n_throughput].copy(), reference, n_genes=args.n_genes,
                            cache_path=kshot_cache)
            results["throughput"] = tp
            print(f"  naive {tp['naive_cells_per_s']:.4f} cells/s ({tp['naive_s']} s), fast "
                  f"{tp['fast_cells_per_s']:.4f} cells/s ({tp['fast_s']} s): {tp['speedup']:.2f}x; labels identical",
                  flush=True)
            _save(out, results, rows, per_cell)
        print(f"{LARGE}: zero-shot and k-shot on {large_cells.n_obs} cells", flush=True)
        labels, stats = annotate(large_cells, reference, shots=0, backend=be, n_genes=args.n_genes,
                                 cache=out / f"zeroshot-{int(time.time())}.sqlite")
        record("1.5B zero-shot", LARGE, labels, stats)
        labels, stats = annotate(large_cells, reference, shots=1, backend=be, n_genes=args.n_genes, cache=kshot_cache)
        record("1.5B k-shot (1/type)", LARGE, labels, stats)
        del be

    results["rows"] = rows
    results["load_end"] = load_avg()
    results["peak_rss_mb"] = peak_rss_mb()
    results["seconds"] = round(time.perf_counter() - t0, 1)
    _save(out, results, rows, per_cell)
    print("\naccuracy on held-out cells (exact: label equals the expert label; agreement: ontology-aware 1/0.5/0)")
    print(table(rows, ["setting", "cells", "exact", "agreement", "failed", "seconds", "load"]))
    if "throughput" in results:
        tp = results["throughput"]
        print(f"\nthroughput, {LARGE}, k-shot prompt ({tp['prompt_prefix_tokens']} shared prompt tokens), "
              f"{tp['cells']} cells, same run")
        print(table([{"pass": "naive (reset, input order)", "seconds": tp["naive_s"],
                      "cells_per_min": 60 * tp["naive_cells_per_s"], "load": tp["load_naive"]},
                     {"pass": "fast (run_cells)", "seconds": tp["fast_s"], "cells_per_min": 60 * tp["fast_cells_per_s"],
                      "load": tp["load_fast"]}], ["pass", "seconds", "cells_per_min", "load"]))
        print(f"speedup {tp['speedup']:.2f}x, labels identical")
    if "finetune" in results:
        print(f"\nfine-tuning {SMALL} on CPU ({settings.n_threads} thread(s)): "
              + ", ".join(f"stage {s['stage']} {s['seconds']:.0f} s" for s in results["finetune"])
              + f"; peak RSS {max(s['peak_rss_mb'] for s in results['finetune']):.0f} MB")
    print(f"\ntotal {results['seconds']:.0f} s; load average at end {results['load_end']}; "
          f"peak RSS of this process {results['peak_rss_mb']:.0f} MB")
    return 0


def _save(out: Path, results: dict, rows: list[dict], per_cell: pd.DataFrame) -> None:
    (out / "results.json").write_text(json.dumps({**results, "rows": rows}, indent=2, default=str), encoding="utf-8")
    per_cell.to_csv(out / "cells.csv", index=False)


if __name__ == "__main__":
    sys.exit(main())
