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
import threading
from collections.abc import Iterator
from typing import Any

from thawdetect.core.errors import ConfigError

__all__ = [
    "LOCAL_SCHEDULERS",
    "compute",
    "current_scheduler",
    "use_scheduler",
    "validate_scheduler",
]

LOCAL_SCHEDULERS = ("synchronous", "threads", "processes")
DEFAULT_SCHEDULER = "threads"
_state = threading.local()
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
    return getattr(_state, "spec", DEFAULT_SCHEDULER)


@contextlib.contextmanager
def use_scheduler(spec: str | None) -> Iterator[str]:
    """Run the enclosed work on ``spec`` (None: keep the current one)."""
    previous = getattr(_state, "spec", None)
    _state.spec = validate_scheduler(spec) if spec else current_scheduler()
    try:
        yield _state.spec
    finally:
        if previous is None:
            del _state.spec
        else:
            _state.spec = previous


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
            client = Client(address, timeout="10s", set_as_default=False)
        except OSError as exc:
            raise ConfigError(f"scheduler '{address}': cannot connect ({exc})") from None
        _clients[address] = client
    return client


def compute(*collections: Any, scheduler: str | None = None) -> tuple[Any, ...]:
    """``dask.compute`` on the scheduler in force (or ``scheduler``)."""
    import dask

    spec = validate_scheduler(scheduler) if scheduler else current_scheduler()
    if spec in LOCAL_SCHEDULERS:
        return dask.compute(*collections, scheduler=spec)
    client = _client(spec)
    return tuple(client.compute(list(collections), sync=True))
