"""The reasoning answer for one cell: a marker-by-marker rationale, then the label.

The JSON schema sent to the backend asks for exactly ``N_EVIDENCE`` one-sentence evidence items
(``"GENE: what it says"``) followed by the label; with a candidate set the label is a string enum,
which the embedded backends decode exactly (choice among the candidates' tokens). Parsing is
lenient where it can be without guessing: code fences, trailing text and broken JSON are repaired,
a rationale written as one string or as bullet lines is split into items, a label written as
``Cell type: X`` in free text is found, and a label close to one candidate is mapped to it.
What cannot be read raises :class:`~cellscribe.llm.OutputFormatError` with the problem, which
the caller sends back to the model.
"""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from ..answers import parse_json
from ..errors import OutputFormatError
from ..llm import MAX_SENTENCES_KEY, TRUNCATE_KEY

#: Evidence items the schema asks for.
N_EVIDENCE = 3
#: Characters per evidence item and per label.
MAX_EVIDENCE_CHARS = 72
MAX_LABEL_CHARS = 60

_LABEL_LINE = re.compile(
    r"^\s*(?:[-*#>\s]*)(?:\**)(?:final\s+)?(?:label|answer|cell[\s_-]*type|annotation|prediction)(?:\**)\s*[:=-]\s*"
    r"[\"'*]*(?P<label>[^\"'*\n]+?)[\"'*.,]*\s*$",
    re.I | re.M,
)
_JSON_LABEL = re.compile(r"[\"']label[\"']\s*:\s*[\"'](?P<label>[^\"'\n]{1,120})", re.I)
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s+(.*\S)\s*$", re.M)


class CellAnswer(BaseModel):
    """A validated answer: evidence items (marker by marker) and the cell type."""

    model_config = ConfigDict(extra="ignore")

    evidence: list[str] = Field(default_factory=list, description="Marker-by-marker rationale.")
    label: str = Field(min_length=1, max_length=120, description="The cell type.")

    @field_validator("evidence", mode="before")
    @classmethod
    def _evidence(cls, v: Any) -> list[str]:
        if v is None:
            return []
        if isinstance(v, str):
            bullets = _BULLET.findall(v)
            v = bullets or [p for p in re.split(r"(?<=[.;])\s+|\n+", v)]
        if isinstance(v, dict):
            v = [f"{k}: {x}" for k, x in v.items()]
        items = []
        for item in v if isinstance(v, list) else [v]:
            if isinstance(item, dict):
                item = ": ".join(str(x) for x in item.values())
            text = " ".join(str(item).split()).strip(" -*•")
            if text:
                items.append(shorten(text, MAX_EVIDENCE_CHARS))
        return items

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, v: Any) -> str:
        text = " ".join(str(v or "").replace("**", "").split()).strip(" .\"'`")
        if not text:
            raise ValueError("label is empty")
        return text


def shorten(text: str, max_chars: int) -> str:
    """``text`` in at most ``max_chars`` characters: cut at the last word that fits, with an
    ellipsis, when it is longer (whatever a backend wrote, an evidence item keeps its limit)."""
    if len(text) <= max_chars:
        return text
    cut = text[: max_chars - 1]
    if " " in cut[max_chars // 2:]:
        cut = cut[: cut.rindex(" ")]
    return cut.rstrip(" ,;:-") + "…"


def answer_schema(candidates: list[str] | None = None) -> dict[str, Any]:
    """The JSON schema of an answer; with ``candidates`` the label must be one of them."""
    label: dict[str, Any] = (
        {"type": "string", "enum": list(candidates)} if candidates
        else {"type": "string", "maxLength": MAX_LABEL_CHARS, TRUNCATE_KEY: True}
    )
    return {
        "type": "object",
        "properties": {
            "evidence": {
                "type": "array",
                "items": {"type": "string", "maxLength": MAX_EVIDENCE_CHARS, MAX_SENTENCES_KEY: 1, TRUNCATE_KEY: True},
                "minItems": N_EVIDENCE,
                "maxItems": N_EVIDENCE,
            },
            "label": label,
        },
        "required": ["evidence", "label"],
    }


def render_answer(answer: CellAnswer) -> str:
    """The answer as the JSON text the embedded backends generate (training targets, exemplars)."""
    import json

    return json.dumps({"evidence": list(answer.evidence), "label": answer.label}, ensure_ascii=False)


def answer_pieces(answer: CellAnswer) -> list[str]:
    """:func:`render_answer`'s text cut where the embedded decoders cut it: JSON syntax runs and
    values, each tokenized on its own at inference, so training targets are tokenized the same way."""
    import json

    def inner(value: str) -> str:
        return json.dumps(value, ensure_ascii=False)[1:-1]

    pieces = ['{"evidence": ["']
    for i, item in enumerate(answer.evidence):
        pieces += ([] if i == 0 else ['", "']) + [inner(item)]
    pieces += ['"], "label": "', inner(answer.label), '"}']
    return pieces


def snap_label(label: str, candidates: list[str] | None) -> str:
    """``label`` mapped onto the candidate set (exact, case-insensitive, then close spelling).

    Raises :class:`OutputFormatError` naming the candidates when none is close.
    """
    if not candidates:
        return label
    from rapidfuzz import fuzz, process

    norm = {" ".join(c.lower().split()): c for c in candidates}
    key = " ".join(label.lower().split())
    if key in norm:
        return norm[key]
    contained = [c for k, c in norm.items() if re.search(rf"(?<![\w+]){re.escape(k)}(?![\w+])", key)]
    if len(contained) >= 1:
        return max(contained, key=len)
    best = process.extractOne(key, list(norm), scorer=fuzz.ratio, score_cutoff=85)
    if best is not None:
        return norm[best[0]]
    raise OutputFormatError(
        f"the label {label!r} is not one of the candidates; answer with exactly one of: {', '.join(candidates)}"
    )


def parse_answer(text: str, candidates: list[str] | None = None) -> CellAnswer:
    """Read a model's answer (JSON, broken JSON, or free text with a label line).

    Raises :class:`OutputFormatError` with a short description when no label can be found.
    """
    try:
        answer = parse_json(text, CellAnswer)
    except OutputFormatError as exc:
        label = None
        for pattern in (_JSON_LABEL, _LABEL_LINE):
            found = list(pattern.finditer(text))
            if found:
                label = found[-1].group("label")
                break
        if label is None:
            raise OutputFormatError(f"{exc}; reply with JSON holding 'evidence' and 'label'") from None
        rest = text[: found[-1].start()]
        evidence = _BULLET.findall(rest) or [line for line in rest.splitlines() if ":" in line][:N_EVIDENCE]
        try:
            answer = CellAnswer(evidence=evidence, label=label)
        except ValueError:
            raise OutputFormatError(f"{exc}; reply with JSON holding 'evidence' and 'label'") from None
    return answer.model_copy(update={"label": snap_label(answer.label, candidates)})
