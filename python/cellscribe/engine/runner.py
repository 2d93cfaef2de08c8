"""The runner: one loop for every mode, owning cache, concurrency, progress, failures, stats and
provenance.

A :class:`Strategy` says what one unit's answer is (a cluster's row, a cell sentence's answer)
and asks its model through the :class:`Ask` it is given; :func:`run` does the rest:

* **cache**: every model answer goes to the on-disk cache (:class:`~cellscribe.cache.ResponseCache`)
  the moment it arrives, keyed by the model's identity, the messages, the schema and the sampling,
  so a rerun is served from disk and an interrupted run resumes where it stopped;
* **concurrency**: units run in parallel up to ``concurrency`` (default: what the backend allows,
  1 for the embedded model, 1 when no model runs);
* **failures**: a unit whose model fails (:class:`~cellscribe.errors.LLMError`) is recorded with its
  message and the others go on; the caller decides whether to raise;
* **progress**, **stats** (model calls, cache hits, failures) and **provenance** (version, model
  identity, mode, parameters, time, plus what the strategy adds).
"""

from __future__ import annotations

import json
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, as_completed
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TypeVar

from ..cache import ResponseCache, make_key
from ..errors import LLMError
from ..llm import Backend
from ..progress import Progress
from ..version import __version__
from .structured import HINT, Sampling, ask_structured

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class Unit:
    """One thing to annotate: a cluster (``id`` its ID) or a distinct cell sentence."""

    id: str
    genes: list[str]


class Ask:
    """What a strategy uses to reach the model for one unit: answers go through the cache and the
    structured-output helper; it records whether the unit asked the model or was served from disk."""

    def __init__(self, backend: Backend | None, store: ResponseCache | None, model_key: dict[str, Any] | None,
                 sampling: Sampling) -> None:
        self.backend, self._store, self._model_key, self.sampling = backend, store, model_key, sampling
        self.asked = False
        self.cached = False

    def __call__(self, messages: list[dict[str, Any]], *, parse: Callable[[str], T],
                 schema: dict[str, Any] | None, accept_cut: bool = True, hint: str = HINT) -> T:
        """The parsed answer to ``messages``: from the cache, else from the model (repaired until
        ``parse`` accepts it; see :func:`~cellscribe.engine.structured.ask_structured`)."""
        if self.backend is None:
            raise RuntimeError("this run has no language model")  # a strategy bug, not a user error
        key = make_key(model=self._model_key, messages=messages, schema=schema, sampling=self.sampling.key())
        hit = self._store.get(key) if self._store is not None else None
        if hit is not None:
            raw = hit.get("raw") if isinstance(hit.get("raw"), str) else json.dumps(hit.get("answer"))
            try:
                value = parse(raw)
                self.cached = True
                return value
            except ValueError:  # OutputFormatError is a ValueError too: an entry from an older schema
                log.warning("ignoring an unreadable cache entry")
        self.asked = True
        answer = ask_structured(self.backend, messages, parse=parse, schema=schema, sampling=self.sampling,
                                accept_cut=accept_cut, hint=hint)
        if self._store is not None:
            self._store.put(key, {"raw": answer.raw, "attempts": answer.attempts, "created": now()})
        return answer.value

    def remember(self, payload: Any, compute: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        """``compute()``'s JSON-ready result, cached under ``payload`` (everything it depends on):
        for answers that are a whole conversation (tool calls), not one reply."""
        key = make_key(model=self._model_key, messages=[{"role": "memo", "content": json.dumps(payload, default=str)}],
                       schema=None, sampling=self.sampling.key())
        hit = self._store.get(key) if self._store is not None else None
        if hit is not None and isinstance(hit.get("value"), dict):
            self.cached = True
            return hit["value"]
        self.asked = True
        value = compute()
        if self._store is not None:
            self._store.put(key, {"value": value, "created": now()})
        return value


class Strategy(ABC):
    """One way of answering a unit. Subclasses set :attr:`mode` and implement :meth:`answer`."""

    #: The name recorded in provenance (``"grounded"``, ``"llm"``, ...).
    mode: str = ""

    def prepare(self, backend: Backend | None) -> None:  # noqa: B027 - optional hook
        """Check what can fail before any unit runs, and load what all units share (called once,
        before the units run in parallel)."""

    @abstractmethod
    def answer(self, unit: Unit, ask: Ask) -> dict[str, Any]:
        """One unit's result (a JSON-ready dict); raise an :class:`~cellscribe.errors.LLMError`
        when the model fails."""

    def provenance(self) -> dict[str, Any]:
        """What this strategy adds to the run's provenance (prompt hash, knowledge, tools, ...)."""
        return {}


@dataclass
class Run:
    """The outcome of :func:`run`: answers and failures keyed by unit ID (in completion order:
    read them in unit order), seconds per unit and whether it was served from the cache."""

    answers: dict[str, dict[str, Any]]
    failures: dict[str, str]
    stats: dict[str, Any]
    provenance: dict[str, Any]
    seconds: dict[str, float] = field(default_factory=dict)
    cached: dict[str, bool] = field(default_factory=dict)


def run(strategy: Strategy, units: Sequence[Unit], *, backend: Backend | None, sampling: Sampling,
        cache: bool | str | Path = True, concurrency: int | None = None, progress: bool = True,
        unit_name: str = "clusters", parameters: dict[str, Any] | None = None) -> Run:
    """Answer every unit with ``strategy``; see the module docstring for what the runner owns.

    ``backend=None`` runs no model (and no cache); ``parameters`` go to the provenance as they are.
    """
    if backend is not None:
        backend.check()  # fails early, before any work: server down or hung, model missing
    identity = backend.identity if backend is not None else None
    strategy.prepare(backend)
    model_key = ({"backend": identity.backend, "model": identity.model, "digest": identity.digest or identity.endpoint}
                 if identity is not None else None)
    store = ResponseCache(None if cache is True else cache) if cache is not False and backend is not None else None
    limit = concurrency or (backend.max_concurrency if backend is not None else 1)
    workers = max(1, min(limit, len(units) or 1))
    out = Run({}, {}, {}, {})
    calls = 0

    def one(unit: Unit) -> tuple[dict[str, Any], Ask, float]:
        ask = Ask(backend, store, model_key, sampling)
        start = time.perf_counter()
        result = strategy.answer(unit, ask)
        return result, ask, time.perf_counter() - start

    what = f"annotating ({strategy.mode}) with {identity.model if identity else 'marker databases'}"
    try:
        with Progress(len(units), what, unit=unit_name, show=progress) as advance, ThreadPoolExecutor(workers) as pool:
            futures = {pool.submit(one, u): u for u in units}
            for fut in as_completed(futures):
                unit = futures[fut]
                try:
                    result, ask, seconds = fut.result()
                    out.answers[unit.id], out.seconds[unit.id] = result, round(seconds, 3)
                    out.cached[unit.id] = ask.cached and not ask.asked
                    calls += ask.asked
                except LLMError as exc:
                    out.failures[unit.id] = f"{type(exc).__name__}: {exc}"
                    log.error("%s %s failed: %s", unit_name.rstrip("s"), unit.id[:60], exc)
                advance()
    finally:
        if store is not None:
            store.close()
    out.stats = {"model_calls": calls, "cache_hits": sum(out.cached.values()), "failed": len(out.failures)}
    out.provenance = {
        "cellscribe_version": __version__,
        **(identity.to_dict() if identity is not None else {"backend": None, "model": None}),
        "mode": strategy.mode, **strategy.provenance(), "parameters": dict(parameters or {}), "created": now(),
    }
    return out


def now() -> str:
    """The time, UTC, to the second (ISO 8601)."""
    return datetime.now(timezone.utc).isoformat(timespec="seconds")
