"""Structured output: ask, validate, repair with the problem named, give up with a typed error.

Every mode asks its model through :func:`ask_structured`: the answer is parsed (and validated, by
pydantic or by the mode's own checks) by ``parse``; when it does not parse, the malformed answer
and the problem go back to the model, at most ``max_format_retries`` times, and then
:class:`~cellscribe.errors.OutputFormatError` names the last problem.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

from .. import prompts
from ..errors import OutputFormatError
from ..llm import Backend

log = logging.getLogger(__name__)

T = TypeVar("T")

#: The advice at the end of the error when an answer stayed malformed (a mode may give its own).
HINT = "Try a larger model or a higher max_tokens."


@dataclass(frozen=True)
class Sampling:
    """How the model samples (part of every cache key), and how often a malformed answer is
    sent back for repair."""

    temperature: float = 0.0
    seed: int = 0
    max_tokens: int = 320
    max_format_retries: int = 2

    def key(self) -> dict[str, Any]:
        """The parts of the cache key (repairs do not change an answer's key)."""
        return {"temperature": self.temperature, "seed": self.seed, "max_tokens": self.max_tokens}


@dataclass(frozen=True)
class Structured(Generic[T]):
    """A parsed answer with the model's raw text and the number of attempts it took."""

    value: T
    raw: str
    attempts: int


def ask_structured(be: Backend, messages: list[dict[str, Any]], *, parse: Callable[[str], T],
                   schema: dict[str, Any] | None, sampling: Sampling, accept_cut: bool = True,
                   hint: str = HINT) -> Structured[T]:
    """Ask ``be`` until ``parse`` accepts the answer.

    Parameters
    ----------
    messages
        The conversation; repairs append the malformed answer and the problem to it.
    parse
        Text to value; raises :class:`OutputFormatError` (or ``ValueError``) naming the problem.
    schema
        JSON schema the backend constrains the answer to (``None``: free text).
    accept_cut
        ``False``: an answer cut off at ``max_tokens`` is malformed even when it parses.
    hint
        The advice appended to the final error.
    """
    conversation = list(messages)
    problem = ""
    for attempt in range(1, sampling.max_format_retries + 2):
        response = be.chat(conversation, schema=schema, temperature=sampling.temperature, seed=sampling.seed,
                           max_tokens=sampling.max_tokens)
        try:
            if not accept_cut and response.finish_reason == "length":
                raise OutputFormatError(f"the answer was cut off at max_tokens={sampling.max_tokens}; "
                                        "answer more briefly")
            return Structured(parse(response.content), response.content, attempt)
        except (OutputFormatError, ValueError) as exc:
            problem = str(exc)
            log.info("malformed answer (%s); asking again", problem)
            conversation = [*messages, {"role": "assistant", "content": response.content},
                            {"role": "user", "content": prompts.repair_message(problem)}]
    raise OutputFormatError(f"the answer stayed malformed after {sampling.max_format_retries + 1} attempts "
                            f"({problem}). {hint}")
