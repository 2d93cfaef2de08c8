"""Tissue and species plausibility: where a Cell Ontology type lives (knowledge.anatomy), retrieval that
leaves out types of another organ or species, and the acceptance count over every dev.csv row and the
bundled datasets' clusters."""

from __future__ import annotations

import pandas as pd
import pytest

from cellscribe import datasets, pipeline
from cellscribe.benchmark import run_benchmark
from cellscribe.grounded import retrieve
from cellscribe.knowledge import anatomy, ontology


@pytest.fixture(autouse=True)
def _genes(gene_index):
    return gene_index


def _id(name: str) -> str:
    return ontology.get().lookup(name, kinds=("name",))[0][0]


@pytest.mark.parametrize(
    ("term", "tissue"),
    [
        ("cochlear outer hair cell", "Motor Cortex"),          # the wrong-organ answers
        ("olfactory receptor cell", "brain (cortex)"),
        ("medium spiny neuron", "Motor Cortex"),
        ("crypt olfactory receptor neuron", "Large Intestine"),
        ("enteroendocrine cell", "cortex"),
        ("hepatocyte", "PBMC"),
        ("corticotroph", "Motor Cortex"),                      # a pituitary cell, not a cortical one
        ("kidney cortex artery cell", "Vasculature"),          # "cortex" of the kidney
        ("sst GABAergic interneuron", "Pancreas"),             # anatomy from its ancestors (cortical interneuron)
        ("pvalb GABAergic interneuron", "Lung"),               # ... (neuron of the forebrain)
        ("double-positive, alpha-beta thymocyte", "Bone Marrow"),  # T-cell precursors of the thymus only
    ],
)
def test_types_of_another_organ_contradict_the_tissue(term, tissue):
    assert anatomy.contradicts(_id(term), tissue)


@pytest.mark.parametrize(
    ("term", "tissue"),
    [
        ("T cell", "Motor Cortex"),                             # cells that travel name no organ
        ("naive thymus-derived CD8-positive, alpha-beta T cell", "PBMC"),   # origin, not place
        ("medium spiny neuron", "brain"),                       # a region of the organ named
        ("hepatocyte", "Liver"),
        ("hepatocyte", None),
        ("hepatocyte", "tumour and blood"),                     # no organ named: no constraint
        ("cell of skeletal muscle", "Skin"),                    # skeletal muscle sits beside many organs
        ("type B pancreatic cell", "Pancreas"),
        ("retinal ganglion cell", "Eye"),
        ("alveolar macrophage", "lung cancer and brain metastasis"),
        ("double-positive, alpha-beta thymocyte", "Thymus"),
    ],
)
def test_types_of_the_tissue_or_of_no_organ_do_not_contradict(term, tissue):
    assert not anatomy.contradicts(_id(term), tissue)


def test_tissue_names_normalise_to_anatomy():
    assert anatomy.tissue_anatomy("brain (cortex)") == {("brain", "cortex")}
    assert anatomy.tissue_anatomy("Motor Cortex") == {("brain", "cortex")}
    assert anatomy.tissue_anatomy("PBMC") == {("blood", "")}
    assert anatomy.tissue_anatomy("Trachea") == {("lung", "")}
    assert anatomy.tissue_anatomy("Fetal Development") == frozenset()


def test_species_restricted_terms():
    primate, mouse_only = _id("striatal VIP GABAergic interneuron (Primate)"), "CL:4023014"
    assert anatomy.plausible(primate, species="human") and not anatomy.plausible(primate, species="mouse")
    assert anatomy.plausible(mouse_only, species="mouse") and not anatomy.plausible(mouse_only, species="human")
    assert not anatomy.plausible(_id("von Economo neuron"), species="mouse")   # not marked in its name
    assert anatomy.species_restriction(_id("neuron")) is None


def test_retrieval_leaves_out_implausible_types():
    """Hair-cell and olfactory markers in a mouse cortex give no ear or nose types, and a mouse never
    gets a primate or human-only term; without a tissue the ear types are candidates."""
    genes = ["Otof", "Slc17a8", "Omp", "Gnal", "Cbln2", "Cux2", "Vip", "Sst"]
    free = retrieve(genes, species="mouse", k=30)
    cortex = retrieve(genes, tissue="Motor Cortex", species="mouse", k=30)
    assert any(anatomy.contradicts(c.cl_id, "Motor Cortex") for c in free)
    assert cortex and not any(anatomy.contradicts(c.cl_id, "Motor Cortex") for c in cortex)
    assert all(anatomy.species_allowed(c.cl_id, "mouse") for c in free + cortex)


def _implausible(cl_ids: list, tissues: list, species: list) -> list[tuple]:
    return [(c, t, s) for c, t, s in zip(cl_ids, tissues, species, strict=True)
            if isinstance(c, str) and c in ontology.get()
            and not anatomy.plausible(c, tissue=t if isinstance(t, str) else None, species=s)]


@pytest.mark.slow
def test_no_grounded_label_contradicts_tissue_or_species(gptcelltype_dev):
    """Acceptance: over every dev.csv row and every cluster of the bundled datasets (grounded labels
    without explanations), no label comes from another organ than the given tissue or is restricted
    to another species."""
    table = pd.read_csv(gptcelltype_dev)
    rows = run_benchmark(table, explain=False, progress=False).rows
    bad = _implausible(rows["pred_cl_id"].tolist(), rows["tissue"].tolist(), rows["species"].tolist())
    assert rows["pred_cl_id"].notna().mean() > 0.9
    for name, spec in datasets.REGISTRY.items():
        result = pipeline.run(name, tissue=spec.tissue, species=spec.species, explain=False, truth=spec.truth)
        ids = result.annotations["cl_id"].tolist()
        assert any(isinstance(i, str) for i in ids), name
        bad += _implausible(ids, [spec.tissue] * len(ids), [spec.species] * len(ids))
    assert bad == []
