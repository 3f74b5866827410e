"""An ordered, bounded process-pool map for CPU-bound detection over a stream.

Only `max_pending` chunks are in flight at a time, so memory stays bounded however long the input stream is; results
come back in input order. A stream that fits in one chunk is processed in this process (no pool start-up cost).
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import ProcessPoolExecutor
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")


def default_workers() -> int:
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


def _context():
    # fork is cheapest, but forking a process that runs torch/CUDA threads can deadlock: use spawn there.
    if sys.platform.startswith("linux") and "torch" not in sys.modules:
        return mp.get_context("fork")
    return mp.get_context("spawn")


def imap_ordered(fn: Callable[[T], R], chunks: Iterable[T], *, workers: int | None = None,
                 max_pending: int | None = None) -> Iterator[R]:
    workers = default_workers() if workers is None else max(1, int(workers))
    it = iter(chunks)
    if workers == 1:
        for chunk in it:
            yield fn(chunk)
        return
    first = next(it, None)
    if first is None:
        return
    second = next(it, None)
    if second is None:
        yield fn(first)
        return
    max_pending = max_pending or 2 * workers
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context())
    try:
        pending: deque = deque([pool.submit(fn, first), pool.submit(fn, second)])
        for chunk in it:
            while len(pending) >= max_pending:
                yield pending.popleft().result()
            pending.append(pool.submit(fn, chunk))
        while pending:
            yield pending.popleft().result()
    finally:
        # Also runs when the consumer stops early or an error is raised: drop queued work, reap the workers.
        pool.shutdown(wait=True, cancel_futures=True)
