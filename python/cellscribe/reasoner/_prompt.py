"""The chat messages of a reasoning request: instructions, few-shot exemplars, then one cell.

Everything shared by all cells comes first (system prompt with the candidate labels, then the
exemplars as user/assistant turns), the cell sentence last, so the embedded backends reuse the
key/value cache of the whole shared prefix from one cell to the next. Templates are files in
:mod:`cellscribe.prompts` (``reason_system.j2``, ``reason_user.j2``, ``reason_teacher.j2``).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import jinja2

from .. import prompts
from ..errors import InputError
from ._answer import CellAnswer, render_answer

Message = dict[str, str]
_env = jinja2.Environment(undefined=jinja2.StrictUndefined, autoescape=False)


def _render(template: str, **values: object) -> str:
    try:
        return _env.from_string(template).render(**values).strip()
    except jinja2.TemplateError as exc:
        raise InputError(f"The reasoning prompt template failed to render: {exc}.") from exc


def _text(value: str | Path | None, default: str) -> str:
    if value is None:
        return prompts.read_template(default)
    if isinstance(value, Path) or ("\n" not in value and len(value) < 4096 and Path(value).is_file()):
        return Path(value).read_text(encoding="utf-8")
    return value


@dataclass(frozen=True)
class ReasonPrompt:
    """The shared part of every request (system prompt, exemplars) and the per-cell template."""

    system: str
    user_template: str
    exemplars: tuple[tuple[str, str], ...] = ()

    def user(self, sentence: Sequence[str]) -> str:
        return _render(self.user_template, genes=list(sentence))

    def messages(self, sentence: Sequence[str]) -> list[Message]:
        """System prompt, exemplar turns, then the cell."""
        out: list[Message] = [{"role": "system", "content": self.system}]
        for user, assistant in self.exemplars:
            out += [{"role": "user", "content": user}, {"role": "assistant", "content": assistant}]
        out.append({"role": "user", "content": self.user(sentence)})
        return out

    @property
    def hash(self) -> str:
        """sha256 of the templates and exemplars (recorded in provenance)."""
        parts = [self.system, self.user_template, *(u + "\x01" + a for u, a in self.exemplars)]
        return hashlib.sha256("\x00".join(parts).encode()).hexdigest()


def build_prompt(
    *,
    candidates: Sequence[str] | None = None,
    tissue: str | None = None,
    species: str = "human",
    exemplars: Sequence[tuple[Sequence[str], CellAnswer]] = (),
    system_prompt: str | Path | None = None,
    template: str | Path | None = None,
) -> ReasonPrompt:
    """The prompt of one run.

    Parameters
    ----------
    candidates
        Labels the answer must come from (listed in the system prompt), or ``None``.
    tissue, species
        Context in the system prompt.
    exemplars
        ``(sentence, answer)`` pairs shown as earlier turns (few-shot).
    system_prompt, template
        Replace ``reason_system.j2`` / ``reason_user.j2`` (Jinja2 text or a file path). The system
        template receives ``species``, ``tissue``, ``candidates``; the user template ``genes``.
    """
    system = _render(_text(system_prompt, "reason_system.j2"), species=species, tissue=(tissue or "").strip(),
                     candidates=list(candidates or []))
    user_template = _text(template, "reason_user.j2")
    prompt = ReasonPrompt(system=system, user_template=user_template)
    shots = tuple((prompt.user(sentence), render_answer(answer)) for sentence, answer in exemplars)
    return ReasonPrompt(system=system, user_template=user_template, exemplars=shots)


def teacher_messages(sentence: Sequence[str], label: str, markers: Sequence[str],
                     prompt: ReasonPrompt | None = None) -> list[Message]:
    """The request to a stronger backend to explain a cell whose label is known."""
    system = (prompt or build_prompt()).system
    user = _render(prompts.read_template("reason_teacher.j2"), genes=list(sentence), label=label,
                   markers=list(markers))
    return [{"role": "system", "content": system}, {"role": "user", "content": user}]
