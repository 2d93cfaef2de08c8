"""``cellscribe models``: list and prepare the local models."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.table import Table

from ..llm import local_models
from ._app import app, err

models_app = typer.Typer(help="List and prepare local GGUF models.", no_args_is_help=False)
app.add_typer(models_app, name="models")


@models_app.callback(invoke_without_command=True)
def models(ctx: typer.Context) -> None:
    """List the local models and whether they are ready."""
    if ctx.invoked_subcommand is not None:
        return
    table = Table()
    for col in ("name", "ready", "description"):
        table.add_column(col)
    for m in local_models.status():
        table.add_row(m["name"] + (" (default)" if m["default"] else ""), "yes" if m["ready"] else "no",
                      str(m["description"]))
    Console().print(table)


@models_app.command("prepare")
def prepare(names: list[str] = typer.Argument(None, help="Models to prepare (default: the default model).")) -> None:
    """Download, assemble and verify local models (sha256) into the cache."""
    for name in names or [local_models.DEFAULT_LOCAL_MODEL]:
        with err.status(f"preparing {name}"):
            path = local_models.prepare(name)
        err.print(f"{name}: ready at {path}")
