"""The torch models: GenePT (baseline) and SCREADER (frozen causal LM between two trained MLPs).

GenePT
    expression-weighted mean gene embedding -> MLP -> class logits. The last hidden layer is the
    learned cell embedding.
SCREADER (the seed's Fig. 1b, Eq. 2-4)
    each of a cell's top-``k`` genes, ``(e_gene * expression) ⊕ PE(rank)``, is projected by an MLP
    to the LM's hidden size; the LM reads
    ``[instruction tokens] [k projected genes] [<cls>]``, where the instruction is
    "What is the cell type of this given embedding?" (embedded with the LM's own, frozen, token
    embeddings) and ``<cls>`` is one learnable vector; the LM's last hidden state at ``<cls>``
    (``ê_cls``, the SCREADER cell embedding) goes through an MLP head. The LM is frozen; the
    projection, the ``<cls>`` vector and the head are trained.

Any transformers causal LM works as the frozen model: a registry name of
:mod:`cellscribe.llm.local_models` (``smollm2-135m``, ``qwen2.5-coder-0.5b``, ...; the GGUF file is
loaded and dequantised by transformers), a ``.gguf`` path, or a local transformers model folder.
``lm_layers`` keeps only the first layers of the LM (a CPU budget option; ``None`` keeps all).
"""

from __future__ import annotations

import functools
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import InputError
from ..llm import local_models
from ._cells import positional_encoding

log = logging.getLogger(__name__)

INSTRUCTION = "What is the cell type of this given embedding?"


def resolve_device(device: str | None = "auto") -> torch.device:
    """``"auto"`` -> CUDA when present, else CPU."""
    if device in (None, "auto"):
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


def mlp(sizes: list[int], dropout: float = 0.1) -> nn.Sequential:
    """Linear layers of the given sizes with GELU and dropout between them."""
    layers: list[nn.Module] = []
    for i in range(len(sizes) - 1):
        layers.append(nn.Linear(sizes[i], sizes[i + 1]))
        if i < len(sizes) - 2:
            layers += [nn.GELU(), nn.Dropout(dropout)]
    return nn.Sequential(*layers)


class GenePTModel(nn.Module):
    """Mean embedding -> MLP classifier (input: :func:`cellscribe.embed.weighted_mean` of ``gene_matrix``)."""

    def __init__(self, gene_matrix: np.ndarray, n_classes: int, hidden: tuple[int, ...] = (512, 256),
                 dropout: float = 0.1):
        super().__init__()
        self.register_buffer("gene_matrix", torch.as_tensor(gene_matrix, dtype=torch.float32))
        self.body = mlp([gene_matrix.shape[1], *hidden], dropout)
        self.act = nn.Sequential(nn.GELU(), nn.Dropout(dropout))
        self.out = nn.Linear(hidden[-1], n_classes)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed(x)
        return self.out(self.act(h)), h


# --------------------------------------------------------------------------- the frozen LM


def lm_source(name: str) -> tuple[Path, str | None, dict[str, Any]]:
    """(folder, gguf file name or None, identity) of a causal LM given by registry name or path."""
    p = Path(str(name)).expanduser()
    if str(name) in local_models.REGISTRY or p.suffix.lower() == ".gguf":
        gguf = local_models.resolve(str(name))
        return gguf.parent, gguf.name, {"lm": str(name), "sha256": local_models.file_sha256(gguf)}
    if (p / "config.json").is_file():
        return p, None, {"lm": str(p), "sha256": None}
    raise InputError(f"Unknown language model {name!r}: use one of {', '.join(local_models.REGISTRY)}, "
                     "a .gguf file or a transformers model folder.")


@functools.lru_cache(maxsize=2)
def load_lm(name: str, lm_layers: int | None = None) -> tuple[nn.Module, Any, dict[str, Any]]:
    """The frozen causal LM, its tokenizer and identity; loaded once per process and per ``lm_layers``.

    GGUF weights are dequantised to float32 by transformers (SmolLM2-135M: ~25 s, ~0.6 GB).
    """
    from transformers import AutoModelForCausalLM, AutoTokenizer  # optional heavy dependency (the ml extra)

    folder, gguf, identity = lm_source(name)
    start = time.perf_counter()
    kw: dict[str, Any] = {"gguf_file": gguf} if gguf else {"local_files_only": True}
    tokenizer = AutoTokenizer.from_pretrained(folder, **kw)
    lm = AutoModelForCausalLM.from_pretrained(folder, dtype=torch.float32, **kw)
    n_total = lm.config.num_hidden_layers
    if lm_layers is not None:
        if not 1 <= lm_layers <= n_total:
            raise InputError(f"lm_layers must be between 1 and {n_total} for {name}; got {lm_layers}.")
        lm.model.layers = lm.model.layers[:lm_layers]
        lm.config.num_hidden_layers = lm_layers
    lm.requires_grad_(False)
    lm.eval()
    identity = {**identity, "layers_used": lm.config.num_hidden_layers, "layers_total": n_total,
                "hidden_size": lm.config.hidden_size, "load_seconds": round(time.perf_counter() - start, 1)}
    log.info("loaded %s (%d/%d layers) in %.1f s", name, lm.config.num_hidden_layers, n_total,
             time.perf_counter() - start)
    return lm, tokenizer, identity


class ScreaderModel(nn.Module):
    """Projection MLP -> frozen causal LM with instruction and ``<cls>`` -> MLP head.

    Parameters
    ----------
    lm, tokenizer
        The frozen causal LM and its tokenizer (:func:`load_lm`). The LM is not registered as a
        submodule: it is not saved with the model and never trained.
    gene_matrix
        ``(n_genes, dim)`` gene embeddings (a buffer, saved with the model).
    n_classes, k, pe_dim
        Classes, genes per cell, width of the rank encoding.
    proj_hidden, head_hidden
        Hidden sizes of the projection MLP and the head.
    instruction
        The task instruction placed before the cell.
    gene_scale
        Per-gene divisor used when ranking a cell's genes (:func:`cellscribe.embed.rank_genes`); kept
        with the model so new cells are ranked as the training cells were.
    """

    def __init__(self, lm: nn.Module, tokenizer: Any, gene_matrix: np.ndarray, n_classes: int, *, k: int,
                 pe_dim: int = 64, proj_hidden: tuple[int, ...] = (512,), head_hidden: tuple[int, ...] = (256,),
                 instruction: str = INSTRUCTION, dropout: float = 0.1, gene_scale: np.ndarray | None = None) -> None:
        super().__init__()
        object.__setattr__(self, "lm", lm)
        hidden = lm.config.hidden_size
        self.register_buffer("gene_matrix", torch.as_tensor(gene_matrix, dtype=torch.float32))
        scale = np.ones(gene_matrix.shape[0], dtype=np.float32) if gene_scale is None else gene_scale
        self.register_buffer("gene_scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("pe", torch.as_tensor(positional_encoding(k, pe_dim)))
        ids = tokenizer(instruction, add_special_tokens=False, return_tensors="pt")["input_ids"]
        with torch.no_grad():
            table = lm.get_input_embeddings().weight
            self.register_buffer("instruction", table[ids[0]].detach().clone())
            self.cls = nn.Parameter(table.mean(0).detach().clone() + 0.02 * torch.randn(hidden) * table.std())
        self.proj = mlp([gene_matrix.shape[1] + pe_dim, *proj_hidden, hidden], dropout)
        self.head = mlp([hidden, *head_hidden, n_classes], dropout)

    def lm_to(self, device: torch.device) -> None:
        self.lm.to(device)

    def embed(self, index: torch.Tensor, value: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``ê_cls``: the LM's last hidden state at ``<cls>``, ``(batch, hidden)``."""
        b, k = index.shape
        genes = self.gene_matrix[index] * value.unsqueeze(-1)
        tokens = self.proj(torch.cat([genes, self.pe[:k].expand(b, k, -1)], dim=-1))
        n_ins = self.instruction.shape[0]
        seq = torch.cat([self.instruction.expand(b, n_ins, -1), tokens, self.cls.expand(b, 1, -1)], dim=1)
        ones = torch.ones(b, n_ins, dtype=torch.long, device=seq.device)
        attn = torch.cat([ones, mask.long(), ones[:, :1]], dim=1)
        out = self.lm.model(inputs_embeds=seq, attention_mask=attn, use_cache=False)
        return out.last_hidden_state[:, -1]

    def forward(self, index: torch.Tensor, value: torch.Tensor, mask: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor]:
        h = self.embed(index, value, mask)
        return self.head(h), h
