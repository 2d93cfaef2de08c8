"""Single-cell reasoning annotation (CellReasoner): cell sentences, few-shot reasoning, LoRA.

>>> from cellscribe import reasoner
>>> reasoner.cell_sentences(adata, n_genes=32)                      # obs["cell_sentence"]
>>> reasoner.annotate_cells(adata, reference=ref, label_key="cell_type", shots=1, groupby="leiden")
>>> adata.obs["reasoner"], adata.obs["reasoner_evidence"], adata.uns["reasoner"]["agreement"]
>>> reasoner.finetune(ref, label_key="cell_type", model="smollm2-135m", output_dir="adapter")
>>> reasoner.annotate_cells(adata, reference=ref, label_key="cell_type",
...                         backend="transformers", model="smollm2-135m", adapter="adapter")

Modules, one job each: ``_sentences`` (gene ranking, cell sentences), ``_reference`` (labelled
reference cells, the gene ranking to use), ``_answer`` (schema, lenient parsing), ``_evidence``
(marker evidence, exemplars, chain-of-thought answers), ``_prompt`` (chat messages),
``_annotate`` (the per-cell strategy on the engine's runner: prefix reuse, deduplication; cache and
progress are the runner's), ``_knowledge`` (stage-2 Q&A from CellMarker 2.0 and the Cell
Ontology), ``_examples`` (each stage's training examples), ``_training`` (the training loop),
``_manifest`` (what an adapter was trained with), ``_finetune`` (LoRA in the three CRAFT stages).
"""

from ._annotate import MAX_TOKENS, CellReasoning, annotate_cells, run_cells
from ._answer import CellAnswer, answer_schema, parse_answer
from ._evidence import SentenceMarkers, explain, pick_cells
from ._finetune import finetune
from ._knowledge import QAPair, knowledge_pairs
from ._manifest import FinetuneResult, read_manifest
from ._prompt import build_prompt
from ._sentences import cell_sentences, gene_ranking

__all__ = [
    "MAX_TOKENS", "CellAnswer", "CellReasoning", "FinetuneResult", "QAPair", "SentenceMarkers", "annotate_cells",
    "answer_schema", "build_prompt", "cell_sentences", "explain", "finetune", "gene_ranking", "knowledge_pairs",
    "parse_answer", "pick_cells", "read_manifest", "run_cells",
]
