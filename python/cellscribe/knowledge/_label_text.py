"""Free-text cell-type labels, cleaned into the forms the Cell Ontology spells.

A label written by a person or a model (``"CD14+ Monocytes"``, ``"NK cells"``, ``"Immune (B cell)"``,
``"Smooth muscle cells / Fibroblasts"``) is turned into candidate texts for ontology lookup:

* :func:`alternatives` splits a label naming several types (``/``, ``or``, ``and``, ``,``, ``&``).
* :func:`variants` gives, for one part, texts naming the same type, to try in order: common names
  in the ontology's spelling (:data:`ALIASES`), the part itself, its abbreviations expanded
  (:data:`ABBREVIATIONS`), bare CD markers read as positive (``"CD14 monocyte"`` -> ``"CD14+
  monocyte"``), ``"cell"`` appended to a bare adjective (``"Dendritic"`` -> ``"Dendritic cell"``), and
  state words dropped (``"cycling"``, ``"activated"``, ...).
* :func:`coarse_variants` gives texts for a coarser type: marker tokens dropped
  (``"Pvalb+ GABAergic neuron"`` -> ``"GABAergic neuron"``).
* :func:`is_malignant` recognises tumour-cell labels (``"colon cancer cell"``, ``"Malignant B
  cells"``), but not ``"tumour-associated macrophage"`` or ``"non-malignant B cells"``.

Case, plurals, ``+``/``-`` marker signs and punctuation are left to
:func:`cellscribe.knowledge.ontology.normalize`, which applies to ontology names and labels alike.
"""

from __future__ import annotations

import re
import unicodedata

from .ontology import normalize

#: Abbreviations and short forms, matched as whole words ignoring case, replaced by the words the
#: Cell Ontology uses (``"NK cells"`` -> ``"natural killer cells"``).
ABBREVIATIONS: dict[str, str] = {
    # lymphocytes
    "NK": "natural killer",
    "NKT": "natural killer T",
    "NK T": "natural killer T",
    "ILC": "innate lymphoid cell",
    "ILCs": "innate lymphoid cell",
    "ILC1": "group 1 innate lymphoid cell",
    "ILC2": "group 2 innate lymphoid cell",
    "ILC3": "group 3 innate lymphoid cell",
    "MAIT": "mucosal-associated invariant T",
    "Treg": "regulatory T cell",
    "Tregs": "regulatory T cell",
    "Tfh": "T follicular helper cell",
    "Th1": "T-helper 1 cell",
    "Th2": "T-helper 2 cell",
    "Th17": "T-helper 17 cell",
    "Th22": "T-helper 22 cell",
    "Tcm": "central memory T cell",
    "Tem": "effector memory T cell",
    "Teff": "effector T cell",
    "Tex": "exhausted T cell",
    "Temra": "effector memory RA T cell",
    "Trm": "tissue-resident memory T cell",
    "CTL": "cytotoxic T cell",
    "CTLs": "cytotoxic T cell",
    "gdT": "gamma-delta T",
    "gd T": "gamma-delta T",
    "γδ T": "gamma-delta T",
    "γδT": "gamma-delta T",
    "GC B": "germinal center B",
    "Tc": "cytotoxic T cell",
    "Th": "T-helper cell",
    "T reg": "regulatory T cell",
    "T regs": "regulatory T cell",
    # myeloid
    "pDC": "plasmacytoid dendritic cell",
    "pDCs": "plasmacytoid dendritic cell",
    "cDC": "conventional dendritic cell",
    "cDCs": "conventional dendritic cell",
    "cDC1": "conventional dendritic cell type 1",
    "cDC2": "conventional dendritic cell type 2",
    "mDC": "myeloid dendritic cell",
    "mDCs": "myeloid dendritic cell",
    "DC": "dendritic cell",
    "DCs": "dendritic cell",
    "MDSC": "myeloid-derived suppressor cell",
    "MDSCs": "myeloid-derived suppressor cell",
    "TAM": "macrophage",
    "TAMs": "macrophage",
    "Mono": "monocyte",
    "Monos": "monocyte",
    "Mac": "macrophage",
    "Macs": "macrophage",
    "Mφ": "macrophage",
    "PMN": "neutrophil",
    "RBC": "erythrocyte",
    "RBCs": "erythrocyte",
    "Mk": "megakaryocyte",
    "MK": "megakaryocyte",
    # stem and progenitor
    "HSC": "hematopoietic stem cell",
    "HSCs": "hematopoietic stem cell",
    "HSPC": "hematopoietic stem cell",
    "HSPCs": "hematopoietic stem cell",
    "MPP": "hematopoietic multipotent progenitor cell",
    "CMP": "common myeloid progenitor",
    "CLP": "common lymphoid progenitor",
    "GMP": "granulocyte monocyte progenitor cell",
    "MEP": "megakaryocyte-erythroid progenitor cell",
    "hESC": "embryonic stem cell",
    "hESCs": "embryonic stem cell",
    "MSC": "mesenchymal stem cell",
    "MSCs": "mesenchymal stem cell",
    "NPC": "neural progenitor cell",
    "NPCs": "neural progenitor cell",
    "OPC": "oligodendrocyte precursor cell",
    "OPCs": "oligodendrocyte precursor cell",
    "TA": "transit amplifying",
    # stromal, vascular, epithelial, neural
    "EC": "endothelial cell",
    "ECs": "endothelial cell",
    "LEC": "lymphatic endothelial cell",
    "LECs": "lymphatic endothelial cell",
    "SMC": "smooth muscle cell",
    "SMCs": "smooth muscle cell",
    "VSMC": "vascular smooth muscle cell",
    "VSMCs": "vascular smooth muscle cell",
    "CAF": "fibroblast",
    "CAFs": "fibroblast",
    "FAP": "fibro/adipogenic progenitor cell",
    "FAPs": "fibro/adipogenic progenitor cell",
    "AT1": "pulmonary alveolar type 1 cell",
    "AT2": "pulmonary alveolar type 2 cell",
    "ATI": "pulmonary alveolar type 1 cell",
    "ATII": "pulmonary alveolar type 2 cell",
    "RGC": "retinal ganglion cell",
    "RPE": "retinal pigment epithelial cell",
    "RGCs": "retinal ganglion cell",
    "PT": "proximal tubule",
    "ENS": "enteric",
    # atlas short forms (Allen brain, KPMP kidney, HCA): glia, vessels, mononuclear phagocytes
    "Oligo": "oligodendrocyte",
    "Oligos": "oligodendrocyte",
    "ODC": "oligodendrocyte",
    "Astro": "astrocyte",
    "Astros": "astrocyte",
    "Endo": "endothelial cell",
    "Endos": "endothelial cell",
    "Micro": "microglial cell",
    "Peri": "pericyte",
    "Fibro": "fibroblast",
    "PVM": "perivascular macrophage",
    "PVMs": "perivascular macrophage",
    "Micro-PVM": "microglial cell / perivascular macrophage",
    "SMC-Peri": "smooth muscle cell / pericyte",
    "MNP": "mononuclear phagocyte",
    "MNPs": "mononuclear phagocyte",
    # cortical glutamatergic neurons by layer and projection (Allen taxonomy)
    "IT": "intratelencephalic projecting glutamatergic neuron",
    "ET": "extratelencephalic projecting glutamatergic cortical neuron",
    "L5 PT": "L5 extratelencephalic projecting glutamatergic cortical neuron",
    "CT": "corticothalamic-projecting glutamatergic cortical neuron",
    "NP": "near-projecting glutamatergic cortical neuron",
    "L5/6 NP": "L5/6 near-projecting glutamatergic neuron",
    "L6b": "L6b glutamatergic cortical neuron",
    # cortical GABAergic interneurons by marker gene (a bare gene name is the class, not the gene)
    "Sst": "sst GABAergic interneuron",
    "Sst Chodl": "sst chodl GABAergic interneuron",
    "Pvalb": "pvalb GABAergic interneuron",
    "Vip": "VIP GABAergic interneuron",
    "Lamp5": "lamp5 GABAergic interneuron",
    "Sncg": "sncg GABAergic interneuron",
    # hippocampal principal cells
    "CA1": "hippocampal pyramidal neuron",
    "CA2": "hippocampal pyramidal neuron",
    "CA3": "hippocampal pyramidal neuron",
    "CA1-3": "hippocampal pyramidal neuron",
    "DG": "dentate gyrus granule cell",
}

#: Names common in single-cell papers that the Cell Ontology spells differently (whole phrases,
#: case and plurals ignored). Tried before the label as written.
ALIASES: dict[str, str] = {
    "erythroid cell": "erythroid lineage cell",
    "erythroid": "erythroid lineage cell",
    "lymphoid cell": "lymphocyte",
    "neuronal cell": "neuron",
    "excitatory neuron": "glutamatergic neuron",
    "inhibitory neuron": "GABAergic neuron",
    "inhibitory interneuron": "GABAergic interneuron",
    "ductal cell": "duct epithelial cell",
    "alpha cell": "pancreatic A cell",
    "beta cell": "type B pancreatic cell",
    "delta cell": "pancreatic D cell",
    "gamma cell": "pancreatic PP cell",
    "pp cell": "pancreatic PP cell",
    "epsilon cell": "pancreatic epsilon cell",
    "pancreatic polypeptide cell": "pancreatic PP cell",
    "satellite cell": "skeletal muscle satellite cell",
    "proximal tubule cell": "epithelial cell of proximal tubule",
    "proximal tubular cell": "epithelial cell of proximal tubule",
    "distal tubule cell": "epithelial cell of distal tubule",
    "distal tubular cell": "epithelial cell of distal tubule",
    "plasma b cell": "plasma cell",
    "rpe cell": "retinal pigment epithelial cell",
    "cd34 positive": "hematopoietic precursor cell",
    "cd34 positive cell": "hematopoietic precursor cell",
    "hematopoietic stem and progenitor cell": "hematopoietic stem cell",
    "hematopoietic stem progenitor cell": "hematopoietic stem cell",
    "haematopoietic stem and progenitor cell": "hematopoietic stem cell",
    "muller glia": "Mueller cell",
    "dentate granule cell": "dentate gyrus granule cell",
    "gamma islet cell": "pancreatic PP cell",
    "bipolar cell": "retinal bipolar neuron",
    "lymphatic": "endothelial cell of lymphatic vessel",
    "lymphatic cell": "endothelial cell of lymphatic vessel",
    "mueller glia": "Mueller cell",
    "tumor associated macrophage": "macrophage",
    "tumour associated macrophage": "macrophage",
    "cancer associated fibroblast": "fibroblast",
}

# Words that describe a state rather than a type; dropped when the label does not map as given.
NOISE_WORDS = (
    "cycling", "proliferating", "proliferative", "dividing", "activated", "resting", "mature", "immature",
    "circulating", "resident", "like", "subset", "population", "cluster", "putative", "possible",
    "probably", "likely", "other", "mixed", "specialized", "specialised", "differentiated", "high", "low",
    "early", "late", "fetal", "foetal", "adult", "normal", "healthy", "non-malignant", "nonmalignant",
    "non-cancerous", "quiescent", "terminally",
)
#: Words that make a label name tumour cells.
MALIGNANT_WORDS = (
    "malignant", "tumor", "tumour", "cancer", "carcinoma", "adenocarcinoma", "neoplastic", "neoplasm",
    "lymphoma", "leukemia", "leukaemia", "glioma", "glioblastoma", "melanoma", "sarcoma", "myeloma",
    "blastoma", "metastatic", "metastasis", "oligodendroglioma", "astrocytoma",
)
_MALIGNANT = re.compile(r"\b(" + "|".join(MALIGNANT_WORDS) + r")s?\b", re.I)
_NOT_MALIGNANT = re.compile(
    r"\b(non|not|pre|benign)[\s-]*(" + "|".join(MALIGNANT_WORDS) + r")|"
    r"(" + "|".join(MALIGNANT_WORDS) + r")s?[\s-]*(associated|infiltrating|educated|derived|adjacent|resident|"
    r"specific|reactive)|\bnormal\b",
    re.I,
)
_ABBREV = re.compile(
    r"(?<![\w+-])(" + "|".join(re.escape(k) for k in sorted(ABBREVIATIONS, key=len, reverse=True)) + r")(?![\w+])",
    re.I,
)
#: Short forms naming several types (``"Micro-PVM"``): expanded before a label is split into parts.
_MULTI = re.compile(
    r"(?<![\w+-])(" + "|".join(re.escape(k) for k, v in ABBREVIATIONS.items() if " / " in v) + r")(?![\w+-])", re.I)
_ABBREV_CI = {k.lower(): v for k, v in ABBREVIATIONS.items()}
_ALIAS_KEYS = [(normalize(k), v) for k, v in ALIASES.items()]
_BARE_CD = re.compile(r"\b(CD\d+[A-Za-z]?)(?![\w+\-/])(?!\s*(?:positive|negative|high|low|hi|lo|dim|bright)\b)", re.I)
_SPLIT = re.compile(r"\s*(?:(?<!\d)/|/(?!\d)|\bor\b|\band\b|&|;|,(?!\s*(?:alpha-beta|gamma-delta)))\s*", re.I)
_ENDS_CELL = re.compile(r"\bcells?$", re.I)
_GLIA = re.compile(r"\bglia$", re.I)
_T_MARKER = re.compile(r"\bCD[48]\b", re.I)
_CELL_NOUN = re.compile(r"\b(?:cells?|T|lymphocytes?|thymocytes?|[a-z]*cytes?)\b", re.I)
_DOUBLE_CELL = re.compile(r"((?:cyte|blast|phage|phil|neuron|glia|ist|ocyte|crophage)s?)\s+cells?$", re.I)
_SUBCLUSTER = re.compile(r"(?<=[A-Za-z])\s+\d{1,2}[a-z]?$")
_CODE_LETTER = re.compile(r"^([A-Za-z][\w-]*?)-[a-z]$")
#: Words after which a trailing number is part of the type's name (``"type 2"``), not a subcluster tag.
NUMBERED_WORDS = ("type", "group", "layer", "class", "stage", "phase", "subtype", "grade", "lamina")
_GENE_POSITIVE = re.compile(r"\b(?!CD\d)([A-Z][A-Za-z]*\d*[A-Za-z\d]*)\+(?=\s|$)")
_CD_POSITIVE = re.compile(r"^CD\d+[A-Za-z]?\+$", re.I)
_MARKER_SLASH = re.compile(r"(?<=[+-])\s*/\s*(?=[A-Za-z0-9]+[+-]?(?:\s|/|$))|(?<=CD\d)\s*/\s*(?=CD\d)", re.I)
_MARKER_TOKEN = re.compile(r"^(?:CD\d+\w*|\w+[+-]|[A-Z0-9]{2,}(?:bright|dim|high|low|hi|lo))$")
_FILLER = re.compile(r"^(?:the|a|an|probably|likely|possibly|mostly|mainly|predominantly)\s+", re.I)
_CLUSTER_PREFIX = re.compile(  # "Cluster 3: B cells", "8.1-Teff", "2) NK"
    r"^(?:cluster\s*\d+\s*[-:)]?|\d+(?:\.\d+)+[a-z]?\s*[-:)]|\d+[a-z]?\s*[:)])\s*(?=[A-Za-z])", re.I)


def clean(label: str) -> str:
    """Trim quotes, trailing punctuation, a leading cluster number (``"8.1-Teff"``), filler openings
    and repeated spaces."""
    text = _CLUSTER_PREFIX.sub("", " ".join(str(label).replace("_", " ").split()).strip(" .;:'\"`*"))
    while True:
        new = _FILLER.sub("", text)
        if new == text:
            return text
        text = new


def is_malignant(label: str) -> bool:
    """Whether the label names tumour cells (``"colon cancer cell"``, ``"Malignant B cells"``), not
    tumour-associated normal cells (``"tumor-associated macrophage"``, ``"Non-malignant B cells"``)."""
    text = str(label)
    return bool(_MALIGNANT.search(text)) and not _NOT_MALIGNANT.search(text)


def alternatives(label: str) -> list[str]:
    """The parts of a label that names several types, e.g. ``"Macrophages / Microglia"`` ->
    ``["Macrophages", "Microglia"]``; a single type comes back as one part. Parenthesised text stays
    with its part."""
    text = _MARKER_SLASH.sub(" ", clean(label))  # "CD4+/CD25 T Reg": one type, several markers
    text = _MULTI.sub(lambda m: _ABBREV_CI[m.group(1).lower()], text)  # "Micro-PVM": two types
    inside = _inside_parentheses(text)
    pieces, start = [], 0
    for m in _SPLIT.finditer(text):
        if not inside[m.start()]:
            pieces.append(text[start:m.start()])
            start = m.end()
    pieces.append(text[start:])
    parts = [clean(p) for p in pieces]
    parts = [p for p in parts if re.search(r"[A-Za-z]", p)]
    return parts or [text]


def _inside_parentheses(text: str) -> list[bool]:
    depth, out = 0, []
    for ch in text:
        depth += ch == "("
        out.append(depth > 0)
        depth -= ch == ")" and depth > 0
    return out


def expand_abbreviations(text: str) -> str:
    """Replace whole-word abbreviations (``NK``, ``pDC``, ``Treg``, ``HSC``, ``OPC``, ``ILC``,
    ``MAIT``, ...) with the ontology's words; ``"NK cells"`` -> ``"natural killer cells"``."""

    def repl(m: re.Match[str]) -> str:
        return ABBREVIATIONS.get(m.group(1)) or _ABBREV_CI[m.group(1).lower()]

    out = _ABBREV.sub(repl, text)
    # "regulatory T cell cells" after "Tregs cells", "VIP GABAergic interneuron interneuron"
    return re.sub(r"\b(cell|interneuron|neuron)s?\s+\1s?\b", r"\1", out, flags=re.I)


def variants(part: str) -> list[str]:
    """Texts naming the same type as ``part`` (parentheses already removed), most faithful first,
    without duplicates: aliases (:data:`ALIASES`), the text, abbreviations expanded, bare CD markers
    read as positive, ``"cell"`` appended (``"T cell"`` for a bare ``CD4``/``CD8`` label) or a doubled
    ``"cells"`` dropped, and state words (:data:`NOISE_WORDS`, lone numbers) dropped."""
    part = clean(fold(part))
    out: list[str] = []
    bases = [part, expand_abbreviations(part)]
    stripped = strip_subcluster(part)
    if stripped != part:  # "Astro_1", "MNP-b": the type without its subcluster tag
        bases += [stripped, expand_abbreviations(stripped)]

    def add(text: str) -> None:
        text = clean(text)
        for t in (_alias(text), text):  # a common name's ontology spelling first
            if t and t not in out:
                out.append(t)

    for base in bases:
        add(base)
        add(_BARE_CD.sub(r"\1+", base))
    for text in list(out):
        add(_GLIA.sub("glial cell", text))
        if _T_MARKER.search(text) and not _CELL_NOUN.search(text):
            add(f"{text} T cell")
        elif not _ENDS_CELL.search(text):
            add(f"{text} cell")
        elif _DOUBLE_CELL.search(text):
            add(_DOUBLE_CELL.sub(r"\1", text))
    for text in list(out):
        kept = [w for w in text.split() if w.lower().strip(",") not in NOISE_WORDS]
        if kept and len(kept) < len(text.split()):
            add(" ".join(kept))
    return out


def restated_variants(part: str) -> list[str]:
    """:func:`variants` without CD markers written with ``+`` (``"CD56+ NK"`` -> ``"NK"``): a CD
    marker usually restates the type's defining surface marker; and with the ``+`` of other marker
    genes dropped, as the ontology names classes after their marker (``"Pvalb+ GABAergic neuron"``
    -> ``"Pvalb GABAergic neuron"``, found as ``pvalb GABAergic interneuron``). Tried after
    :func:`variants`."""
    out: list[str] = []
    for text in variants(part):
        kept = [w for w in text.split() if not _CD_POSITIVE.match(w)]
        if kept and len(kept) < len(text.split()):
            out += [t for t in variants(" ".join(kept)) if t not in out]
        unsigned = _GENE_POSITIVE.sub(r"\1", text)
        if unsigned != text:
            out += [t for t in variants(unsigned) if t not in out]
    return out


def strip_subcluster(text: str) -> str:
    """The type without a subcluster tag: a trailing number (``"Fibroblast_1"``, ``"Oligo 2"``; not
    ``"type 2"``, ``"group 3"``, ``"layer 5"``), or a letter after a hyphen following a short form
    of :data:`ABBREVIATIONS` (``"MNP-b"``; not ``"IC-B"``, the B-type intercalated cell)."""
    code = _CODE_LETTER.match(text.strip())
    if code is not None and code.group(1).lower() in _ABBREV_CI:
        return code.group(1)
    m = _SUBCLUSTER.search(text)
    if m is None or not text[: m.start()].strip() or text[: m.start()].split()[-1].lower() in NUMBERED_WORDS:
        return text
    return text[: m.start()].strip()


def coarse_variants(part: str) -> list[str]:
    """Texts for a coarser type than ``part``: its :func:`variants` without marker tokens or lone
    numbers (``"Pvalb+ GABAergic neuron"`` -> ``"GABAergic neuron"``, ``"NK CD56bright"`` -> ``"NK"``,
    ``"CD8 Effector 2"`` -> ``"CD8 Effector"``)."""
    out: list[str] = []
    for text in variants(part):
        kept = [w for w in text.split() if not _MARKER_TOKEN.match(w) and not w.isdigit()]
        if kept and len(kept) < len(text.split()):
            for t in variants(" ".join(kept)):
                if t not in out:
                    out.append(t)
    return out


def alias(text: str) -> str | None:
    """The ontology spelling of a common name in :data:`ALIASES` (whole text), or ``None``."""
    return _alias(clean(fold(text)))


def fold(text: str) -> str:
    """Accents removed (``"Müller"`` -> ``"Muller"``), Greek letters spelt out."""
    text = text.replace("γδ", "gamma-delta ").replace("αβ", "alpha-beta ").replace("α", "alpha ")
    text = text.replace("β", "beta ").replace("γ", "gamma ").replace("δ", "delta ").replace("ε", "epsilon ")
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii")


def _alias(text: str) -> str | None:
    key = normalize(text)
    for phrase, target in _ALIAS_KEYS:
        if key == phrase:
            return target
    return None
