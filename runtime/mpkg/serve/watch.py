"""Served package files stay the bytes that were verified, or their model stops answering.

Weights are memory-mapped from the package file (no copy; spec/runtime.md §1). Bytes
overwritten in that file would change the answers while the server still reports the
old digest, and a truncated file kills the process with SIGBUS when a mapped page is
touched. So every served file is watched, and on any change its model is quarantined
(503, not ready, one log line) while the process keeps serving the others:

- A read lease (``F_SETLEASE``) is taken on the package's own open file where the kernel
  allows it (the file's owner or CAP_LEASE, a local file system, no writer open). Then
  every open for writing and every truncate must first break the lease: the writer is
  held by the kernel while the server quarantines the model and waits for its calls in
  flight to end, and only then is the lease released. No answer comes from changed bytes
  and no mapped page is touched after a truncate.
- Every file is also polled (fstat of the open file: size, mtime, ctime; stat of the path:
  replaced or removed) every ``INTERVAL`` seconds, which catches what a lease cannot
  (no lease possible, writes through a writable map opened before the server started).
  Without a lease a change is noticed within ``INTERVAL`` but after it happened.

A private sealed copy (memfd + F_SEAL_WRITE) was measured instead: 6.7-13 s to copy a
2 GiB package here (against 0.4 s to verify and map it) and 2 GiB of unevictable shared
memory per process; see spec/runtime.md §7.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

INTERVAL = 0.1  # seconds between polls
DRAIN = 5.0  # longest wait for a quarantined model's calls before a broken lease is released

F_SETLEASE = getattr(fcntl, "F_SETLEASE", 1024)
F_GETLEASE = getattr(fcntl, "F_GETLEASE", 1025)


@dataclass
class _Watched:
    index: int
    path: str
    fd: int
    stamp: tuple[int, int, int, int, int]  # dev, ino, size, mtime_ns, ctime_ns
    leased: bool
    tripped: bool = False


def _stamp(st: os.stat_result) -> tuple[int, int, int, int, int]:
    return (st.st_dev, st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns)


def take_lease(fd: int) -> str | None:
    """Take a read lease on ``fd``; None on success, else why not (the watch then polls only)."""
    try:
        fcntl.fcntl(fd, F_SETLEASE, fcntl.F_RDLCK)
    except OSError as exc:
        return exc.strerror or str(exc)
    return None


def ignore_lease_signals() -> None:
    """A broken lease is announced with SIGIO, whose default action ends the process; the
    watch polls instead. Call on the main thread before taking leases."""
    if hasattr(signal, "SIGIO"):
        signal.signal(signal.SIGIO, signal.SIG_IGN)


class PackageWatch:
    """Polls the watched files on a thread; ``changed(index, reason)`` runs on the event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        changed: Callable[[int, str], None],
        busy: Callable[[int], int],
    ) -> None:
        self._loop = loop
        self._changed = changed
        self._busy = busy  # calls of a model still running (read from this thread: an int)
        self._watched: list[_Watched] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, index: int, path: str, fd: int) -> str | None:
        """Watch the package file open as ``fd`` (the model's own); returns why there is no
        lease, or None when the file is leased."""
        st = os.fstat(fd)
        no_lease = take_lease(fd)
        self._watched.append(_Watched(index, os.path.abspath(path), fd, _stamp(st), no_lease is None))
        return no_lease

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="mpkg-package-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            for w in self._watched:
                if w.tripped:
                    continue
                reason = _check(w)
                if reason is None:
                    continue
                w.tripped = True
                with contextlib.suppress(RuntimeError):  # the loop closed: the server is stopping
                    self._loop.call_soon_threadsafe(self._changed, w.index, f"package file {w.path} {reason}")
                if w.leased:
                    threading.Thread(target=self._release, args=(w,), daemon=True).start()

    def _release(self, w: _Watched) -> None:
        """Let the writer go once the quarantined model has no call touching its pages."""
        deadline = time.monotonic() + DRAIN
        time.sleep(INTERVAL)  # the quarantine reaches the loop first
        while self._busy(w.index) and time.monotonic() < deadline:
            time.sleep(0.01)
        with contextlib.suppress(OSError):
            fcntl.fcntl(w.fd, F_SETLEASE, fcntl.F_UNLCK)


def _check(w: _Watched) -> str | None:
    if w.leased:
        try:
            lease = fcntl.fcntl(w.fd, F_GETLEASE)
        except OSError:
            lease = fcntl.F_UNLCK
        if lease == fcntl.F_UNLCK:  # a lease being broken reads as its target, unlocked
            return "is being opened for writing or truncated"
    try:
        now = _stamp(os.fstat(w.fd))
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    if now != w.stamp:
        if now[2] != w.stamp[2]:
            return f"changed size on disk ({w.stamp[2]} -> {now[2]} bytes)"
        return "was modified on disk"
    try:
        at_path = os.stat(w.path)
    except FileNotFoundError:
        return "was removed"
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    if (at_path.st_dev, at_path.st_ino) != (now[0], now[1]):
        return "was replaced by another file"
    return None
