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
    env = os.environ.get("CELLSCRIBE_THREADS")
    return int(env) if env else max(1, os.cpu_count() or 1)


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
        CPU threads for local models (``CELLSCRIBE_THREADS``; default: all cores).
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
