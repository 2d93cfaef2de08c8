"""The command line: output formats, files, and errors as one clear message (exit 2, no traceback)."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from conftest import DATA, cli_env

SEURAT_CSV = DATA / "pbmc_small_markers.csv"


def cli(*args: str, env_cache=None) -> subprocess.CompletedProcess:

    env = cli_env(env_cache)
    return subprocess.run([sys.executable, "-m", "cellscribe", *args], capture_output=True, text=True, env=env,
                          timeout=600)


@pytest.mark.model
@pytest.mark.slow
def test_default_annotate_is_grounded_right_and_a_list_of_row_objects(qwen15_path, tmp_path):
    """What a user gets with no options: pbmc_small's NK/T, monocyte and B clusters named right,
    each with its Cell Ontology ID, explained in three bullets; progress lines reach the log."""
    out = cli("annotate", str(SEURAT_CSV), "--tissue", "PBMC", "--backend", "llamacpp", "--format", "json")
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert [r["cluster"] for r in rows] == ["0", "1", "2"]
    assert all(list(r) == ["cluster", "label", "broad_lineage", "confidence", "title", "bullets",
                           "explanation_markdown", "bullet_sources", "supporting_markers", "cl_id", "cl_name",
                           "evidence_genes", "candidates", "chosen_by", "rival", "caveats", "case_markdown"]
               for r in rows), list(rows[0])
    assert all(r["cl_id"].startswith("CL:") and r["label"] == r["cl_name"] for r in rows)
    nk_t, mono, b = (r["label"].lower() for r in rows)
    assert any(w in nk_t for w in ("natural killer", "nk", "t cell", "cytotoxic", "lymphocyte")), nk_t
    assert "monocyte" in mono and "b cell" in b, (mono, b)
    assert all(len(r["bullets"]) == 3 and r["explanation_markdown"].startswith("## **") for r in rows)
    # stderr is not a terminal here: plain progress lines, the last one with every cluster done
    assert "cellscribe: annotating (grounded) with qwen2.5-coder-1.5b: 3/3 clusters" in out.stderr
    # the other formats, from the cache, into files
    for fmt, check in (("csv", lambda t: t.startswith("cluster,label,broad_lineage")),
                       ("markdown", lambda t: t.startswith("# Cluster 0:")),
                       ("table", lambda t: "broad_lineage" in t)):
        path = tmp_path / f"out.{fmt}"
        res = cli("annotate", str(SEURAT_CSV), "--tissue", "PBMC", "--backend", "llamacpp", "-f", fmt, "-o", str(path))
        assert res.returncode == 0 and "0 answered, 3 from cache" in res.stderr
        assert check(path.read_text())


@pytest.mark.parametrize(
    "args, message",
    [
        (["annotate", "missing.csv"], "Marker file not found: missing.csv"),
        (["annotate", str(SEURAT_CSV), "--backend", "claude"], "Unknown backend 'claude'"),
        (["annotate", str(SEURAT_CSV), "--species", "fly"], "species must be one of human, mouse"),
        (["annotate", str(SEURAT_CSV), "--backend", "llamacpp", "--model", "tiny"], "Unknown local model 'tiny'"),
    ],
)
def test_errors_are_one_clear_line(args, message):
    out = cli(*args)
    assert out.returncode == 2
    assert message in out.stderr and "Traceback" not in out.stderr


def test_bad_table_error(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text("gene,score\nCD3D,1\n")
    out = cli("annotate", str(path))
    assert out.returncode == 2 and "missing column(s) 'cluster' and 'gene'" in out.stderr


def test_models_lists_the_registry(smollm_path):
    out = cli("models")
    assert out.returncode == 0
    assert "qwen2.5-coder-1.5b (default)" in out.stdout and "smollm2-135m" in out.stdout
