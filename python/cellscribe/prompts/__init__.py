"""Prompt templates, kept as files beside this module.

* ``system_markdown.txt``: the seed's system prompt, with its answer format (H2 bold title,
  exactly three bullets of 1–2 sentences, at most 300 words), for ``style="markdown"``.
* ``system_json.txt``: the seed's first line alone, for ``style="json"`` (the default), where
  the JSON schema carries the same format: a title and exactly three one-sentence bullets.
  (With the 1.5B model, the format rules in the system prompt beside a JSON request made the
  labels worse.)
* ``annotate_json.j2``: asks for the structured JSON answer. The same prompt serves labels alone
  and labels with explanations, so both give the same label.
* ``annotate_markdown.j2``: asks for the seed's free Markdown answer.
* ``repair.j2``: the follow-up message when an answer was malformed.
* ``reason_system.j2``, ``reason_user.j2``, ``reason_teacher.j2``: single-cell reasoning from cell
  sentences (:mod:`cellscribe.reasoner`): the instructions, one cell, and the teacher's request.

Templates are Jinja2 and receive ``genes`` (list), ``tissue``, ``species``, ``cluster`` and
``explain``. The shared instructions come first and the genes last, so a local model can reuse its
cache of the common prefix between clusters. Users may pass their own system prompt or template,
as text or as a path to a file.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Literal

import jinja2

from ..errors import InputError

Style = Literal["json", "markdown"]
STYLES: tuple[str, ...] = ("json", "markdown")

_env = jinja2.Environment(undefined=jinja2.StrictUndefined, keep_trailing_newline=False, autoescape=False)


def read_template(name: str) -> str:
    """Text of a packaged template file."""
    return resources.files(__name__).joinpath(name).read_text(encoding="utf-8")


#: Suffixes that make a one-line value a file name rather than prompt text.
_PROMPT_FILE_SUFFIXES = (".txt", ".j2", ".jinja", ".jinja2", ".md", ".prompt", ".tmpl")


def text_or_file(value: str | Path, what: str = "prompt") -> str:
    """The text of ``value``: a :class:`~pathlib.Path` or a one-line string naming an existing file
    is read; a one-line string that looks like a file name (a known suffix, or a path with folders
    and no spaces) but names no file is an error, never sent to the model as the prompt itself."""
    if not isinstance(value, (str, Path)):
        raise InputError(f"{what} must be text or a file path; got {type(value).__name__}.")
    one_line = isinstance(value, Path) or ("\n" not in value and len(value) < 4096)
    if one_line and Path(value).is_file():
        try:
            return Path(value).read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            raise InputError(f"Cannot read the {what} file {value}: {exc}.") from None
    text = str(value)
    looks_like_path = one_line and (isinstance(value, Path) or text.lower().endswith(_PROMPT_FILE_SUFFIXES)
                                    or ("/" in text and " " not in text.strip()))
    if looks_like_path:
        problem = "is a folder" if Path(value).is_dir() else "does not exist"
        raise InputError(f"The {what} file {text} {problem}. Pass an existing file, or the {what} text itself.")
    return text


@dataclass(frozen=True)
class PromptSet:
    """The system prompt and user-message template of one annotation run."""

    system: str
    template: str
    style: Style

    @property
    def hash(self) -> str:
        """sha256 of the system prompt, template and style (recorded in provenance)."""
        return hashlib.sha256("\x00".join((self.system, self.template, self.style)).encode()).hexdigest()

    def messages(
        self, genes: list[str], *, tissue: str | None, species: str, cluster: str, explain: bool
    ) -> list[dict[str, str]]:
        """Chat messages for one cluster."""
        try:
            user = _env.from_string(self.template).render(
                genes=genes, tissue=(tissue or "").strip(), species=species, cluster=cluster, explain=explain
            )
        except jinja2.TemplateError as exc:
            raise InputError(f"The prompt template failed to render: {exc}. Variables available: "
                             "genes, tissue, species, cluster, explain.") from exc
        return [{"role": "system", "content": self.system}, {"role": "user", "content": user.strip()}]


def load(style: Style = "json", *, system_prompt: str | Path | None = None,
         template: str | Path | None = None) -> PromptSet:
    """The prompts for a run.

    Parameters
    ----------
    style
        ``"json"`` for the structured answer, ``"markdown"`` for the seed's free Markdown answer.
    system_prompt
        Replaces the packaged system prompt: the text itself or a path to a file.
    template
        Replaces the user-message template: Jinja2 text or a path to a file.
    """
    if style not in STYLES:
        raise InputError(f"style must be one of {', '.join(STYLES)}; got {style!r}.")
    system = (text_or_file(system_prompt, "system prompt") if system_prompt is not None
              else read_template(f"system_{style}.txt"))
    tmpl = text_or_file(template, "template") if template is not None else read_template(f"annotate_{style}.j2")
    try:
        _env.parse(tmpl)
    except jinja2.TemplateSyntaxError as exc:
        raise InputError(f"The prompt template is not valid Jinja2 (line {exc.lineno}): {exc.message}") from exc
    return PromptSet(system=system.strip(), template=tmpl, style=style)


def render(name: str, **variables: object) -> str:
    """The packaged template ``name`` rendered with ``variables``, stripped."""
    return _env.from_string(read_template(name)).render(**variables).strip()


def repair_message(problem: str) -> str:
    """The follow-up user message after a malformed answer."""
    return _env.from_string(read_template("repair.j2")).render(problem=problem).strip()
