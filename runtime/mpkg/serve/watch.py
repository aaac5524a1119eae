"""Served package files stay the bytes that were verified, or their model stops answering.

Weights are memory-mapped from the package file (no copy; spec/runtime.md §1). Bytes
overwritten in that file would change the answers while the server still reports the
old digest, and a truncated file kills the process with SIGBUS when a mapped page is
touched. So every served file is watched, and on any change to its bytes its model is
quarantined (503, not ready, one log line) while the process keeps serving the others.
A new file renamed over the path leaves the served bytes intact (the server holds the
old file open): it is reported as a replacement, which the server tries to swap in
(swap.py), and the old file stays watched until the swap retires it.

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
    at_path: tuple[int, int]  # dev, ino of the file the path named when last seen
    nlink: int  # its links: one fewer once it is renamed over or removed
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
    """Polls the watched files on a thread; ``changed(index, reason)`` (bytes changed: stop the
    model) and ``replaced(index, path)`` (another file at the path: try it) run on the event loop."""

    def __init__(
        self,
        loop: asyncio.AbstractEventLoop,
        changed: Callable[[int, str], None],
        busy: Callable[[int], int],
        replaced: Callable[[int, str], None] | None = None,
    ) -> None:
        self._loop = loop
        self._changed = changed
        self._replaced = replaced
        self._busy = busy  # calls of a model still running (read from this thread: an int)
        self._watched: list[_Watched] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def add(self, index: int, path: str, fd: int) -> str | None:
        """Watch the package file open as ``fd`` (the model's own); returns why there is no
        lease, or None when the file is leased."""
        st = os.fstat(fd)
        no_lease = take_lease(fd)
        watched = _Watched(
            index, os.path.abspath(path), fd, _stamp(st), no_lease is None, (st.st_dev, st.st_ino), st.st_nlink
        )
        self._watched = [*self._watched, watched]  # a new list: the polling thread iterates the old one
        return no_lease

    def remove(self, index: int) -> None:
        """Stop watching model ``index`` (swapped out; its file is about to be closed)."""
        self._watched = [w for w in self._watched if w.index != index]

    def start(self) -> None:
        """Start polling on a daemon thread."""
        self._thread = threading.Thread(target=self._run, name="mpkg-package-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            for w in self._watched:
                if w.tripped:
                    continue
                reason = _check(w)
                if reason is None:
                    continue
                if isinstance(reason, tuple) and self._replaced is not None:  # the served bytes are intact
                    w.at_path = reason
                    with contextlib.suppress(RuntimeError):
                        self._loop.call_soon_threadsafe(self._replaced, w.index, w.path)
                    continue
                if isinstance(reason, tuple):
                    reason = "was replaced by another file"
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


def _check(w: _Watched) -> str | tuple[int, int] | None:
    """Why the served bytes are no longer trustworthy, the (dev, ino) of a new file now at the
    path, or None."""
    if w.leased:
        try:
            lease = fcntl.fcntl(w.fd, F_GETLEASE)
        except OSError:
            lease = fcntl.F_UNLCK
        if lease == fcntl.F_UNLCK:  # a lease being broken reads as its target, unlocked
            return "is being opened for writing or truncated"
    try:
        st = os.fstat(w.fd)
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    now = _stamp(st)
    if now != w.stamp:
        if now[2] != w.stamp[2]:
            return f"changed size on disk ({w.stamp[2]} -> {now[2]} bytes)"
        if now[3] != w.stamp[3] or st.st_nlink >= w.nlink:
            return "was modified on disk"
        # Only the change time moved, and a link is gone: the file was renamed over or removed
        # (unlinking changes ctime); its bytes are what they were. The path check below says which.
        w.stamp, w.nlink = now, st.st_nlink
    try:
        at_path = os.stat(w.path)
    except FileNotFoundError:
        return "was removed"
    except OSError as exc:
        return f"cannot be checked ({exc.strerror})"
    if (at_path.st_dev, at_path.st_ino) != w.at_path:
        return (at_path.st_dev, at_path.st_ino)
    return None
