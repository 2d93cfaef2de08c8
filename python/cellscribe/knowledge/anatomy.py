"""Where a cell type lives: the species a Cell Ontology term is restricted to, and its organ.

Two plausibility checks use this module, in label mapping (:mod:`cellscribe.knowledge.labels`) and in
retrieval (:mod:`cellscribe.grounded`):

* **Species.** Some Cell Ontology terms describe one species' taxonomy only; their names say so in
  parentheses (``"striatal VIP GABAergic interneuron (Primate)"``, ``"L5 VIP GABAergic interneuron
  (Mmus)"``, ``"... (Homo sapiens)"``, ``"(sensu Nematoda)"``). :data:`SPECIES_QUALIFIERS` reads
  those qualifiers, :data:`RESTRICTED_TERMS` adds the few the names do not mark (the von Economo
  neuron); a term inherits the restriction of an ``is_a`` ancestor. The ontology files here carry
  no taxon constraints (``only_in_taxon``), so the names are the data.
  :func:`species_restriction` gives the taxon group, :func:`species_allowed` whether a term may
  be used for a species (a primate term for human, never for mouse).
* **Organ.** A term's name often names its organ or region (``"cochlear outer hair cell"``,
  ``"olfactory receptor cell"``, ``"hepatic stellate cell"``, ``"striatal ... interneuron"``).
  :data:`ANATOMY_WORDS` lists those words with ``(organ, region)``; :func:`term_anatomy` gives a
  term's set (from its own name, else from its nearest ancestors' names: ``"sst GABAergic
  interneuron"`` is a ``cortical interneuron``), :func:`tissue_anatomy` normalises a given tissue
  (``"Motor Cortex"``, ``"brain (cortex)"``, ``"PBMC"``) with the same table (:func:`tissue_organs`: its
  organs only), and
  :func:`contradicts` says whether a term's
  anatomy rules it out for the tissue: it names organs and none of them is the tissue's, or it
  names a region of the tissue's organ and the tissue names another region of it. Terms that
  name no organ (``"T cell"``, ``"fibroblast"``) and tissues that name none (``"tumour"``, ``"fetal
  development"``) never contradict. Cells that travel (blood and immune cells) carry no organ word.

The tables are small and explicit on purpose: each entry is a word an ontology name or a tissue
uses, and tests check the words against the terms that carry them.
"""

from __future__ import annotations

import re
from functools import lru_cache

from . import ontology
from .ontology import normalize

#: Parenthesised qualifiers of Cell Ontology names -> the taxon group the term is restricted to.
#: ``"other"``: neither human nor mouse (nematodes, insects, fish, fungi).
SPECIES_QUALIFIERS: dict[str, str] = {
    "mmus": "mouse", "mus musculus": "mouse", "sensu mus": "mouse",
    "homo sapiens": "human", "hsap": "human",
    "primate": "primate",
    "sensu nematoda and protostomia": "other", "sensu nematoda": "other", "sensu arthropoda": "other",
    "sensu arthopoda": "other", "sensu endopterygota": "other", "sensu teleostei": "other",
    "sensu fungi": "other", "sensu drosophila": "other",
}
#: Terms restricted to a taxon group that their names do not mark (documented in the literature).
RESTRICTED_TERMS: dict[str, str] = {
    "CL:4030039": "primate",  # von Economo neuron: great apes and humans (also whales, elephants), not rodents
}
#: Species -> the taxon groups whose restricted terms apply to it.
SPECIES_GROUPS: dict[str, frozenset[str]] = {
    "human": frozenset({"human", "primate"}),
    "mouse": frozenset({"mouse"}),
}

#: Words of Cell Ontology names and of tissue names -> ``(organ, region)`` (``region`` may be ``""``).
#: ``"brain"`` stands for the whole central nervous system (the spinal cord is one of its regions).
#: Matched as whole words after :func:`~cellscribe.knowledge.ontology.normalize`, longest first.
ANATOMY_WORDS: dict[str, tuple[str, str]] = {
    # nervous system
    "brain": ("brain", ""), "cerebral": ("brain", "cortex"), "cortex": ("brain", "cortex"),
    "cortical": ("brain", "cortex"), "neocortex": ("brain", "cortex"), "telencephalon": ("brain", ""),
    "motor cortex": ("brain", "cortex"), "primary motor cortex": ("brain", "cortex"),
    "striatal": ("brain", "striatum"), "striatum": ("brain", "striatum"), "medium spiny": ("brain", "striatum"),
    "hippocampal": ("brain", "hippocampus"), "hippocampus": ("brain", "hippocampus"),
    "dentate gyrus": ("brain", "hippocampus"), "cerebellar": ("brain", "cerebellum"),
    "cerebellum": ("brain", "cerebellum"), "purkinje": ("brain", "cerebellum"),
    "hypothalamic": ("brain", "hypothalamus"), "hypothalamus": ("brain", "hypothalamus"),
    "thalamic": ("brain", "thalamus"), "olfactory bulb": ("brain", "olfactory bulb"),
    "spinal cord": ("brain", "spinal cord"), "central nervous system": ("brain", ""), "cns": ("brain", ""),
    "forebrain": ("brain", ""), "ganglionic eminence": ("brain", ""),
    "von economo": ("brain", "cortex"), "myenteric": ("intestine", ""), "enteric": ("intestine", ""),
    # glia of the central nervous system (the Cell Ontology names no organ for them)
    "astrocyte": ("brain", ""), "oligodendrocyte": ("brain", ""), "ependymal": ("brain", ""),
    "tanycyte": ("brain", "hypothalamus"), "bergmann glial": ("brain", "cerebellum"),
    "choroid plexus": ("brain", ""),
    # sense organs
    "cochlear": ("ear", "cochlea"), "cochlea": ("ear", "cochlea"), "vestibular": ("ear", ""),
    "inner ear": ("ear", ""), "hair cell": ("ear", ""), "olfactory": ("nose", ""),
    "olfactory epithelium": ("nose", ""), "nasal": ("nose", ""), "vomeronasal": ("nose", ""),
    "retinal": ("eye", "retina"), "retina": ("eye", "retina"), "photoreceptor": ("eye", "retina"),
    "amacrine": ("eye", "retina"), "retinal bipolar": ("eye", "retina"), "muller": ("eye", "retina"),
    "mueller": ("eye", "retina"), "rod": ("eye", "retina"), "cone": ("eye", "retina"),
    "corneal": ("eye", "cornea"), "cornea": ("eye", "cornea"), "lens": ("eye", "lens"),
    "eye": ("eye", ""), "ocular": ("eye", ""), "conjunctival": ("eye", ""), "limbal": ("eye", ""),
    "taste": ("tongue", ""), "tongue": ("tongue", ""),
    # digestive
    "enteroendocrine": ("intestine", ""), "enterocyte": ("intestine", ""), "intestinal": ("intestine", ""),
    "intestine": ("intestine", ""), "colon": ("intestine", "colon"), "colonic": ("intestine", "colon"),
    "colonocyte": ("intestine", "colon"), "paneth": ("intestine", ""), "ileal": ("intestine", ""),
    "duodenal": ("intestine", ""), "jejunal": ("intestine", ""), "rectum": ("intestine", "colon"),
    "gastric": ("stomach", ""), "stomach": ("stomach", ""), "parietal cell": ("stomach", ""),
    "esophageal": ("esophagus", ""), "esophagus": ("esophagus", ""), "oesophagus": ("esophagus", ""),
    "hepatic": ("liver", ""), "hepatocyte": ("liver", ""), "liver": ("liver", ""), "kupffer": ("liver", ""),
    "cholangiocyte": ("liver", ""), "pancreatic": ("pancreas", ""), "pancreas": ("pancreas", ""),
    "islet": ("pancreas", ""), "salivary": ("salivary gland", ""),
    # respiratory, urinary, reproductive, endocrine
    "pulmonary": ("lung", ""), "lung": ("lung", ""), "alveolar": ("lung", ""), "bronchial": ("lung", ""),
    "bronchus": ("lung", ""), "trachea": ("lung", ""), "tracheal": ("lung", ""), "airway": ("lung", ""),
    "renal": ("kidney", ""), "kidney": ("kidney", ""), "nephron": ("kidney", ""), "podocyte": ("kidney", ""),
    "glomerular": ("kidney", ""), "loop of henle": ("kidney", ""), "mesangial": ("kidney", ""),
    "urothelial": ("bladder", ""), "bladder": ("bladder", ""),
    "prostate": ("prostate", ""), "prostatic": ("prostate", ""), "testis": ("testis", ""),
    "sertoli": ("testis", ""), "leydig": ("testis", ""), "spermatid": ("testis", ""),
    "spermatocyte": ("testis", ""), "spermatogonium": ("testis", ""), "ovarian": ("ovary", ""),
    "ovary": ("ovary", ""), "granulosa": ("ovary", ""), "oocyte": ("ovary", ""),
    "uterine": ("uterus", ""), "uterus": ("uterus", ""), "endometrial": ("uterus", ""),
    "endometrium": ("uterus", ""), "decidual": ("uterus", ""), "trophoblast": ("placenta", ""),
    "placental": ("placenta", ""), "mammary": ("breast", ""), "breast": ("breast", ""),
    "thyroid": ("thyroid", ""), "adrenal": ("adrenal gland", ""), "pituitary": ("pituitary", ""),
    "somatotroph": ("pituitary", ""), "corticotroph": ("pituitary", ""), "lactotroph": ("pituitary", ""),
    "thymic": ("thymus", ""), "thymus": ("thymus", ""), "thymocyte": ("thymus", ""),
    # heart, muscle, skin, bone, fat
    "cardiac": ("heart", ""), "heart": ("heart", ""), "cardiomyocyte": ("heart", ""),
    "skeletal muscle": ("muscle", ""), "myotube": ("muscle", ""),
    "skin": ("skin", ""), "epidermal": ("skin", ""), "dermal": ("skin", ""), "sebaceous": ("skin", ""),
    "hair follicle": ("skin", ""),
}
#: Words of :data:`ANATOMY_WORDS` that name a region several organs have (kidney, adrenal and brain
#: cortex): they count only when the text names no organ but the brain.
AMBIGUOUS_WORDS = frozenset({"cortex", "cortical"})
#: Tissue names that are another organ's name (``"PBMC"`` is blood), and tissue words that name
#: several organs. Blood-borne and lymphoid tissues map to ``blood``: no organ word above names them,
#: so they constrain nothing but a term that names an organ (``"hepatocyte"`` in PBMC).
TISSUE_ORGANS: dict[str, tuple[str, ...]] = {
    "pbmc": ("blood",), "blood": ("blood",), "peripheral blood": ("blood",), "bone marrow": ("blood",),
    "spleen": ("blood",), "lymph node": ("blood",), "tonsil": ("blood",), "b cell lymphoma": ("blood",),
    "vasculature": ("vasculature",), "large intestine": ("intestine",), "small intestine": ("intestine",),
    "colon cancer": ("intestine",), "fat": ("fat",), "adipose": ("fat",),
    "lung cancer and brain metastasis": ("lung", "brain"), "muscle": ("muscle",),
}
#: Organs any tissue may hold a term of: cells that reach every organ through vessels and blood, and
#: skeletal muscle, which sits beside or inside many organs (skin, tongue, oesophagus, thymic myoid cells).
ANYWHERE = frozenset({"blood", "vasculature", "muscle"})
#: Phrases that name where a cell came from, not where it is (``"thymus-derived"`` T cells circulate).
ORIGIN_PHRASES = ("thymus derived", "bone marrow derived", "monocyte derived")

_WORDS = sorted(((normalize(k), v) for k, v in ANATOMY_WORDS.items()), key=lambda kv: -len(kv[0]))
_PATTERNS = [(k, re.compile(rf"\b{re.escape(k)}\b"), v) for k, v in _WORDS]
_QUALIFIER = re.compile(r"\(([^()]*)\)")

Anatomy = frozenset[tuple[str, str]]


def species_restriction(cl_id: str) -> str | None:
    """The taxon group (``"mouse"``, ``"human"``, ``"primate"``, ``"other"``) a term is restricted to
    by a name qualifier of its own or of an ``is_a`` ancestor, or ``None`` for a term of every
    species."""
    return _restrictions().get(ontology.get().resolve(cl_id))


def species_allowed(cl_id: str, species: str | None) -> bool:
    """Whether a term may name a cell of ``species`` (``"human"``, ``"mouse"``): always for an
    unrestricted term; for a restricted one only when its group applies to the species
    (:data:`SPECIES_GROUPS`). ``species=None`` (unknown) allows no restricted term."""
    group = species_restriction(cl_id)
    if group is None:
        return True
    return species is not None and group in SPECIES_GROUPS.get(str(species).lower(), frozenset())


@lru_cache(maxsize=1)
def _restrictions() -> dict[str, str]:
    cl = ontology.get()
    own: dict[str, str] = {k: v for k, v in RESTRICTED_TERMS.items() if k in cl}
    for cl_id in cl.ids():
        for q in _QUALIFIER.findall(cl.name(cl_id)):
            group = SPECIES_QUALIFIERS.get(" ".join(q.lower().split()))
            if group is not None:
                own[cl_id] = group
    out = dict(own)
    for cl_id in cl.ids():
        if cl_id not in out:
            inherited = next((own[a] for a in cl.ancestors(cl_id) if a in own), None)
            if inherited is not None:
                out[cl_id] = inherited
    return out


def text_anatomy(text: str) -> Anatomy:
    """``{(organ, region)}`` named by a text's words (:data:`ANATOMY_WORDS`, longest phrase first; a
    word inside a longer matched phrase does not count again)."""
    key = f" {normalize(text)} "
    for phrase in ORIGIN_PHRASES:
        key = key.replace(f" {phrase} ", " ")
    found: set[tuple[str, str]] = set()
    ambiguous: set[tuple[str, str]] = set()
    for word, pattern, value in _PATTERNS:
        if pattern.search(key):
            (ambiguous if word in AMBIGUOUS_WORDS else found).add(value)
            key = pattern.sub(" ", key)
    return frozenset(found | ambiguous if {o for o, _ in found} <= {"brain"} else found)


def term_anatomy(cl_id: str) -> Anatomy:
    """``{(organ, region)}`` a Cell Ontology term's name places it in (empty: no organ named)."""
    return _term_anatomy(ontology.get().resolve(cl_id))


@lru_cache(maxsize=None)
def _term_anatomy(cl_id: str) -> Anatomy:
    """The term's own name's anatomy, else that of its nearest ``is_a`` ancestors that name one
    (``"sst GABAergic interneuron"`` is a ``cortical interneuron``)."""
    cl = ontology.get()
    own = _name_anatomy(cl_id)
    if own:
        return own
    by_distance: dict[int, set[tuple[str, str]]] = {}
    for ancestor, distance in cl.ancestors(cl_id).items():
        by_distance.setdefault(distance, set()).update(_name_anatomy(ancestor))
    return next((frozenset(v) for _, v in sorted(by_distance.items()) if v), frozenset())


@lru_cache(maxsize=None)
def _name_anatomy(cl_id: str) -> Anatomy:
    return text_anatomy(_QUALIFIER.sub(" ", ontology.get().name(cl_id)))


@lru_cache(maxsize=1024)
def tissue_anatomy(tissue: str | None) -> Anatomy:
    """``{(organ, region)}`` of a given tissue: ``"PBMC"`` -> ``{("blood", "")}``, ``"Motor Cortex"``
    and ``"brain (cortex)"`` -> ``{("brain", "cortex")}``, ``"tumour"`` -> empty (no constraint)."""
    if not tissue:
        return frozenset()
    key = normalize(str(tissue))
    organs = {(o, "") for o in TISSUE_ORGANS.get(key, ())}
    found = set(text_anatomy(key)) if not organs else set()
    # "brain (cortex)": a region of an organ also named -> keep the region only
    regions = {o for o, r in found if r}
    return frozenset(organs | {(o, r) for o, r in found if r or o not in regions})


def tissue_organs(tissue: str | None) -> frozenset[str]:
    """The organs a tissue name names (:func:`tissue_anatomy` without regions): ``"Peripheral blood"``
    -> ``{"blood"}``, ``"Lung"`` -> ``{"lung"}``, ``"Embryo"`` -> empty."""
    return frozenset(o for o, _ in tissue_anatomy(tissue))


def contradicts(cl_id: str, tissue: str | None) -> bool:
    """Whether a term's anatomy (:func:`term_anatomy`) rules it out for a tissue
    (:func:`tissue_anatomy`): the term names organs and none is the tissue's (nor one of
    :data:`ANYWHERE`), or it names only regions of the tissue's organs and the tissue names other
    regions of them. ``False`` when either side names nothing."""
    return anatomy_contradicts(term_anatomy(cl_id), tissue_anatomy(tissue))


def plausible(cl_id: str, *, tissue: str | None = None, species: str | None = None) -> bool:
    """Whether a term may name a cell of ``species`` found in ``tissue``: not restricted to another
    species (:func:`species_allowed`; with ``species=None`` only unrestricted terms) and not from
    another organ (:func:`contradicts`)."""
    return species_allowed(cl_id, species) and not contradicts(cl_id, tissue)


def anatomy_contradicts(term: Anatomy, tissue: Anatomy) -> bool:
    """:func:`contradicts` on anatomy sets already computed."""
    if not term or not tissue:
        return False
    term_organs = {o for o, _ in term}
    tissue_organs = {o for o, _ in tissue}
    if term_organs & ANYWHERE:
        return False
    shared = term_organs & tissue_organs
    if not shared:
        return True
    for organ in shared:
        term_regions = {r for o, r in term if o == organ}
        tissue_regions = {r for o, r in tissue if o == organ}
        if "" in term_regions or "" in tissue_regions or term_regions & tissue_regions:
            return False
    return True
