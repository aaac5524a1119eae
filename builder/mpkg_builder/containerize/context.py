"""The build context of a serving image: a folder that holds everything its build needs, so
the build runs offline:

- ``runtime/``: the mpkg runtime's wheel (`runtime_wheel`; its own layer, so changing mpkg does
  not invalidate the dependency layer);
- ``wheels/``: every wheel the runtime and the package's lockfile need (`wheels`);
- ``requirements/``: ``runtime.txt`` and ``mpkg.txt`` pin those wheels by sha256, ``lock.txt`` is
  the package's lockfile, normalised (`requirements`);
- ``package/NAME-VERSION.mpkg`` (the verified bytes; not in follow mode, where the image serves
  what a registry reference names, see `follow`) and ``keys/key-N.pub``;
- ``Dockerfile`` (`dockerfile`).

Same package, keys, base and wheels in -> same bytes out (file contents, modes and mtimes). The
context appears complete or not at all.
"""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.io.atomic import temporary
from mpkg._internal.trust.keyfiles import PUBLIC, pem_blocks, read_key_file
from mpkg._internal.trust.verify import policy_for, verified
from mpkg.errors import UsageError, VerificationError

from .baseimage import check_base
from .dockerfile import DEFAULT_BASE, render_dockerfile
from .follow import Followed, fetch_current
from .labels import ServedPackage, follow_labels, image_labels
from .requirements import check_requires_python, is_hashed, lock_requirements, read_lockfile
from .wheels import collect_wheels, name_version, pinned_wheels

# File times in the context (1980-01-01, the earliest a zip entry can hold).
EPOCH = 315532800


@dataclass(frozen=True)
class BuildContext:
    """A written build context and what it says about the image."""

    path: Path
    package: ServedPackage
    base: str
    runtime_version: str
    lock_hashed: bool
    wheels: tuple[str, ...]
    labels: Mapping[str, str] = field(hash=False)


def write_context(
    package: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    base: str = DEFAULT_BASE,
    keys: Sequence[str | os.PathLike[str]] = (),
    allow_unsigned: bool = False,
    wheelhouse: str | os.PathLike[str] | None = None,
    offline: bool = False,
    log: Callable[[str], None] | None = None,
    follow: Followed | None = None,
) -> BuildContext:
    """Verify ``package`` and write its build context to ``dest`` (new or empty folder).
    ``base`` must be pinned by digest (see :mod:`mpkg_builder.baseimage`); the package is
    verified once, and its lockfile and bytes come from the file that was verified.

    With ``follow`` (``package`` is then the reference), the image serves ``mpkg serve REF
    --follow``: what the reference names now is pulled and verified for its lockfile, which
    gives the image its wheels, and is not copied into the context."""
    say = log or (lambda _msg: None)
    check_base(base, "python:3.11-slim-bookworm")
    dest = Path(dest)
    check_context_folder(dest)
    if wheelhouse is not None and not Path(wheelhouse).is_dir():
        raise UsageError(f"{wheelhouse}: is not a folder; --wheelhouse takes a folder of .whl files")
    if offline and wheelhouse is None:
        raise UsageError("--offline needs --wheelhouse DIR: with no index, wheels come only from there")
    key_bytes = _read_keys(keys)
    source: str | os.PathLike[str] = package
    expected = None
    if follow is not None:
        expected, source = fetch_current(follow, keys, allow_unsigned)
        say(f"{follow.reference} names {expected} now; its lockfile gives the image its wheels")
    with staged_context(dest) as stage:
        copy_to = None if follow is not None else stage
        with verified_copy(source, keys, allow_unsigned, copy_to) as (pkg, manifest, ref):
            lock = read_lockfile(pkg, manifest)  # re-validated: the package may come from anyone
        if expected is not None and ref.digest != expected:
            raise VerificationError(f"the fetched package is {ref.digest}, not the {expected} it names", str(package))
        check_requires_python(lock, manifest, str(package))
        say(f"verified {ref.name} {ref.version} {ref.digest}")
        runtime_version, runtime_wheels = collect_wheels(
            lock,
            stage / "wheels",
            wheelhouse=wheelhouse,
            offline=offline,
            log=say,
            extras=("registry",) if follow else (),  # serve REF reads registries
        )
        (stage / "runtime").mkdir()
        mpkg_wheel = next(w for w in runtime_wheels if name_version(w)[0] == "mpkg")
        os.replace(mpkg_wheel, stage / "runtime" / mpkg_wheel.name)
        deps = [w for w in runtime_wheels if w != mpkg_wheel]
        req = stage / "requirements"
        req.mkdir()
        (req / "runtime.txt").write_text(
            pinned_wheels("The mpkg runtime's dependencies, pinned to the wheels in wheels/.", deps)
        )
        (req / "mpkg.txt").write_text(
            pinned_wheels("The mpkg runtime, pinned to the wheel in runtime/.", [stage / "runtime" / mpkg_wheel.name])
        )
        (req / "lock.txt").write_text(lock_requirements(lock))
        key_names = []
        if key_bytes:
            (stage / "keys").mkdir()
            for i, data in enumerate(key_bytes, start=1):
                key_names.append(f"key-{i}.pub")
                (stage / "keys" / key_names[-1]).write_bytes(data)
        if follow is not None:
            labels = follow_labels(ref, follow, base, runtime_version)
        else:
            labels = image_labels(ref, base, runtime_version)
        (stage / "Dockerfile").write_text(
            render_dockerfile(ref, base, labels, key_names, allow_unsigned, lock_hashed=is_hashed(lock), follow=follow)
        )
    say(f"wrote build context {dest}")
    wheels = tuple(sorted(p.name for p in [*(dest / "wheels").iterdir(), *(dest / "runtime").iterdir()]))
    return BuildContext(dest, ref, base, runtime_version, is_hashed(lock), wheels, labels)


def check_context_folder(dest: Path) -> None:
    """A context is written into a new or empty folder, never over someone's files."""
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest}: exists and is not an empty folder; name a new folder for the context")


@contextlib.contextmanager
def staged_context(dest: Path) -> Iterator[Path]:
    """A build context that appears at ``dest`` (new or empty) complete or not at all: written
    into a locked temporary beside it (removed on signals, swept if orphaned), normalised for
    reproducible layers, then renamed into place."""
    check_context_folder(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary(dest, is_dir=True)
    try:
        yield staging.path
        _normalise_tree(staging.path)
        if dest.exists():
            dest.rmdir()
        staging.commit()
    finally:
        staging.release()


@contextlib.contextmanager
def verified_copy(
    package: str | os.PathLike[str], keys: Sequence[str | os.PathLike[str]], allow_unsigned: bool, stage: Path | None
) -> Iterator[tuple[PackageFile, Manifest, ServedPackage]]:
    """Verify ``package`` once and copy the verified bytes to ``stage/package/`` (unless ``stage``
    is None); the open, verified file is yielded for reading more of it (never reopened by name)."""
    with verified(package, policy_for(keys, allow_unsigned=allow_unsigned)) as (pkg, result):
        result.raise_for_errors()
        assert pkg is not None and result.manifest is not None
        manifest = result.manifest
        ref = ServedPackage(
            manifest.name, manifest.version, str(manifest.digest), f"{manifest.name}-{manifest.version}.mpkg"
        )
        if stage is not None:
            (stage / "package").mkdir()
            _copy_open(pkg, stage / "package" / ref.filename)
        yield pkg, manifest, ref


def _copy_open(pkg: PackageFile, out: Path) -> None:
    """The package's bytes, from the file that was verified (never reopened by name)."""
    pkg.file.seek(0)
    with open(out, "xb") as f:
        shutil.copyfileobj(pkg.file, f, 8 << 20)


def _read_keys(keys: Sequence[str | os.PathLike[str]]) -> list[bytes]:
    """Each trusted key as its own PEM file for the image (a file may hold several)."""
    out: list[bytes] = []
    for key in keys:
        for block in pem_blocks(read_key_file(key), PUBLIC, str(key)):
            if block + b"\n" not in out:
                out.append(block + b"\n")
    return out


def _normalise_tree(root: Path) -> None:
    """Fixed modes and times, so the context (and a tar of it) is the same every time."""
    for path in sorted(root.rglob("*"), reverse=True):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.utime(path, (EPOCH, EPOCH))
    os.chmod(root, 0o755)
    os.utime(root, (EPOCH, EPOCH))


__all__ = ["EPOCH", "BuildContext", "check_context_folder", "staged_context", "verified_copy", "write_context"]
