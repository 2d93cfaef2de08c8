"""Bad or unusual input: read as written, or refused up front with a message that names the fix.

These run grounded without explanations (no language model), so they are quick."""

from __future__ import annotations

import json
import subprocess
import sys

import pandas as pd
import pytest
import scanpy as sc
from conftest import DATA, cli_env

import cellscribe as cs
from cellscribe.engine.modes.grounded import messages
from cellscribe.errors import InputError, MarkerInputError
from cellscribe.grounded import candidates
from cellscribe.markers import MarkerWarning, read_markers
from cellscribe.prompts import text_or_file

B = ["MS4A1", "CD79A", "CD79B", "CD19"]
T = ["CD3D", "CD3E", "IL7R", "CD2"]


def _write(path, text: str, encoding: str = "utf-8"):
    path.write_bytes(text.encode(encoding))
    return path


def test_cluster_ids_are_kept_exactly_as_written(tmp_path):
    """Leading zeros and dotted sub-clusters are IDs, not numbers: nothing is renamed or merged."""
    rows = [("01", g) for g in T] + [("02", g) for g in B] + [("10", "LYZ"), ("3.1", "CD3D"), ("3.10", "MS4A1")]
    path = _write(tmp_path / "m.csv", "cluster,gene\n" + "".join(f"{c},{g}\n" for c, g in rows))
    table = read_markers(path)
    assert set(table.genes) == {"01", "02", "10", "3.1", "3.10"}
    assert table.genes["3.1"] == ["CD3D"] and table.genes["3.10"] == ["MS4A1"]
    df = cs.annotate(path, tissue="PBMC", explain=False)
    assert set(df["cluster"]) == {"01", "02", "10", "3.1", "3.10"}


def test_tab_separated_file_named_csv_and_other_encodings(tmp_path):
    text = "cluster\tgene\n" + "".join(f"b\t{g}\n" for g in B)
    assert read_markers(_write(tmp_path / "tabs.csv", text)).genes == {"b": B}
    assert read_markers(_write(tmp_path / "semi.csv", text.replace("\t", ";"))).genes == {"b": B}
    assert read_markers(_write(tmp_path / "u16.csv", "\ufeff" + text.replace("\t", ","), "utf-16-le")).genes == {
        "b": B}
    latin = "cluster,gene,note\n" + "".join(f"b,{g},Müller lab\n" for g in B)
    with pytest.warns(MarkerWarning, match=r"latin.csv is not UTF-8 .*read it as cp1252"):
        assert read_markers(_write(tmp_path / "latin.csv", latin, "latin-1")).genes == {"b": B}


def test_scanpy_rank_genes_groups_df_export_is_accepted():
    adata = sc.datasets.pbmc68k_reduced()
    df = sc.get.rank_genes_groups_df(adata, group=None)  # group, names, scores (+ statistics when computed)
    table = read_markers(df, top_n=5)
    assert set(table.genes) == {str(g) for g in adata.uns["rank_genes_groups"]["names"].dtype.names}
    first = str(df["group"].iloc[0])
    assert table.genes[first] == df.loc[df["group"] == first, "names"].head(5).tolist()
    stats = pd.DataFrame({"group": ["b"] * 4 + ["t"] * 4, "names": B + T, "logfoldchanges": [3, 2, -1, 1] * 2,
                          "pvals_adj": [0.01, 0.001, 0.5, 0.02] * 2})
    table = read_markers(stats)
    assert table.genes["b"] == ["CD79A", "MS4A1", "CD19"]  # by adjusted p, negative fold changes left out


def test_prompt_options_that_name_a_missing_file_are_errors(tmp_path):
    markers = {"b": B}
    with pytest.raises(InputError, match=r"The system prompt file .*missing\.txt does not exist"):
        cs.annotate(markers, system_prompt=str(tmp_path / "missing.txt"), explain=False)
    with pytest.raises(InputError, match=r"The template file prompts/mine\.j2 does not exist"):
        cs.annotate(markers, mode="llm", template="prompts/mine.j2", backend="llamacpp")
    with pytest.raises(InputError, match=r"The system prompt file .* is a folder"):
        cs.annotate(markers, system_prompt=tmp_path, explain=False)
    with pytest.raises(InputError, match="template= and style= apply to mode='llm'"):
        cs.annotate(markers, template="Markers: {{ genes }}", explain=False)
    # text stays text, and a file's text is read
    own = _write(tmp_path / "system.txt", "You are a careful immunologist.\n")
    ranked = candidates(B, tissue="PBMC")
    assert messages(B, ranked[:2], tissue="PBMC", species="human",
                    system=text_or_file(own))[0]["content"] == "You are a careful immunologist."
    assert text_or_file("Answer briefly, please.") == "Answer briefly, please."


def test_tissue_and_concurrency_are_checked():
    with pytest.raises(InputError, match="tissue must be text such as 'PBMC' or 'lung'; got int 123"):
        cs.annotate({"b": B}, tissue=123, explain=False)
    with pytest.raises(InputError, match="concurrency must be a positive whole number"):
        cs.annotate({"b": B}, concurrency=-3, explain=False)
    with pytest.warns(UserWarning, match=r"tissue is \d+ characters long; only the first"):
        df = cs.annotate({"b": B}, tissue="blood " * 3333 + "xx", explain=False)
    assert df.loc[0, "label"] == "B cell"


def test_markers_not_a_table_error():
    with pytest.raises(MarkerInputError, match="missing column"):
        read_markers(pd.DataFrame({"x": [1], "y": [2]}))


def _cli(*args: str) -> subprocess.CompletedProcess:
    env = cli_env()
    return subprocess.run([sys.executable, "-m", "cellscribe", *args], capture_output=True, text=True, env=env,
                          timeout=300)


def test_cli_output_path_is_checked_before_any_work(tmp_path):
    path = _write(tmp_path / "m.csv", "cluster,gene\n" + "".join(f"b,{g}\n" for g in B))
    out = _cli("annotate", str(path), "--no-explain", "--out", str(tmp_path))
    assert out.returncode == 2 and f"--out {tmp_path} is a folder; give a file name" in out.stderr
    assert "annotating" not in out.stderr and "Traceback" not in out.stderr  # refused before the work
    blocker = _write(tmp_path / "file", "x")
    out = _cli("annotate", str(path), "--no-explain", "--out", str(blocker / "sub" / "out.csv"))
    assert out.returncode == 2 and "Cannot create the folder of --out" in out.stderr
    target = tmp_path / "new" / "deeper" / "out.csv"  # a missing folder is made
    out = _cli("annotate", str(path), "--no-explain", "--format", "csv", "--out", str(target))
    assert out.returncode == 0, out.stderr
    assert target.read_text().startswith("cluster,label")
    out = _cli("annotate", str(path), "--no-explain", "--concurrency", "-3")
    assert out.returncode == 2 and "concurrency must be a positive whole number" in out.stderr


def test_a_cluster_without_usable_statistics_says_so():
    df = pd.DataFrame({"cluster": ["b"] * 4 + ["t"] * 4, "gene": B + T, "avg_log2FC": [2.0] * 8,
                       "p_val_adj": [0.01] * 4 + [float("nan")] * 4})
    with pytest.warns(MarkerWarning):
        table = read_markers(df)
    assert table.dropped == {"t": "none of its rows has usable statistics (missing or non-numeric p-values or "
                                  "fold changes)"}


def test_backend_and_model_names_are_checked_even_when_no_model_runs():
    with pytest.raises(InputError, match="Unknown backend 'nosuch'; choose one of auto, llamacpp"):
        cs.annotate({"b": B}, backend="nosuch", explain=False)
    with pytest.warns(UserWarning, match="model='nosuch-model' is not used: grounded annotation with explain=False"):
        cs.annotate({"b": B}, model="nosuch-model", explain=False)


def test_a_named_model_is_never_replaced_by_the_default_one():
    """backend='auto' with a model that is neither local nor served (no Ollama listens on port 9)."""
    from cellscribe.llm import ModelNotFoundError, get_backend

    with pytest.raises(ModelNotFoundError,
                       match=r"Model 'nosuch-model' is not a local model .* no Ollama server answers"):
        get_backend("auto", model="nosuch-model", host="http://127.0.0.1:9")
    out = _cli("annotate", str(DATA / "pbmc_small_markers.csv"), "--model", "nosuch-model", "--host",
               "http://127.0.0.1:9")
    assert out.returncode == 2 and "Model 'nosuch-model' is not a local model" in out.stderr


@pytest.mark.slow
def test_two_processes_on_an_empty_cache_both_succeed(tmp_path):
    """Both need the knowledge files and the marker index at the same time: one builds each (a file
    lock), the other waits and reuses it; neither dies, and both give the same answer."""
    path = _write(tmp_path / "m.csv", "cluster,gene\n" + "".join(f"b,{g}\n" for g in B))
    env = cli_env()
    cmd = [sys.executable, "-m", "cellscribe", "annotate", str(path), "--no-explain", "--format", "csv"]
    procs = [subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for _ in range(2)]
    outs = [p.communicate(timeout=600) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], [err for _, err in outs]
    assert outs[0][0] == outs[1][0] and "B cell" in outs[0][0]
    stderr = outs[0][1] + outs[1][1]
    assert stderr.count("building the human marker index from CellMarker 2.0, singleCellBase, Pegasus and besca "
                        "(first use only, about 15 s): done") == 1, stderr
    assert stderr.count("reading CellMarker 2.0 (first use only): done") == 1, stderr
    assert "another process is making the human marker index; waiting for it" in stderr, stderr


def test_markers_of_random_data_are_reported_as_noise():
    """Clusters of Poisson noise: every cluster's label would rest on non-significant markers."""
    import anndata as ad
    import numpy as np

    rng = np.random.default_rng(0)
    genes = [*B, *T, "LYZ", "CD14", "NKG7", "GNLY", "PPBP", "HBB"] + [f"NOISE{i}" for i in range(186)]
    adata = ad.AnnData(rng.poisson(1.0, (300, len(genes))).astype(np.float32))
    adata.var_names = genes
    adata.obs["cluster"] = pd.Categorical(rng.integers(0, 4, 300).astype(str))
    sc.pp.log1p(adata)
    sc.tl.rank_genes_groups(adata, "cluster", method="wilcoxon")
    with pytest.warns(MarkerWarning,
                      match=r"4 of 4 cluster\(s\) have no marker with adjusted p <= 0.05 .* rest on noise"):
        read_markers(adata)


def test_cli_shows_the_traceback_of_an_error_only_with_verbose():
    quiet = _cli("annotate", "missing.csv")
    loud = _cli("-v", "annotate", "missing.csv")
    assert quiet.returncode == loud.returncode == 2
    assert "Traceback" not in quiet.stderr and quiet.stderr.strip() == "Error: Marker file not found: missing.csv"
    assert "Traceback" in loud.stderr and loud.stderr.strip().endswith("Error: Marker file not found: missing.csv")


@pytest.mark.parametrize("case, make, extra, message", [
    ("template names a missing file", lambda d: str(_write(d / "m.csv", "cluster,gene\n0,CD3D\n")),
     ["--mode", "llm", "--template", "nosuch.j2"], "The template file nosuch.j2 does not exist"),
    ("system prompt names a missing file", lambda d: str(_write(d / "m.csv", "cluster,gene\n0,CD3D\n")),
     ["--system-prompt", "prompts/nosuch.txt"], "The system prompt file prompts/nosuch.txt does not exist"),
    ("--out is a folder", lambda d: str(_write(d / "m.csv", "cluster,gene\n0,CD3D\n")),
     ["--out", "."], "is a folder; give a file name"),
    ("negative concurrency", lambda d: str(_write(d / "m.csv", "cluster,gene\n0,CD3D\n")),
     ["--concurrency", "-3"], "concurrency must be a positive whole number"),
    ("unknown backend, no model needed", lambda d: str(_write(d / "m.csv", "cluster,gene\n0,CD3D\n")),
     ["--backend", "nosuch", "--no-explain"], "Unknown backend 'nosuch'"),
    ("template with grounded", lambda d: str(_write(d / "m.csv", "cluster,gene\n0,CD3D\n")),
     ["--template", "x.j2"], "template= and style= apply to mode='llm'"),
    ("empty file", lambda d: str(_write(d / "m.csv", "")), [], "is empty"),
])
def test_cli_bad_input_cases_are_one_clear_line(tmp_path, monkeypatch, case, make, extra, message):
    """The bad-input cases of issue 16 through the command line: exit 2, one line naming the problem."""
    monkeypatch.chdir(tmp_path)
    out = subprocess.run([sys.executable, "-m", "cellscribe", "annotate", make(tmp_path), *extra],
                         capture_output=True, text=True, env=cli_env(), timeout=300)
    assert out.returncode == 2, (case, out.stderr)
    assert "Traceback" not in out.stderr and message in out.stderr, (case, out.stderr)


def test_cli_keeps_ids_and_reads_latin1_tab_separated_csv(tmp_path):
    """Cluster IDs 01, 3.1 and 3.10 stay apart and as written; a Latin-1, tab-separated file named
    .csv is read; a 300-character tissue is cut with a warning, not sent whole."""
    rows = [("01", "CD3D"), ("01", "CD3E"), ("3.1", "MS4A1"), ("3.1", "CD79A"), ("3.10", "CD14"), ("3.10", "LYZ")]
    path = _write(tmp_path / "markers.csv", "cluster\tgene\tnote\n" + "".join(f"{c}\t{g}\tcafé\n" for c, g in rows),
                  "latin-1")
    out = subprocess.run([sys.executable, "-m", "cellscribe", "annotate", str(path), "--no-explain", "--format", "json",
                          "--tissue", "peripheral blood " * 20], capture_output=True, text=True, env=cli_env(),
                         timeout=300)
    assert out.returncode == 0, out.stderr
    got = {r["cluster"]: r["label"] for r in json.loads(out.stdout)}
    assert list(got) == ["01", "3.1", "3.10"] and "B cell" in got["3.1"] and "monocyte" in got["3.10"], got
    assert "tissue is 339 characters long" in " ".join(out.stderr.split()), out.stderr
