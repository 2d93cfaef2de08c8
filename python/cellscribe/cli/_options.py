"""Command-line options shared by several commands, declared once."""

from __future__ import annotations

import typer

from .._annotate import DEFAULT_MODE, MODES

MODE_HELP = (f"Annotation mode, one of {', '.join(MODES)} (default {DEFAULT_MODE}). grounded: marker databases "
             "propose Cell Ontology types, a learned re-ranker chooses, the model explains (with --no-explain no "
             "model runs); llm: the model alone names the type; agentic: the model calls lookup tools (backends "
             "with tool calls). 'markers' is the deprecated name of grounded --no-explain.")


def mode_option() -> str:
    """``--mode``, defaulting to :data:`cellscribe._annotate.DEFAULT_MODE`."""
    return typer.Option(DEFAULT_MODE, "--mode", help=MODE_HELP)
