"""The record of a fine-tuning run, saved with the adapter as ``cellscribe_finetune.json``.

:func:`~cellscribe.reasoner.finetune` writes it after every stage; the annotator and the
``reason`` command read it back (gene ranking, base model, prompt settings).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from ..errors import InputError

MANIFEST = "cellscribe_finetune.json"


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


def write_manifest(folder: Path, result: FinetuneResult) -> None:
    """Save ``result`` as the manifest of the adapter in ``folder``."""
    (folder / MANIFEST).write_text(json.dumps(result.to_dict(), indent=2), encoding="utf-8")


def read_manifest(adapter: str | Path) -> dict[str, Any]:
    """The manifest saved with an adapter (ranking, prompt settings, per-stage figures)."""
    path = Path(adapter) / MANIFEST
    if not path.is_file():
        raise InputError(f"{adapter} holds no {MANIFEST}; was it written by cellscribe.reasoner.finetune?")
    return json.loads(path.read_text(encoding="utf-8"))
