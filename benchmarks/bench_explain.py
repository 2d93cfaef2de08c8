"""How far the explanations can be trusted, and what they cost: issue 13's acceptance figures.

Runs the default path (grounded labels, the embedded Qwen2.5-Coder-1.5B writes the checked
explanation) on three sets of clusters, with a fresh answer cache so every answer is generated:

* ``demo``: the 11 louvain clusters of scanpy's pbmc68k_reduced (what ``make demo`` annotates);
* ``pbmc_small``: Seurat's pbmc_small, ``FindAllMarkers`` output (``tests/python/_data``);
* ``dev``: 40 rows of the GPTCelltype development table, spread over its datasets and tissues.

Prints, per set and in all:

* format held (``## **title**`` + exactly three bullets of one or two complete sentences, at most
  300 words) and cut sentences, read from the final Markdown;
* genes named that are not among the cluster's markers (nor named as absent), gene-type claims
  the marker databases do not back, gene descriptions that contradict NCBI Gene: the checker's
  rules applied to the final bullets;
* the differential: the share of explanations that name the rival, where one exists; caveats:
  the share of low-information or two-lineage clusters whose explanation states the caveat;
* the share of bullets rendered from the case (the model's sentence failed twice), and the model's
  first answers' violations by kind (what the model still gets wrong);
* median seconds per cluster for label + explanation, next to a bare llama-cpp-python replay of
  exactly the model calls cellscribe made (same messages, same number of output tokens, end of text
  banned) on a second model instance with its own prompt cache.

Run: ``.venv/bin/python benchmarks/bench_explain.py [--dev-rows 40] [--out bench_explain.json]``.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd

import cellscribe as cs
from cellscribe.answers import count_sentences
from cellscribe.benchmark import marker_genes, read_table, species_of
from cellscribe.case import SERIOUS_FLAGS, build_case, bullet_problems, mentions
from cellscribe.grounded import candidates
from cellscribe.llm import LlamaCppBackend, local_models
from cellscribe.markers import from_scanpy, read_markers

MODEL = "qwen2.5-coder-1.5b"
ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "benchmarks" / "gptcelltype" / "dev.csv"
#: Violation kinds, by the words of the checker's messages.
KINDS = {
    "foreign gene": "not among the cluster's markers", "unbacked marker claim": "do not record",
    "wrong gene description": "(NCBI Gene)", "cut or malformed sentence": ("cut off", "mid-sentence", "sentences;",
                                                                           "complete sentence"),
    "invented number": "give no numbers", "copied fact line": "copies a line", "too many genes": "name at most",
    "absent gene present": "do not call them absent", "role missing": ("must name", "must say"),
}


class Recording(LlamaCppBackend):
    """The embedded backend, recording every call (messages, answer, seconds) for the bare replay."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.calls: list[dict[str, Any]] = []

    def chat(self, messages, **kwargs):  # type: ignore[no-untyped-def]
        t = time.perf_counter()
        out = super().chat(messages, **kwargs)
        self.calls.append({"messages": [dict(m) for m in messages], "content": out.content,
                           "seconds": time.perf_counter() - t})
        return out


class Violations(logging.Handler):
    """Collects the first answers' violations from the explanation log."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.kinds: collections.Counter[str] = collections.Counter()

    def emit(self, record: logging.LogRecord) -> None:
        for problem in getattr(record, "violations", []):
            self.kinds[kind_of(problem)] += 1


def kind_of(problem: str) -> str:
    for kind, words in KINDS.items():
        if any(w in problem for w in ((words,) if isinstance(words, str) else words)):
            return kind
    return "other"


def cluster_sets(dev_rows: int) -> dict[str, tuple[dict[str, list[str]], dict[str, str | None], str]]:
    """``{set: (markers per cluster, tissue per cluster, species)}``."""
    out = {}
    demo = from_scanpy(cs.datasets.pbmc68k_reduced(groupby="louvain"), top_n=10)
    out["demo"] = ({f"demo:{c}": g for c, g in demo.genes.items()}, dict.fromkeys(demo.genes, "PBMC"), "human")
    small = read_markers(ROOT / "tests" / "python" / "_data" / "pbmc_small_markers.csv", top_n=10)
    out["pbmc_small"] = ({f"pbmc_small:{c}": g for c, g in small.genes.items()}, {}, "human")
    table = read_table(DEV)
    picked = (table.assign(_order=table.groupby("dataset").cumcount()).sort_values(["_order", "dataset", "tissue"])
              .head(dev_rows))
    dev = {f"dev:{i}": marker_genes(r.marker)[:10] for i, r in picked.iterrows()}
    out["dev"] = (dev, {f"dev:{i}": r.tissue if isinstance(r.tissue, str) else None for i, r in picked.iterrows()},
                  "mixed")
    return out


def final_checks(row: pd.Series, genes: list[str], tissue: str | None, species: str) -> dict[str, Any]:
    """The acceptance checks on one final explanation."""
    md = row["explanation_markdown"] or ""
    lines = [ln for ln in md.splitlines() if ln.strip()]
    bullets = [ln[2:] for ln in lines if ln.startswith("- ")]
    fmt = (bool(lines) and re.match(r"^## \*\*.+\*\*$", lines[0]) is not None and len(bullets) == 3
           and all(1 <= count_sentences(b) <= 2 for b in bullets) and len(md.split()) <= 300)
    cut = sum(not re.search(r"[.!?][\"')\]]?$", b.strip()) for b in bullets)
    ranked = candidates(genes, tissue=tissue, species=species)
    chosen = next((c for c in ranked if c.cl_id == row["cl_id"]), None)
    out = {"format": fmt, "cut": cut, "rendered": sum(s == "knowledge" for s in row["bullet_sources"]),
           "seconds": float(row["seconds"]), "kinds": collections.Counter(), "rival": None, "caveat_needed": False}
    if chosen is None:
        return out
    case = build_case(genes, chosen, ranked, species=species)
    for i, b in enumerate(bullets, 1):
        for p in bullet_problems(b, i, case, species=species):
            out["kinds"][kind_of(p)] += 1
    if case.rival is not None:
        out["rival"] = mentions(bullets[2] if len(bullets) == 3 else "", case.rival.name)
    out["caveat_needed"] = bool(set(case.flags) & SERIOUS_FLAGS)
    out["caveat_stated"] = any(c.split(",")[0] in md or c in md for c in case.caveats) or \
        any(w in md.lower() for w in ("doublet", "contamin", "ribosom", "few informative", "tentative", "weak"))
    return out


def bare_replay(calls: list[dict[str, Any]], llama: Any) -> float:
    """Seconds a bare ``create_chat_completion`` takes for the same calls and output lengths."""
    eos = llama.token_eos()
    total = 0.0
    for call in calls:
        n_out = max(1, len(llama.tokenize(call["content"].encode(), add_bos=False)))
        t = time.perf_counter()
        llama.create_chat_completion(messages=call["messages"], temperature=0, max_tokens=n_out,
                                     logit_bias={eos: -1e9})
        total += time.perf_counter() - t
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dev-rows", type=int, default=40)
    parser.add_argument("--out", type=Path, default=None, help="also write every explanation here (JSON)")
    parser.add_argument("--no-bare", action="store_true", help="skip the bare llama-cpp-python replay")
    args = parser.parse_args()

    models = local_models.resolve(MODEL).parent  # before the cache moves to a fresh folder
    cs.settings.cache_dir = Path(tempfile.mkdtemp(prefix="bench-explain-"))
    os.symlink(models, cs.settings.cache_dir / "models")
    cs.settings.progress = False
    handler = Violations()
    logging.getLogger("cellscribe.engine.explanation").addHandler(handler)
    logging.getLogger("cellscribe.engine.explanation").setLevel(logging.INFO)
    be = Recording(MODEL)
    be.check()
    bare = None
    if not args.no_bare:
        bare = type(be.llama)(model_path=str(local_models.resolve(MODEL)), n_ctx=4096, n_threads=cs.settings.n_threads,
                              n_threads_batch=cs.settings.n_threads, verbose=False)

    results: list[dict[str, Any]] = []
    load = os.getloadavg()
    for name, (markers, tissues, species) in cluster_sets(args.dev_rows).items():
        for cluster, genes in markers.items():
            tissue = tissues.get(cluster)
            sp = species_of(genes) if species == "mixed" else species
            be.calls.clear()
            t = time.perf_counter()
            df = cs.annotate({cluster: genes}, tissue=tissue, species=sp, backend=be, cache=False)
            wall = time.perf_counter() - t
            row = df.iloc[0]
            checks = final_checks(row, genes, tissue, sp)
            checks.update(set=name, cluster=cluster, label=row["label"], wall=wall, calls=len(be.calls),
                          bare=bare_replay(be.calls, bare) if bare is not None else None,
                          markdown=row["explanation_markdown"], sources=list(row["bullet_sources"]),
                          caveats=list(row["caveats"]))
            results.append(checks)
            print(f"{cluster:16s} {row['label'][:40]:40s} {wall:5.1f} s  calls {len(be.calls)}  "
                  f"rendered {checks['rendered']}", file=sys.stderr, flush=True)

    print(f"explanation benchmark: {MODEL}, {cs.settings.n_threads} threads, load average at start "
          f"{load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    header = (f"{'set':11s} {'n':>3s} {'format':>7s} {'cut':>4s} {'foreign':>8s} {'claims':>7s} {'NCBI':>5s} "
              f"{'diff.':>6s} {'caveat':>7s} {'rendered':>9s} {'med s':>6s} {'bare s':>7s} {'ratio':>6s}")
    print(header)
    for name in [*dict.fromkeys(r["set"] for r in results), "all"]:
        sub = [r for r in results if name in ("all", r["set"])]
        kinds = sum((r["kinds"] for r in sub), collections.Counter())
        rivals = [r["rival"] for r in sub if r["rival"] is not None]
        need = [r["caveat_stated"] for r in sub if r["caveat_needed"]]
        med = statistics.median(r["wall"] for r in sub)
        bare_med = statistics.median(r["bare"] for r in sub) if bare is not None else float("nan")
        ratio = statistics.median(r["wall"] / r["bare"] for r in sub) if bare is not None else float("nan")
        print(f"{name:11s} {len(sub):3d} {sum(r['format'] for r in sub) / len(sub):7.0%} "
              f"{sum(r['cut'] for r in sub):4d} {kinds['foreign gene']:8d} {kinds['unbacked marker claim']:7d} "
              f"{kinds['wrong gene description']:5d} {sum(rivals) / max(1, len(rivals)):6.0%} "
              f"{(sum(need) / len(need)) if need else float('nan'):7.0%} "
              f"{sum(r['rendered'] for r in sub) / (3 * len(sub)):9.1%} {med:6.2f} {bare_med:7.2f} {ratio:6.2f}")
    print("columns: format held; cut sentences; foreign genes, unbacked marker claims and descriptions contradicting "
          "NCBI in the final bullets; differential stated where a rival exists; caveat stated where one is needed "
          f"({sum(r['caveat_needed'] for r in results)} clusters); bullets rendered from the case; median s per "
          "cluster (label + explanation) for cellscribe and for a bare replay of its model calls; median ratio")
    print("first answers' violations by kind (what the model still gets wrong):",
          dict(handler.kinds.most_common()))
    print("model calls per cluster:", dict(collections.Counter(r["calls"] for r in results)))
    if args.out:
        args.out.write_text(json.dumps(results, indent=1, default=str))


if __name__ == "__main__":
    main()
