"""The case for a label, and the checks every explanation passes before a biologist reads it.

* :func:`build_case`: what the knowledge layer says about a cluster's label (evidence genes with
  their support, the Cell Ontology definition, the nearest rival and the markers that separate
  them, caveats), built before any model writes a word.
* :func:`check_bullets`: every violation of an explanation against its case (format, genes not in
  the cluster, marker claims the databases do not back, gene descriptions that contradict NCBI).
* :func:`render_bullets`: the three bullets written from the case alone (the fall-back for a
  bullet that fails its check, and ``explain="knowledge"``); :func:`case_markdown`: the case file.
"""

from ._build import CONFIDENCE_FACTOR, Case, Evidence, Rival, build_case, case_for_label, join, supported
from ._check import SERIOUS_FLAGS, Violation, bullet_problems, check_bullets, mentions, named_genes
from ._genesets import gene_class, low_information
from ._render import ROLE_TEXT, ROLES, case_markdown, first_sentence, render_bullets

__all__ = [
    "CONFIDENCE_FACTOR", "ROLE_TEXT", "ROLES", "SERIOUS_FLAGS", "Case", "Evidence", "Rival", "Violation", "build_case",
    "case_for_label",
    "bullet_problems", "case_markdown", "check_bullets", "first_sentence", "gene_class", "join", "low_information",
    "mentions", "named_genes", "render_bullets", "supported",
]
