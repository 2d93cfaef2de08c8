"""Gene classes that carry little information about a cell's identity.

A cluster whose top markers are mostly of these classes (ribosome and translation, mitochondrial
transcripts, the cell cycle, the immediate-early stress response, haemoglobin) has no lineage
program of its own in its marker list: a label for it rests on the few other genes, and its
explanation must say so. The lists are short on purpose: the prefixes cover the large families
(``RPL``/``RPS``, ``MT-``, ``HB``), the named genes are the ones that lead marker lists of
low-quality or dissociation-stressed clusters (Tirosh et al. 2016 for the cell cycle; van den
Brink et al. 2017 for the dissociation response).
"""

from __future__ import annotations

import re

#: ``(class, pattern on the upper-cased symbol)``, first match wins.
CLASSES: tuple[tuple[str, re.Pattern[str]], ...] = (
    ("ribosomal", re.compile(r"^(RPL\d|RPS\d|RPLP\d|RPSA$|MRPL\d|MRPS\d|RACK1$|FAU$|UBA52$)")),
    ("mitochondrial", re.compile(r"^MT-|^MT(ND|CO|CY|ATP)\d")),
    ("translation", re.compile(
        r"^(EEF1A1|EEF1B2|EEF1D|EEF1G|EEF2|EIF3[A-Z]|EIF4A\d|EIF4B|NPM1|NACA|TPT1|BTF3|PABPC1|HNRNP[A-Z0-9]+|"
        r"SNHG\d+|NOP\d+|NCL|GNB2L1|SERBP1|PTMA|HINT1|NAP1L1|GAS5|MALAT1|NEAT1)$")),
    ("cell cycle", re.compile(
        r"^(MKI67|TOP2A|CDK1|CCNB1|CCNB2|CCNA2|CCNE[12]|CDC20|CENP[A-Z]|BIRC5|TYMS|PCNA|MCM\d|UBE2C|TUBB4B|"
        r"TUBA1B|HMGB2|STMN1|H2AFZ|H2AZ1|HIST1H\w+|H1-\d|H2BC\d+|H4C\d+|RRM2|AURK[AB]|PLK1|KIAA0101|PCLAF|"
        r"CKS1B|CKS2|NUSAP1|PRC1|ZWINT|GTSE1|TK1|DUT|SMC4|CDKN3|KPNA2)$")),
    ("stress", re.compile(
        r"^(FOS|FOSB|JUN|JUNB|JUND|EGR[123]|IER[235]|ATF3|DUSP1|ZFP36|HSPA1[AB]|HSPA8|HSPA6|HSPH1|HSP90AA1|"
        r"HSP90AB1|HSPB1|DNAJB1|DDIT3|KLF[246]|NR4A[123]|PPP1R15A|GADD45[AB]|SOCS3|CCN1|CYR61|BTG2|MYC)$")),
    ("haemoglobin", re.compile(r"^(HBA[12]|HBB|HBD|HBG[12]|HBM|HBQ1|HBZ|HBE1)$")),
)
#: Top markers a cluster is judged by, and the share of them that makes it low-information.
TOP = 10
LOW_INFORMATION_SHARE = 0.5


def gene_class(symbol: str) -> str | None:
    """The low-information class of ``symbol`` (``"ribosomal"``, ...), or ``None``."""
    upper = str(symbol).upper()
    for name, pattern in CLASSES:
        if pattern.match(upper):
            return name
    return None


def low_information(genes: list[str]) -> tuple[float, list[str]]:
    """The share of the top :data:`TOP` markers in a low-information class, and those classes
    (most frequent first)."""
    top = genes[:TOP]
    if not top:
        return 0.0, []
    found = [c for c in (gene_class(g) for g in top) if c]
    counts: dict[str, int] = {}
    for c in found:
        counts[c] = counts.get(c, 0) + 1
    return len(found) / len(top), sorted(counts, key=lambda c: -counts[c])
