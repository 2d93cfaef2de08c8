"""Checked explanations: the model writes, the case checks, what fails is said from knowledge.

Every mode that explains a label goes through :func:`checked_bullets`:

1. the model answers the explanation question (three bullets; the question carries the case);
2. :func:`cellscribe.case.check_bullets` checks them against the case;
3. the failing bullets go back to the model once, with each violation named ("the marker
   databases do not record S100A8 for T cell"), and only those bullets are written again (one
   sentence costs a third of three) and checked again;
4. a bullet that still fails (or an answer that never became bullets) is rendered from the case
   (:func:`cellscribe.case.render_bullets`): less said, nothing false.

``bullet_sources`` says which bullets the model wrote (``"model"``) and which were rendered from
the case (``"knowledge"``).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from typing import Any

from .. import prompts
from ..case import ROLE_TEXT, Case, check_bullets, render_bullets
from ..errors import OutputFormatError
from .runner import Ask

log = logging.getLogger(__name__)

#: Where each bullet came from.
MODEL, KNOWLEDGE = "model", "knowledge"


def checked_bullets(ask: Ask, messages: list[dict[str, str]], case: Case, *,
                    parse: Callable[[str, int], list[str]], schema: Callable[[int], dict[str, Any]],
                    species: str = "human") -> tuple[list[str], list[str]]:
    """The three bullets of one explanation after the checks, and where each came from.

    Parameters
    ----------
    ask
        The unit's cached model access.
    messages
        The explanation question.
    case
        What the bullets are checked against (and rendered from when they fail).
    parse
        ``(answer text, n)`` to ``n`` bullets (raises :class:`OutputFormatError` on a malformed answer).
    schema
        ``n`` to the JSON schema of an answer of ``n`` bullets.
    """
    fallback = render_bullets(case)
    try:
        bullets = ask(messages, parse=lambda text: parse(text, 3), schema=schema(3))
    except OutputFormatError as exc:
        log.info("explanation stayed malformed (%s); rendered from the case", exc)
        return fallback, [KNOWLEDGE] * 3
    violations = check_bullets(bullets, case, species=species)
    if not violations:
        return bullets, [MODEL] * 3
    bad = sorted({v.bullet for v in violations})
    if 0 in bad:
        bad = [1, 2, 3]
    log.info("explanation of %s: %d check(s) failed in bullet(s) %s; asking once more", case.name, len(violations),
             bad, extra={"violations": [v.problem for v in violations]})
    problems = prompts.render("explain_repair.j2", violations=[str(v) for v in violations], numbers=bad,
                              roles=[ROLE_TEXT[i - 1] for i in bad])
    repair = [*messages, {"role": "assistant", "content": json.dumps({"label": case.name, "bullets": bullets})},
              {"role": "user", "content": problems}]
    try:
        revised = ask(repair, parse=lambda text: parse(text, len(bad)), schema=schema(len(bad)))
    except OutputFormatError:
        revised = [bullets[i - 1] for i in bad]
    merged = list(bullets)
    for i, text in zip(bad, revised, strict=True):
        merged[i - 1] = text
    still = {v.bullet for v in check_bullets(merged, case, species=species)}
    if 0 in still:
        return fallback, [KNOWLEDGE] * 3
    return ([fallback[i] if i + 1 in still else b for i, b in enumerate(merged)],
            [KNOWLEDGE if i + 1 in still else MODEL for i in range(3)])


def screened_bullets(bullets: list[str], case: Case, *, species: str = "human") -> tuple[list[str], list[str]]:
    """A model's own bullets (mode ``"llm"``: written without the case) after the checks: a bullet
    that fails one is replaced by the case's bullet in its place; the sources say which."""
    bad = {v.bullet for v in check_bullets(bullets, case, species=species, roles=False)}
    if 0 in bad:
        return render_bullets(case), [KNOWLEDGE] * 3
    fallback = render_bullets(case)
    return ([fallback[i] if i + 1 in bad else b for i, b in enumerate(bullets)],
            [KNOWLEDGE if i + 1 in bad else MODEL for i in range(len(bullets))])

