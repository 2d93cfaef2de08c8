"""Run one function over chunks of cells on Dask, keep finished chunks on disk, report progress.

:func:`run_chunks` builds one Dask task per chunk (the chunk's block of the lazy array, plus the
chunk's own small arguments) and runs them on the threaded scheduler (default), another local
scheduler, or a ``dask.distributed`` client. Each result comes back to the caller's process as
soon as its chunk finishes; with a :class:`ChunkStore` it is saved there first, so an interrupted
run (Ctrl-C, a lost worker, a crash) recomputes only the chunks it had not saved.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError
from ..progress import Progress
from ._source import CellSource

SCHEDULERS = ("threads", "processes", "synchronous")


class ChunkStore:
    """Finished chunks of one computation, one ``.npz`` file per chunk under ``root / key``.

    ``key`` names everything that changes the results (input identity, panel, parameters), so a
    store never mixes runs; ``root`` may hold several keys.
    """

    def __init__(self, root: str | os.PathLike[str], key: str) -> None:
        self.dir = Path(root) / key
        self.dir.mkdir(parents=True, exist_ok=True)

    def path(self, i: int) -> Path:
        return self.dir / f"chunk-{i:06d}.npz"

    def done(self) -> set[int]:
        """Indices of the saved chunks."""
        return {int(p.stem.split("-")[1]) for p in self.dir.glob("chunk-*.npz")}

    def save(self, i: int, result: dict[str, np.ndarray]) -> None:
        """Save chunk ``i`` atomically (a half-written file never counts as done)."""
        tmp = self.dir / f".chunk-{i:06d}.tmp.npz"
        np.savez(tmp, **result)
        os.replace(tmp, self.path(i))

    def load(self, i: int) -> dict[str, np.ndarray]:
        with np.load(self.path(i)) as f:
            return {k: f[k] for k in f.files}

    def write_meta(self, meta: dict[str, Any]) -> None:
        (self.dir / "meta.json").write_text(json.dumps(meta, indent=1, default=str))


def check_scheduler(scheduler: str) -> str:
    """``scheduler`` if Dask has it locally, else :class:`~cellscribe.errors.InputError`."""
    if scheduler not in SCHEDULERS:
        raise InputError(f"Unknown scheduler {scheduler!r}; use one of {', '.join(SCHEDULERS)}, or pass a "
                         "dask.distributed Client (client=, or --address on the command line).")
    return scheduler


def run_chunks(fn: Callable[..., dict[str, np.ndarray]], source: CellSource, chunks: Sequence[int],
               args: Callable[[int], tuple[Any, ...]], *, client: Any = None, scheduler: str = "threads",
               n_workers: int | None = None, store: ChunkStore | None = None,
               on_chunk: Callable[[int], None] | None = None, description: str = "scoring cells",
               progress: bool | None = None) -> Iterator[tuple[int, dict[str, np.ndarray], bool]]:
    """Yield ``(chunk index, result, computed)`` for every chunk in ``chunks``, finished order.

    Parameters
    ----------
    fn
        Called as ``fn(block, *args(i))`` on chunk ``i``'s block of ``source.X``; returns arrays.
    source, chunks
        The cells and the indices of the chunks to run.
    args
        The chunk's other arguments (small: they travel with the task).
    client, scheduler, n_workers
        A ``dask.distributed.Client`` to run on; otherwise the local Dask ``scheduler`` with
        ``n_workers`` threads or processes (default: the machine's cores).
    store
        Where finished chunks are saved and read back from; ``computed`` is ``False`` for chunks
        read from it.
    on_chunk
        Called with a chunk's index after it is saved (a hook for logging or tests).
    description, progress
        The progress line's text; ``False`` for none (default ``settings.progress``).
    """
    import dask

    check_scheduler(scheduler)
    chunks = list(chunks)
    starts = source.starts
    saved = store.done() if store is not None else set()
    todo = [i for i in chunks if i not in saved]
    blocks = source.X.to_delayed().ravel()
    cells = int(sum(starts[i + 1] - starts[i] for i in chunks))
    with Progress(cells, description, unit="cells", show=progress) as advance:
        for i in chunks:
            if i in saved:
                advance(int(starts[i + 1] - starts[i]))
                yield i, store.load(i), False  # type: ignore[union-attr]
        tasks = {i: dask.delayed(fn, pure=True)(blocks[i], *args(i)) for i in todo}

        def finish(i: int, result: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
            if store is not None:
                store.save(i, result)
            advance(int(starts[i + 1] - starts[i]))
            if on_chunk is not None:
                on_chunk(i)
            return result

        if client is not None:
            from distributed import as_completed  # optional heavy dependency, only with a client

            futures = client.compute([tasks[i] for i in todo])
            index = {f.key: i for f, i in zip(futures, todo, strict=True)}
            try:
                for future, result in as_completed(futures, with_results=True):
                    i = index[future.key]
                    yield i, finish(i, result), True
            finally:
                client.cancel(futures)
            return
        workers = n_workers or os.cpu_count() or 1
        batch = max(1, 2 * workers)
        for start in range(0, len(todo), batch):
            part = todo[start:start + batch]
            results = dask.compute(*[tasks[i] for i in part], scheduler=scheduler, num_workers=workers)
            for i, result in zip(part, results, strict=True):
                yield i, finish(i, result), True
