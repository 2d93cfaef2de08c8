"""The options of :func:`cellscribe.annotate`, their defaults, and their checks (one definition
each, read by the CLI, the R bridge and the R package)."""

from __future__ import annotations

import warnings
from typing import Any

from .. import prompts
from ..errors import InputError
from ..llm import BACKEND_NAMES

#: Annotation modes; the first is the default in every entry point (Python, CLI, R bridge, R).
#: Mean agreement on the GPTCelltype development table (447 rows): grounded 0.631 (re-ranker
#: cross-validated leave-one-dataset-out; GPT-4 0.588 on the same rows), llm 0.131 (the embedded
#: 1.5B model alone).
MODES = ("grounded", "llm", "agentic")
DEFAULT_MODE = MODES[0]
#: Old mode names still accepted, with a warning: name -> (mode, explain).
DEPRECATED_MODES = {"markers": ("grounded", False)}
#: Longest tissue text put in a prompt (longer text is cut, with a warning: it would crowd out
#: the markers and can overflow a small model's context).
MAX_TISSUE_CHARS = 120
#: Generated-token limits per answer kind.
MAX_TOKENS = {"label": 48, "json": 320, "markdown": 600}
ON_ERROR = ("raise", "keep")
#: What writes the explanation: the model (checked against the case; ``True`` means this) or the
#: knowledge layer alone (the case rendered as text, no model, instant); ``False``: none.
EXPLAIN = ("model", "knowledge")


def checked(*, tissue: Any, mode: str, explain: bool | str, style: str, template: Any, system_prompt: Any,
            backend: Any, model: str | None, concurrency: Any, on_error: str, web_search: Any = None
            ) -> tuple[str | None, str, bool | str, str | None]:
    """Every option of :func:`cellscribe.annotate` checked before any work, with the option's name
    in the message; returns the tissue as it goes into prompts, the mode and ``explain`` (an old
    mode name mapped, with a warning; ``"model"`` as ``True``) and the system prompt's text
    (``None``: the packaged one)."""
    if on_error not in ON_ERROR:
        raise InputError(f"on_error must be 'raise' or 'keep'; got {on_error!r}.")
    tissue = check_tissue(tissue)
    check_concurrency(concurrency)
    explain = check_explain(explain)
    if style == "markdown" and not explain:
        raise InputError("style='markdown' always explains; use style='json' with explain=False for labels only.")
    if mode in DEPRECATED_MODES:
        new_mode, new_explain = DEPRECATED_MODES[mode]
        warnings.warn(f"mode={mode!r} is deprecated; use mode={new_mode!r}, explain={new_explain} "
                      "(the same answer without a language model).", FutureWarning, stacklevel=3)
        mode, explain = new_mode, new_explain
    if mode not in MODES:
        raise InputError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}.")
    if explain == "knowledge" and mode == "llm":
        raise InputError("explain='knowledge' renders the grounded case, which mode='llm' does not build; use "
                         "mode='grounded' (the default) or explain=True.")
    if mode != "llm" and (template is not None or style != "json"):
        raise InputError(f"template= and style= apply to mode='llm' (the model names the type); mode={mode!r} asks "
                         "its own grounded question. Pass mode='llm' to use them.")
    if web_search is not None and (mode != "agentic" or not callable(web_search)):
        raise InputError("web_search= takes a function (query -> text) and only applies to mode='agentic'.")
    system = prompts.text_or_file(system_prompt, "system prompt") if system_prompt is not None else None
    if isinstance(backend, str) and backend not in BACKEND_NAMES:  # also when no model will run
        raise InputError(f"Unknown backend {backend!r}; choose one of {', '.join(BACKEND_NAMES)}.")
    if model is not None and not uses_model(mode, explain):
        warnings.warn(f"model={model!r} is not used: grounded annotation with explain={explain!r} runs no "
                      "language model.", UserWarning, stacklevel=3)
    return tissue, mode, explain, system


def check_explain(explain: Any) -> bool | str:
    """``explain`` as :func:`cellscribe.annotate` uses it: ``True`` (the model writes, checked),
    ``"knowledge"`` or ``False``."""
    if explain == "model":
        return True
    if isinstance(explain, bool) or explain == "knowledge":
        return explain
    raise InputError(f"explain must be True, False, 'model' or 'knowledge'; got {explain!r}.")


def check_concurrency(concurrency: Any) -> None:
    """``concurrency`` is ``None`` (what the backend allows) or a positive whole number."""
    if concurrency is not None and (isinstance(concurrency, bool) or not isinstance(concurrency, int)
                                    or concurrency < 1):
        raise InputError(f"concurrency must be a positive whole number of parallel requests; got {concurrency!r}.")


def check_tissue(tissue: Any) -> str | None:
    """``tissue`` as it goes into prompts: text or ``None``; longer than :data:`MAX_TISSUE_CHARS`
    it is cut at a word, with a warning."""
    if tissue is None:
        return None
    if not isinstance(tissue, str):
        raise InputError(f"tissue must be text such as 'PBMC' or 'lung'; got {type(tissue).__name__} {tissue!r}.")
    tissue = " ".join(tissue.split())
    if len(tissue) > MAX_TISSUE_CHARS:
        cut = tissue[:MAX_TISSUE_CHARS].rsplit(" ", 1)[0] or tissue[:MAX_TISSUE_CHARS]
        warnings.warn(f"tissue is {len(tissue)} characters long; only the first {len(cut)} go into the prompt "
                      f"({cut[:40]!r}...). Name the tissue in a few words.", UserWarning, stacklevel=4)
        tissue = cut
    return tissue or None


def default_max_tokens(mode: str, style: str, explain: bool | str) -> int:
    """The generated-token limit of one answer (:data:`MAX_TOKENS` by answer kind)."""
    if mode != "llm":
        return MAX_TOKENS["json"]
    return MAX_TOKENS["markdown" if style == "markdown" else ("json" if explain else "label")]


def uses_model(mode: str, explain: bool | str) -> bool:
    """Whether :func:`cellscribe.annotate` runs a language model in ``mode`` (grounded without
    explanations, or explained from knowledge, does not: the re-ranker's choice stands)."""
    mode, explain = DEPRECATED_MODES.get(mode, (mode, explain))
    return mode != "grounded" or explain is True or explain == "model"
