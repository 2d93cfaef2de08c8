"""Training settings and the training loop shared by GenePT and SCREADER.

Cross-entropy, AdamW, a linear warm-up then linear decay of the learning rate
(``transformers.get_linear_schedule_with_warmup``), mini-batches shuffled with a seeded generator.
Defaults follow the seed: learning rate 5e-5, batch size 64, 10 epochs. The seed warmed up for
1,000 steps of ~1,400; ``warmup_steps=None`` warms up for 10% of the steps instead, which suits
small datasets.
"""

from __future__ import annotations

import logging
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..progress import Progress

log = logging.getLogger(__name__)


@dataclass
class TrainConfig:
    """How a classifier is trained.

    Attributes
    ----------
    epochs
        Passes over the training cells.
    batch_size
        Cells per optimisation step.
    lr
        Peak learning rate of AdamW.
    warmup_steps
        Linear warm-up steps; ``None``: 10% of all steps.
    weight_decay
        AdamW weight decay.
    seed
        Seeds torch and the batch order.
    device
        ``"auto"`` (CUDA when present), ``"cpu"``, ``"cuda"``, ...
    max_grad_norm
        Gradient clipping.
    """

    epochs: int = 10
    batch_size: int = 64
    lr: float = 5e-5
    warmup_steps: int | None = None
    weight_decay: float = 0.01
    seed: int = 0
    device: str = "auto"
    max_grad_norm: float = 1.0

    def to_dict(self) -> dict[str, object]:
        return asdict(self)


def check_labels(y: np.ndarray) -> list[str]:
    """The sorted classes; refuses labels with fewer than two classes."""
    classes = np.unique(y)
    if len(classes) < 2:
        raise InputError(f"Training needs at least two cell types; the labels hold only {list(classes)}.")
    return [str(c) for c in classes]


def fit(module: nn.Module, inputs: list[torch.Tensor], y: torch.Tensor, config: TrainConfig,
        device: torch.device, *, label: str = "training") -> list[dict[str, float]]:
    """Train ``module`` (which returns ``(logits, embedding)``) in place; returns per-epoch history.

    ``inputs`` are tensors with the cells along dimension 0, moved to ``device`` batch by batch.
    """
    from transformers import get_linear_schedule_with_warmup  # optional heavy dependency (the ml extra)

    torch.manual_seed(config.seed)
    n = len(y)
    steps_per_epoch = max(1, -(-n // config.batch_size))
    total = steps_per_epoch * config.epochs
    warmup = config.warmup_steps if config.warmup_steps is not None else max(1, total // 10)
    params = [p for p in module.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=config.lr, weight_decay=config.weight_decay)
    sched = get_linear_schedule_with_warmup(opt, min(warmup, total), total)
    gen = torch.Generator().manual_seed(config.seed)
    loss_fn = nn.CrossEntropyLoss()
    history: list[dict[str, float]] = []
    module.train()
    with Progress(total, label, unit="steps") as advance:
        for epoch in range(config.epochs):
            start, seen, loss_sum, correct = time.perf_counter(), 0, 0.0, 0
            for rows in torch.randperm(n, generator=gen).split(config.batch_size):
                batch = [t[rows].to(device) for t in inputs]
                target = y[rows].to(device)
                logits, _ = module(*batch)
                loss = loss_fn(logits, target)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                nn.utils.clip_grad_norm_(params, config.max_grad_norm)
                opt.step()
                sched.step()
                loss_sum += float(loss.detach()) * len(rows)
                correct += int((logits.argmax(1) == target).sum())
                seen += len(rows)
                advance()
            seconds = time.perf_counter() - start
            history.append({"epoch": epoch + 1, "loss": loss_sum / seen, "train_accuracy": correct / seen,
                            "seconds": seconds, "cells_per_s": seen / seconds})
            log.info("%s epoch %d: loss %.4f, %.1f s", label, epoch + 1, loss_sum / seen, seconds)
    module.eval()
    return history


@torch.no_grad()
def infer(module: nn.Module, inputs: list[torch.Tensor], device: torch.device, batch_size: int = 64
          ) -> tuple[np.ndarray, np.ndarray]:
    """Class probabilities and embeddings, ``(n, classes)`` and ``(n, dim)``."""
    module.eval()
    probs, embs = [], []
    n = inputs[0].shape[0]
    for lo in range(0, n, batch_size):
        logits, h = module(*[t[lo:lo + batch_size].to(device) for t in inputs])
        probs.append(torch.softmax(logits, 1).cpu().numpy())
        embs.append(h.cpu().numpy())
    return np.concatenate(probs), np.concatenate(embs)


