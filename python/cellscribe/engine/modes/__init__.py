"""The annotation modes, one strategy each, in a registry keyed by mode name.

* ``"grounded"`` (:mod:`.grounded`, the default): marker databases propose Cell Ontology types, a
  learned re-ranker chooses, the model explains.
* ``"llm"`` (:mod:`.llm`): the model alone names and explains the type.
* ``"agentic"`` (:mod:`.agentic`): the model calls lookup tools, names the type, then explains it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ... import prompts
from ..runner import Strategy
from .agentic import Agentic
from .grounded import Grounded
from .llm import ModelAlone


@dataclass(frozen=True)
class ModeOptions:
    """What a mode's strategy is made from (already checked by :mod:`cellscribe.engine.options`)."""

    tissue: str | None
    species: str
    explain: bool | str
    system: str | None = None
    style: prompts.Style = "json"
    template: str | Path | None = None
    web_search: Callable[[str], str] | None = None


STRATEGIES: dict[str, Callable[[ModeOptions], Strategy]] = {
    "grounded": lambda o: Grounded(tissue=o.tissue, species=o.species, explain=o.explain, system=o.system),
    "llm": lambda o: ModelAlone(prompts.load(o.style, system_prompt=o.system, template=o.template),
                                tissue=o.tissue, species=o.species, explain=o.explain),
    "agentic": lambda o: Agentic(tissue=o.tissue, species=o.species, explain=o.explain, system=o.system,
                                 web_search=o.web_search),
}


__all__ = ["STRATEGIES", "Agentic", "Grounded", "ModeOptions", "ModelAlone"]
