"""The LoRA training loop: tokenize examples, batch them sharing their prompt prefix, train, evaluate.

Loss is computed on the answer tokens only; targets are tokenized in the pieces the constrained
decoder uses at inference (:func:`~cellscribe.reasoner._answer.answer_pieces`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import InputError
from ..progress import Progress
from ._examples import Example

#: A batch shares its prompt prefix through the key/value cache when the prefix has this many tokens.
MIN_SHARED_PREFIX = 16


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
    import torch  # optional heavy dependency (the ml extra)

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
    import torch  # optional heavy dependency (the ml extra)

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
    import torch  # optional heavy dependency (the ml extra)

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
    # optional heavy dependencies (the ml extra)
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
