"""The GPTCelltype benchmark: scorer validity, knowledge load times, and a model's mean agreement.

Prints:

* the load average (the machine is shared; timings depend on it);
* knowledge load times in fresh processes from a warm cache: the Cell Ontology (with the 2018
  synonyms) and CellMarker 2.0 (pickle; and the first parse of its CSV);
* scorer throughput (labels mapped per second, cold) and, for every published method of
  ``dev.csv``, how often re-scoring its labels reproduces the published per-row agreement, and
  the means, with the truth's own CL mapping and from the truth's text alone;
* with ``--model``: the model's mean agreement on ``dev.csv`` (or its first ``--limit`` rows),
  overall and per dataset next to the published methods on the same rows, and seconds per
  answer. Answers are cached, so a rerun only rescores. Results go to ``--out``.

Run: ``.venv/bin/python benchmarks/bench_gptcelltype.py [--model qwen2.5-coder-1.5b] [--limit N]``
(the full 447 rows take several minutes with the 1.5B model on a quiet 2-core machine).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "benchmarks" / "gptcelltype" / "dev.csv"


def load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def fresh(code: str) -> float:
    """Seconds a fresh interpreter needs for ``code`` (it prints the seconds itself)."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def knowledge_times() -> None:
    from cellscribe.knowledge import cellmarker, ontology

    ontology.get()
    cellmarker.load()  # make sure both are in the cache
    onto = fresh("import time; from cellscribe.knowledge import ontology; t=time.perf_counter(); ontology.get(); "
                 "print(time.perf_counter()-t)")
    cm = fresh("import time, pandas; from cellscribe.knowledge import cellmarker; t=time.perf_counter(); "
               "cellmarker.load(); print(time.perf_counter()-t)")
    parse = fresh("import time, pandas; from cellscribe.knowledge import cellmarker as c; t=time.perf_counter(); "
                  "c._tidy(pandas.read_csv(c.fetch(c.CELLMARKER_CSV), encoding='utf-8-sig', low_memory=False)); "
                  "print(time.perf_counter()-t)")
    print(f"Cell Ontology load (2026-03 + 2018 synonyms, warm cache): {onto:.2f} s")
    print(f"CellMarker 2.0 load from the cache (pickle): {cm:.2f} s; first parse of the CSV: {parse:.2f} s")


def scorer() -> None:
    import pandas as pd

    from cellscribe import benchmark as ev
    from cellscribe.knowledge import labels as label_mapping

    table = pd.read_csv(DEV)
    labels = sorted({str(x) for m in ev.PUBLISHED_METHODS for x in table[f"{m}_annotation"].dropna()}
                    | set(table["manual_annotation"]))
    label_mapping._map_cached.cache_clear()
    label_mapping.map_label("warm up the indexes")
    start = time.perf_counter()
    for label in labels:
        label_mapping.map_label(label)
    seconds = time.perf_counter() - start
    print(f"map_label: {len(labels)} distinct labels in {seconds:.2f} s ({len(labels) / seconds:.0f} labels/s, cold)")
    print("\nScorer validity on dev.csv: re-scored published labels vs the published agreement")
    print(f"{'method':14s} {'rows':>5s} {'identical':>10s} {'mean':>7s} {'published':>9s} | text-only truth: "
          f"{'identical':>9s} {'mean':>6s}")
    for m in ev.PUBLISHED_METHODS:
        with_ids = ev.score_column(table, m)
        text = ev.score_column(table, m, truth_from_text=True)
        pub, pub_text = with_ids.provenance["published"], text.provenance["published"]
        print(f"{m:14s} {pub['n']:5d} {pub['same_share']:10.1%} {with_ids.mean:7.3f} {pub['mean']:9.3f} | "
              f"{'':16s} {pub_text['same_share']:9.1%} {text.mean:6.3f}")


def model_run(model: str, limit: int | None, out: Path) -> None:
    from cellscribe import benchmark as ev

    print(f"\nModel run: {model} on {DEV.name}{f' (first {limit} rows)' if limit else ''}; load average {load()}")
    start = time.perf_counter()
    result = ev.run_benchmark(DEV, backend="llamacpp", model=model, limit=limit, out=out, name=model,
                              progress=False, on_group=lambda d, t: print(f"  {d}/{t} rows", flush=True))
    info = result.provenance
    print(f"{info['rows']} rows in {time.perf_counter() - start:.0f} s: {info['answered_now']} answered now "
          f"({info['seconds_per_answer']} s per answer), {info['from_cache']} from cache, {info['failed']} failed; "
          f"load average {load()}")
    cols = [model] + [m for m in ev.PUBLISHED_METHODS if m in result.summary.columns]
    print(result.summary[["n", *cols]].round(3).to_string())
    levels = result.rows["level"].value_counts(normalize=True).round(3).to_dict()
    print(f"levels: {levels}")
    print(f"wrote {', '.join(str(p) for p in result.files.values())}")
    (out / "figures.json").write_text(json.dumps({
        "model": model, "rows": info["rows"], "mean": result.mean, "seconds_per_answer": info["seconds_per_answer"],
        "per_dataset": result.summary[model].round(4).to_dict(), "load_average_end": load(),
    }, indent=2) + "\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", help="Also run this local model over dev.csv (e.g. qwen2.5-coder-1.5b).")
    parser.add_argument("--limit", type=int, help="Only the first N rows in the model run.")
    parser.add_argument("--out", type=Path, help="Folder for the model run (default benchmarks/results/...).")
    parser.add_argument("--skip-scorer", action="store_true", help="Skip the knowledge and scorer figures.")
    args = parser.parse_args()
    if not DEV.is_file():
        sys.exit(f"{DEV} not found: the benchmark needs ../shared/benchmarks/gptcelltype beside the repository.")
    print(f"load average {load()} (2 cores; figures depend on it)")
    if not args.skip_scorer:
        knowledge_times()
        scorer()
    if args.model:
        out = args.out or ROOT / "benchmarks" / "results" / f"gptcelltype-{args.model}"
        model_run(args.model, args.limit, out)


if __name__ == "__main__":
    main()
