"""The curated marker sources beside the marker databases (Pegasus's and besca's marker sets), and the
markers the Cell Ontology's term names state, with the subtypes they let the choice name.

Real files throughout: fetched once from the pinned PyPI wheels (``pegasuspy``, ``besca``) into the
test cache, read, mapped to the Cell Ontology and indexed with CellMarker 2.0 and singleCellBase.
"""

from __future__ import annotations

import pytest

from cellscribe.grounded import SOURCES, Candidate, candidates, chosen_index, get_index
from cellscribe.knowledge import besca, ontology, ontology_markers, pegasus


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


@pytest.mark.parametrize(("name", "expected"), [
    ("sst GABAergic interneuron", ["SST"]),
    ("small intestine BEST4+ enterocyte", ["BEST4"]),
    ("CD8-alpha-negative CD11b-negative dendritic cell", []),       # negated markers are not markers
    ("CD14-positive, CD16-negative classical monocyte", ["CD14"]),
    ("CA1 pyramidal neuron", []),                                   # a hippocampal field, not carbonic anhydrase
])
def test_cell_type_names_state_their_markers(name, expected):
    assert ontology_markers.stated_genes(name) == expected


def test_atlas_taxonomy_names_state_no_markers():
    cl = ontology.get()
    taxonomy = next(t for t in cl.ids() if "(Mmus)" in cl.name(t) and ontology_markers.stated_genes(cl.name(t)))
    assert ontology_markers.name_genes(taxonomy) == ()
    assert ontology_markers.name_genes("CL:4023017") == ("SST",)


@pytest.mark.parametrize(("genes", "expected"), [
    # mouse cortex interneurons (Tasic et al. 2018 markers): the subtype their leading marker names
    (["Sst", "Gad1", "Gad2", "Slc32a1", "Cort", "Npy", "Calb2", "Lhx6"], "CL:4023017"),
    (["Lamp5", "Gad1", "Gad2", "Ndnf", "Cplx3", "Reln", "Id2", "Slc32a1"], "CL:4023011"),
    (["Vip", "Gad1", "Gad2", "Cck", "Crh", "Htr3a", "Cxcl14", "Tac2"], "CL:4023016"),
    (["Sncg", "Vip", "Cck", "Gad1", "Gad2", "Cnr1", "Slc32a1", "Htr3a"], "CL:4023015"),
    (["Pvalb", "Gad1", "Gad2", "Slc32a1", "Tac1", "Cox6a2", "Erbb4", "Lhx6"], "CL:4023018"),
])
def test_a_subtype_named_by_the_leading_marker_is_chosen(genes, expected):
    ranked = candidates(genes, tissue="Cortex", species="mouse")
    assert ranked[0].cl_id == expected, [(c.name, round(c.probability, 2)) for c in ranked[:4]]
    assert ranked[0].probability == max(c.probability for c in ranked)


def test_a_named_subtype_needs_a_gene_of_its_own_and_near_parity():
    def cand(cl_id, p, named=()):
        return Candidate(cl_id, ontology.get().name(cl_id), 1.0, (), {}, probability=p, named=named)

    interneuron, sst = "CL:0000099", "CL:4023017"
    assert chosen_index([cand(interneuron, 0.8), cand(sst, 0.7, ("SST",))]) == 1
    assert chosen_index([cand(interneuron, 0.8), cand(sst, 0.35, ("SST",))]) == 0            # too far behind
    assert chosen_index([cand(interneuron, 0.8), cand(sst, 0.75)]) == 0                      # SST not leading
    assert chosen_index([cand(sst, 0.8, ("SST",)), cand(interneuron, 0.79)]) == 0            # not a subtype
    cd8, cytotoxic = "CL:0000625", "CL:0000794"   # CD8-positive, alpha-beta T cell and its cytotoxic subtype
    assert chosen_index([cand(cd8, 0.8, ("CD8A",)), cand(cytotoxic, 0.79, ("CD8A",))]) == 0  # no gene of its own
