"""Safe extraction: verify, then write every file under a fresh directory.

The package is opened once: verification and extraction read the same open file, so
what is written is what was verified even if the path is replaced meanwhile (before,
unpack verified one file and then extracted whatever the path named next). Members are
never handed to tarfile: each manifest entry is written with O_EXCL|O_NOFOLLOW beneath a
hidden temporary directory beside the target (mpkg._internal.io.atomic), re-hashed while written, and
the directory is renamed into place only when everything matched, so a failed or
interrupted unpack leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.digests import Digest, new_file_hasher
from mpkg._internal.format.manifest import MANIFEST_NAME, FileEntry
from mpkg._internal.io.atomic import atomic_directory
from mpkg._internal.trust.verify import Policy, VerificationResult, verified
from mpkg.errors import VerificationError

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 8 << 20


def unpack(package: str | os.PathLike[str], target: str | os.PathLike[str], policy: Policy) -> VerificationResult:
    """Verify ``package`` under ``policy`` and extract it to ``target`` (which must not exist)."""
    dest = Path(target)
    if dest.exists() or dest.is_symlink():
        raise VerificationError("already exists; unpack into a new directory", str(dest))
    with verified(package, policy) as (pkg, result):
        result.raise_for_errors()
        assert pkg is not None and result.manifest is not None
        try:
            dest.absolute().parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise VerificationError(f"cannot create its folder ({exc.strerror})", str(dest)) from None
        with atomic_directory(dest) as staging:
            for entry in result.manifest.files:
                _extract(pkg, entry, staging)
            (staging / "mpkg").mkdir(exist_ok=True)
            _write_new(staging, MANIFEST_NAME, [pkg.manifest_bytes])  # the verified bytes, held in memory
    return result


def _write_new(root: Path, rel: str, chunks: Iterable[bytes]) -> Digest:
    parts = rel.split("/")
    directory = root
    for part in parts[:-1]:
        directory = directory / part
        with contextlib.suppress(FileExistsError):
            directory.mkdir(mode=0o755)
        if directory.is_symlink() or not directory.is_dir():
            raise VerificationError("would be written through a non-directory", rel)
    hasher = new_file_hasher()
    fd = os.open(directory / parts[-1], _FLAGS, 0o644)
    with os.fdopen(fd, "wb") as out:
        for chunk in chunks:
            hasher.update(chunk)
            out.write(chunk)
    return Digest("blake3", hasher.hexdigest())


def _extract(pkg: PackageFile, entry: FileEntry, root: Path) -> None:
    member = pkg.by_name[entry.member_name]
    digest = _write_new(root, entry.path, _chunks(pkg, member.data_offset, member.size))
    if digest != entry.digest:
        raise VerificationError("changed while being unpacked; nothing was written", f"{pkg.where}: {entry.path}")


def _chunks(pkg: PackageFile, offset: int, size: int) -> Iterator[bytes]:
    """The member's bytes from the verified open file (never reopened by name)."""
    fd = pkg.file.fileno()
    remaining = size
    while remaining:
        chunk = os.pread(fd, min(_CHUNK, remaining), offset)
        if not chunk:
            raise VerificationError("was truncated while being unpacked", pkg.where)
        remaining -= len(chunk)
        offset += len(chunk)
        yield chunk
