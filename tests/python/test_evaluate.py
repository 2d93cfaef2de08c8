"""Evaluation: label -> Cell Ontology mapping, agreement scores, accuracy metrics, marker validation,
and the scorer-validity acceptance test on the GPTCelltype development table."""

from __future__ import annotations

import pandas as pd
import pytest

from cellscribe import benchmark
from cellscribe import evaluate as ev
from cellscribe.evaluate import agreement, agreement_level, map_label

# label -> (expected first CL ID, expected method or None for any precise method)
MAPPINGS = {
    "B cells": ("CL:0000236", "name"),
    "B lymphocytes": ("CL:0000236", "synonym"),
    "T-cells": ("CL:0000084", "name"),
    "CD14+ Monocytes": ("CL:0001054", "name"),          # marker notation, plural
    "CD14 Monocyte": ("CL:0001054", "name"),            # bare CD marker read as positive
    "CD4 T cells": ("CL:0000624", None),                # alpha-beta left out, as people write it
    "NK cells": ("CL:0000623", "synonym"),              # abbreviations
    "pDCs": ("CL:0000784", "synonym"),
    "Tregs": ("CL:0000815", "synonym"),
    "HSC": ("CL:0000037", "synonym"),
    "OPCs": ("CL:0002453", "name"),
    "ILC": ("CL:0001065", "name"),
    "MAIT cells": ("CL:0000940", "name"),
    "Dendritic": ("CL:0000451", "name"),                # "cell" added
    "Mast": ("CL:0000097", "name"),
    "Activated Naive B": ("CL:0000788", "name"),        # state word dropped, "cell" added
    "Myofibroblasts": ("CL:0000186", "name"),
    "Erythroid cells": ("CL:0000764", "name"),          # common name in the ontology's spelling
    "Immune (B cell)": ("CL:0000236", "name"),          # qualifier names the type
    "Endothelial cell (lymphatic)": ("CL:0002138", "synonym"),  # qualifier refines
    "Fibroblsts": ("CL:0000057", "fuzzy"),              # typo
    "Arterial endothelial cells": ("CL:1000413", None),
    "Pvalb+ GABAergic neuron": ("CL:4023018", "name"),  # pvalb GABAergic interneuron, as atlases name it
    "Htr3a+ GABAergic neuron": ("CL:0000617", "partial"),  # subtype the ontology lacks
    "colon cancer cell": ("CL:0001064", "malignant"),
    "Malignant B cells": ("CL:0001064", "malignant"),
    "Tumor-associated macrophages": ("CL:0000235", "name"),
    "Non-malignant B cells": ("CL:0000236", "name"),
    "Cluster 3: B cells": ("CL:0000236", "name"),        # a leading cluster number is not part of the type
    "8.1-Teff": ("CL:0000911", "name"),                  # Wu et al. 2020 style, Teff abbreviation
}


@pytest.mark.parametrize("label", list(MAPPINGS))
def test_map_label(label):
    cl_id, method = MAPPINGS[label]
    m = map_label(label)
    assert m.cl_id == cl_id, (label, m)
    assert m.method == method if method else m.precise
    assert m.name and 0 < m.score <= 100


def test_map_label_several_types_and_unmapped():
    m = map_label("Macrophages / Microglia")
    assert m.cl_ids == ("CL:0000235", "CL:0000129") and m.names() == ["macrophage", "microglial cell"]
    assert map_label("NK/T cells").cl_ids == ("CL:0000084", "CL:0000623")[::-1] or set(
        map_label("NK/T cells").cl_ids) == {"CL:0000084", "CL:0000623"}
    assert set(map_label("Immune (DC/macrophage)").cl_ids) == {"CL:0000451", "CL:0000235"}
    assert map_label("CD4-positive, alpha-beta T cell").cl_ids == ("CL:0000624",)  # comma kept inside a name
    for nothing in ("Unknown", "", None, float("nan"), "xyzzy plumbus"):
        m = map_label(nothing)
        assert m.cl_id is None and m.name == "unmapped" and m.method == "unmapped" and not m.mapped
    assert map_label("memory T cel").cl_id != "CL:0000787"  # never the B-cell term by fuzzy spelling
    table = ev.map_labels(["NK cells", "nonsense words here"])
    assert list(table.columns) == ["label", "cl_id", "cl_name", "score", "method", "matched", "cl_ids"]
    assert table["cl_name"].tolist() == ["natural killer cell", "unmapped"]


@pytest.mark.parametrize("cl_id, broad", [
    ("CL:0000787", "b cell"), ("CL:0000786", "b cell"), ("CL:0000623", "t/nk cell"), ("CL:0000129", "microglia"),
    ("CL:0000576", "macrophage/monocyte"), ("CL:0000097", "granulocyte"), ("CL:0000037", "stem cell"),
    ("CL:0000182", "epithelial cell"), ("CL:0000057", "fibroblast"), ("CL:0001064", "malignant cell"),
    ("CL:0000738", "immune cell"), ("CL:0000000", None),
])
def test_broad_type_from_ancestry(cl_id, broad):
    assert ev.broad_type(cl_id) == broad


@pytest.mark.parametrize("predicted, truth, level", [
    ("NK cells", "natural killer cell", "exact"),
    ("CD14+ Monocytes", "CD14-positive monocyte", "exact"),
    ("Tumor cells", "Malignant cells", "exact"),
    ("T cells", "CD8+ T cells", "major"),
    ("Memory B cells", "Naive B cells", "major"),
    ("Pericytes", "Fibroblasts", "related"),       # share stromal cell
    ("Lymphocytes", "T cells", "related"),         # parent/child broad types
    ("B cells", "T cells", "wrong"),
    ("Monocytes", "Neutrophils", "wrong"),         # only the wide myeloid class in common
    ("Neurons", "Hepatocytes", "wrong"),
    (None, "T cells", "wrong"),
])
def test_agreement_levels(predicted, truth, level):
    assert agreement_level(predicted, truth) == level
    assert agreement(predicted, truth) == {"exact": 1.0, "major": 0.5, "related": 0.5, "wrong": 0.0}[level]


def test_partial_mappings_do_not_count_as_the_same_term():
    # "Pvalb+ GABAergic neuron" is pvalb GABAergic interneuron: same lineage, not the same type
    assert agreement_level("GABAergic neurons", "Pvalb+ GABAergic neuron") == "major"
    assert agreement_level("GABAergic neurons", "Htr3a+ GABAergic neuron") == "major"
    # the truth's own CL mapping, when given, is used as is; "known to have no term" stays so
    assert agreement_level("natural killer cell", ev.side("NK", cl_ids="CL:0000623", broad="t/nk cell")) == "exact"
    assert agreement_level("Neurons", ev.side("Limbic system neurons", cl_ids="", broad="neuron")) == "major"


def test_score_labels_rows_in_order():
    scored = ev.score_labels(["NK cells", "B cells", None], ["natural killer cell", "T cells", "T cells"])
    assert scored["agreement"].tolist() == [1.0, 0.0, 0.0]
    assert scored["level"].tolist() == ["exact", "wrong", "wrong"]
    assert scored.loc[0, "pred_cl_id"] == "CL:0000623" and scored.loc[1, "truth_broad"] == "t/nk cell"
    assert scored.loc[2, "pred_method"] is None
    with pytest.raises(ValueError):
        ev.score_labels(["a"], ["a", "b"])


def test_scorer_reproduces_published_gptcelltype_scores(gptcelltype_dev):
    """Acceptance: re-scoring the published GPT-4 and GPT-3.5 labels reproduces the study's
    per-row agreement on at least 90% of rows, and its mean within 0.03."""
    table = pd.read_csv(gptcelltype_dev)
    assert len(table) == 447
    for method, published_mean in (("gpt4aug3", 0.588), ("gpt3.5aug3", 0.428)):
        published = table[f"{method}_agreement"]
        assert published.mean() == pytest.approx(published_mean, abs=0.0005)
        result = benchmark.score_column(table, f"{method}_annotation")
        ours = result.rows["agreement"]
        same = (ours.to_numpy() == published.to_numpy()).mean()
        assert same >= 0.90, f"{method}: identical on only {same:.1%} of rows"
        assert abs(ours.mean() - published_mean) <= 0.03, f"{method}: mean {ours.mean():.3f}"
        assert result.provenance["published"]["same_share"] == pytest.approx(same)
    # the truth mapped from its text alone (as for datasets without CL IDs) still agrees closely
    text_only = benchmark.score_column(table, "gpt4aug3_annotation", truth_from_text=True)
    assert (text_only.rows["agreement"].to_numpy() == table["gpt4aug3_agreement"].to_numpy()).mean() >= 0.85


def test_cell_and_cluster_accuracy():
    clusters = ["0"] * 4 + ["1"] * 3 + ["2"] * 3
    predicted = ["NK cells"] * 4 + ["B cells"] * 3 + ["Monocytes"] * 3
    truth = (["natural killer cell"] * 3 + ["T cell"]) + ["T cell"] * 3 + ["CD14+ Monocyte"] * 3
    cells = ev.cell_accuracy(predicted, truth)
    assert cells.n == 10 and cells.exact == pytest.approx(0.3)
    assert cells.mean_agreement == pytest.approx((3 * 1 + 1 * 0.5 + 3 * 0 + 3 * 0.5) / 10)
    acc, table = ev.cluster_accuracy(clusters, predicted, truth, return_table=True)
    assert acc.n == 3 and acc.mean_agreement == pytest.approx((1 + 0 + 0.5) / 3)
    assert table["truth"].tolist() == ["natural killer cell", "T cell", "CD14+ Monocyte"]
    assert table["truth_share"].tolist() == pytest.approx([0.75, 1.0, 1.0])
    assert set(acc.to_dict()) == {"mean_agreement", "exact", "major", "related", "wrong", "n"}


def test_classification_metrics():
    predicted = ["NK cells", "NK cells", "B cells", "B cells"]
    truth = ["natural killer cell", "natural killer cell", "B cell", "T cell"]
    m = ev.classification_metrics(predicted, truth)
    assert m["accuracy"] == pytest.approx(0.75) and m["n"] == 4
    per = m["per_class"].set_index("class")
    assert per.loc["natural killer cell", "recall"] == 1.0 and per.loc["T cell", "recall"] == 0.0
    assert m["recall"] == pytest.approx(2 / 3) and 0 < m["precision"] <= 1 and 0 < m["f1"] <= 1
    broad = ev.classification_metrics(["CD8+ T cells"], ["T cell"], level="broad")
    assert broad["accuracy"] == 1.0 and broad["per_class"]["class"].tolist() == ["t/nk cell"]


def test_confusion_matrix_plot(tmp_path):
    import matplotlib.pyplot as plt

    import cellscribe as cs

    predicted = ["NK cells", "NK cells", "B cells", "B cells", "Monocytes"]
    truth = ["natural killer cell", "natural killer cell", "B cell", "T cell", "CD14+ Monocyte"]
    fig = cs.pl.confusion_matrix(predicted, truth, path=tmp_path / "cm.png", normalize=False)
    grid = fig.axes[0].images[0].get_array()
    rows = [t.get_text() for t in fig.axes[0].get_yticklabels()]
    cols = [t.get_text() for t in fig.axes[0].get_xticklabels()]
    assert grid[rows.index("natural killer cell"), cols.index("natural killer cell")] == 2  # synonyms credited
    assert grid[rows.index("T cell"), cols.index("B cell")] == 1
    assert (tmp_path / "cm.png").stat().st_size > 5_000
    plt.close(fig)


def test_marker_validation():
    markers = {
        "b": ["MS4A1", "CD79A", "CD79B", "CD19", "BANK1", "IGHM", "TCL1A", "CD22", "FCER2", "PAX5"],
        "nk": ["GNLY", "NKG7", "KLRD1", "PRF1", "GZMB", "KLRF1", "NCAM1", "FCGR3A", "CTSW", "GZMA"],
    }
    result = ev.validate_markers(markers, {"b": "B cells", "nk": "Hepatocytes"})
    assert list(result.columns) == ["cluster", "label", "cl_id", "cl_name", "n_markers", "n_canonical", "n_overlap",
                                    "overlap", "fraction", "p_value", "supported"]
    b, nk = result.set_index("cluster").loc["b"], result.set_index("cluster").loc["nk"]
    assert b["supported"] and b["p_value"] < 1e-6 and {"MS4A1", "CD79A", "CD19"} <= set(b["overlap"])
    assert b["overlap"] == [g for g in markers["b"] if g in b["overlap"]]  # in the cluster's marker order
    assert not nk["supported"] and nk["n_overlap"] <= 1 and nk["cl_name"] == "hepatocyte"
    mouse = ev.validate_markers({"0": ["Tmem119", "P2ry12", "Cx3cr1", "Csf1r", "Hexb"]}, {"0": "Microglia"},
                                species="mouse")
    assert mouse.loc[0, "supported"] and mouse.loc[0, "fraction"] >= 0.8
    unknown = ev.validate_markers({"0": ["CD3E"]}, {"0": "xyzzy"})
    assert unknown.loc[0, "cl_id"] is None and not unknown.loc[0, "supported"]
