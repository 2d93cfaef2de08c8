"""Progress on long work, for people at a terminal and for logs.

One place decides how progress looks, so every long job (annotating clusters or cells, running a
benchmark, training, embedding genes, building a knowledge index once) reports it the same way:

* on a terminal (standard error is a TTY): a rich progress bar, or a spinner for a phase;
* otherwise (a log file, CI, RStudio's build pane, R through reticulate): plain lines on standard
  error, e.g. ``cellscribe: annotating with qwen2.5-coder-1.5b: 3/11 clusters, 9 s, about 24 s
  left``, at most one every :data:`PLAIN_EVERY` seconds plus the first and the last;
* nothing when ``show`` is false (``settings.progress = False`` turns it off everywhere).

>>> with Progress(11, "annotating with qwen2.5-coder-1.5b", unit="clusters") as advance:
...     for cluster in clusters:
...         ...; advance()
>>> with phase("building the marker index (first use only, about 15 s)"):
...     build()
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, TextIO

from .config import settings

#: Seconds between two plain progress lines (the first and the last item are always printed).
PLAIN_EVERY = 5.0
PREFIX = "cellscribe: "


def _stream() -> TextIO:
    return sys.stderr


def is_terminal(stream: TextIO | None = None) -> bool:
    """Whether ``stream`` (default standard error) is an interactive terminal."""
    stream = stream or _stream()
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):  # closed or replaced streams
        return False


def say(message: str) -> None:
    """One plain line on standard error (when ``settings.progress`` is on), flushed at once."""
    if settings.progress:
        _write(message)


def _write(message: str) -> None:
    stream = _stream()
    stream.write(f"{PREFIX}{message}\n")
    stream.flush()


def _duration(seconds: float) -> str:
    seconds = max(0.0, seconds)
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.1f} min"
    return f"{seconds / 3600:.1f} h"


class Progress:
    """Progress over ``total`` items, used as ``with Progress(...) as advance: ... advance(n)``.

    Parameters
    ----------
    total
        Number of items.
    description
        What is being done (``"annotating with qwen2.5-coder-1.5b"``).
    unit
        What an item is, in the plural (``"clusters"``, ``"cells"``, ``"rows"``, ``"steps"``).
    show
        ``False``: report nothing. ``None``: ``settings.progress``.
    status
        Optional callable returning a short text shown after the counts (e.g. the last loss).
    """

    def __init__(self, total: int, description: str, *, unit: str = "items", show: bool | None = None,
                 status: Callable[[], str] | None = None) -> None:
        self.total, self.description, self.unit = int(total), description, unit
        self.show = settings.progress if show is None else bool(show)
        self.status = status
        self.done = 0
        self._start = 0.0
        self._last_line = float("-inf")
        self._bar: Any = None
        self._task: Any = None
        self._lock = threading.Lock()

    def __enter__(self) -> Callable[..., None]:
        self._start = time.perf_counter()
        if not self.show or self.total <= 0:
            return lambda n=1: None
        if is_terminal():
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn, TimeRemainingColumn
            from rich.progress import Progress as RichProgress

            self._bar = RichProgress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TextColumn(self.unit), TimeElapsedColumn(), TimeRemainingColumn(),
                                     console=Console(stderr=True), transient=True)
            self._bar.start()
            self._task = self._bar.add_task(self.description, total=self.total)
        else:
            _write(f"{self.description}: {self.total} {self.unit}")
        return self.advance

    def advance(self, n: int = 1) -> None:
        """Count ``n`` more items as done."""
        with self._lock:
            self.done += n
            if self._bar is not None:
                self._bar.advance(self._task, n)
                return
            now = time.perf_counter()
            if self.done < self.total and self.done != n and now - self._last_line < PLAIN_EVERY:
                return
            self._last_line = now
            _write(self.line(now))

    def line(self, now: float | None = None) -> str:
        """The plain progress line: counts, elapsed time, estimate of the time left."""
        elapsed = (now or time.perf_counter()) - self._start
        text = f"{self.description}: {self.done}/{self.total} {self.unit}, {_duration(elapsed)}"
        if 0 < self.done < self.total:
            text += f", about {_duration(elapsed / self.done * (self.total - self.done))} left"
        if self.status is not None:
            text += f" ({self.status()})"
        return text

    def __exit__(self, *exc: object) -> None:
        if self._bar is not None:
            self._bar.stop()


@contextmanager
def phase(message: str, *, show: bool | None = None) -> Iterator[None]:
    """Report a long step without counts: a spinner on a terminal, else a line when it starts and
    one with its duration when it ends."""
    show = settings.progress if show is None else show
    if not show:
        yield
        return
    start = time.perf_counter()
    if is_terminal():
        from rich.console import Console

        with Console(stderr=True).status(message):
            yield
        return
    _write(f"{message} ...")
    try:
        yield
    except BaseException:
        _write(f"{message}: failed after {_duration(time.perf_counter() - start)}")
        raise
    _write(f"{message}: done in {_duration(time.perf_counter() - start)}")


__all__ = ["PLAIN_EVERY", "Progress", "is_terminal", "phase", "say"]
