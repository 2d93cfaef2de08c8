"""Package-wide settings: cache location, threads, progress display.

Read once from the environment, changeable at run time::

    import cellscribe
    cellscribe.settings.cache_dir = "/scratch/cellscribe"
    cellscribe.settings.n_threads = 8
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import platformdirs


def _default_cache_dir() -> Path:
    env = os.environ.get("CELLSCRIBE_CACHE")
    return Path(env).expanduser() if env else Path(platformdirs.user_cache_dir("cellscribe"))


def _default_threads() -> int:
    """``CELLSCRIBE_THREADS``, else the cores not kept busy by other work at import time.

    llama.cpp and torch spin-wait on their threads: asking for more threads than there are free
    cores made a 3-cluster run 10-50x slower on a shared 2-core machine (measured), while one thread
    fewer costs at most half the speed. "Busy" is the 1-minute load average minus this process.
    """
    env = os.environ.get("CELLSCRIBE_THREADS")
    if env:
        return max(1, int(env))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    try:
        others = max(0.0, os.getloadavg()[0] - 1.0)
    except OSError:  # no load average on this platform
        others = 0.0
    return max(1, min(cores, int(cores - others + 0.5)))


@dataclass
class Settings:
    """Global settings.

    Attributes
    ----------
    cache_dir
        Root of everything cellscribe keeps on disk: assembled local models (``models/``),
        the response cache (``responses.sqlite``) and knowledge indexes. Environment
        variable ``CELLSCRIBE_CACHE``; default the platform's user cache directory.
    n_threads
        CPU threads for local models (``CELLSCRIBE_THREADS``; default: the cores that other
        work leaves free when cellscribe is imported, at least 1).
    progress
        Show progress bars on long work.
    """

    cache_dir: Path = field(default_factory=_default_cache_dir)
    n_threads: int = field(default_factory=_default_threads)
    progress: bool = True

    @property
    def models_dir(self) -> Path:
        return Path(self.cache_dir) / "models"

    @property
    def response_cache_path(self) -> Path:
        return Path(self.cache_dir) / "responses.sqlite"


settings = Settings()
