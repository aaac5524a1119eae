"""Output that appears complete or not at all, and temporaries that never pile up.

Every file or folder mpkg writes (build, sign, keygen, lock, init, unpack, pull, reports,
deploy manifests, build contexts) is first written to a hidden temporary beside its target,
``.<name>.<pid>.<random>.mpkg-tmp``, then fsynced and renamed into place. The temporaries
are cleaned up on every path out:

- an exception, Ctrl-C (KeyboardInterrupt) or SIGTERM/SIGHUP removes them: while any exists,
  those two signals raise :class:`Terminated` in the main thread (unless the program installed
  its own handler), so the code unwinds through its cleanup instead of dying mid-write;
- other work that must clean up after itself (folders it made) runs under
  :func:`signals_unwind`, which makes those signals unwind the same way;
- ``kill -9``, a crash or a power cut cannot be caught, so each temporary holds an exclusive
  ``flock`` for its whole life, and creating a temporary first sweeps its folder: a temporary
  whose lock can be taken belongs to a process that is gone, and is removed. (A temporary is
  locked under another name, ``.mpkg-new``, before it gets its ``.mpkg-tmp`` name, so a sweep
  never sees a live one unlocked; a ``.mpkg-new`` is an orphan when the pid in its name is gone,
  or when it is older than a minute.)

A full disk (ENOSPC, EDQUOT) or the file-size limit (EFBIG) while writing becomes one
:class:`MpkgError` naming the output and saying so.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import secrets
import shutil
import signal
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import FrameType
from typing import BinaryIO

from mpkg.errors import MpkgError

SUFFIX = ".mpkg-tmp"
_NEW = ".mpkg-new"
_NEW_GRACE = 60.0  # seconds: a ".mpkg-new" older than this lost its process between create and lock
_DISK_FULL = {
    errno.ENOSPC: "the disk is full",
    errno.EDQUOT: "the disk quota is used up",
    errno.EFBIG: "the file is larger than this process may write (file size limit)",
}
_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


class Terminated(BaseException):
    """SIGTERM or SIGHUP arrived while mpkg had temporaries on disk; raised so they are removed."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"terminated by {signal.Signals(signum).name}")
        self.signum = signum


# --- signals: unwind instead of dying while temporaries exist ------------------------------------

_state = threading.Lock()
_live = 0
_saved: dict[int, object] = {}


def _raise_terminated(signum: int, frame: FrameType | None) -> None:
    raise Terminated(signum)


def _hold_signals() -> None:
    global _live
    with _state:
        _live += 1
        if _live == 1 and threading.current_thread() is threading.main_thread():
            for sig in _SIGNALS:
                if signal.getsignal(sig) is signal.SIG_DFL:
                    _saved[sig] = signal.signal(sig, _raise_terminated)


def _release_signals() -> None:
    global _live
    with _state:
        _live -= 1
        if _live == 0 and _saved and threading.current_thread() is threading.main_thread():
            for sig, previous in _saved.items():
                signal.signal(sig, previous)  # type: ignore[arg-type]
            _saved.clear()


@contextlib.contextmanager
def signals_unwind() -> Iterator[None]:
    """While the block runs, SIGTERM/SIGHUP raise :class:`Terminated` as they do while a
    temporary exists: for work that leaves more than temporaries behind (folders it made,
    files it links into place), so its own cleanup runs when a job is cancelled."""
    _hold_signals()
    try:
        yield
    finally:
        _release_signals()


# --- temporaries ------------------------------------------------------------------------------------


class Temporary:
    """A hidden temporary file or folder beside its target, locked for its whole life.

    Path-like, so callers that rename it themselves can pass it where a path goes; ``unlink``
    (or ``release``) removes it unless it was committed, and gives the lock back."""

    def __init__(self, path: Path, fd: int, target: Path, is_dir: bool) -> None:
        self.path = path
        self.fd = fd  # holds the flock (a file's temporaries: also readable and writable)
        self.target = target
        self.is_dir = is_dir
        self._done = False

    def __fspath__(self) -> str:
        return str(self.path)

    def __str__(self) -> str:
        return str(self.path)

    @contextlib.contextmanager
    def open(self) -> Iterator[BinaryIO]:
        """The temporary file, open for reading and writing; a full disk names the target."""
        with disk_errors(self.target), os.fdopen(os.dup(self.fd), "r+b") as f:
            yield f

    def commit(self, target: str | os.PathLike[str] | None = None) -> None:
        """Rename into place (``target``, default the one it was made for) and sync the folder.
        A file replaces what was there; a folder never does."""
        dest = Path(target) if target is not None else self.target
        with disk_errors(dest):
            if not self.is_dir:
                os.replace(self.path, dest)
            else:
                try:
                    os.rename(self.path, dest)  # an empty folder at dest would be replaced: refused below
                except OSError as exc:
                    if exc.errno in (errno.EEXIST, errno.ENOTEMPTY, errno.ENOTDIR):
                        raise MpkgError("already exists; write into a new directory", str(dest)) from None
                    raise
            _fsync_dir(dest.parent)
        self._done = True
        self.release()

    def release(self) -> None:
        """Remove the temporary (unless committed) and give the lock back. Idempotent."""
        if self.fd < 0:
            return
        try:
            if not self._done:
                _remove(self.path)
        finally:
            os.close(self.fd)
            self.fd = -1
            self._done = True
            _release_signals()

    def unlink(self, missing_ok: bool = True) -> None:
        """Path-like spelling of :meth:`release`, for callers that treat it as a path."""
        self.release()

    def __del__(self) -> None:
        with contextlib.suppress(Exception):
            self.release()


def temporary(target: str | os.PathLike[str], is_dir: bool = False) -> Temporary:
    """A new locked temporary for ``target`` in the target's folder, after sweeping the
    folder of temporaries left by dead processes."""
    dest = Path(target)
    folder = dest.absolute().parent
    sweep(folder)
    base = folder / f".{dest.name[:100]}.{os.getpid()}.{secrets.token_hex(4)}"
    new, path = base.with_name(base.name + _NEW), base.with_name(base.name + SUFFIX)
    _hold_signals()  # before the file exists: a signal from here on unwinds through the cleanup
    try:
        return _create(new, path, dest, is_dir)
    except BaseException:
        _release_signals()
        raise


def _create(new: Path, path: Path, dest: Path, is_dir: bool) -> Temporary:
    fd = -1
    with disk_errors(dest):
        try:
            if is_dir:
                os.mkdir(new, 0o700)
                fd = os.open(new, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
            else:
                fd = os.open(new, os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
            fcntl.flock(fd, fcntl.LOCK_EX)  # ours alone: never waits
            os.rename(new, path)
            # Returned from inside the try: a signal that lands just after the rename (the moment a
            # watcher first sees the temporary) still removes it. ``path`` is this process's alone.
            return Temporary(path, fd, dest, is_dir)
        except BaseException as exc:
            if fd >= 0:
                os.close(fd)
            _remove(new)
            _remove(path)
            if isinstance(exc, FileNotFoundError):
                raise MpkgError(f"cannot be written: its folder {path.parent} does not exist", str(dest)) from None
            if isinstance(exc, OSError) and exc.errno not in _DISK_FULL:
                raise MpkgError(f"cannot be written ({exc.strerror})", str(dest)) from None
            raise


def sweep(folder: str | os.PathLike[str]) -> list[str]:
    """Remove the temporaries in ``folder`` whose lock is free (their process is gone)."""
    removed: list[str] = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        if not entry.name.startswith("."):
            continue
        if entry.name.endswith(_NEW):  # not yet locked: judged by its pid, else by its age
            with contextlib.suppress(OSError):
                stale = not _alive(entry.name) or time.time() - entry.stat(follow_symlinks=False).st_mtime > _NEW_GRACE
                if stale and _remove(entry.path, entry.is_dir(follow_symlinks=False)):
                    removed.append(entry.name)
            continue
        if not entry.name.endswith(SUFFIX):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except OSError:
            continue  # gone, or a symlink: never followed
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            continue  # a live process holds it
        try:
            if _remove(entry.path, stat.S_ISDIR(os.fstat(fd).st_mode)):
                removed.append(entry.name)
        finally:
            os.close(fd)
    return removed


def _alive(name: str) -> bool:
    """Whether the process named in a temporary's name (".NAME.PID.RANDOM.SUFFIX") may be alive:
    False only when no such process exists (a reused pid just means waiting for the age rule)."""
    parts = name.rsplit(".", 3)
    if len(parts) != 4 or not parts[1].isdigit():
        return True
    try:
        os.kill(int(parts[1]), 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _remove(path: str | os.PathLike[str], is_dir: bool | None = None) -> bool:
    try:
        if is_dir if is_dir is not None else (os.path.isdir(path) and not os.path.islink(path)):
            shutil.rmtree(path)
        else:
            os.unlink(path)
    except FileNotFoundError:
        return False
    return True


# --- the two ways to write ------------------------------------------------------------------------


@contextlib.contextmanager
def atomic_output(path: str | os.PathLike[str], mode: int = 0o644) -> Iterator[BinaryIO]:
    """Write ``path`` through a locked hidden temporary; fsync and rename on success, remove it
    on any failure, interruption or termination. The file is open for reading too."""
    tmp = temporary(path)
    try:
        with tmp.open() as f:
            yield f
            with disk_errors(tmp.target):
                try:
                    f.flush()
                    os.fchmod(f.fileno(), mode & ~_umask())
                    os.fsync(f.fileno())
                except OSError as exc:
                    if exc.errno in _DISK_FULL:
                        raise
                    raise MpkgError(f"cannot be written ({exc.strerror})", str(tmp.target)) from None
        tmp.commit()
    finally:
        tmp.release()


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike[str]) -> Iterator[Path]:
    """A folder that appears at ``path`` (which must not exist) complete, or not at all."""
    tmp = temporary(path, is_dir=True)
    try:
        with disk_errors(tmp.target):
            yield tmp.path
        if os.path.lexists(tmp.target):
            raise MpkgError("already exists; write into a new directory", str(tmp.target))
        os.chmod(tmp.path, 0o755 & ~_umask())  # staged private (0700); published as mkdir would
        tmp.commit()
    finally:
        tmp.release()


@contextlib.contextmanager
def disk_errors(target: str | os.PathLike[str]) -> Iterator[None]:
    """Turn a full disk (or the file-size limit) while writing ``target`` into one line saying so."""
    try:
        yield
    except OSError as exc:
        reason = _DISK_FULL.get(exc.errno or 0)
        if reason is None:
            raise
        what = f"cannot be written: {reason} ({exc.strerror}); free space or write elsewhere"
        raise MpkgError(what, str(target)) from None


def _umask() -> int:
    current = os.umask(0)
    os.umask(current)
    return current


def _fsync_dir(directory: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(directory or ".", os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


__all__ = [
    "SUFFIX",
    "Temporary",
    "Terminated",
    "atomic_directory",
    "atomic_output",
    "disk_errors",
    "signals_unwind",
    "sweep",
    "temporary",
]
