"""cellscribe: annotate and explain single-cell clusters with language models.

>>> import cellscribe as cs
>>> df = cs.annotate({"0": ["CD3D", "CD3E", "IL7R"]}, tissue="PBMC")   # a table of labels
>>> cs.tl.annotate(adata, groupby="leiden", tissue="PBMC")             # labels into adata.obs

Namespaces follow scanpy: ``tl`` (tools on AnnData), ``get`` (tidy readers of results),
``markers``, ``llm`` (backends), ``settings``. Submodules load on first use, so
``import cellscribe`` stays fast.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from .config import settings
from .errors import CellscribeError, InputError, MarkerInputError
from .version import __version__

_SUBMODULES = {"answers", "benchmark", "cache", "case", "cells", "datasets", "embed", "engine", "evaluate", "get",
               "grounded", "io", "knowledge", "llm", "markers", "pipeline", "pl", "pp", "prompts", "reasoner", "report",
               "results", "tl"}

if TYPE_CHECKING:
    from . import get, llm, markers, tl
    from .engine import annotate

__all__ = ["CellscribeError", "InputError", "MarkerInputError", "annotate", "get", "llm", "markers",
           "settings", "tl", "__version__"]


def __getattr__(name: str) -> Any:
    if name == "annotate":
        from .engine import annotate

        return annotate
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'cellscribe' has no attribute {name!r}")
