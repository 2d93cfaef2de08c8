"""Knowledge-grounded annotation on the GPTCelltype table: the ablation, calibration and timing.

Prints, per dataset and overall (mean GPTCelltype agreement, scored by :mod:`cellscribe.evaluate`):

* ``model alone``: the 1.5B model asked GPTCelltype's question (the issue's measurement, about 0.10,
  unless ``--model-alone`` reruns it: ~15 min);
* ``retrieval``: the top candidate of :func:`cellscribe.grounded.retrieve` (no learning);
* ``oracle@5``: the best of the top 5 retrieved candidates (the headroom);
* ``rerank (CV)``: the learned re-ranker, leave-one-dataset-out: each dataset is scored by a model
  trained on the other datasets only (the figure that counts);
* ``grounded (CV)`` with ``--grounded``: the re-ranker of the same fold, then the 1.5B model chooses
  among near-ties within ``--margin`` (default 0.1; label only, as scored). With the shipped margin
  of 0 the grounded labels are the re-ranker's. ``--timing N``: seconds per cluster of the shipped
  grounded mode with explanations;
* the expected calibration error (10 bins) of the confidence, the re-ranker's probability and the
  calibrated one (the calibration fitted inside the leave-one-dataset-out loop), per dataset and per
  tissue group, against agreement and against exact matches, with a reliability diagram; and the
  confidence of generic choices (a subtype is also a candidate) against their agreement;
* the published methods on the same rows.

``--tissue-inference`` removes the tissue column and infers each sample's organ from its clusters
(:func:`cellscribe.grounded.infer_tissue`, each dataset with the re-ranker trained on the others):
how often the organ is right, and the leave-one-dataset-out agreement without a tissue and with the
inferred one.

``--fit`` trains the shipped re-ranker on all of dev.csv (``python/cellscribe/grounded/reranker.json``).
``--features`` leaves each re-ranker feature out in turn (leave-one-dataset-out agreement, and the paired
difference to all features with its standard error); nothing else is measured.

``--without SOURCE`` (repeatable: ``cellmarker``, ``singlecellbase``, ``pegasus``, ``besca``) repeats retrieval
and re-ranking with that marker source left out of the index: each source's gain (CellMarker 2.0
curates markers from some of the same atlases as the benchmark; ``--without cellmarker`` shows how
much that helps).

Run: ``CELLSCRIBE_THREADS=1 .venv/bin/python benchmarks/bench_grounded.py [--fit] [--grounded] [--timing 20]``
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import replace
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
DEV = ROOT.parent / "shared" / "benchmarks" / "gptcelltype" / "dev.csv"
MODEL_ALONE_ISSUE = 0.10


def per_dataset(table: pd.DataFrame, chosen: pd.DataFrame) -> pd.Series:
    """Agreement per table row (0 where no candidate), from a frame indexed by row."""
    s = pd.Series(0.0, index=range(len(table)))
    s.loc[chosen.index] = chosen["agreement"].to_numpy()
    return s


def main() -> None:
    from cellscribe import benchmark as rr
    from cellscribe.grounded import MODEL_FILE, SOURCES, TOP_K

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--table", default=str(DEV))
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "grounded"))
    ap.add_argument("--fit", action="store_true", help="train and save the shipped re-ranker")
    ap.add_argument("--grounded", action="store_true", help="run the 1.5B model on near-ties (CV)")
    ap.add_argument("--margin", type=float, default=0.1,
                    help="near-tie margin for --grounded (the shipped default is 0: the model never chooses)")
    ap.add_argument("--timing", type=int, default=0, help="clusters to time with explanations")
    ap.add_argument("--model-alone", action="store_true", help="rerun the model alone (slow)")
    ap.add_argument("--tissue-inference", action="store_true",
                    help="measure tissue inference on the table without its tissue column")
    ap.add_argument("--features", action="store_true",
                    help="leave each re-ranker feature out in turn: leave-one-dataset-out agreement and its change")
    ap.add_argument("--without", action="append", default=[], choices=SOURCES, metavar="SOURCE",
                    help=f"leave a marker source out ({', '.join(SOURCES)}; an in-memory index, nothing is saved)")
    args = ap.parse_args()
    if args.without:
        if args.fit or args.grounded or args.timing:
            ap.error("--without only measures retrieval and re-ranking")
        without(args.without)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    print(f"load average: {', '.join(f'{x:.2f}' for x in os.getloadavg())}")

    table = pd.read_csv(args.table)
    t0 = time.perf_counter()
    train = rr.training_table(table)
    full = train[train["length"] == 0].copy()
    full["row"] = [int(str(r).split(":")[1]) for r in full["row"]]
    full = full.reset_index(drop=True)
    print(f"candidates for {len(table)} rows x {len(rr.TRAIN_LENGTHS)} marker-list lengths: "
          f"{time.perf_counter() - t0:.1f} s ({len(full) / len(table):.1f} candidates per row)")

    if args.features:
        feature_ablation(table, full, train)
        return
    results = pd.DataFrame({"dataset": table["dataset"]})
    results["retrieval"] = per_dataset(table, rr.choose(full))
    best5 = full[full["rank"] < 5].groupby("row")["agreement"].max()
    results["oracle@5"] = 0.0
    results.loc[best5.index, "oracle@5"] = best5.to_numpy()
    probs = rr.cross_validate(full, train)
    chosen = rr.choose(full, rr.cross_validate(full, train, calibrate=True))
    results["rerank (CV)"] = per_dataset(table, chosen)
    raw_conf = pd.Series(0.0, index=range(len(table)))
    raw_conf.loc[chosen.index] = rr.choose(full, probs)["confidence"].to_numpy()
    conf = pd.Series(0.0, index=range(len(table)))
    conf.loc[chosen.index] = chosen["confidence"].to_numpy()
    ece, bins = rr.expected_calibration_error(conf, results["rerank (CV)"])

    if args.grounded:
        results["grounded (CV)"], seconds = grounded_cv(table, train, args.margin)
        print(f"grounded (label only): median {statistics.median(seconds):.2f} s per cluster, "
              f"{sum(s > 0.2 for s in seconds)} clusters asked the model")
    if args.model_alone:
        from cellscribe.benchmark import run_benchmark

        res = run_benchmark(table, backend="llamacpp", model="qwen2.5-coder-1.5b", explain=False)
        results["model alone"] = res.rows["agreement"].fillna(0).to_numpy()

    summary = results.groupby("dataset", sort=False).mean()
    summary.loc["all"] = results.drop(columns="dataset").mean()
    summary["n"] = results.groupby("dataset", sort=False).size()
    summary.loc["all", "n"] = len(results)
    if "model alone" not in summary:
        summary.insert(0, "model alone", np.nan)
        summary.loc["all", "model alone"] = MODEL_ALONE_ISSUE
    for m in ("gpt4aug3", "gpt3.5aug3", "CellMarker2.0"):
        col = pd.to_numeric(table[f"{m}_agreement"], errors="coerce")
        summary[m] = col.groupby(table["dataset"], sort=False).mean()
        summary.loc["all", m] = col.mean()
    summary = summary.loc[["all", *[d for d in summary.index if d != "all"]]]
    print("\nMean agreement (GPTCelltype score) on", Path(args.table).name,
          "(model alone: issue's measurement unless --model-alone)")
    print(summary.round(3).to_string())
    calibration_tables(table, full, probs, results["rerank (CV)"], raw_conf, conf)
    print(f"\nECE of the calibrated confidence (CV, 10 bins, against agreement): {ece:.3f}")
    print(bins.round(3).to_string(index=False))
    summary.to_csv(out / "summary.csv")
    results.assign(confidence=conf, prediction=chosen["name"].reindex(range(len(table)))).to_csv(
        out / "rows.csv", index=False)
    reliability(bins, ece, out / "reliability.png")

    if args.timing:
        timing(table, args.timing)
    if args.tissue_inference:
        tissue_inference(table, train)
    if args.fit:
        cv = float(results["rerank (CV)"].mean())
        model = rr.fit(train, info={
            "trained_on": "../shared/benchmarks/gptcelltype/dev.csv (all 447 rows, every dataset)",
            "marker_lengths": [n or "all" for n in rr.TRAIN_LENGTHS], "top_k": TOP_K,
            "target": "GPTCelltype agreement of each candidate (0.5 = half positive, half negative)",
            "cv": f"leave-one-dataset-out mean agreement {cv:.4f} on full marker lists",
            "calibration": "Platt scaling with context, fitted on the leave-one-dataset-out choices; "
                           f"nested CV ECE {ece:.4f} (uncalibrated "
                           f"{rr.expected_calibration_error(raw_conf, results['rerank (CV)'])[0]:.4f})",
            "date": date.today().isoformat(), "script": "benchmarks/bench_grounded.py --fit"})
        model = replace(model, calibration=rr.fit_calibration(rr.choices(full, probs)))
        path = ROOT / "python" / "cellscribe" / "grounded" / MODEL_FILE
        model.save(path)
        print(f"\nsaved the re-ranker trained on all rows to {path}")


def tissue_group(tissue: object) -> str:
    """A coarse group of a benchmark tissue: blood/lymphoid, lung, another organ, or none named."""
    from cellscribe.knowledge.anatomy import tissue_organs

    organs = tissue_organs(tissue if isinstance(tissue, str) else None)
    if not organs:
        return "no organ named"
    return "blood/lymphoid" if organs == {"blood"} else ("lung" if organs == {"lung"} else "other organ")


def calibration_tables(table: pd.DataFrame, full: pd.DataFrame, probs: np.ndarray, agreement: pd.Series,
                       raw_conf: pd.Series, conf: pd.Series) -> None:
    """ECE per dataset and tissue group, uncalibrated and calibrated, and generic choices' confidence."""
    from cellscribe import benchmark as rr

    for name, groups in (("dataset", table["dataset"]), ("tissue group", table["tissue"].map(tissue_group))):
        cal = rr.calibration_report(conf, agreement, groups)[["confidence", "ece", "ece_exact", "ece_noise"]]
        both = rr.calibration_report(raw_conf, agreement, groups).join(cal, rsuffix=" cal")
        print(f"\nCalibration per {name} (CV; ece against agreement, ece_exact against agreement == 1;"
              " 'cal': calibrated; ece_noise: the ECE perfectly calibrated confidences show on as many clusters)")
        print(both.round(3).to_string())
    ctx = rr.choices(full, probs)  # the calibrated choice is the same: calibration keeps the order
    generic = pd.Series(ctx["sub_candidate"].to_numpy() > 0, index=ctx["row"].to_numpy()).reindex(table.index,
                                                                                                   fill_value=False)
    print("\nGeneric choices (a subtype of the choice is also a candidate) vs the rest (CV):")
    print(pd.DataFrame({"generic": generic, "agreement": agreement, "exact": agreement == 1, "uncalibrated": raw_conf,
                        "calibrated": conf}).groupby("generic").agg(["mean"]).droplevel(1, axis=1).assign(
        n=generic.value_counts()).round(3).to_string())


def tissue_inference(table: pd.DataFrame, train: pd.DataFrame) -> None:
    """Infer each (dataset, tissue) sample's organ from its clusters with the re-ranker trained on
    the other datasets; print how often it is right and the CV agreement without and with it."""
    from cellscribe import benchmark as rr
    from cellscribe.grounded import infer_tissue
    from cellscribe.knowledge.anatomy import tissue_organs

    models = {ds: rr.fit(train[train["dataset"] != ds]) for ds in table["dataset"].unique()}
    sample = table["dataset"] + " / " + table["tissue"].fillna("(none)").astype(str)
    guesses, rows = {}, []
    for key, part in table.groupby(sample, sort=False):
        ds = part["dataset"].iloc[0]
        lists = [rr.marker_genes(m) for m in part["marker"]]
        guess = infer_tissue(lists, species=rr.species_of(lists[0]), reranker=models[ds])
        guesses[key] = guess
        truth = tissue_organs(part["tissue"].iloc[0] if isinstance(part["tissue"].iloc[0], str) else None)
        rows.append({"sample": key, "n": len(part), "truth": ",".join(sorted(truth)) or "-", "inferred": guess.organ,
                     "margin": round(guess.margin, 3), "confident": guess.confident,
                     "right": (guess.organ in truth) if truth else None})
    df = pd.DataFrame(rows)
    print("\nTissue inference per sample (the table's tissue column removed):")
    print(df.to_string(index=False))
    known = df[df["right"].notna()]
    for label, part in (("all guesses", known), ("confident guesses", known[known["confident"]])):
        print(f"{label}: right for {int(part['right'].sum())} of {len(part)} samples "
              f"({int(part.loc[part['right'].astype(bool), 'n'].sum())} of {int(part['n'].sum())} clusters)")
    for label, tissue in (("tissue=None", lambda k: None), ("inferred tissue", lambda k: guesses[k].organ),
                          ("inferred if confident", lambda k: guesses[k].organ if guesses[k].confident else None)):
        cands = rr.candidate_table(table.assign(tissue=[tissue(k) for k in sample]))
        agreement = per_dataset(table, rr.choose(cands, rr.cross_validate(cands, train)))
        per = agreement.groupby(table["dataset"], sort=False).mean().round(3)
        print(f"LODO mean agreement, {label}: {agreement.mean():.4f}  " + " ".join(f"{k} {v}" for k, v in per.items()))


def feature_ablation(table: pd.DataFrame, full: pd.DataFrame, train: pd.DataFrame) -> None:
    """Leave-one-dataset-out agreement of the re-ranker with each feature left out, and the paired
    difference to all features (mean over rows, with its standard error)."""
    from cellscribe import benchmark as rr
    from cellscribe.grounded import FEATURES

    def agreement(features: tuple[str, ...]) -> pd.Series:
        return per_dataset(table, rr.choose(full, rr.cross_validate(full, train, features=features)))

    every = agreement(FEATURES)
    rows = []
    for name in FEATURES:
        left = agreement(tuple(f for f in FEATURES if f != name))
        diff = every - left
        rows.append({"without": name, "agreement": left.mean(), "all minus this": diff.mean(),
                     "se": diff.std(ddof=1) / np.sqrt(len(diff)), "rows changed": int((diff != 0).sum())})
    print(f"\nRe-ranker features (leave-one-dataset-out mean agreement; all {len(FEATURES)}: {every.mean():.4f})")
    print(pd.DataFrame(rows).sort_values("all minus this", ascending=False).round(4).to_string(index=False))


def without(sources: list[str]) -> None:
    """Build the marker index without ``sources``, in memory, for this process."""
    from cellscribe.grounded import _index
    from cellscribe.knowledge import besca, cellmarker, pegasus, singlecellbase

    for name in sources:
        module = {"cellmarker": cellmarker, "singlecellbase": singlecellbase, "pegasus": pegasus, "besca": besca}[name]
        real = module.load
        module.load = lambda species=None, _real=real: _real(species).iloc[0:0]  # type: ignore[attr-defined]
    _index._read_cached = _index._build  # type: ignore[assignment]
    print(f"knowledge: without {', '.join(sources)} (an in-memory index)")


def grounded_cv(table: pd.DataFrame, train: pd.DataFrame, margin: float) -> tuple[np.ndarray, list[float]]:
    """Grounded labels (model on near-ties, no explanation) with each dataset's re-ranker trained
    on the other datasets; agreement per row and seconds per cluster."""
    from cellscribe.benchmark import fit, marker_genes, score_table, species_of
    from cellscribe.engine import Grounded, Sampling, Unit, run
    from cellscribe.llm import get_backend

    be = get_backend("llamacpp", model="qwen2.5-coder-1.5b",
                     n_threads=int(os.environ.get("CELLSCRIBE_THREADS", "2")))
    labels: list[str | None] = [None] * len(table)
    seconds = []
    for ds in table["dataset"].unique():
        reranker = fit(train[train["dataset"] != ds])  # trained without this dataset
        groups: dict[tuple[str | None, str], list[Unit]] = {}
        for i in np.flatnonzero((table["dataset"] == ds).to_numpy()):
            genes, tissue = marker_genes(table.iloc[i]["marker"]), table.iloc[i]["tissue"]
            key = (tissue if isinstance(tissue, str) else None, species_of(genes))
            groups.setdefault(key, []).append(Unit(str(i), genes))
        for (tissue, species), units in groups.items():
            strategy = Grounded(tissue=tissue, species=species, explain=False, reranker=reranker, margin=margin)
            out = run(strategy, units, backend=be, sampling=Sampling(max_tokens=64), progress=False)
            for u in units:
                row = out.answers[u.id]
                labels[int(u.id)] = None if row["label"] == "unmapped" else row["label"]
                if not out.cached[u.id]:
                    seconds.append(out.seconds[u.id])
    scored = score_table(table, labels)
    return scored["agreement"].fillna(0).to_numpy(), seconds or [0.0]


def timing(table: pd.DataFrame, n: int) -> None:
    """Seconds per cluster of the full grounded answer (choice + explanation), no cache."""
    from cellscribe import annotate

    rows = table.sample(n, random_state=0)
    start = time.perf_counter()
    seconds = []
    for _, r in rows.iterrows():
        tissue = r["tissue"] if isinstance(r["tissue"], str) else None
        df = annotate({"c": r["marker"].split(", ")}, tissue=tissue, backend="llamacpp", mode="grounded",
                      cache=False, n_threads=int(os.environ.get("CELLSCRIBE_THREADS", "2")))
        seconds.append(float(df["seconds"].iloc[0]))
    print(f"\ngrounded with explanations on {n} clusters: median {statistics.median(seconds):.2f} s, "
          f"mean {statistics.mean(seconds):.2f} s, max {max(seconds):.2f} s per cluster "
          f"(wall {time.perf_counter() - start:.0f} s, load {', '.join(f'{x:.2f}' for x in os.getloadavg())})")


def reliability(bins: pd.DataFrame, ece: float, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4, 4))
    ax.plot([0, 1], [0, 1], ls="--", c="grey")
    ax.plot(bins["confidence"], bins["outcome"], marker="o")
    for _, b in bins.iterrows():
        ax.annotate(str(b["n"]), (b["confidence"], b["outcome"]), fontsize=7, xytext=(3, -8),
                    textcoords="offset points")
    ax.set(xlabel="confidence (re-ranker, CV)", ylabel="mean agreement", title=f"ECE {ece:.3f}", xlim=(0, 1),
           ylim=(0, 1))
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    print(f"reliability diagram: {path}")
    json.dumps({})


if __name__ == "__main__":
    main()
