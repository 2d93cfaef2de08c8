"""Gene descriptions: the text each gene embedding is computed from.

A gene with a record in NCBI Gene (:mod:`cellscribe.knowledge.genes`) is described by its official
symbol, full name, gene type, aliases, cytogenetic band and main GO terms, in the field order of
the seed's NCBI entries (template ``prompts/gene_description.j2``). For a gene without a record:

* with ``llm=`` (a backend name or :class:`cellscribe.llm.Backend`), the model is asked the seed's
  question (``prompts/gene_description_llm.j2``: "Please provide a detailed description of the
  functions, distribution, and expression of human gene X as much as possible"); answers are kept
  in the response cache, so a rerun asks nothing;
* otherwise (the default: nothing leaves the machine and no model runs) a fallback that states
  only the symbol and that the gene has no record (``prompts/gene_description_fallback.j2``). All
  such genes then get similar embeddings, close to each other and far from described genes.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Iterable

import jinja2
import pandas as pd

from ..cache import ResponseCache, make_key
from ..errors import InputError
from ..knowledge import genes as gene_kb
from ..llm import Backend, get_backend
from ..prompts import read_template

log = logging.getLogger(__name__)

#: GO terms per ontology written into a description (most telling first).
N_TERMS = {"go_bp": 8, "go_mf": 4, "go_cc": 3}
#: Aliases written into a description.
N_ALIASES = 8
SOURCES = ("ncbi_gene", "llm", "fallback")

_env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


@functools.lru_cache(maxsize=None)
def _template(name: str) -> jinja2.Template:
    return _env.from_string(read_template(name))


def describe(facts: gene_kb.GeneFacts) -> str:
    """The description of one gene with a record (see the module docstring)."""
    return _template("gene_description.j2").render(
        symbol=facts.symbol, name=facts.name, gene_type=facts.gene_type, band=facts.band,
        aliases=list(facts.aliases[:N_ALIASES]),
        **{k: list(getattr(facts, k)[:n]) for k, n in N_TERMS.items()},
    ).strip()


def gene_descriptions(
    symbols: Iterable[str],
    *,
    species: gene_kb.Species = "human",
    llm: str | Backend | None = None,
    llm_model: str | None = None,
) -> pd.DataFrame:
    """Describe genes in text, from local knowledge first.

    Parameters
    ----------
    symbols
        Gene names as in ``adata.var_names`` (symbols, aliases, Ensembl IDs; human or mouse).
    species
        ``"human"`` or ``"mouse"`` (mouse symbols map to human genes, see
        :mod:`cellscribe.knowledge.genes`).
    llm
        Backend (name for :func:`cellscribe.llm.get_backend`, or an instance) that describes genes
        without a record; ``None`` (default) uses the documented fallback text instead.
    llm_model
        Model for a backend given by name.

    Returns
    -------
    DataFrame indexed by the input names, columns ``description``, ``source`` (``"ncbi_gene"``,
    ``"llm"`` or ``"fallback"``) and ``symbol`` (official human symbol, or the input name).
    """
    names = [str(s) for s in dict.fromkeys(symbols)]
    if not names:
        raise InputError("No gene names given to describe.")
    known = gene_kb.facts(names, species=species)
    rows: dict[str, tuple[str, str, str]] = {q: (describe(f), "ncbi_gene", f.symbol) for q, f in known.items()}
    missing = [q for q in names if q not in known]
    if missing:
        log.info("%d of %d genes have no NCBI Gene record", len(missing), len(names))
        if llm is not None:
            rows.update({q: (text, "llm", q) for q, text in _ask_llm(missing, species, llm, llm_model).items()})
        else:
            tmpl = _template("gene_description_fallback.j2")
            rows.update({q: (tmpl.render(symbol=q, species=species).strip(), "fallback", q) for q in missing})
    df = pd.DataFrame.from_dict(rows, orient="index", columns=["description", "source", "symbol"]).loc[names]
    df.index.name = "gene"
    return df


def _ask_llm(symbols: list[str], species: str, llm: str | Backend, llm_model: str | None) -> dict[str, str]:
    backend = get_backend(llm, model=llm_model)
    tmpl = _template("gene_description_llm.j2")
    out: dict[str, str] = {}
    with ResponseCache() as cache:
        for sym in symbols:
            messages = [{"role": "user", "content": tmpl.render(symbol=sym, species=species).strip()}]
            key = make_key(kind="gene_description", identity=backend.identity.to_dict(), messages=messages)
            hit = cache.get(key)
            if hit is None:
                text = backend.chat(messages, temperature=0.0, seed=0, max_tokens=200).content.strip()
                hit = {"content": text}
                cache.put(key, hit)
            out[sym] = f"Official Symbol: {sym}. " + " ".join(hit["content"].split())
    return out
