"""Gene facts from Debian's org.Hs.eg.db and GO.db (cellscribe.knowledge.genes), read for real."""

from __future__ import annotations

import pytest

import cellscribe
from cellscribe.errors import InputError
from cellscribe.knowledge import genes


def test_ms4a1_facts(gene_index):
    f = genes.lookup("MS4A1")
    assert f is not None
    assert (f.symbol, f.entrez_id, f.name, f.gene_type, f.band) == (
        "MS4A1", 931, "membrane spanning 4-domains A1", "protein-coding", "11q12.2")
    assert "CD20" in f.aliases and "MS4A1" not in f.aliases
    assert "B cell activation" in f.go_bp and "immunoglobulin binding" in f.go_mf
    # manually curated, specific terms come before electronic and general ones
    assert f.go_mf.index("immunoglobulin binding") < f.go_mf.index("protein binding")
    assert f.go_bp.index("B cell activation") < f.go_bp.index("response to bacterium")  # IDA before IEA
    assert f.short().startswith("MS4A1 (membrane spanning 4-domains A1, 11q12.2): ")


def test_resolution_order_and_mouse(gene_index):
    got = genes.facts(["CD3E", "cd3e", "CD20", "ENSG00000156738.17", "MT-ND3", "NOTAGENE"])
    assert {q: (f.symbol, f.matched_by) for q, f in got.items()} == {
        "CD3E": ("CD3E", "symbol"), "cd3e": ("CD3E", "case"), "CD20": ("MS4A1", "alias"),
        "ENSG00000156738.17": ("MS4A1", "ensembl"), "MT-ND3": ("ND3", "alias"),
    }
    mouse = genes.to_human(["Cd3e", "Ms4a1", "Cd74", "mt-Co1", "H2-Ab1", "Gm12345"], species="mouse")
    assert mouse == {"Cd3e": "CD3E", "Ms4a1": "MS4A1", "Cd74": "CD74", "mt-Co1": "COX1"}
    assert genes.facts(["Cd3e"], species="mouse")["Cd3e"].species == "mouse"


def test_known_and_unknown(gene_index):
    assert genes.is_known("CD20") and not genes.is_known("RP11-782C8.1")
    assert genes.unknown(["CD3E", "RP11-782C8.1", "H2-Ab1", "CD3E"]) == ["RP11-782C8.1", "H2-Ab1"]
    assert genes.facts([]) == {}
    assert genes.source_info()["ncbi_gene_egsourcedate"]
    with pytest.raises(InputError, match="species must be one of human, mouse"):
        genes.facts(["CD3E"], species="zebrafish")


@pytest.mark.fresh_gene_index
def test_index_is_built_once_and_missing_databases_are_named(isolated_cache, monkeypatch):
    """The index is built in the cache on first use; without the Debian packages the error names them."""
    monkeypatch.setattr(genes, "_r_system_file", lambda *a: None)
    monkeypatch.setattr(genes, "_STANDARD_R_LIBS", ())
    monkeypatch.delenv("R_LIBS", raising=False)
    monkeypatch.delenv("R_LIBS_SITE", raising=False)
    monkeypatch.delenv("R_LIBS_USER", raising=False)
    with pytest.raises(genes.GeneKnowledgeUnavailableError, match="r-bioc-org.hs.eg.db"):
        genes.lookup("CD3E")
    assert not genes.index_path().exists()
    assert isinstance(genes.GeneKnowledgeUnavailableError("x"), cellscribe.CellscribeError)


def test_databases_found_through_r():
    genes._r_system_file.cache_clear()
    path = genes.find_database(*genes.ORGDB)
    assert path.name == "org.Hs.eg.sqlite" and path.is_file()
