"""Where heavy work runs: one Dask code path, local or distributed.

``compute.scheduler`` in the run config (or ``--scheduler``) is one of:

* ``synchronous``: one thread, in this process (debugging, profiling);
* ``threads`` (default): a thread pool in this process;
* ``processes``: a local process pool;
* ``tcp://host:port`` (or ``tls://``): an existing Dask ``distributed`` scheduler. Workers read
  their inputs by path/URI, so nothing large goes through the scheduler.

Heavy steps build ``dask.delayed`` / ``dask.array`` graphs and call :func:`compute`; the same
graph runs on any of the schedulers and gives identical results.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterator
from typing import Any

from thawdetect.core.errors import ConfigError

__all__ = [
    "LOCAL_SCHEDULERS",
    "close_client",
    "compute",
    "current_scheduler",
    "task_threads",
    "use_scheduler",
    "validate_scheduler",
]

LOCAL_SCHEDULERS = ("synchronous", "threads", "processes")
DEFAULT_SCHEDULER = "threads"


class _Setting:
    """The scheduler in force, for the whole process (threads started by a step see it too)."""

    spec: str | None = None


_state = _Setting()
_clients: dict[str, Any] = {}


def validate_scheduler(spec: str) -> str:
    """Check a scheduler spec; return it normalised.

    Examples:
        >>> validate_scheduler("Threads")
        'threads'
        >>> validate_scheduler("tcp://127.0.0.1:8786")
        'tcp://127.0.0.1:8786'

    Raises:
        ConfigError: anything else.
    """
    text = str(spec).strip()
    if text.lower() in LOCAL_SCHEDULERS:
        return text.lower()
    if text.startswith(("tcp://", "tls://", "inproc://")):
        return text
    raise ConfigError(f"scheduler '{spec}': use synchronous, threads, processes or tcp://HOST:PORT")


def current_scheduler() -> str:
    """The scheduler in force (set by :func:`use_scheduler`; ``threads`` otherwise)."""
    return _state.spec or DEFAULT_SCHEDULER


@contextlib.contextmanager
def use_scheduler(spec: str | None) -> Iterator[str]:
    """Run the enclosed work on ``spec`` (None: keep the current one).

    A cluster address is connected to on entry, so an unreachable scheduler fails at once with
    one line (not after the first heavy step); a connection opened here is closed on exit.

    Raises:
        ConfigError: bad spec, or no Dask scheduler answers at the address.
    """
    previous = _state.spec
    spec = validate_scheduler(spec) if spec else current_scheduler()
    opened = spec not in LOCAL_SCHEDULERS and spec not in _clients
    if spec not in LOCAL_SCHEDULERS:
        _client(spec)
    _state.spec = spec
    try:
        yield spec
    finally:
        _state.spec = previous
        if opened:
            close_client(spec)


def close_client(address: str) -> None:
    """Close this process's connection to the cluster at ``address`` (the cluster keeps running)."""
    client = _clients.pop(address, None)
    if client is not None:
        with contextlib.suppress(Exception):
            client.close(timeout=10)


def _client(address: str) -> Any:
    client = _clients.get(address)
    if client is None or client.status in ("closed", "closing"):
        try:
            from distributed import Client
        except ImportError as exc:  # pragma: no cover - distributed is a core dependency
            raise ConfigError(
                f"scheduler '{address}' needs dask.distributed: pip install 'dask[distributed]'"
            ) from exc
        try:
            client = Client(address, timeout="10s", set_as_default=False)  # type: ignore[no-untyped-call]
        except (OSError, TimeoutError) as exc:
            msg = str(exc).splitlines()[0][:160] if str(exc) else type(exc).__name__
            raise ConfigError(f"scheduler '{address}': cannot connect ({msg})") from None
        _clients[address] = client
    return client


def task_threads(default: int = 0) -> int:
    """Threads one task may use (e.g. onnxruntime intra-op threads), asked inside the task.

    On a Dask ``distributed`` worker: the worker's thread count (``dask worker --nthreads``), so
    2 workers × 1 thread on 2 cores do not oversubscribe them. Elsewhere ``default`` (0 = the
    library's own default, all cores; graph builders pass 1 for the local ``processes`` pool).
    """
    try:
        from distributed import get_worker

        return max(1, int(get_worker().state.nthreads))
    except (ImportError, ValueError, AttributeError):
        return default


def compute(
    *collections: Any, scheduler: str | None = None, description: str | None = None
) -> tuple[Any, ...]:
    """``dask.compute`` on the scheduler in force (or ``scheduler``).

    Args:
        collections: dask collections (``dask.delayed`` objects, dask arrays...).
        scheduler: override the scheduler in force (a spec as for :func:`validate_scheduler`).
        description: show a progress bar (:func:`thawdetect.core.progress.track`) of finished
            tasks with this name, when bars are enabled.

    Returns:
        One result per collection, as ``dask.compute``.
    """
    from dask.base import compute as dask_compute

    from thawdetect.core import progress

    spec = validate_scheduler(scheduler) if scheduler else current_scheduler()
    show = description is not None and progress.enabled()
    if spec in LOCAL_SCHEDULERS:
        with _one_blas_thread(spec):
            if not show:
                result: tuple[Any, ...] = dask_compute(  # type: ignore[no-untyped-call]
                    *collections, scheduler=spec, **_local_options(spec)
                )
                return result
            return _local_with_progress(collections, spec, str(description))
    client = _client(spec)
    if not show:
        return tuple(client.compute(list(collections), sync=True))
    from distributed import as_completed

    futures = client.compute(list(collections))
    finished = as_completed(futures)  # type: ignore[no-untyped-call]
    for _ in progress.track(finished, str(description), total=len(futures)):
        pass
    return tuple(client.gather(futures))


@contextlib.contextmanager
def _one_blas_thread(spec: str) -> Iterator[None]:
    """One BLAS thread per task while the local thread pool runs (Dask's advice on
    oversubscription): each of its threads already keeps a core busy, and OpenBLAS starting its
    own pool per call on top of them cost the seasonal fit ~30 % on 2 cores. The ``processes``
    pool's workers set the same when they start (:func:`_single_blas_thread`), Dask
    ``distributed`` workers get it from their nanny (``OPENBLAS_NUM_THREADS=1``); the
    synchronous scheduler keeps the library's default. Restored when the computation ends."""
    if spec != "threads":
        yield
        return
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        yield


def _single_blas_thread() -> None:
    """Initializer of each ``processes`` pool worker: one BLAS thread (see _one_blas_thread)."""
    import numpy  # noqa: F401  (loads the BLAS library, so that there is something to limit)
    from threadpoolctl import threadpool_limits

    threadpool_limits(limits=1, user_api="blas")


def _local_options(spec: str) -> dict[str, Any]:
    return {"initializer": _single_blas_thread} if spec == "processes" else {}


def _local_with_progress(
    collections: tuple[Any, ...], spec: str, description: str
) -> tuple[Any, ...]:
    """``dask.compute`` in a helper thread, its finished tasks fed to a progress bar."""
    from dask.base import compute as dask_compute
    from dask.callbacks import Callback

    from thawdetect.core.progress import track

    events: queue.Queue[Any] = queue.Queue()
    done = object()
    out: dict[str, Any] = {}

    def start(dsk: Any) -> None:
        events.put(("total", len(dsk)))

    def posttask(*_: Any) -> None:
        events.put(1)

    def work() -> None:
        try:
            with Callback(start=start, posttask=posttask):  # type: ignore[no-untyped-call]
                out["result"] = dask_compute(  # type: ignore[no-untyped-call]
                    *collections, scheduler=spec, **_local_options(spec)
                )
        except BaseException as exc:  # re-raised in the caller's thread
            out["error"] = exc
        finally:
            events.put(done)

    thread = threading.Thread(target=work, name="thawdetect-compute", daemon=True)
    thread.start()
    first = events.get()
    if first is not done:
        total = first[1] if isinstance(first, tuple) else None
        for _ in track(iter(events.get, done), description, total=total):
            pass
    thread.join()
    if "error" in out:
        raise out["error"]
    result: tuple[Any, ...] = out["result"]
    return result


def trim_memory() -> bool:
    """Give the heap memory already freed back to the operating system (glibc's
    ``malloc_trim``; False and nothing done elsewhere).

    Large array work in worker threads (the threads scheduler, BLAS) leaves freed memory in
    glibc's per-thread arenas, where it still counts as the process's resident memory: after an
    InSAR detector's first iteration on a Sentinel-1 frame, 1.8 GB of it, carried into every
    later iteration. Dask's ``distributed`` workers trim the same way. The engine calls this
    after each detector's ``propose``.
    """
    import ctypes
    import ctypes.util
    import sys

    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.malloc_trim(0))
    except (OSError, AttributeError):
        return False


def release_pages(*arrays: Any, min_bytes: int = 0) -> int:
    """Drop the resident pages of read-only memory-mapped arrays; returns how many maps.

    A map made with ``np.load(..., mmap_mode="r")`` (a run's kept fit and terrain layers) counts
    every page once touched in the process's resident memory until it is unmapped: at frame
    scale 1.8 GB of layers that the current step no longer reads. After this call those pages
    still sit in the page cache, so touching them again costs a minor fault, not a read from
    disk. Only read-only maps are released (a copy-on-write or writable map may hold changes of
    its own); anything else (None, in-memory arrays) is skipped, and so are maps smaller than
    ``min_bytes`` (faulting a small map back in costs more than its pages weigh).
    """
    import mmap

    import numpy as np

    done: set[int] = set()
    for a in arrays:
        base = a
        while base is not None:
            if isinstance(base, np.memmap) and base.mode == "r":
                m = getattr(base, "_mmap", None)
                if (
                    isinstance(m, mmap.mmap)
                    and id(m) not in done
                    and len(m) >= min_bytes
                    and hasattr(m, "madvise")
                ):
                    try:
                        m.madvise(mmap.MADV_DONTNEED)
                    except (OSError, ValueError):  # closed map, or not allowed here
                        break
                    done.add(id(m))
                break
            base = getattr(base, "base", None)
    return len(done)
