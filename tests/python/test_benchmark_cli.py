"""``cellscribe score`` and ``cellscribe benchmark gptcelltype`` on the GPTCelltype development table.

The benchmark runs a real local model (SmolLM2-135M: plumbing only, its answers are not judged).
"""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
from typer.testing import CliRunner

import cellscribe.engine
import cellscribe.llm
from cellscribe.cli import app

runner = CliRunner()


def replace_everywhere(monkeypatch: pytest.MonkeyPatch, real: object, replacement: object) -> None:
    """Replace ``real`` under every name a loaded cellscribe module bound it to (``from x import f``
    binds at import, so patching the defining module alone would miss the callers)."""
    for name, module in list(sys.modules.items()):
        if name.split(".")[0] == "cellscribe" and module is not None:
            for attr, value in list(vars(module).items()):
                if value is real:
                    monkeypatch.setattr(module, attr, replacement)


def test_score_writes_one_row_per_input_row(gptcelltype_dev, tmp_path):
    res = runner.invoke(app, ["score", str(gptcelltype_dev), "--column", "gpt4aug3_annotation", "--out", str(tmp_path)])
    assert res.exit_code == 0, res.output
    assert "gpt4aug3_annotation: mean agreement 0.5" in res.stdout
    assert "published gpt4aug3_agreement: mean 0.588; identical score on" in res.stdout
    dev = pd.read_csv(gptcelltype_dev)
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == len(dev) and scores["row"].tolist() == list(range(len(dev)))
    assert scores["manual_annotation"].tolist() == dev["manual_annotation"].tolist()
    assert set(scores["agreement"]) <= {0.0, 0.5, 1.0}
    assert (scores["agreement"] == scores["published_agreement"]).mean() >= 0.9
    summary = pd.read_csv(tmp_path / "summary.csv", index_col=0)
    assert summary.index[0] == "all" and {"Azimuth", "MCA", "tabulasapiens"} <= set(summary.index)


def test_score_keeps_rows_a_method_did_not_run_unscored(gptcelltype_dev, tmp_path):
    res = runner.invoke(app, ["score", str(gptcelltype_dev), "-c", "SingleR", "-o", str(tmp_path)])
    assert res.exit_code == 0, res.output
    scores = pd.read_csv(tmp_path / "scores.csv")
    assert len(scores) == 447 and scores["agreement"].notna().sum() == 279
    assert scores["agreement"].isna().equals(scores["published_agreement"].isna())


def test_score_errors_are_one_clear_line(gptcelltype_dev, tmp_path):
    def cli(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "cellscribe", *args], capture_output=True, text=True, timeout=300)

    res = cli("score", str(gptcelltype_dev), "--column", "gpt5_annotation")
    assert res.returncode == 2 and "No column 'gpt5_annotation'" in res.stderr and "gpt4aug3_annotation" in res.stderr
    assert "Traceback" not in res.stderr
    res = cli("score", str(tmp_path / "missing.csv"), "--column", "x")
    assert res.returncode == 2 and "does not exist" in res.stderr
    bad = tmp_path / "bad.csv"
    bad.write_text("a,b\n1,2\n")
    res = cli("benchmark", "gptcelltype", str(bad), "--out", str(tmp_path / "out"))
    assert res.returncode == 2 and "lacks column(s) marker, manual_annotation" in res.stderr


@pytest.fixture
def small_table(gptcelltype_dev, tmp_path):
    """One human PBMC row and one mouse (MCA) row of the development table."""
    dev = pd.read_csv(gptcelltype_dev)
    rows = pd.concat([dev[dev["dataset"] == "Azimuth"].head(1), dev[dev["dataset"] == "MCA"].head(1)])
    path = tmp_path / "small.csv"
    rows.to_csv(path, index=False)
    return path


def test_benchmark_default_is_grounded_without_a_model(small_table, tmp_path, monkeypatch):
    """With no --mode the benchmark scores what a user gets by default: grounded (re-ranked marker
    databases), label only, so no language model is made at all."""
    def no_backend(*args, **kwargs):
        raise AssertionError("the default benchmark must not make a backend")

    replace_everywhere(monkeypatch, cellscribe.llm.get_backend, no_backend)
    out = tmp_path / "out"
    res = runner.invoke(app, ["benchmark", "gptcelltype", str(small_table), "--out", str(out)])
    assert res.exit_code == 0, res.output
    info = json.loads((out / "provenance.json").read_text())
    assert info["mode"] == "grounded" and info["model"] == "marker databases" and info["backend"] is None
    rows = pd.read_csv(out / "predictions.csv")
    assert rows["pred_cl_id"].str.startswith("CL:").all() and rows["confidence"].between(0, 1).all()
    assert set(rows["agreement"]) <= {0.0, 0.5, 1.0}


@pytest.mark.model
def test_benchmark_runs_scores_and_resumes_from_the_cache(smollm_path, small_table, tmp_path, monkeypatch):
    calls: list[dict] = []
    real = cellscribe.engine.annotate

    def spy(markers, **kwargs):  # records what reaches cellscribe.annotate, then runs it for real
        calls.append({"clusters": list(markers), **kwargs})
        return real(markers, **kwargs)

    replace_everywhere(monkeypatch, real, spy)
    out = tmp_path / "out"
    args = ["benchmark", "gptcelltype", str(small_table), "--backend", "llamacpp", "--model", "smollm2-135m",
            "--mode", "llm", "--out", str(out)]
    res = runner.invoke(app, args)
    assert res.exit_code == 0, res.output
    assert "cellscribe: mean agreement" in res.stdout and "gpt4aug3" in res.stdout
    # one call per (tissue, species) group, unique cluster ids, the mouse row sent as mouse
    assert [(c["tissue"], c["species"], c["clusters"]) for c in calls] == [
        ("PBMC", "human", ["row0"]), (None, "mouse", ["row1"])]
    assert all(c["explain"] is False and c["mode"] == "llm" for c in calls)
    rows = pd.read_csv(out / "predictions.csv")
    assert rows["row"].tolist() == [0, 1] and rows["species"].tolist() == ["human", "mouse"]
    assert rows["manual_annotation"].tolist() == pd.read_csv(small_table)["manual_annotation"].tolist()
    assert rows["prediction"].notna().all() and set(rows["agreement"]) <= {0.0, 0.5, 1.0}
    assert {"pred_cl_id", "pred_cl_name", "level", "confidence", "cached", "seconds"} <= set(rows.columns)
    summary = pd.read_csv(out / "summary.csv", index_col=0)
    assert list(summary.index) == ["all", "Azimuth", "MCA"]
    assert summary.loc["all", "cellscribe"] == pytest.approx(rows["agreement"].mean())
    assert summary.loc["all", "gpt4aug3"] == pytest.approx(pd.read_csv(small_table)["gpt4aug3_agreement"].mean())
    assert (out / "agreement.png").stat().st_size > 5_000
    first = json.loads((out / "provenance.json").read_text())
    assert first["answered_now"] == 2 and first["model"] == "smollm2-135m" and first["seconds_per_answer"] > 0

    # rerun: every answer comes from the cache, same predictions; --limit passes through
    calls.clear()
    res = runner.invoke(app, [*args, "--limit", "1"])
    assert res.exit_code == 0, res.output
    again = json.loads((out / "provenance.json").read_text())
    assert again["answered_now"] == 0 and again["from_cache"] == 1
    assert pd.read_csv(out / "predictions.csv")["prediction"].tolist() == rows["prediction"].tolist()[:1]
    assert len(calls) == 1 and calls[0]["mode"] == "llm"
