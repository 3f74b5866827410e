"""The scan's jobs on a Ray cluster (`ftaudit data scan --engine ray [--address HOST:PORT|ray://HOST:10001]`).

The same jobs as the local engine — byte-range shards that each task reads itself, or batches the driver read —
run as Ray tasks, at most `max_pending` in flight, and come back in submission order, so the driver folds them as
the local engine does and the report is the same. Ray retries a task whose worker or node is lost (3 times);
after that, or when the cluster cannot be reached, the scan fails with one line and writes nothing (its checkpoint
stays for --resume). Every node needs ftaudit installed and the data readable (object storage, or a shared
filesystem). With `--lsh cluster` the tasks keep their records' keys and signatures in the object store and the
duplicate search runs as tasks too (`lsh_shuffle`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
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


def imap_ordered(fn: Callable[..., R], chunks: Iterable[T], *, address: str | None = None,
                 max_pending: int | None = None, args: tuple = (), keep: int = 0) -> Iterator:
    """fn(chunk, *args) over chunks as Ray tasks, results in order. With `keep`, fn returns 1 + keep values: the
    first comes back, the others stay in the cluster's object store, and each result is (first, [their refs])."""
    ray = connect(address)
    task = ray.remote(max_retries=RETRIES, retry_exceptions=False, num_returns=1 + keep)(fn)
    outstanding: set = set()

    def submit(chunk):
        refs = task.remote(chunk, *args)
        first = refs[0] if keep else refs
        outstanding.add(first)
        return refs

    def result(refs):
        first = refs[0] if keep else refs
        outstanding.discard(first)
        value = _get(ray, first)
        return (value, refs[1:]) if keep else value

    try:
        yield from in_order(submit, result, chunks, max_pending or 2 * cpus(ray))
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
        if isinstance(exc.cause, FtauditError):
            raise exc.cause from None  # the task's own one-line error, without the remote traceback
        raise BadInput(f"a scan task failed on the Ray cluster: {type(exc.cause).__name__}: {exc.cause}") from None
    except RayError as exc:
        raise BadInput(f"a scan task was lost on the Ray cluster after {RETRIES} retries "
                       f"({type(exc).__name__}); nothing was written; {then}") from None
