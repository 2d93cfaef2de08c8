"""LoRA fine-tuning of a causal LM for cell-sentence reasoning, in CRAFT's three stages.

1. **Reasoning scaffold**: chain-of-thought answers for labelled reference cells (marker by
   marker, :func:`~cellscribe.reasoner.explain`; or written by a stronger ``teacher`` backend),
   balanced by type, in exactly the prompt format :func:`~cellscribe.reasoner.annotate_cells`
   uses, so the adapter answers the way the annotator asks.
2. **Knowledge infusion**: question/answer pairs generated from CellMarker 2.0 and the Cell
   Ontology (:func:`~cellscribe.reasoner._knowledge.knowledge_pairs`).
3. **Reasoning-mode fusion**: the scaffold again, mixed with part of the knowledge pairs, to
   restore the reasoning format after stage 2.

One LoRA adapter (peft) is trained through the stages in turn and saved after each one
(``output_dir/stage1`` ...), the last also in ``output_dir`` itself, with a manifest
(``cellscribe_finetune.json``: base model, gene ranking, prompt settings, per-stage losses, times
and peak memory). Works with any transformers causal LM; on a CPU, a small model
(``smollm2-135m``, loaded from its GGUF file and dequantised) and LoRA on the top layers keep a
stage to minutes. Loss is computed on the answer tokens only; targets are tokenized in the pieces
the constrained decoder uses at inference (:func:`~cellscribe.reasoner._answer.answer_pieces`).
"""

from __future__ import annotations

import json
import logging
import math
import resource
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from .. import __version__
from .._settings import settings
from ..errors import InputError
from ..progress import Progress
from ._annotate import reference_sentences, resolve_ranking
from ._answer import answer_pieces
from ._evidence import SentenceMarkers, explain, pick_cells, teacher_explain
from ._knowledge import QAPair, knowledge_pairs
from ._prompt import build_prompt
from ._sentences import DEFAULT_N_GENES

if TYPE_CHECKING:
    from anndata import AnnData

    from ..llm import Backend

log = logging.getLogger(__name__)

MANIFEST = "cellscribe_finetune.json"
STAGE_NAMES = {1: "reasoning scaffold", 2: "knowledge infusion", 3: "reasoning-mode fusion"}


@dataclass
class Example:
    """One training example: the chat messages and the target pieces of the assistant's reply."""

    messages: list[dict[str, str]]
    pieces: list[str]
    kind: str  # "reasoning" or "knowledge"

    @property
    def target(self) -> str:
        return "".join(self.pieces)


@dataclass
class StageResult:
    """What one stage did."""

    stage: int
    name: str
    n_examples: int
    steps: int
    seconds: float
    train_loss_first: float
    train_loss_last: float
    eval_loss_before: float
    eval_loss_after: float
    adapter: str
    peak_rss_mb: float


@dataclass
class FinetuneResult:
    """The run: where the adapter is, and each stage's figures."""

    adapter: str
    base_model: str
    stages: list[StageResult] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def scaffold_examples(
    reference: AnnData,
    label_key: str,
    *,
    ranking: Sequence[str],
    n_genes: int = DEFAULT_N_GENES,
    n_per_type: int = 20,
    candidates: Sequence[str] | None = None,
    tissue: str | None = None,
    species: str = "human",
    teacher: Backend | None = None,
    exclude: Sequence[int] = (),
    seed: int = 0,
    use_raw: bool | None = None,
    layer: str | None = None,
) -> list[Example]:
    """Stage-1 examples: labelled reference cells with marker-by-marker answers, balanced by type.

    The prompt is the zero-shot prompt of :func:`~cellscribe.reasoner.annotate_cells` with the
    same candidates; cells are drawn at random (``seed``), ``n_per_type`` per type, skipping the
    positions in ``exclude``.
    """
    sentences, labels = reference_sentences(reference, label_key, list(ranking), n_genes, use_raw=use_raw, layer=layer)
    markers = SentenceMarkers.fit(sentences, labels)
    banned = set(exclude)
    pool = [i for i in range(len(labels)) if i not in banned and sentences[i]]
    picked = pick_cells([labels[i] for i in pool], n_per_type, typical=False, seed=seed)
    prompt = build_prompt(candidates=candidates, tissue=tissue, species=species)
    out = []
    for j in picked:
        i = pool[j]
        answer = (teacher_explain(teacher, sentences[i], labels[i], markers, seed=seed) if teacher is not None
                  else explain(sentences[i], labels[i], markers))
        out.append(Example(prompt.messages(sentences[i]), answer_pieces(answer), "reasoning"))
    return out


def knowledge_examples(pairs: Sequence[QAPair]) -> list[Example]:
    """Stage-2 examples from question/answer pairs (plain-text answers)."""
    return [Example(p.messages(), [p.answer], "knowledge") for p in pairs]


def fusion_examples(scaffold: Sequence[Example], knowledge: Sequence[Example], *, knowledge_fraction: float = 0.5,
                    seed: int = 0) -> list[Example]:
    """Stage-3 examples: all the scaffold plus ``knowledge_fraction`` × its size of knowledge pairs."""
    rng = np.random.default_rng(seed)
    n = min(len(knowledge), int(round(len(scaffold) * knowledge_fraction)))
    picked = [knowledge[i] for i in sorted(rng.choice(len(knowledge), size=n, replace=False))] if n else []
    mixed = list(scaffold) + picked
    return [mixed[i] for i in rng.permutation(len(mixed))]


# --------------------------------------------------------------------------- tokenization


def encode(example: Example, tokenizer: Any) -> tuple[list[int], list[int]]:
    """``(input_ids, labels)``: the chat prompt (labels -100) and the reply, ending the turn."""
    prompt_text = tokenizer.apply_chat_template(example.messages, add_generation_prompt=True, tokenize=False)
    full_text = tokenizer.apply_chat_template(
        [*example.messages, {"role": "assistant", "content": example.target}], tokenize=False)
    if not full_text.startswith(prompt_text + example.target):
        raise InputError("The model's chat template does not end the prompt where the reply starts; "
                         "use a model with a standard chat template.")
    turn_end = full_text[len(prompt_text) + len(example.target):]
    prompt = tokenizer(prompt_text, add_special_tokens=False).input_ids
    reply: list[int] = []
    for piece in [*example.pieces, turn_end.rstrip("\n") or (tokenizer.eos_token or "")]:
        if piece:
            reply += tokenizer(piece, add_special_tokens=False).input_ids
    return list(prompt) + reply, [-100] * len(prompt) + reply


#: A batch shares its prompt prefix through the key/value cache when the prefix has this many tokens.
MIN_SHARED_PREFIX = 16


@dataclass
class Batch:
    """Token tensors of one step: the prefix all its examples share, then the rest, right-padded."""

    prefix: Any  # LongTensor (1, P), or None
    ids: Any  # LongTensor (B, S)
    mask: Any
    labels: Any


def _shared_prefix(items: list[tuple[list[int], list[int]]]) -> int:
    """Tokens all items share at the start, stopping one before the first reply token (whose
    prediction comes from the last prompt position, which must stay in the part with gradient)."""
    n = min(next((i for i, t in enumerate(labels) if t != -100), len(labels)) for _, labels in items) - 1
    first = items[0][0]
    for ids, _ in items[1:]:
        same = 0
        for a, b in zip(first[:n], ids[:n], strict=False):
            if a != b:
                break
            same += 1
        n = same
    return max(n, 0)


def make_batches(encoded: list[tuple[list[int], list[int]]], kinds: list[str], batch_size: int, pad_id: int,
                 rng: np.random.Generator) -> list[Batch]:
    """Shuffled batches, each of one kind of example (so they share their system prompt), with the
    shared prompt prefix split off."""
    import torch

    groups: list[list[int]] = []
    for kind in sorted(set(kinds)):
        idx = [i for i in rng.permutation(len(encoded)) if kinds[i] == kind]
        groups += [idx[i: i + batch_size] for i in range(0, len(idx), batch_size)]
    batches = []
    for g in rng.permutation(len(groups)):
        items = [encoded[i] for i in groups[g]]
        n = _shared_prefix(items)
        if n < MIN_SHARED_PREFIX:
            n = 0
        prefix = torch.tensor([items[0][0][:n]]) if n else None
        width = max(len(ids) - n for ids, _ in items)
        ids = torch.full((len(items), width), pad_id, dtype=torch.long)
        labels = torch.full((len(items), width), -100, dtype=torch.long)
        mask = torch.zeros((len(items), n + width), dtype=torch.long)
        for row, (x, y) in enumerate(items):
            ids[row, : len(x) - n] = torch.tensor(x[n:])
            labels[row, : len(y) - n] = torch.tensor(y[n:])
            mask[row, : len(x)] = 1
        batches.append(Batch(prefix, ids, mask, labels))
    return batches


def batch_loss(model: Any, batch: Batch, *, reduction: str = "mean") -> Any:
    """Cross-entropy of the reply tokens. A shared prefix is evaluated once, without gradient, and
    its key/value cache repeated for every example: the prompt's keys and values are exact (the
    current adapter computes them), only the gradient through them is left out."""
    import torch

    cache = None
    if batch.prefix is not None:
        with torch.no_grad():
            cache = model(input_ids=batch.prefix, use_cache=True).past_key_values
        cache.batch_repeat_interleave(batch.ids.shape[0])
    logits = model(input_ids=batch.ids, attention_mask=batch.mask, past_key_values=cache, use_cache=cache is not None
                   ).logits[:, :-1]
    target = batch.labels[:, 1:]
    return torch.nn.functional.cross_entropy(logits.reshape(-1, logits.shape[-1]).float(), target.reshape(-1),
                                             ignore_index=-100, reduction=reduction)


def eval_loss(model: Any, tokenizer: Any, examples: Sequence[Example], batch_size: int = 4) -> float:
    """Mean loss per answer token over ``examples`` (no gradient)."""
    import torch

    encoded = [encode(e, tokenizer) for e in examples]
    total, count = 0.0, 0
    model.eval()
    with torch.inference_mode():
        for batch in make_batches(encoded, [e.kind for e in examples], batch_size, tokenizer.pad_token_id,
                                  np.random.default_rng(0)):
            total += float(batch_loss(model, batch, reduction="sum"))
            count += int((batch.labels[:, 1:] != -100).sum())
    return total / max(count, 1)


def train(
    model: Any,
    tokenizer: Any,
    examples: Sequence[Example],
    *,
    epochs: float = 1.0,
    max_steps: int | None = None,
    batch_size: int = 4,
    learning_rate: float = 5e-4,
    warmup: float = 0.1,
    seed: int = 0,
    progress: bool = False,
    description: str = "training",
) -> list[float]:
    """Train the trainable (LoRA) parameters on ``examples``; returns the loss of every step.

    AdamW with linear warm-up and decay, gradient clipping at 1; ``max_steps`` caps the steps that
    ``epochs`` implies. Batches hold one kind of example and share their prompt prefix
    (:func:`batch_loss`).
    """
    import torch
    from transformers import get_linear_schedule_with_warmup

    if not examples:
        raise InputError("No training examples.")
    torch.manual_seed(seed)
    encoded = [encode(e, tokenizer) for e in examples]
    kinds = [e.kind for e in examples]
    rng = np.random.default_rng(seed)
    per_epoch = len(make_batches(encoded, kinds, batch_size, tokenizer.pad_token_id, np.random.default_rng(seed)))
    steps = max(1, int(math.ceil(per_epoch * epochs)))
    if max_steps is not None:
        steps = min(steps, max_steps)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=learning_rate, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, int(steps * warmup), steps)
    losses: list[float] = []
    model.train()
    def last_loss() -> str:
        return f"loss {losses[-1]:.3f}" if losses else "loss -"

    with Progress(steps, description, unit="steps", show=progress, status=last_loss) as advance:
        while len(losses) < steps:
            for batch in make_batches(encoded, kinds, batch_size, tokenizer.pad_token_id, rng):
                loss = batch_loss(model, batch)
                loss.backward()
                torch.nn.utils.clip_grad_norm_(params, 1.0)
                optimizer.step()
                schedule.step()
                optimizer.zero_grad(set_to_none=True)
                losses.append(float(loss.detach()))
                advance()
                if len(losses) >= steps:
                    break
    model.eval()
    return losses


# --------------------------------------------------------------------------- the three stages


def _peak_rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _per_stage(value: Any, stage: int) -> Any:
    return value.get(stage) if isinstance(value, dict) else value


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
    import torch
    from peft import LoraConfig, get_peft_model

    from ..llm import get_backend
    from ..llm._transformers import DEFAULT_TRANSFORMERS_MODEL, load_base

    stages = tuple(int(s) for s in stages)
    if not stages or any(s not in STAGE_NAMES for s in stages):
        raise InputError(f"stages must be a non-empty sequence of 1, 2, 3; got {stages!r}.")
    if label_key not in reference.obs:
        raise InputError(f"The reference has no obs column {label_key!r}.")
    show = settings.progress if progress is None else progress
    out = Path(output_dir)
    out.mkdir(parents=True, exist_ok=True)
    base_name = str(model or DEFAULT_TRANSFORMERS_MODEL)
    rank = resolve_ranking(reference, None, ranking, use_raw=use_raw, layer=layer)
    labels = reference.obs[label_key].dropna().astype(str)
    if candidates is None or candidates is True:
        cands: list[str] | None = sorted(labels.unique())
    elif candidates is False:
        cands = None
    else:
        cands = [str(c) for c in candidates]
    teacher_be = get_backend(teacher) if teacher is not None else None

    scaffold: list[Example] = []
    held_out: list[Example] = []
    if 1 in stages or 3 in stages:
        held_out = scaffold_examples(reference, label_key, ranking=rank, n_genes=n_genes,
                                     n_per_type=max(1, math.ceil(n_eval / max(1, labels.nunique()))),
                                     candidates=cands, tissue=tissue, species=species, seed=seed + 1000,
                                     use_raw=use_raw, layer=layer)[:n_eval]
        held_positions = _positions(reference, label_key, held_out, rank, n_genes, use_raw, layer)
        scaffold = scaffold_examples(reference, label_key, ranking=rank, n_genes=n_genes, n_per_type=n_per_type,
                                     candidates=cands, tissue=tissue, species=species, teacher=teacher_be,
                                     exclude=held_positions, seed=seed, use_raw=use_raw, layer=layer)
    knowledge: list[Example] = []
    if 2 in stages or 3 in stages:
        knowledge = knowledge_examples(knowledge_pairs(species=species, tissue=knowledge_tissue,
                                                       max_pairs=n_knowledge, seed=seed))
    if not held_out:
        held_out = knowledge[:n_eval]

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

    run_settings = {
        "cellscribe_version": __version__, "base_model": base_name, "label_key": label_key, "ranking": rank,
        "n_genes": n_genes, "candidates": cands or [], "tissue": tissue or "", "species": species,
        "knowledge_tissue": knowledge_tissue or "", "stages": list(stages), "n_per_type": n_per_type,
        "batch_size": batch_size, "lora_r": lora_r, "lora_alpha": lora_alpha, "lora_layers": lora_layers,
        "seed": seed, "n_threads": settings.n_threads, "teacher": getattr(teacher_be, "name", None),
    }
    result = FinetuneResult(adapter=str(out), base_model=base_name, settings=run_settings)
    data = {1: scaffold, 2: knowledge,
            3: fusion_examples(scaffold, knowledge, knowledge_fraction=knowledge_fraction, seed=seed)}
    for stage in stages:
        examples = data[stage]
        if not examples:
            raise InputError(f"Stage {stage} ({STAGE_NAMES[stage]}) has no examples.")
        start = time.perf_counter()
        before = eval_loss(peft_model, tokenizer, held_out, batch_size)
        losses = train(peft_model, tokenizer, examples, epochs=_per_stage(epochs, stage),
                       max_steps=_per_stage(max_steps, stage), batch_size=batch_size,
                       learning_rate=_per_stage(learning_rate, stage), seed=seed + stage, progress=show,
                       description=f"stage {stage}: {STAGE_NAMES[stage]}")
        after = eval_loss(peft_model, tokenizer, held_out, batch_size)
        seconds = time.perf_counter() - start
        stage_dir = out / f"stage{stage}"
        peft_model.save_pretrained(str(stage_dir), save_embedding_layers=False)
        stage_result = StageResult(stage=stage, name=STAGE_NAMES[stage], n_examples=len(examples), steps=len(losses),
                                   seconds=round(seconds, 2), train_loss_first=round(losses[0], 4),
                                   train_loss_last=round(losses[-1], 4), eval_loss_before=round(before, 4),
                                   eval_loss_after=round(after, 4), adapter=str(stage_dir),
                                   peak_rss_mb=round(_peak_rss_mb(), 1))
        result.stages.append(stage_result)
        log.info("stage %d (%s): %d examples, %d steps, %.0f s, held-out loss %.3f -> %.3f", stage,
                 STAGE_NAMES[stage], len(examples), len(losses), seconds, before, after)
        _write_manifest(stage_dir, result)
    peft_model.save_pretrained(str(out), save_embedding_layers=False)
    _write_manifest(out, result)
    return result


def _positions(reference: AnnData, label_key: str, examples: Sequence[Example], ranking: Sequence[str], n_genes: int,
               use_raw: bool | None, layer: str | None) -> list[int]:
    """Positions (among labelled reference cells) whose prompts are those of ``examples``."""
    sentences, _ = reference_sentences(reference, label_key, list(ranking), n_genes, use_raw=use_raw, layer=layer)
    users = {e.messages[-1]["content"] for e in examples}
    prompt = build_prompt()
    return [i for i, s in enumerate(sentences) if prompt.user(s) in users]


def _write_manifest(folder: Path, result: FinetuneResult) -> None:
    (folder / MANIFEST).write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")


def read_manifest(adapter: str | Path) -> dict[str, Any]:
    """The manifest saved with an adapter (ranking, prompt settings, per-stage figures)."""
    path = Path(adapter) / MANIFEST
    if not path.is_file():
        raise InputError(f"{adapter} holds no {MANIFEST}; was it written by cellscribe.reasoner.finetune?")
    return json.loads(path.read_text(encoding="utf-8"))

