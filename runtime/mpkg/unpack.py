"""Safe extraction: verify, then write every file under a fresh directory.

Members are never handed to tarfile: each manifest entry is written with
O_EXCL|O_NOFOLLOW beneath a temporary directory created beside the target,
re-hashed while written, and the directory is renamed into place only when
everything matched, so a failed unpack leaves nothing behind.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile
from pathlib import Path

from .archive import PackageFile
from .digests import Digest, new_file_hasher
from .errors import VerificationError
from .manifest import MANIFEST_NAME, FileEntry
from .verify import Policy, VerificationResult, verify

_FLAGS = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | getattr(os, "O_CLOEXEC", 0)
_CHUNK = 8 << 20


def unpack(package: str | os.PathLike[str], target: str | os.PathLike[str], policy: Policy) -> VerificationResult:
    """Verify ``package`` under ``policy`` and extract it to ``target`` (which must not exist)."""
    dest = Path(target)
    if dest.exists() or dest.is_symlink():
        raise VerificationError("already exists; unpack into a new directory", str(dest))
    result = verify(package, policy)
    result.raise_for_errors()
    assert result.manifest is not None
    parent = dest.absolute().parent
    try:
        parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise VerificationError(f"cannot create its folder ({exc.strerror})", str(dest)) from None
    staging = Path(tempfile.mkdtemp(prefix=f".{dest.name}.", dir=parent))
    try:
        with PackageFile(package) as pkg:
            for entry in result.manifest.files:
                _extract(pkg, entry, staging)
            (staging / "mpkg").mkdir(exist_ok=True)
            _write_new(staging, MANIFEST_NAME, [pkg.manifest_bytes])
        os.rename(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return result


def _write_new(root: Path, rel: str, chunks: object) -> Digest:
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
        for chunk in chunks:  # type: ignore[attr-defined]
            hasher.update(chunk)
            out.write(chunk)
    return Digest("blake3", hasher.hexdigest())


def _extract(pkg: PackageFile, entry: FileEntry, root: Path) -> None:
    member = pkg.by_name[entry.member_name]
    digest = _write_new(root, entry.path, _chunks(pkg, member.data_offset, member.size))
    if digest != entry.digest:
        raise VerificationError("changed while being unpacked; nothing was written", f"{pkg.where}: {entry.path}")


def _chunks(pkg: PackageFile, offset: int, size: int):  # type: ignore[no-untyped-def]
    f = pkg.file
    f.seek(offset)
    remaining = size
    while remaining:
        chunk = f.read(min(_CHUNK, remaining))
        if not chunk:
            raise VerificationError("was truncated while being unpacked", pkg.where)
        remaining -= len(chunk)
        yield chunk
