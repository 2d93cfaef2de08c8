"""Command-line options shared by several commands, declared once."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from .._annotate import DEFAULT_MODE, MODES
from ..errors import InputError

MODE_HELP = (f"Annotation mode, one of {', '.join(MODES)} (default {DEFAULT_MODE}). grounded: marker databases "
             "propose Cell Ontology types, a learned re-ranker chooses, the model explains (with --no-explain no "
             "model runs); llm: the model alone names the type; agentic: the model calls lookup tools (backends "
             "with tool calls). 'markers' is the deprecated name of grounded --no-explain.")


def mode_option() -> str:
    """``--mode``, defaulting to :data:`cellscribe._annotate.DEFAULT_MODE`."""
    return typer.Option(DEFAULT_MODE, "--mode", help=MODE_HELP)


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
