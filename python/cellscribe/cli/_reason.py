"""``cellscribe reason DATA`` and ``cellscribe finetune REF``: single-cell reasoning annotation."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Optional

import typer
from rich.console import Console
from rich.table import Table

from ..errors import InputError
from ..io import read
from ..llm import DEFAULT_API_KEY_ENV, DEFAULT_TIMEOUT_S, get_backend
from ..reasoner import annotate_cells, finetune, read_manifest
from ._app import app, err
from ._options import (
    ApiKeyEnv,
    Backend,
    BaseUrl,
    Cache,
    Concurrency,
    Host,
    Model,
    Seed,
    Species,
    Temperature,
    Timeout,
    Tissue,
    backend_options,
)


def _read(path: Path, what: str):
    if not Path(path).exists():
        raise InputError(f"{what} {path} does not exist.")
    return read(path)


@app.command("reason")
def reason_command(
    data: Path = typer.Argument(..., help="Cells to annotate: .h5ad (or any file `cellscribe run` reads)."),
    reference: Optional[Path] = typer.Option(None, "--reference", "-r", help="Labelled reference cells (.h5ad)."),
    label_key: Optional[str] = typer.Option(None, "--label-key", "-l", help="Label column of the reference's obs."),
    shots: int = typer.Option(0, "--shots", "-k", help="Exemplars per reference type (0: zero-shot)."),
    candidates: bool = typer.Option(True, "--candidates/--free-labels",
                                    help="Answer with one of the reference's labels, or with free labels."),
    groupby: Optional[str] = typer.Option(None, help="Cluster column of DATA: adds the cluster majority label and "
                                          "the cell/cluster agreement."),
    n_genes: int = typer.Option(32, help="Genes per cell sentence."),
    tissue: Tissue = None,
    species: Species = "human",
    backend: Backend = "auto",
    model: Model = None,
    adapter: Optional[Path] = typer.Option(None, help="A LoRA adapter from `cellscribe finetune` (implies "
                                           "--backend transformers)."),
    out: Optional[Path] = typer.Option(None, "--out", "-o", help="Write the annotated .h5ad here."),
    csv: Optional[Path] = typer.Option(None, help="Write the per-cell table here (default: standard output "
                                       "when no --out is given)."),
    host: Host = None,
    base_url: BaseUrl = None,
    api_key_env: ApiKeyEnv = DEFAULT_API_KEY_ENV,
    timeout: Timeout = DEFAULT_TIMEOUT_S,
    seed: Seed = 0,
    temperature: Temperature = 0.0,
    cache: Cache = True,
    concurrency: Concurrency = None,
) -> None:
    """Annotate every cell of DATA from its cell sentence, with a marker-by-marker rationale."""
    if (reference is None) != (label_key is None):
        raise InputError("Pass --reference and --label-key together (the reference's label column).")
    if shots and reference is None:
        raise InputError("--shots needs labelled cells: pass --reference REF.h5ad --label-key KEY.")
    adata = _read(data, "DATA")
    ref = _read(reference, "--reference") if reference is not None else None
    options: dict[str, object] = {}
    if adapter is not None:
        if backend not in ("auto", "transformers"):
            raise InputError("--adapter runs on the transformers backend: drop --backend or use "
                             "--backend transformers.")
        backend = "transformers"
        options["adapter"] = adapter
        if model is None:
            model = read_manifest(adapter)["base_model"]
    options.update(backend_options(backend, host=host, base_url=base_url, api_key_env=api_key_env, timeout=timeout))
    annotate_cells(adata, reference=ref, label_key=label_key, shots=shots, candidates=None if candidates else False,
                   groupby=groupby, n_genes=n_genes, tissue=tissue, species=species, backend=backend, model=model,
                   seed=seed, temperature=temperature, cache=cache, concurrency=concurrency, on_error="keep",
                   **options)
    uns = adata.uns["reasoner"]
    stats = uns["stats"]
    line = (f"{stats['cells']} cells ({stats['distinct_sentences']} distinct sentences) with "
            f"{uns['provenance']['model']}: {stats['model_calls']} answered, {stats['cache_hits']} from cache, "
            f"{stats['failed']} failed; {stats['cells_per_second']:.2f} cells/s.")
    if groupby:
        line += f" Cell/cluster agreement {uns['agreement']:.2f}."
    err.print(line, highlight=False)
    columns = [c for c in ("reasoner", "reasoner_evidence", "reasoner_cluster", "reasoner_agrees", "cell_sentence")
               if c in adata.obs]
    table = adata.obs[columns].rename_axis("cell").reset_index()
    if out is not None:
        adata.write_h5ad(out)
        err.print(f"Wrote {out}")
    if csv is not None:
        table.to_csv(csv, index=False)
        err.print(f"Wrote {csv}")
    elif out is None:
        typer.echo(table.to_csv(index=False), nl=False)


@app.command("finetune")
def finetune_command(
    reference: Path = typer.Argument(..., help="Labelled reference cells (.h5ad)."),
    label_key: str = typer.Option(..., "--label-key", "-l", help="Label column of the reference's obs."),
    out: Path = typer.Option(..., "--out", "-o", help="Folder for the adapter (stage1/, stage2/, ... and the final)."),
    model: Optional[str] = typer.Option(None, "--model", "-m", help="Base model: smollm2-135m (default), "
                                        "qwen2.5-coder-0.5b, a .gguf path or a transformers folder."),
    stages: str = typer.Option("1,2,3", help="CRAFT stages to run: 1 scaffold, 2 knowledge, 3 fusion."),
    n_per_type: int = typer.Option(20, help="Reference cells per type in the reasoning scaffold."),
    n_genes: int = typer.Option(32, help="Genes per cell sentence (use the same with `cellscribe reason`)."),
    tissue: Tissue = None,
    species: Species = "human",
    knowledge_tissue: Optional[str] = typer.Option(None, help="CellMarker tissue for stage-2 Q&A, e.g. Blood "
                                                   "(default: all tissues)."),
    n_knowledge: int = typer.Option(200, help="Stage-2 question/answer pairs."),
    epochs: float = typer.Option(1.0, help="Epochs per stage."),
    max_steps: Optional[int] = typer.Option(None, help="At most this many steps per stage."),
    batch_size: int = typer.Option(4, help="Examples per step."),
    learning_rate: float = typer.Option(5e-4, "--lr", help="Learning rate."),
    lora_r: int = typer.Option(16, help="LoRA rank."),
    lora_layers: Optional[int] = typer.Option(None, help="Adapt only the top N layers (faster on a CPU)."),
    teacher_backend: Optional[str] = typer.Option(None, help="A stronger backend that writes the stage-1 "
                                                  "rationales (default: built from marker evidence)."),
    teacher_model: Optional[str] = typer.Option(None, help="Model of the teacher backend."),
    seed: int = typer.Option(0, help="Seed of sampling and training."),
) -> None:
    """Fine-tune a LoRA adapter for cell reasoning in CRAFT's three stages (scaffold, knowledge, fusion)."""
    try:
        stage_list = [int(s) for s in stages.split(",") if s.strip()]
    except ValueError:
        raise InputError(f"--stages takes numbers like 1,2,3; got {stages!r}.") from None
    ref = _read(reference, "REFERENCE")
    teacher = get_backend(teacher_backend, model=teacher_model) if teacher_backend else None
    result = finetune(ref, label_key, output_dir=out, model=model, stages=stage_list, n_per_type=n_per_type,
                      n_genes=n_genes, tissue=tissue, species=species, knowledge_tissue=knowledge_tissue,
                      n_knowledge=n_knowledge, epochs=epochs, max_steps=max_steps, batch_size=batch_size,
                      learning_rate=learning_rate, lora_r=lora_r, lora_layers=lora_layers, teacher=teacher,
                      seed=seed)
    table = Table()
    for col in ("stage", "examples", "steps", "seconds", "train loss", "held-out loss", "peak MB"):
        table.add_column(col)
    for s in result.stages:
        table.add_row(f"{s.stage} {s.name}", str(s.n_examples), str(s.steps), f"{s.seconds:.0f}",
                      f"{s.train_loss_first:.3f} -> {s.train_loss_last:.3f}",
                      f"{s.eval_loss_before:.3f} -> {s.eval_loss_after:.3f}", f"{s.peak_rss_mb:.0f}")
    Console(stderr=True).print(table)
    err.print(f"Adapter in {result.adapter}; use it with `cellscribe reason DATA --adapter {result.adapter}`.")
    typer.echo(json.dumps(result.to_dict()["stages"], indent=2))
