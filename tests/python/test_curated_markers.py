"""The curated marker sources beside the marker databases: Pegasus's and besca's marker sets.

Real files throughout: fetched once from the pinned PyPI wheels (``pegasuspy``, ``besca``) into the
test cache, read, mapped to the Cell Ontology and indexed with CellMarker 2.0 and singleCellBase.
"""

from __future__ import annotations

import pytest

from cellscribe.grounded import SOURCES, candidates, get_index
from cellscribe.knowledge import besca, ontology, pegasus


@pytest.fixture(autouse=True)
def _genes(gene_index):
    """The session's gene-facts index (symbols resolve through it in the marker index)."""
    return gene_index


def test_pegasus_markers_name_the_cortex_layers_and_lung_subtypes():
    mouse = pegasus.load("mouse")
    assert list(mouse.columns) == pegasus.COLUMNS
    ct = mouse[mouse["cell_type"] == "Glutamatergic layer 6 CT"]
    assert set(ct["symbol"]) == {"SYT6", "FOXP2"} and set(ct["cl_id"]) == {"CL:4023013"}
    assert not set(mouse["cell_type"]) & pegasus.SKIPPED          # T-cell states are left out
    human = pegasus.load("human")
    ctl = human[human["cell_type"] == "CD4 CTL"]
    assert "CD8A" not in set(ctl["symbol"])                        # "CD8A-" is a negative marker
    assert set(human.loc[human["cell_type"] == "Aerocyte", "cl_id"]) == {"CL:4028003"}
    cl = ontology.get()
    assert all(i in cl and not cl.is_deprecated(i) for i in pegasus.TERMS.values())


def test_besca_signatures_carry_ontology_ids_and_leave_out_cancers_and_states():
    human = besca.load("human")
    assert list(human.columns) == besca.COLUMNS
    cl = ontology.get()
    assert human["cl_id"].map(lambda i: i in cl).all()
    labels = set(human["cell_type"])
    assert "keratinocyte" in labels and "pancreatic acinar cell" in labels
    assert not {"melanocytic melanoma cell", "proliferating B cell", "exhausted B cell"} & labels
    assert not {"lymphocyte of B lineage", "hematopoietic cell", "myeloid leukocyte"} & labels   # umbrellas
    acinar = human[human["cell_type"] == "pancreatic acinar cell"]
    assert {"CPA1", "CTRB1"} <= set(acinar["symbol"])
    assert besca.load("mouse")["symbol"].str.fullmatch(r"[A-Z0-9.\-]+").all()


def test_the_index_holds_every_source_and_no_retired_term():
    cl = ontology.get()
    for species in ("human", "mouse"):
        index = get_index(species)
        assert set(index.source_support) == set(SOURCES)
        assert not [t for t in index.support if cl.is_deprecated(t)]


@pytest.mark.parametrize(("genes", "tissue", "species", "expected"), [
    # a mouse L6 corticothalamic cluster (Tasic et al. 2018 markers): a layer type, not just "neuron"
    (["Syt6", "Foxp2", "Rprm", "Crym", "Sla", "Slc17a7", "Tle4", "Hs3st4"], "Cortex", "mouse", "CL:4023013"),
    # a human lung aerocyte (Gillich et al. 2020 markers): the capillary subtype, not "endothelial cell"
    (["CA4", "EDNRB", "HPGD", "TBX2", "SOSTDC1", "APLN", "S100A3", "IL1RL1"], "Lung", "human", "CL:4028003"),
])
def test_curated_markers_propose_the_modern_subtypes(genes, tissue, species, expected):
    ranked = candidates(genes, tissue=tissue, species=species)
    assert expected in [c.cl_id for c in ranked[:3]], [(c.name, round(c.probability, 2)) for c in ranked[:5]]
