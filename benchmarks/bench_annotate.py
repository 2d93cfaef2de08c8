"""Speed and memory of cluster annotation with the embedded model, next to bare llama-cpp-python.

Prints, for Qwen2.5-Coder-1.5B on this machine:

* model load time (a fresh process);
* median seconds per cluster, label only and label + three-bullet explanation, for cellscribe and
  for a bare ``llama_cpp.Llama.create_chat_completion`` call with the same messages and the same
  number of output tokens (end of text banned, so it cannot stop early), measured side by side:
  two model instances, calls interleaved cluster by cluster, each instance with its own
  prompt-prefix cache, as a real run would have;
* a cached rerun's seconds per cluster;
* peak memory of a fresh process annotating all clusters (VmHWM: ``ru_maxrss`` would report the
  parent's two models, since Linux carries the high-water mark across fork and exec).

Clusters: scanpy's pbmc68k_reduced, markers ranked on its ``louvain`` clusters and on its
``bulk_labels`` (21 marker lists). Run: ``.venv/bin/python benchmarks/bench_annotate.py``.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MODEL = "qwen2.5-coder-1.5b"


def marker_lists() -> dict[str, list[str]]:
    import scanpy as sc

    from cellscribe.datasets import pbmc68k_reduced
    from cellscribe.markers import from_scanpy

    out: dict[str, list[str]] = {}
    for groupby in ("louvain", "bulk_labels"):
        adata = pbmc68k_reduced(groupby=groupby) if groupby == "louvain" else sc.datasets.pbmc68k_reduced()
        if groupby != "louvain":
            sc.tl.rank_genes_groups(adata, groupby, method="wilcoxon", use_raw=True, n_genes=50)
        table = from_scanpy(adata, top_n=10)
        out.update({f"{groupby}:{c}": g for c, g in table.genes.items()})
    return out


def child(code: str, env: dict[str, str]) -> dict:
    """Run code in a fresh interpreter; it prints one JSON line last."""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    import cellscribe as cs
    from cellscribe import prompts
    from cellscribe.llm import LlamaCppBackend, local_models

    load = os.getloadavg()
    path = local_models.resolve(MODEL)
    env = dict(os.environ, CELLSCRIBE_CACHE=tempfile.mkdtemp(prefix="bench-cache-"))
    os.symlink(local_models.REGISTRY[MODEL].path.parent, Path(env["CELLSCRIBE_CACHE"]) / "models")
    cs.settings.cache_dir = Path(env["CELLSCRIBE_CACHE"])
    cs.settings.progress = False

    t_load = child(f"""
import time, json
from cellscribe.llm import LlamaCppBackend
t = time.perf_counter(); LlamaCppBackend({MODEL!r}).check()
print(json.dumps({{"load_s": time.perf_counter() - t}}))""", env)["load_s"]

    markers = marker_lists()
    ps = prompts.load()
    be = LlamaCppBackend(MODEL)
    be.check()
    # The bare side: a second, independent model instance (own key/value cache).
    bare = type(be.llama)(model_path=str(path), n_ctx=4096, n_threads=cs.settings.n_threads,
                          n_threads_batch=cs.settings.n_threads, verbose=False)
    eos = bare.token_eos()

    rows = []
    for explain in (False, True):
        for name, genes in markers.items():
            one = {name: genes}
            t = time.perf_counter()
            df = cs.annotate(one, tissue="PBMC", backend=be, explain=explain, cache=False, mode="llm")
            t_cs = time.perf_counter() - t
            answer = df.iloc[0]
            text = json.dumps({k: answer[k] for k in (("label", "broad_lineage", "confidence", "title", "bullets")
                                                         if explain else ("label", "confidence"))})
            n_out = len(bare.tokenize(text.encode(), add_bos=False))
            messages = ps.messages(genes, tissue="PBMC", species="human", cluster=name, explain=explain)
            t = time.perf_counter()
            r = bare.create_chat_completion(messages=messages, temperature=0, max_tokens=n_out, logit_bias={eos: -1e9})
            t_bare = time.perf_counter() - t
            rows.append({"explain": explain, "cluster": name, "cellscribe_s": t_cs, "bare_s": t_bare,
                         "out_tokens": n_out, "bare_tokens": r["usage"]["completion_tokens"], "label": answer["label"]})

    # cached rerun (answers stored on the first pass)
    cs.annotate(markers, tissue="PBMC", backend=be, explain=True, mode="llm")
    t = time.perf_counter()
    df = cs.annotate(markers, tissue="PBMC", backend=be, explain=True, mode="llm")
    t_cached = (time.perf_counter() - t) / len(markers)
    assert df["cached"].all()

    peak = child(f"""
import json
import cellscribe as cs
cs.settings.progress = False
markers = {json.dumps(markers)}
cs.annotate(markers, tissue="PBMC", backend="llamacpp", model={MODEL!r}, explain=True, cache=False, mode="llm")
hwm = next(line for line in open("/proc/self/status") if line.startswith("VmHWM:"))
print(json.dumps({{"max_rss_mb": int(hwm.split()[1]) / 1024}}))""", env)["max_rss_mb"]

    print(f"cellscribe annotation benchmark: {MODEL}, {len(markers)} clusters (pbmc68k_reduced), "
          f"{cs.settings.n_threads} threads, load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    print(f"model load (fresh process):            {t_load:6.2f} s")
    for explain, title in ((False, "label only"), (True, "label + explanation")):
        sub = [r for r in rows if r["explain"] == explain]
        med_cs = statistics.median(r["cellscribe_s"] for r in sub)
        med_bare = statistics.median(r["bare_s"] for r in sub)
        toks = statistics.median(r["out_tokens"] for r in sub)
        ratio = statistics.median(r["cellscribe_s"] / r["bare_s"] for r in sub)
        print(f"{title:22s} median s/cluster: cellscribe {med_cs:5.2f}  bare llama-cpp-python {med_bare:5.2f}  "
              f"(cellscribe/bare {ratio:4.2f}; median {toks:.0f} output tokens)")
    print(f"cached rerun:                          {t_cached:6.4f} s/cluster")
    print(f"peak memory (fresh process, max RSS):  {peak:6.0f} MB")
    print("labels:", "; ".join(f"{r['cluster']}={r['label']}" for r in rows if r["explain"]))


if __name__ == "__main__":
    main()
