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
from itertools import chain
from typing import TypeVar

T = TypeVar("T")
R = TypeVar("R")
H = TypeVar("H")  # a handle on submitted work (a future, a Ray object ref)


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
    pool = ProcessPoolExecutor(max_workers=workers, mp_context=_context())
    try:
        yield from in_order(lambda chunk: pool.submit(fn, chunk), lambda future: future.result(),
                            chain((first, second), it), max_pending or 2 * workers)
    finally:
        # Also runs when the consumer stops early or an error is raised: drop queued work, reap the workers.
        pool.shutdown(wait=True, cancel_futures=True)


def in_order(submit: Callable[[T], H], result: Callable[[H], R], chunks: Iterable[T],
             max_pending: int) -> Iterator[R]:
    """Submit chunks as they come, at most `max_pending` in flight, and yield their results in submission order."""
    pending: deque = deque()
    for chunk in chunks:
        while len(pending) >= max_pending:
            yield result(pending.popleft())
        pending.append(submit(chunk))
    while pending:
        yield result(pending.popleft())

