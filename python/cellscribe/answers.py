"""What a model must answer, how it is checked, and how the explanation is rendered.

Two answer styles:

* ``json`` (default): :class:`ClusterAnswer` (or :class:`LabelAnswer` when no explanation is
  asked), validated with pydantic. Backends with constrained decoding get the JSON schema.
* ``markdown``: the seed's free answer, an H2 bold title and exactly three bullet points of 1–2
  sentences, at most 300 words, parsed by :func:`parse_markdown`.

Parsing repairs what can be repaired without guessing (code fences, trailing text, a missing
brace, bullets written as ``*`` or ``1.``, a title without ``##``) and raises
:class:`~cellscribe.llm.OutputFormatError` with a short description of the problem otherwise; the
caller sends that description back to the model and retries.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, TypeVar

import json_repair
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from .errors import OutputFormatError
from .llm import MAX_SENTENCES_KEY

MAX_WORDS = 300
MAX_SENTENCES = 2

_SENTENCE_END = re.compile(r"(?<!\be\.g)(?<!\bi\.e)(?<!\bvs)(?<!\betc)[.!?](?=\s+[A-Z(\[]|\s*$)")
_BULLET = re.compile(r"^\s*(?:[-*•+]|\d+[.)])\s+(.*\S)\s*$")
_HEADING = re.compile(r"^\s*#{1,6}\s*(.*?)\s*#*\s*$")
_BOLD_LINE = re.compile(r"^\s*\*\*(.+?)\*\*\s*:?\s*$")

# One sentence per bullet: the seed allows 1-2, and one keeps answers fast on a CPU.
Bullet = Annotated[str, Field(min_length=3, max_length=200, json_schema_extra={MAX_SENTENCES_KEY: 1})]


def count_sentences(text: str) -> int:
    """Sentences in a short text (a trailing fragment without a full stop counts as one)."""
    text = text.strip()
    if not text:
        return 0
    ends = len(_SENTENCE_END.findall(text))
    return ends + (0 if re.search(r"[.!?]\s*$", text) else 1)


def clean_text(text: str) -> str:
    return " ".join(text.replace("**", "").split()).strip(" -*•")


class LabelAnswer(BaseModel):
    """The short structured answer: a label and a confidence."""

    model_config = ConfigDict(extra="ignore")

    label: str = Field(min_length=1, max_length=60, description="Most specific supported cell type.")
    confidence: float = Field(ge=0, le=1, description="The model's own confidence, 0 to 1.")

    @field_validator("label")
    @classmethod
    def _label(cls, v: str) -> str:
        v = clean_text(v)
        if not v:
            raise ValueError("label is empty")
        return v


class ClusterAnswer(BaseModel):
    """The full structured answer: label, lineage, confidence and a three-bullet explanation."""

    model_config = ConfigDict(extra="ignore")

    # Field order is generation order for constrained decoding: decide first, then explain.
    label: str = Field(min_length=1, max_length=60, description="Most specific supported cell type.")
    broad_lineage: str = Field(min_length=1, max_length=40, description="Major lineage.")
    confidence: float = Field(ge=0, le=1, description="The model's own confidence, 0 to 1.")
    title: str = Field(min_length=1, max_length=60, description="H2 title of the explanation.")
    bullets: list[Bullet] = Field(min_length=3, max_length=3, description="Exactly three bullets.")

    @field_validator("label", "broad_lineage", "title")
    @classmethod
    def _text(cls, v: str) -> str:
        v = clean_text(v.lstrip("#"))
        if not v:
            raise ValueError("must not be empty")
        return v

    @field_validator("bullets")
    @classmethod
    def _bullets(cls, v: list[str]) -> list[str]:
        out = []
        for i, b in enumerate(v, 1):
            b = clean_text(b)
            n = count_sentences(b)
            if n == 0:
                raise ValueError(f"bullet {i} is empty")
            if n > MAX_SENTENCES:
                raise ValueError(f"bullet {i} has {n} sentences; use 1 or 2")
            out.append(b)
        return out

    @model_validator(mode="after")
    def _length(self) -> ClusterAnswer:
        words = len(render_markdown(self.title, self.bullets).split())
        if words > MAX_WORDS:
            raise ValueError(f"the explanation has {words} words; the limit is {MAX_WORDS}")
        return self


class MarkdownAnswer(BaseModel):
    """The seed's free answer after parsing: a title and three bullets."""

    title: str
    bullets: list[str]


A = TypeVar("A", bound=BaseModel)


def json_schema(model: type[BaseModel]) -> dict[str, Any]:
    """The JSON schema sent to backends, without pydantic's display titles and descriptions."""

    def strip(node: Any) -> Any:
        if isinstance(node, dict):
            return {k: strip(v) for k, v in node.items()
                    if not (k in ("title", "description") and isinstance(v, str))}
        if isinstance(node, list):
            return [strip(v) for v in node]
        return node

    return strip(model.model_json_schema())


def parse_json(text: str, model: type[A]) -> A:
    """Parse and validate a JSON answer, repairing syntax where possible.

    Raises :class:`OutputFormatError` whose message says what is wrong, for the retry prompt.
    """
    body = text.strip()
    fenced = re.search(r"```(?:json)?\s*(.*?)```", body, re.S)
    if fenced:
        body = fenced.group(1).strip()
    try:
        obj = json.loads(body)
    except json.JSONDecodeError:
        start = body.find("{")
        obj = json_repair.loads(body[start:]) if start >= 0 else None
    if not isinstance(obj, dict) or not obj:
        raise OutputFormatError(f"the answer is not a JSON object (got {text[:80]!r})")
    try:
        return model.model_validate(obj)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(map(str, e['loc'])) or 'answer'}: {e['msg']}" for e in exc.errors(include_url=False)
        )
        raise OutputFormatError(problems) from None


def parse_markdown(text: str) -> MarkdownAnswer:
    """Parse the seed's Markdown answer: one title and exactly three bullets of 1–2 sentences.

    A bold line or any heading level is accepted as the title (it is rendered as H2 bold);
    ``*``, ``+``, ``•`` and numbered items count as bullets; continuation lines join their bullet.
    """
    title: str | None = None
    bullets: list[str] = []
    for line in text.splitlines():
        if not line.strip():
            continue
        heading = _HEADING.match(line) or (None if title else _BOLD_LINE.match(line))
        bullet = _BULLET.match(line)
        if heading and title is None and not bullets:
            title = clean_text(heading.group(1))
        elif bullet and not _HEADING.match(line):
            bullets.append(clean_text(bullet.group(1)))
        elif bullets:
            bullets[-1] = clean_text(bullets[-1] + " " + line)
        elif title is None:
            title = clean_text(line)
    if not title:
        raise OutputFormatError("the answer has no title line (## **Cell type**)")
    if len(bullets) != 3:
        raise OutputFormatError(f"the answer has {len(bullets)} bullet points; exactly 3 are required")
    for i, b in enumerate(bullets, 1):
        n = count_sentences(b)
        if n > MAX_SENTENCES:
            raise OutputFormatError(f"bullet {i} has {n} sentences; use 1 or 2")
    words = len(render_markdown(title, bullets).split())
    if words > MAX_WORDS:
        raise OutputFormatError(f"the answer has {words} words; the limit is {MAX_WORDS}")
    return MarkdownAnswer(title=title, bullets=bullets)


def render_markdown(title: str, bullets: list[str]) -> str:
    """The seed's format: ``## **Title**`` and three ``-`` bullets."""
    return f"## **{title}**\n\n" + "\n".join(f"- {b}" for b in bullets)


def cited_markers(genes: list[str], *texts: str) -> list[str]:
    """The given marker genes that the texts mention, in marker order."""
    joined = " ".join(texts)
    return [g for g in genes if re.search(rf"(?<![A-Za-z0-9-]){re.escape(g)}(?![A-Za-z0-9-])", joined)]
