"""The ``cellscribe`` command line.

Each command lives in its own module and registers itself on :data:`app` (``_app.py``) when
imported here. Options shared by several commands are declared once in ``_options.py``. Errors
cellscribe raises on purpose are printed as one clear message (exit status 2), never as a traceback.
"""

from __future__ import annotations

from . import _annotate, _cells, _demo, _evaluate, _models, _reason, _run  # noqa: F401 - importing registers the commands
from ._app import app, main

__all__ = ["app", "main"]
