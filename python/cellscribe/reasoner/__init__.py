"""Single-cell reasoning annotation (CellReasoner): cell sentences, few-shot reasoning, LoRA.

>>> from cellscribe import reasoner
>>> reasoner.cell_sentences(adata, n_genes=32)                      # obs["cell_sentence"]
>>> reasoner.annotate_cells(adata, reference=ref, label_key="cell_type", shots=1, groupby="leiden")
>>> adata.obs["reasoner"], adata.obs["reasoner_evidence"], adata.uns["reasoner"]["agreement"]
>>> reasoner.finetune(ref, label_key="cell_type", model="smollm2-135m", output_dir="adapter")
>>> reasoner.annotate_cells(adata, reference=ref, label_key="cell_type",
...                         backend="transformers", model="smollm2-135m", adapter="adapter")

Modules, one job each: ``_sentences`` (gene ranking, cell sentences), ``_answer`` (schema,
lenient parsing), ``_evidence`` (marker evidence, exemplars, chain-of-thought answers),
``_prompt`` (chat messages), ``_annotate`` (the run: prefix reuse, deduplication, cache,
progress), ``_knowledge`` (stage-2 Q&A from CellMarker 2.0 and the Cell Ontology), ``_finetune``
(LoRA in the three CRAFT stages).
"""

from ._annotate import annotate_cells
from ._answer import CellAnswer, answer_schema, parse_answer
from ._evidence import SentenceMarkers, explain, pick_cells
from ._finetune import FinetuneResult, finetune, read_manifest
from ._knowledge import QAPair, knowledge_pairs
from ._prompt import build_prompt
from ._sentences import cell_sentences, gene_ranking

__all__ = [
    "CellAnswer", "FinetuneResult", "QAPair", "SentenceMarkers", "annotate_cells", "answer_schema", "build_prompt",
    "cell_sentences", "explain", "finetune", "gene_ranking", "knowledge_pairs", "parse_answer", "pick_cells",
    "read_manifest",
]
