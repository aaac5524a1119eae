"""What the image installs: the package's lockfile, normalised, and the wheels pinned by hash.

The lockfile is re-read from the verified package and re-validated with the builder's rules:
the package may come from anyone, and what the image installs is only what they produce.
"""

from __future__ import annotations

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.trust.verify import payload_bytes
from mpkg.errors import MpkgError
from packaging.specifiers import InvalidSpecifier, SpecifierSet

from ..sources.lockfile import Lockfile, Pin, parse_pylock, parse_requirements
from .dockerfile import PY


def read_lockfile(pkg: PackageFile, manifest: Manifest) -> Lockfile:
    """The verified package's lockfile (``environment.lockfile``), from the open file, parsed
    and validated with the builder's rules: what the image installs is only what they produce."""
    env = manifest.environment
    path, kind = env["lockfile"], env["kind"]
    where = f"{pkg.where}: {path}"
    entry = manifest.file(path)
    assert entry is not None  # the manifest parser checked environment.lockfile names a file
    try:
        text = payload_bytes(pkg, entry).decode("utf-8")
    except UnicodeDecodeError:
        raise MpkgError("is not UTF-8 text", where) from None
    return parse_pylock(text, where) if kind == "pylock" else parse_requirements(text, where)


def check_requires_python(lock: Lockfile, manifest: Manifest, where: str) -> None:
    """Refuse a package whose lockfile or manifest excludes the image's one Python."""
    for field_name, spec in (
        ("lockfile requires-python", lock.requires_python),
        ("environment.requires_python", manifest.environment.get("requires_python")),
    ):
        if not spec:
            continue
        try:
            specs = SpecifierSet(str(spec))
        except InvalidSpecifier:
            raise MpkgError(f"{field_name} {spec!r} is not a version specifier", where) from None
        want = PY
        if not any(specs.contains(f"{want}.{micro}") for micro in range(100)):
            raise MpkgError(
                f"{field_name} {spec!r} excludes Python {want}, the only Python the image has",
                where,
            )


def is_hashed(lock: Lockfile) -> bool:
    """Whether the image installs the lockfile with --require-hashes: whenever it has hashes."""
    return any(p.hashes for p in lock.packages)


def lock_requirements(lock: Lockfile) -> str:
    """The lockfile as requirements/lock.txt: one pin per line, with its hashes."""
    lines = [
        "# The package's lockfile, normalised by mpkg containerize.",
        f"# Installed {'with' if is_hashed(lock) else 'without'} --require-hashes.",
    ]
    lines.extend(pin_line(p) for p in lock.packages)
    return "\n".join(lines) + "\n"


def pin_line(pin: Pin) -> str:
    """``name==version ; marker`` and its hashes, as pip's hash-checking mode reads them."""
    line = f"{pin.name}=={pin.version}"
    if pin.marker:
        line += f" ; {pin.marker}"
    return "".join([line, *(f" \\\n    --hash={h}" for h in pin.hashes)])


__all__ = [
    "check_requires_python",
    "is_hashed",
    "lock_requirements",
    "pin_line",
    "read_lockfile",
]
