"""Command-line options shared by several commands, declared once.

Each shared option is a typer ``Annotated`` alias; a command names it as the type of a parameter
and gives the default, e.g. ``backend: Backend = "auto"`` or ``seed: Seed = None``. Every command
that talks to a language model takes :data:`Backend`, :data:`Model`, :data:`Host`, :data:`BaseUrl`,
:data:`ApiKeyEnv` and :data:`Timeout`, and turns them into the backend's keyword arguments with
:func:`backend_options`.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any, Optional

import typer

from ..engine import DEFAULT_MODE, MODES
from ..errors import InputError
from ..llm import BACKEND_NAMES, DEFAULT_API_KEY_ENV, DEFAULT_TIMEOUT_S

MODE_HELP = (f"Annotation mode, one of {', '.join(MODES)} (default {DEFAULT_MODE}). grounded: marker databases "
             "propose Cell Ontology types, a learned re-ranker chooses, the model explains (with --no-explain no "
             "model runs); llm: the model alone names the type; agentic: the model calls lookup tools (backends "
             "with tool calls). 'markers' is the deprecated name of grounded --no-explain.")
BACKEND_HELP = (f"{', '.join(BACKEND_NAMES[:-1])} or {BACKEND_NAMES[-1]} (auto: an Ollama server when it answers "
                "and has the model, otherwise the embedded model).")

# --------------------------------------------------------------------------- which model, where
Backend = Annotated[str, typer.Option("--backend", "-b", help=BACKEND_HELP)]
Model = Annotated[Optional[str], typer.Option("--model", "-m", help="Model for the backend (see `cellscribe models`).")]
Host = Annotated[Optional[str], typer.Option("--host", help="Ollama address (default OLLAMA_HOST or 127.0.0.1:11434).")]
BaseUrl = Annotated[Optional[str], typer.Option("--base-url", help="OpenAI-compatible server URL.")]
ApiKeyEnv = Annotated[str, typer.Option("--api-key-env", help="Environment variable holding the API key "
                                        "(--backend openai).")]
Timeout = Annotated[float, typer.Option("--timeout", help="Seconds per model request, its whole budget (a request "
                                        "that runs out is reported, not repeated).")]

# --------------------------------------------------------------------------- how it is asked
Mode = Annotated[str, typer.Option("--mode", help=MODE_HELP)]
Concurrency = Annotated[Optional[int], typer.Option("--concurrency", help="Parallel requests (default: what the "
                                                    "backend allows).")]
Seed = Annotated[Optional[int], typer.Option("--seed", help="Sampling seed.")]
Temperature = Annotated[Optional[float], typer.Option("--temperature", help="Sampling temperature.")]
Cache = Annotated[bool, typer.Option("--cache/--no-cache", help="Read and write the on-disk answer cache.")]
Explain = Annotated[bool, typer.Option("--explain/--no-explain", help="Add a title and three bullets per cluster, "
                                       "checked against the label's case before they are shown.")]
ExplainFrom = Annotated[str, typer.Option("--explain-from", help="Who writes the bullets: 'model' (the language "
                                          "model, checked against the case; a failing bullet is rendered from it) or "
                                          "'knowledge' (the case rendered as text, no model, instant).")]


def explain_value(explain: bool, explain_from: str) -> bool | str:
    """``explain=`` of :func:`cellscribe.annotate` from ``--explain/--no-explain`` and ``--explain-from``."""
    if explain_from not in ("model", "knowledge"):
        raise typer.BadParameter(f"choose 'model' or 'knowledge', not {explain_from!r}", param_hint="--explain-from")
    return "knowledge" if explain and explain_from == "knowledge" else explain
TopN = Annotated[Optional[int], typer.Option("--top-n", help="Marker genes per cluster sent to the model.")]
Tissue = Annotated[Optional[str], typer.Option("--tissue", "-t", help="Tissue, e.g. PBMC.")]
CopyNumber = Annotated[bool, typer.Option("--copy-number/--no-copy-number", help="Human data with clusters: label "
                                          "the clusters with copy-number changes inferred from their expression "
                                          "(against the PTPRC-expressing clusters) 'malignant cell'.")]
Species = Annotated[str, typer.Option("--species", help="human or mouse.")]
SystemPrompt = Annotated[Optional[Path], typer.Option("--system-prompt", help="File with a system prompt to use "
                                                      "instead.")]
Template = Annotated[Optional[Path], typer.Option("--template", help="File with a Jinja2 user-prompt template to "
                                                  "use instead.")]


def backend_options(backend: str, *, host: str | None, base_url: str | None, api_key_env: str,
                    timeout: float) -> dict[str, Any]:
    """The backend keyword arguments of the shared options: ``timeout`` always, ``host`` and
    ``base_url`` when given, ``api_key_env`` for the openai backend (the others do not take it)."""
    options: dict[str, Any] = {"timeout": timeout}
    if host:
        options["host"] = host
    if base_url:
        options["base_url"] = base_url
    if backend == "openai":
        options["api_key_env"] = api_key_env
    return options


def given(**options: Any) -> dict[str, Any]:
    """The options that were given (not ``None``), so that the callee's own defaults apply."""
    return {k: v for k, v in options.items() if v is not None}


def check_output_file(path: Path | None) -> None:
    """Refuse an output path that cannot be written, before any work is done (its folder is made
    when missing)."""
    if path is None:
        return
    if path.is_dir():
        raise InputError(f"--out {path} is a folder; give a file name, e.g. {path / 'annotations.csv'}.")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise InputError(f"Cannot create the folder of --out {path}: {exc.strerror or exc}.") from None
    if not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise InputError(f"Cannot write --out {path}: permission denied. Choose another path.")


__all__ = ["DEFAULT_API_KEY_ENV", "DEFAULT_TIMEOUT_S", "MODE_HELP", "ApiKeyEnv", "Backend", "BaseUrl", "Cache",
           "Concurrency", "Explain", "ExplainFrom", "Host", "Mode", "Model", "Seed", "Species", "SystemPrompt",
           "Temperature", "Template", "Timeout", "Tissue", "TopN", "backend_options", "check_output_file",
           "explain_value", "given"]
