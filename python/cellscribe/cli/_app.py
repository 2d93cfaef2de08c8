"""The typer application every command registers on, the error console, and the entry point.

Command modules import :data:`app` and :data:`err` from here; ``cli/__init__.py`` imports the
command modules (which registers them) and re-exports :func:`main`, so no module imports its
importer.
"""

from __future__ import annotations

import logging
import sys
import traceback
import warnings
from collections.abc import Iterator
from contextlib import contextmanager

import typer
from rich.console import Console
from rich.markup import escape

from ..errors import CellscribeError

app = typer.Typer(
    help="Annotate and explain single-cell clusters with language models.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
err = Console(stderr=True, soft_wrap=True)  # one line per message, also in logs (80 columns otherwise)

#: Set by ``--verbose``: errors then also show where they happened.
_verbose = False


@app.callback()
def _root(verbose: bool = typer.Option(False, "--verbose", "-v", help="Log details, and the traceback of errors.")
          ) -> None:
    global _verbose
    _verbose = verbose
    logging.basicConfig(level=logging.INFO if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s")
    if not verbose:
        logging.getLogger("httpx").setLevel(logging.WARNING)


@contextmanager
def warnings_shown(own_only: bool = False) -> Iterator[None]:
    """Collect the warnings raised inside the block and print each as one line once it ends;
    ``own_only``: only cellscribe's own (markers dropped, ...), not library chatter."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        yield
    for w in caught:
        if not own_only or w.category.__module__.startswith("cellscribe"):
            err.print(f"[yellow]Warning:[/] {escape(str(w.message))}", highlight=False, soft_wrap=True)


def main() -> None:
    """Entry point of the ``cellscribe`` script."""
    try:
        app()
    except CellscribeError as exc:
        if _verbose:
            err.print("".join(traceback.format_exception(exc)), markup=False, highlight=False)
        # escape: messages name things like `pip install cellscribe[interop]`, which rich would
        # read as markup; soft_wrap: one line even when stderr is not a terminal (80 columns).
        err.print(f"[bold red]Error:[/] {escape(str(exc))}", highlight=False, soft_wrap=True)
        sys.exit(2)
    except KeyboardInterrupt:
        err.print("Interrupted; finished answers are cached and a rerun resumes from them.")
        sys.exit(130)
