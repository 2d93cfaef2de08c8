"""LoRA fine-tuning of a causal LM for cell-sentence reasoning, in CRAFT's three stages.

1. **Reasoning scaffold**: chain-of-thought answers for labelled reference cells (marker by
   marker, :func:`~cellscribe.reasoner.explain`; or written by a stronger ``teacher`` backend),
   balanced by type, in exactly the prompt format :func:`~cellscribe.reasoner.annotate_cells`
   uses, so the adapter answers the way the annotator asks.
2. **Knowledge infusion**: question/answer pairs generated from CellMarker 2.0 and the Cell
   Ontology (:func:`~cellscribe.reasoner.knowledge_pairs`).
3. **Reasoning-mode fusion**: the scaffold again, mixed with part of the knowledge pairs, to
   restore the reasoning format after stage 2.

One LoRA adapter (peft) is trained through the stages in turn and saved after each one
(``output_dir/stage1`` ...), the last also in ``output_dir`` itself, with a manifest
(``cellscribe_finetune.json``: base model, gene ranking, prompt settings, per-stage losses, times
and peak memory). Works with any transformers causal LM; on a CPU, a small model
(``smollm2-135m``, loaded from its GGUF file and dequantised) and LoRA on the top layers keep a
stage to minutes.

This module holds the run and its steps; the examples are built in ``_examples``, the training
loop is ``_training``, the manifest ``_manifest``.
"""

from __future__ import annotations

import logging
import resource
import time
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..config import settings
from ..errors import InputError
from ..llm import DEFAULT_TRANSFORMERS_MODEL, get_backend, load_base
from ..version import __version__
from ._examples import Example, stage_data
from ._manifest import FinetuneResult, StageResult, write_manifest
from ._reference import resolve_ranking
from ._sentences import DEFAULT_N_GENES
from ._training import eval_loss, train

if TYPE_CHECKING:
    from anndata import AnnData

    from ..llm import Backend

log = logging.getLogger(__name__)

STAGE_NAMES = {1: "reasoning scaffold", 2: "knowledge infusion", 3: "reasoning-mode fusion"}


# Over 100 lines only through its 27-parameter signature and their NumPy docstring; the body is a
# short sequence of named steps (_examples.stage_data, lora_model, run_stage).
def finetune(
    reference: AnnData,
    label_key: str,
    *,
    output_dir: str | Path,
    model: str | None = None,
    stages: Sequence[int] = (1, 2, 3),
    n_per_type: int = 20,
    n_genes: int = DEFAULT_N_GENES,
    ranking: Sequence[str] | None = None,
    candidates: Sequence[str] | bool | None = None,
    tissue: str | None = None,
    species: str = "human",
    knowledge_tissue: str | None = None,
    n_knowledge: int = 200,
    knowledge_fraction: float = 0.5,
    epochs: float | dict[int, float] = 1.0,
    max_steps: int | dict[int, int] | None = None,
    batch_size: int = 4,
    learning_rate: float | dict[int, float] = 5e-4,
    lora_r: int = 16,
    lora_alpha: int = 32,
    lora_layers: int | None = None,
    n_eval: int = 16,
    teacher: str | Backend | None = None,
    seed: int = 0,
    progress: bool | None = None,
    use_raw: bool | None = None,
    layer: str | None = None,
) -> FinetuneResult:
    """Fine-tune a LoRA adapter for cell-sentence reasoning in CRAFT's stages.

    Parameters
    ----------
    reference, label_key
        Labelled cells (``reference.obs[label_key]``): the stage-1 and stage-3 examples.
    output_dir
        Where the adapter goes (``stage<N>/`` after each stage, the last one also at the top, with
        the manifest ``cellscribe_finetune.json``).
    model
        Base causal LM: a registry name (default ``smollm2-135m``), a ``.gguf`` path or a
        transformers folder.
    stages
        Which stages to run, in order (``(1,)``, ``(1, 3)``, ...).
    n_per_type
        Reference cells per type in the scaffold.
    n_genes, ranking, use_raw, layer
        Cell sentences, as :func:`~cellscribe.reasoner.annotate_cells` makes them (use the same
        values there; they are stored in the manifest).
    candidates, tissue, species
        The prompt's candidate labels (``None``: the reference's labels), tissue and species, as in
        :func:`~cellscribe.reasoner.annotate_cells`.
    knowledge_tissue, n_knowledge
        CellMarker tissue (``"Blood"``; default: all tissues) and number of stage-2 pairs.
    knowledge_fraction
        Stage 3 adds this many knowledge pairs per scaffold example.
    epochs, max_steps, learning_rate
        Per stage: a number for all stages or ``{stage: value}``.
    batch_size
        Examples per step.
    lora_r, lora_alpha
        LoRA rank and scaling.
    lora_layers
        Adapt only the top ``lora_layers`` transformer layers (faster on a CPU: the backward pass
        stops there); ``None`` for all.
    n_eval
        Scaffold examples held out of training to measure the loss before and after each stage.
    teacher
        A stronger backend (name or instance) that writes the stage-1 rationales; ``None`` builds
        them from marker evidence.
    seed
        Seeds sampling and training.
    progress
        Show progress bars (default ``settings.progress``).

    Returns
    -------
    :class:`FinetuneResult` with the adapter path and, per stage, examples, steps, seconds,
    first/last training loss, held-out loss before/after, and the peak memory of the process.
    """
    stages = _check_stages(reference, label_key, stages)
    show = settings.progress if progress is None else progress
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_name = str(model or DEFAULT_TRANSFORMERS_MODEL)
    rank = resolve_ranking(reference, None, ranking, use_raw=use_raw, layer=layer)
    labels = reference.obs[label_key].dropna().astype(str)
    cands = _candidate_labels(candidates, labels.unique())
    teacher_be = get_backend(teacher) if teacher is not None else None
    data = stage_data(reference, label_key, stages=stages, ranking=rank, n_genes=n_genes, n_per_type=n_per_type,
                      n_eval=n_eval, n_types=labels.nunique(), candidates=cands, tissue=tissue, species=species,
                      knowledge_tissue=knowledge_tissue, n_knowledge=n_knowledge,
                      knowledge_fraction=knowledge_fraction, teacher=teacher_be, seed=seed, use_raw=use_raw,
                      layer=layer)
    peft_model, tokenizer = lora_model(base_name, lora_r=lora_r, lora_alpha=lora_alpha, lora_layers=lora_layers)

    run_settings = {
        "cellscribe_version": __version__, "base_model": base_name, "label_key": label_key, "ranking": rank,
        "n_genes": n_genes, "candidates": cands or [], "tissue": tissue or "", "species": species,
        "knowledge_tissue": knowledge_tissue or "", "stages": list(stages), "n_per_type": n_per_type,
        "batch_size": batch_size, "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_layers": lora_layers,
        "seed": seed, "n_threads": settings.n_threads, "teacher": getattr(teacher_be, "name", None),
    }
    result = FinetuneResult(adapter=str(out), base_model=base_name, settings=run_settings)
    for stage in stages:
        stage_result = run_stage(
            peft_model, tokenizer, stage, data.stages[stage], data.held_out, out / f"stage{stage}",
            epochs=_per_stage(epochs, stage), max_steps=_per_stage(max_steps, stage),
            learning_rate=_per_stage(learning_rate, stage), batch_size=batch_size, seed=seed + stage, progress=show)
        result.stages.append(stage_result)
        write_manifest(Path(stage_result.adapter), result)
    peft_model.save_pretrained(str(out), save_embedding_layers=False)
    write_manifest(out, result)
    return result


def _check_stages(reference: AnnData, label_key: str, stages: Sequence[int]) -> tuple[int, ...]:
    """The stages as integers, after checking them and the label column."""
    stages = tuple(int(s) for s in stages)
    if not stages or any(s not in STAGE_NAMES for s in stages):
        raise InputError(f"stages must be a non-empty sequence of 1, 2, 3; got {stages!r}.")
    if label_key not in reference.obs:
        raise InputError(f"The reference has no obs column {label_key!r}.")
    return stages


def _candidate_labels(candidates: Sequence[str] | bool | None, reference_labels: Sequence[str]) -> list[str] | None:
    """The prompt's candidate labels: the reference's (``None`` or ``True``), none (``False``), or those given."""
    if candidates is None or candidates is True:
        return sorted(reference_labels)
    if candidates is False:
        return None
    return [str(c) for c in candidates]


def lora_model(base_name: str, *, lora_r: int, lora_alpha: int, lora_layers: int | None) -> tuple[Any, Any]:
    """``(peft model, tokenizer)``: the base model with a fresh LoRA adapter on its linear layers
    (all but the output head), only on the top ``lora_layers`` layers when given."""
    # optional heavy dependencies (the ml extra)
    import torch
    from peft import LoraConfig, get_peft_model

    lm, tokenizer = load_base(base_name)
    n_layers = getattr(lm.config, "num_hidden_layers", None)
    lora_kwargs: dict[str, Any] = {}
    if lora_layers is not None and n_layers:
        lora_kwargs["layers_to_transform"] = list(range(max(0, n_layers - lora_layers), n_layers))
    head = lm.get_output_embeddings()
    linear = sorted({name.rsplit(".", 1)[-1] for name, module in lm.named_modules()
                     if isinstance(module, torch.nn.Linear) and module is not head})
    config = LoraConfig(r=lora_r, lora_alpha=lora_alpha, lora_dropout=0.0, target_modules=linear,
                        task_type="CAUSAL_LM", **lora_kwargs)
    peft_model = get_peft_model(lm, config)
    torch.set_num_threads(settings.n_threads)
    return peft_model, tokenizer


def run_stage(peft_model: Any, tokenizer: Any, stage: int, examples: Sequence[Example], held_out: Sequence[Example],
              stage_dir: Path, *, epochs: float, max_steps: int | None, learning_rate: float, batch_size: int,
              seed: int, progress: bool) -> StageResult:
    """Train one stage, measure the held-out loss before and after, and save the adapter in ``stage_dir``."""
    if not examples:
        raise InputError(f"Stage {stage} ({STAGE_NAMES[stage]}) has no examples.")
    start = time.perf_counter()
    before = eval_loss(peft_model, tokenizer, held_out, batch_size)
    losses = train(peft_model, tokenizer, examples, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                   learning_rate=learning_rate, seed=seed, progress=progress,
                   description=f"stage {stage}: {STAGE_NAMES[stage]}")
    after = eval_loss(peft_model, tokenizer, held_out, batch_size)
    seconds = time.perf_counter() - start
    peft_model.save_pretrained(str(stage_dir), save_embedding_layers=False)
    log.info("stage %d (%s): %d examples, %d steps, %.0f s, held-out loss %.3f -> %.3f", stage,
             STAGE_NAMES[stage], len(examples), len(losses), seconds, before, after)
    return StageResult(stage=stage, name=STAGE_NAMES[stage], n_examples=len(examples), steps=len(losses),
                       seconds=round(seconds, 2), train_loss_first=round(losses[0], 4),
                       train_loss_last=round(losses[-1], 4), eval_loss_before=round(before, 4),
                       eval_loss_after=round(after, 4), adapter=str(stage_dir), peak_rss_mb=round(_peak_rss_mb(), 1))


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _per_stage(value: Any, stage: int) -> Any:
    return value.get(stage) if isinstance(value, dict) else value
