"""The run lock: one run at a time in a run directory, and no review write while it runs.

:class:`RunLock` is an advisory ``flock`` on ``RUN_DIR/.thawdetect-run.lock``. A run holds it
exclusively from its checks to its end; review writes (``decide``, ``undo``, ``import``, the page)
hold it shared for the moment they write (:func:`writing_to_run`), so several reviewers write at
once but none while a run goes. A refusal is one line naming the holder (host, pid, start time,
written into the lock file by the exclusive holder). The kernel drops the lock of a killed
process; its stale holder line is then taken over, and :attr:`RunLock.took_over` says whose.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from thawdetect.core.errors import InputError, ThawdetectError

__all__ = ["LOCK_FILE", "RunLock", "RunLockedError", "writing_to_run"]

LOCK_FILE = ".thawdetect-run.lock"


def _os_reason(exc: OSError) -> str:
    return exc.strerror or errno.errorcode.get(exc.errno or 0, type(exc).__name__)


class RunLockedError(ThawdetectError):
    """Another process holds the run lock."""


@dataclass
class _Held:
    fd: int
    exclusive: bool
    count: int


_HELD: dict[str, _Held] = {}
_HELD_GUARD = threading.Lock()


def _holder_text(info: Any) -> str:
    if not isinstance(info, dict):
        return "another process"
    what = info.get("command") or "thawdetect"
    return f"{what} (pid {info.get('pid')} on {info.get('host')}, since {info.get('since')})"


class RunLock:
    """The run lock of ``run_dir``: exclusive for a run, shared for review writes.

    Re-entrant within a process (a run's own review stage, tests making several engines); across
    processes an ``flock`` on ``RUN_DIR/.thawdetect-run.lock``. The exclusive holder writes its
    host, pid, start time and command into the file, for the refusal message.

    Args:
        run_dir: the run directory (must exist).
        exclusive: True for a run, False for a review write.
        command: what holds it (``thawdetect run``), for the message.
    """

    def __init__(self, run_dir: Path, *, exclusive: bool, command: str = "") -> None:
        self.run_dir = Path(run_dir)
        self.path = self.run_dir / LOCK_FILE
        self.exclusive = exclusive
        self.command = command
        self.held = False
        self.took_over: str | None = None

    def _key(self) -> str:
        return str(self.path.resolve())

    def acquire(self, wait_s: float = 0.0) -> None:
        """Take the lock, waiting up to ``wait_s`` seconds.

        Raises:
            RunLockedError: another process holds it (one line naming the holder).
        """
        if self.held:
            return
        key = self._key()
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is not None and (held.exclusive or not self.exclusive):
                held.count += 1
                self.held = True
                return
        try:
            import fcntl
        except ImportError:  # no flock (Windows): only this process is excluded
            fcntl = None  # type: ignore[assignment]
        try:
            fd = os.open(self.path, os.O_RDWR | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0), 0o644)
        except OSError as exc:
            raise InputError(self.run_dir, f"cannot take the run lock: {_os_reason(exc)}") from None
        deadline = time.monotonic() + wait_s
        while fcntl is not None:
            try:
                mode = fcntl.LOCK_EX if self.exclusive else fcntl.LOCK_SH
                fcntl.flock(fd, mode | fcntl.LOCK_NB)
                break
            except OSError:
                info = _read_fd_json(fd)
                # a run holds it for hours: refuse at once; a reviewer's write is a moment
                if time.monotonic() < deadline and not _running(info):
                    time.sleep(0.1)
                    continue
                os.close(fd)
                raise RunLockedError(self._refusal(info)) from None
        if self.exclusive:
            previous = _read_fd_json(fd)
            if isinstance(previous, dict) and previous.get("pid") not in (None, os.getpid()):
                self.took_over = _holder_text(previous)
            me = {
                "pid": os.getpid(),
                "host": socket.gethostname(),
                "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                "command": self.command or "thawdetect run",
            }
            os.ftruncate(fd, 0)
            os.pwrite(fd, json.dumps(me).encode(), 0)
        with _HELD_GUARD:
            _HELD[key] = _Held(fd, self.exclusive, 1)
        self.held = True

    def _refusal(self, info: Any) -> str:
        if self.exclusive and not isinstance(info, dict):
            return (
                f"{self.run_dir}: a review decision is being written to this run right now; "
                "try again in a moment"
            )
        return (
            f"{self.run_dir}: a run is in progress here: {_holder_text(info)}; wait for it to "
            "finish (or stop it) and try again"
        )

    def release(self) -> None:
        if not self.held:
            return
        self.held = False
        key = self._key()
        with _HELD_GUARD:
            held = _HELD.get(key)
            if held is None:
                return
            held.count -= 1
            if held.count > 0:
                return
            del _HELD[key]
        with contextlib.suppress(OSError):
            if held.exclusive:
                os.ftruncate(held.fd, 0)  # no holder any more: nothing stale to report
        os.close(held.fd)  # closing the descriptor drops the flock

    def __enter__(self) -> RunLock:
        self.acquire()
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def _running(info: Any) -> bool:
    """Whether ``info`` names a run that is still going (a process of this host that exists,
    or one of another host, which cannot be asked)."""
    if not isinstance(info, dict):
        return False
    if info.get("host") != socket.gethostname():
        return True
    try:
        pid = int(info.get("pid", 0))
        if pid <= 0:
            return False
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (OSError, ValueError, TypeError):
        return True
    return True


def _read_fd_json(fd: int) -> Any:
    try:
        data = os.pread(fd, 4096, 0)
        return json.loads(data.decode()) if data.strip() else None
    except (OSError, UnicodeDecodeError, ValueError):
        return None


@contextlib.contextmanager
def writing_to_run(run_dir: str | Path) -> Iterator[None]:
    """Hold the run lock shared while a review write goes to ``run_dir`` (refused while a run
    is going; several reviewers may write at once, the ledger orders their transactions)."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        yield
        return
    lock = RunLock(run_dir, exclusive=False)
    lock.acquire(wait_s=0.0)
    try:
        yield
    finally:
        lock.release()
