"""The scan's jobs on a Ray cluster (`ftaudit data scan --engine ray [--address HOST:PORT|ray://HOST:10001]`).

The same jobs as the local engine — byte-range shards that each task reads itself, or batches the driver read —
go through Ray Data: a dataset of jobs, one job a batch of `map_batches`, its order preserved, so the driver folds
the results as the local engine does and the report is the same. The jobs are fed a window at a time, so the
driver never holds the whole list. Ray retries a job whose worker or node is lost (3 times); after that, or when
the cluster cannot be reached, the scan fails with one line and writes nothing (its checkpoint stays for
--resume). Every node needs ftaudit installed and the data readable (object storage, or a shared filesystem).
With `--lsh cluster` the scan runs as plain Ray tasks instead: their records' keys and signatures stay in the
object store, owned by the driver, for the duplicate search that follows as tasks too (`lsh_shuffle`).
"""

from __future__ import annotations

import logging
import pickle
import warnings
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import TypeVar

from ftaudit.data.parallel import in_order
from ftaudit.errors import BadInput, FtauditError

T = TypeVar("T")
R = TypeVar("R")
RETRIES = 3


def connect(address: str | None):
    try:
        import ray
    except ImportError:
        raise BadInput("--engine ray needs Ray: pip install 'ftaudit[ray]'") from None
    if ray.is_initialized():
        return ray
    if address and address != "auto":
        _reachable(address)  # Ray itself retries an unreachable head for minutes
    try:
        ray.init(address=address, include_dashboard=False, log_to_driver=False, logging_level="ERROR",
                 configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError, TimeoutError) as exc:
        why: BaseException = exc
        while why.__cause__ is not None:  # the root cause: an authentication error, a refused connection
            why = why.__cause__
        first = (str(why).strip() or type(why).__name__).splitlines()[0].split(". ")[0]
        raise BadInput(f"cannot use the Ray cluster at {address or 'a new local instance'}: {first}; check "
                       "--address (HOST:PORT of the head, or ray://HOST:10001), and for a cluster with token "
                       "authentication set RAY_AUTH_MODE=token and its token (RAY_AUTH_TOKEN or ~/.ray/auth_token)"
                       ) from None
    return ray


def _reachable(address: str, timeout: float = 3.0) -> None:
    import socket

    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise BadInput(f"--address {address!r}: give HOST:PORT of the Ray head, or ray://HOST:10001")
    try:
        socket.create_connection((host, int(port)), timeout=timeout).close()
    except OSError as exc:
        raise BadInput(f"cannot reach the Ray cluster at {address}: {exc.strerror or 'timed out'}; is the head "
                       "running (ray start --head), and is the port open?") from None


def imap_ordered(fn: Callable[..., R], chunks: Iterable[T], *, address: str | None = None) -> Iterator[R]:
    """fn(chunk) over chunks with Ray Data, results in order: a dataset of WINDOW × CPUs chunks at a time, each
    chunk a batch of its own. A job's error comes back as a value (Ray Data keeps only its text) and is raised
    here as one line; a job lost after RETRIES retries is one line too."""
    ray = connect(address)
    from ray import data as ray_data
    from ray.util.annotations import RayDeprecationWarning

    logging.getLogger("ray.data").setLevel(logging.CRITICAL)  # a scan's output is its own progress display
    ctx = ray_data.DataContext.get_current()
    saved = ctx.execution_options.preserve_order, ctx.enable_progress_bars
    ctx.execution_options.preserve_order, ctx.enable_progress_bars = True, False
    it = iter(chunks)
    try:
        while window := list(islice(it, WINDOW * cpus(ray))):
            jobs = ray_data.from_items([{"job": pickle.dumps(c)} for c in window], override_num_blocks=len(window))
            with warnings.catch_warnings():  # Ray Data retries a lost worker's task forever unless told; the
                warnings.simplefilter("ignore", RayDeprecationWarning)  # argument has no named form before 2.64
                done = jobs.map_batches(_outcome, fn_args=(fn,), batch_size=1, batch_format="pyarrow",
                                        max_retries=RETRIES)
            for row in _rows(done):
                error, value = pickle.loads(row["outcome"])
                if error is not None:
                    raise _one_line(error)
                yield value
    finally:
        ctx.execution_options.preserve_order, ctx.enable_progress_bars = saved


WINDOW = 32  # chunks per CPU in one dataset: its start-up is spread thin, and the driver holds only these


def _outcome(batch, fn):
    """One job on a Ray Data worker: (its error, None) or (None, its result), pickled."""
    job = pickle.loads(batch["job"][0].as_py())
    try:
        outcome = (None, fn(job))
    except Exception as exc:  # every error goes back to the driver, which words it
        outcome = (exc, None)
    return {"outcome": [pickle.dumps(outcome)]}


def _rows(dataset) -> Iterator[dict]:
    from ray.exceptions import RayError

    try:
        yield from dataset.iter_rows()
    except RayError as exc:
        raise _lost(exc) from None


def imap_keeping(fn: Callable[..., tuple], chunks: Iterable[T], *, keep: int, address: str | None = None,
                 args: tuple = ()) -> Iterator[tuple]:
    """fn(chunk, *args) as Ray tasks returning 1 + keep values, results in order as (first, [refs of the others]):
    the others stay in the object store, owned by this driver, for tasks that follow."""
    ray = connect(address)
    task = ray.remote(max_retries=RETRIES, retry_exceptions=False, num_returns=1 + keep)(fn)
    outstanding: set = set()

    def submit(chunk):
        refs = task.remote(chunk, *args)
        outstanding.add(refs[0])
        return refs

    def result(refs):
        outstanding.discard(refs[0])
        return _get(ray, refs[0]), refs[1:]

    try:
        yield from in_order(submit, result, chunks, 2 * cpus(ray))
    finally:
        for ref in outstanding:  # the consumer stopped early or failed: drop the queued work
            ray.cancel(ref, force=True)


def run_all(fn: Callable[..., R], calls: list[tuple], *, address: str | None = None) -> list[R]:
    """fn(*args) for each args as Ray tasks, all at once; object refs among the args are resolved by Ray."""
    ray = connect(address)
    task = ray.remote(max_retries=RETRIES, retry_exceptions=False)(fn)
    refs = [task.remote(*args) for args in calls]
    try:
        return [_get(ray, ref, then="run the scan again") for ref in refs]
    except BaseException:
        for ref in refs:
            ray.cancel(ref, force=True)
        raise


def put(value, *, address: str | None = None):
    return connect(address).put(value)


def cpus(ray) -> int:
    return max(1, int(ray.cluster_resources().get("CPU", 1)))


def _get(ray, ref, then: str = "rerun with --resume"):
    from ray.exceptions import RayError, RayTaskError

    try:
        return ray.get(ref)
    except RayTaskError as exc:
        raise _one_line(exc.cause) from None
    except RayError as exc:
        raise _lost(exc, then) from None


def _one_line(cause: BaseException) -> FtauditError:
    """A job's own error as the scan's one line: ftaudit's own as it is (no remote traceback), another named."""
    if isinstance(cause, FtauditError):
        return cause
    return BadInput(f"a scan task failed on the Ray cluster: {type(cause).__name__}: {cause}")


def _lost(exc: BaseException, then: str = "rerun with --resume") -> BadInput:
    return BadInput(f"a scan task was lost on the Ray cluster after {RETRIES} retries ({type(exc).__name__}); "
                    f"nothing was written; {then}")
