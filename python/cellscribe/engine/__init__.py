"""The annotation engine: :func:`annotate`, one runner, one strategy per mode.

* :mod:`.options`: the modes, defaults and checks of every option (read by the CLI and R too).
* :mod:`.runner`: the one loop (cache, concurrency, progress, failures, stats, provenance).
* :mod:`.structured`: ask, validate, repair with the problem named, give up with a typed error.
* :mod:`.modes`: the strategies (grounded, llm, agentic) in a registry.
* :mod:`.api`: :func:`annotate` itself, which checks, reads the markers and dispatches.
"""

from .api import annotate, result_table
from .modes import STRATEGIES, Agentic, Grounded, ModelAlone, ModeOptions
from .options import (
    DEFAULT_MODE,
    DEPRECATED_MODES,
    MAX_TISSUE_CHARS,
    MAX_TOKENS,
    MODES,
    check_concurrency,
    check_tissue,
    checked,
    uses_model,
)
from .runner import Ask, Run, Strategy, Unit, run
from .structured import Sampling, Structured, ask_structured

__all__ = [
    "DEFAULT_MODE", "DEPRECATED_MODES", "MAX_TISSUE_CHARS", "MAX_TOKENS", "MODES", "STRATEGIES", "Agentic", "Ask",
    "Grounded", "ModeOptions", "ModelAlone", "Run", "Sampling", "Strategy", "Structured", "Unit", "annotate",
    "ask_structured", "check_concurrency", "check_tissue", "checked", "result_table", "run", "uses_model",
]
