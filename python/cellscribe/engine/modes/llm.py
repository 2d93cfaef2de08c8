"""Mode ``"llm"``: the language model alone names the type (and explains it) from the markers.

The explanation is checked like every other (:func:`cellscribe.engine.explanation.screened_bullets`):
against the case of the model's own label, mapped to the Cell Ontology; a bullet that fails is
replaced by the case's bullet in its place.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ... import prompts
from ...answers import (
    ClusterAnswer,
    LabelAnswer,
    cited_markers,
    json_schema,
    parse_json,
    parse_markdown,
    render_markdown,
)
from ...case import case_for_label
from ..explanation import screened_bullets
from ..runner import Ask, Strategy, Unit


class ModelAlone(Strategy):
    """The packaged (or the user's) prompt, one structured answer per cluster."""

    mode = "llm"

    def __init__(self, prompt_set: prompts.PromptSet, *, tissue: str | None, species: str, explain: bool) -> None:
        self.prompt_set, self.tissue, self.species, self.explain = prompt_set, tissue, species, explain
        self.answer_model = ClusterAnswer if explain else LabelAnswer
        self.schema = json_schema(self.answer_model) if prompt_set.style == "json" else None
        self.parse: Callable[[str], Any] = (
            parse_markdown if prompt_set.style == "markdown" else (lambda text: parse_json(text, self.answer_model)))

    def answer(self, unit: Unit, ask: Ask) -> dict[str, Any]:
        messages = self.prompt_set.messages(unit.genes, tissue=self.tissue, species=self.species, cluster=unit.id,
                                            explain=self.explain)
        answer = ask(messages, parse=self.parse, schema=self.schema, accept_cut=False,
                     hint="Try a larger model, a higher max_tokens, or style='json'.")
        data = answer.model_dump()
        if data.get("bullets") is not None:  # checked against the case of the model's own label
            case = case_for_label(list(unit.genes), str(data.get("label") or data.get("title")), tissue=self.tissue,
                                  species=self.species)
            data["bullets"], data["bullet_sources"] = screened_bullets(list(data["bullets"]), case,
                                                                       species=self.species)
        return row(unit, data)

    def provenance(self) -> dict[str, Any]:
        return {"prompt_hash": self.prompt_set.hash}


def row(unit: Unit, data: dict[str, Any]) -> dict[str, Any]:
    """A result row from a parsed answer (label, title, bullets, ...)."""
    title, bullets = data.get("title"), data.get("bullets")
    explained = title is not None and bullets is not None
    return {
        "cluster": unit.id, "label": data.get("label") or title, "broad_lineage": data.get("broad_lineage"),
        "confidence": data.get("confidence"), "title": title, "bullets": bullets,
        "bullet_sources": data.get("bullet_sources") or [],
        "explanation_markdown": render_markdown(title, bullets) if explained else None,
        "supporting_markers": cited_markers(unit.genes, title, *bullets) if explained else [],
        "markers": list(unit.genes),
    }
