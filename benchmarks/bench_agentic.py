"""Agentic annotation on GPTCelltype rows, next to the grounded (re-ranker) choice on the same rows.

Starts a real ``llama_cpp.server`` on loopback with the embedded 1.5B model and
``--chat_format chatml-function-calling`` (tool calls in OpenAI's format), runs
``cellscribe.annotate(mode="agentic")`` label-only on a seeded sample of ``dev.csv`` rows (the
same share of every dataset), and grounded ``explain=False`` (the re-ranker's choice, no model) on the
same rows; prints mean agreement per dataset for both, how often the agent kept or overrode the
re-ranker's top candidate, the tools it called, and seconds per cluster.

Caveat: the shipped re-ranker was trained on all of dev.csv, so the "markers" column here is an
in-sample figure; the cross-validated one is in ``bench_grounded.py``. The agent's picks among the
candidates inherit that advantage when it keeps the top candidate.

    .venv/bin/python benchmarks/bench_agentic.py [--rows 40] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd

DEV = Path(__file__).resolve().parents[1].parent / "shared" / "benchmarks" / "gptcelltype" / "dev.csv"
MODEL = "qwen2.5-coder-1.5b"


def start_server(model_path: Path) -> tuple[subprocess.Popen, str]:
    import socket
    import urllib.request

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    log = tempfile.TemporaryFile(mode="w+")
    threads = str(int(os.environ.get("CELLSCRIBE_THREADS", "0")) or __import__("cellscribe").settings.n_threads)
    proc = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(model_path), "--model_alias",
                             "qwen-tools", "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "4096",
                             "--n_threads", threads, "--chat_format", "chatml-function-calling"],
                            stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(300):
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2)
            return proc, url
        except OSError:
            time.sleep(0.5)
    proc.kill()
    raise RuntimeError("llama_cpp.server did not start")


def main() -> None:
    import warnings

    import cellscribe as cs
    from cellscribe.benchmark import marker_genes, read_table, score_table, species_of
    from cellscribe.llm import local_models

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rows", type=int, default=40, help="rows sampled from dev.csv (all datasets alike)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    warnings.simplefilter("ignore")
    cs.settings.progress = False

    table = read_table(DEV)
    frac = min(1.0, args.rows / len(table))
    sample = (table.groupby("dataset", group_keys=False).apply(lambda d: d.sample(max(1, round(len(d) * frac)),
                                                                                   random_state=args.seed))
              .reset_index(drop=True))
    load = os.getloadavg()
    proc, url = start_server(local_models.resolve(MODEL))
    rows = []
    try:
        for i, r in sample.iterrows():
            genes = marker_genes(r["marker"])
            species = species_of(genes)
            tissue = r["tissue"] if isinstance(r["tissue"], str) else None
            db = cs.annotate({f"row{i}": genes}, tissue=tissue, species=species, explain=False)
            t = time.perf_counter()
            ag = cs.annotate({f"row{i}": genes}, tissue=tissue, species=species, mode="agentic", backend="openai",
                             base_url=url, model="qwen-tools", tool_results="user", explain=False, timeout=900,
                             cache=False, on_error="keep")
            seconds = time.perf_counter() - t
            a, d = ag.iloc[0], db.iloc[0]
            rows.append({"agentic": a["label"], "markers": d["label"], "seconds": seconds,
                         "kept_top": a["cl_id"] == d["cl_id"], "chosen_by": a.get("chosen_by"),
                         "tools": " ".join(a["agent_tools"] or []) if isinstance(a.get("agent_tools"), list) else ""})
            print(f"  {i + 1}/{len(sample)} {seconds:5.1f} s  {r['manual_annotation'][:30]:30s} agent: "
                  f"{str(a['label'])[:30]:30s} re-ranker: {str(d['label'])[:30]}", flush=True)
    finally:
        proc.terminate()
    res = pd.DataFrame(rows)
    out = pd.DataFrame({"n": sample.groupby("dataset").size()})
    for name in ("agentic", "markers"):
        scored = score_table(sample, res[name].tolist())
        out[name] = scored.groupby("dataset")["agreement"].mean()
        out.loc["all", name] = scored["agreement"].mean()
    out.loc["all", "n"] = len(sample)
    for pub in ("gpt4aug3", "gpt3.5aug3"):
        out[pub] = sample.groupby("dataset")[f"{pub}_agreement"].mean()
        out.loc["all", pub] = sample[f"{pub}_agreement"].mean()
    print(f"\nAgentic (1.5B via llama_cpp.server tool calls) vs re-ranker (markers mode) on {len(sample)} dev.csv "
          f"rows (seed {args.seed}); load average at start {load[0]:.2f}")
    print(out.round(3).to_string())
    print(f"agent kept the re-ranker's top type in {res['kept_top'].mean():.0%} of rows; chosen_by: "
          f"{res['chosen_by'].value_counts().to_dict()}")
    print(f"tools called per row (median): {statistics.median(len(t.split()) for t in res['tools'])}; "
          f"first call lookup_markers in {(res['tools'].str.split().str[0] == 'lookup_markers').mean():.0%} of rows")
    print(f"seconds per cluster: median {res['seconds'].median():.1f}, max {res['seconds'].max():.1f}; "
          f"load average at end {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
