"""The canonical archive writer: streams files in, hashing exactly what it writes.

Files must be added in manifest order (sorted by path); each entry records the
size and digest of the bytes actually written, so the manifest describes the
archive, not the source at some other moment.
"""

from __future__ import annotations

import errno
import fcntl
import io
import os
import stat
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import BinaryIO

import blake3
from mpkg._internal.format import layout
from mpkg._internal.format.digests import FILE_DIGEST_ALGORITHM, WINDOW, Digest, new_file_hasher, update_from_fd
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME, FileEntry
from mpkg.errors import SourceError

CHUNK = 8 * 1024 * 1024
# copy_file_range errors meaning "not between these files": fall back to read/write.
_NO_KERNEL_COPY = {errno.EXDEV, errno.EINVAL, errno.ENOSYS, errno.EOPNOTSUPP, errno.EBADF, errno.ETXTBSY}

Progress = Callable[[int], None]


class ArchiveWriter:
    """Writes members to an open binary file in canonical form."""

    def __init__(self, out: BinaryIO, progress: Progress | None = None) -> None:
        self._out = out
        self._offset = 0
        self._last_path: bytes | None = None
        self._progress = progress
        self._buffer = bytearray(CHUNK)
        self._direct = _direct_target(out)
        self._kernel_copy = hasattr(os, "copy_file_range")  # Linux only; elsewhere pread/pwrite

    def _write(self, data: bytes | memoryview) -> None:
        self._out.write(data)
        self._offset += len(data)

    def _member(self, name: str, data: bytes) -> None:
        self._write(layout.member_header(name, len(data)))
        self._write(data)
        self._write(b"\0" * layout.padding(len(data)))

    def _check_order(self, path: str) -> None:
        key = path.encode("utf-8")
        if self._last_path is not None and key <= self._last_path:
            raise ValueError(f"files must be added in sorted order: {path!r}")
        self._last_path = key

    def add_file(self, path: str, source: Path, role: str) -> FileEntry:
        """Stream ``source`` into the archive as ``path``; hash while copying."""
        self._check_order(path)
        with open(source, "rb") as f:
            st = os.fstat(f.fileno())
            size = st.st_size
            self._write(layout.member_header(path, size))
            hasher = new_file_hasher()
            if self._direct is not None and stat.S_ISREG(st.st_mode):
                self._copy_direct(f.fileno(), self._direct, size, hasher, source)
            else:
                self._copy_buffered(f, size, hasher, source)
            self._write(b"\0" * layout.padding(size))
        return FileEntry(path, size, Digest(FILE_DIGEST_ALGORITHM, hasher.hexdigest()), "identity", role)

    def _copy_buffered(self, f: BinaryIO, size: int, hasher: blake3.blake3, source: Path) -> None:
        """Read, hash and write through one reused buffer (any writable target)."""
        view = memoryview(self._buffer)
        remaining = size
        while remaining:
            n = f.readinto(view[: min(CHUNK, remaining)])  # type: ignore[attr-defined]
            if not n:
                raise SourceError("changed size while being packed; build again", str(source))
            chunk = view[:n]
            hasher.update(chunk)
            self._write(chunk)
            remaining -= n
            if self._progress:
                self._progress(n)
        if f.read(1):
            raise SourceError("grew while being packed; build again", str(source))

    def _copy_direct(self, src: int, target: tuple[int, int], size: int, hasher: blake3.blake3, source: Path) -> None:
        """Copy in the kernel (copy_file_range: no user-space copy), then hash each window
        back from the archive itself — the digest is of the bytes written, never of the
        source at another moment. Hashing window i overlaps copying window i+1."""
        fd, base = target
        self._out.flush()
        dst = base + self._offset
        if size <= WINDOW:  # one window: nothing to overlap, so no thread (1,000 small files stay cheap)
            self._copy_range(src, fd, 0, dst, size, source)
            update_from_fd(hasher, fd, dst, size)
            if self._progress:
                self._progress(size)
            self._finish_direct(src, size, base, source)
            return
        pending: Future[None] | None = None
        with ThreadPoolExecutor(1, thread_name_prefix="mpkg-hash") as pool:
            try:
                done = 0
                while done < size:
                    n = min(WINDOW, size - done)
                    self._copy_range(src, fd, done, dst + done, n, source)
                    if pending is not None:
                        pending.result()
                    pending = pool.submit(update_from_fd, hasher, fd, dst + done, n)
                    done += n
                    if self._progress:
                        self._progress(n)
                if pending is not None:
                    pending.result()
            finally:
                if pending is not None:
                    pending.cancel()
        self._finish_direct(src, size, base, source)

    def _finish_direct(self, src: int, size: int, base: int, source: Path) -> None:
        if os.pread(src, 1, size):
            raise SourceError("grew while being packed; build again", str(source))
        self._offset += size
        self._out.seek(base + self._offset)

    def _copy_range(self, src: int, dst: int, src_at: int, dst_at: int, n: int, source: Path) -> None:
        while n:
            copied = 0
            if self._kernel_copy:
                try:
                    copied = os.copy_file_range(src, dst, n, src_at, dst_at)
                except OSError as exc:
                    if exc.errno not in _NO_KERNEL_COPY:
                        raise
                    self._kernel_copy = False
                    continue
            else:
                data = os.pread(src, min(n, CHUNK), src_at)
                copied = len(data)
                _pwrite_all(dst, data, dst_at)
            if not copied:
                raise SourceError("changed size while being packed; build again", str(source))
            n -= copied
            src_at += copied
            dst_at += copied

    def add_bytes(self, path: str, data: bytes, role: str) -> FileEntry:
        """Add a small in-memory member, hashing it as it is written."""
        self._check_order(path)
        hasher = new_file_hasher()
        hasher.update(data)
        entry = FileEntry(path, len(data), Digest(FILE_DIGEST_ALGORITHM, hasher.hexdigest()), "identity", role)
        self._member(entry.member_name, data)
        if self._progress:
            self._progress(len(data))
        return entry

    def finish(self, manifest: bytes, signatures: bytes | None = None) -> None:
        """Write the manifest, the optional signature envelope and the end of archive."""
        self._member(MANIFEST_NAME, manifest)
        if signatures is not None:
            self._member(SIGNATURES_NAME, signatures)
        self._write(layout.end_of_archive(self._offset))

    @property
    def offset(self) -> int:
        """Bytes written so far, for progress and the signature member's place."""
        return self._offset


def _pwrite_all(fd: int, data: bytes, offset: int) -> None:
    """pwrite until done: a short write is retried, so a full disk raises ENOSPC (named by the
    caller's atomic output) instead of passing for an I/O error."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        if n <= 0:
            raise OSError(errno.EIO, "the package file accepts no more bytes")
        view, offset = view[n:], offset + n


def _direct_target(out: BinaryIO) -> tuple[int, int] | None:
    """(fd, offset of the writer's byte 0) when ``out`` is a regular file we can also read
    back from (kernel copy + hash the written bytes); None means: buffered path."""
    try:
        fd = out.fileno()
        flags = fcntl.fcntl(fd, fcntl.F_GETFL)
        if flags & os.O_ACCMODE != os.O_RDWR or flags & os.O_APPEND:
            return None
        if not stat.S_ISREG(os.fstat(fd).st_mode) or not out.seekable():
            return None
        return fd, out.tell()
    except (OSError, io.UnsupportedOperation, AttributeError, ValueError):
        return None
