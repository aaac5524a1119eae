"""Verification: the steps of spec/format.md §9, in the order they run.

``verify`` never raises for a bad package: it returns a result listing every
problem found, so a user sees extra, missing and mismatched files together.
Policy fails closed: no trusted valid signature means not ok, unless the
caller explicitly allows unsigned packages.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

from mpkg._internal.format.archive import Member, PackageFile
from mpkg._internal.format.digests import Digest, hash_range
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME, FileEntry, Manifest
from mpkg._internal.trust.signatures import (
    Envelope,
    SignatureCheck,
    TrustedKey,
    check_envelope,
    check_statement,
    load_public_keys,
)
from mpkg.errors import FormatError, MpkgError, Problem, SignatureError, VerificationError, printable

Progress = Callable[[int], None]


KeyPaths = Iterable[str | os.PathLike[str]]


@dataclass(frozen=True)
class Policy:
    """Which signatures make a package acceptable. Fail-closed by construction: a package needs
    a valid signature by one of ``keys``; only :meth:`unsafe_allow_unsigned` relaxes that."""

    keys: tuple[TrustedKey, ...] = ()
    allow_unsigned: bool = field(default=False, init=False)

    @classmethod
    def from_paths(cls, keys: KeyPaths = ()) -> Policy:
        """A fail-closed policy trusting the public-key files at ``keys``."""
        return cls(load_public_keys(keys))

    @classmethod
    def unsafe_allow_unsigned(cls, keys: KeyPaths = ()) -> Policy:
        """UNSAFE: accept a package that carries no signature at all, so anyone who can write
        the file decides what runs. Signatures that are present are still checked against ``keys``."""
        policy = cls(load_public_keys(keys))
        object.__setattr__(policy, "allow_unsigned", True)  # frozen; only this factory sets it
        return policy


def policy_for(keys: KeyPaths, *, allow_unsigned: bool) -> Policy:
    """The policy a command line's ``--key``/``--allow-unsigned`` flags ask for."""
    return Policy.unsafe_allow_unsigned(keys) if allow_unsigned else Policy.from_paths(keys)


def as_policy(policy: Policy | KeyPaths, keys: KeyPaths | None = None) -> Policy:
    """A policy, or public-key paths (``policy`` or ``keys=``, not both) as shorthand for the
    fail-closed ``Policy.from_paths``: one way in, so nothing given is silently ignored."""
    if keys is not None:
        if isinstance(policy, Policy) or tuple(policy):
            raise TypeError("give trusted keys once: keys=[...] or a Policy, not both")
        return Policy.from_paths(keys)
    return policy if isinstance(policy, Policy) else Policy.from_paths(policy)


@dataclass(frozen=True)
class VerificationResult:
    """Everything verification found, returned rather than raised so every problem is shown at once."""

    path: str
    digest: Digest | None
    manifest: Manifest | None = field(repr=False)
    signatures: tuple[SignatureCheck, ...]
    errors: tuple[str, ...]

    @property
    def ok(self) -> bool:
        """True when no step reported a problem (spec/format.md §9)."""
        return not self.errors

    def raise_for_errors(self) -> None:
        """Raise VerificationError listing every problem, for callers that go on to use the package."""
        if self.errors:
            raise VerificationError(Problem("", e) for e in self.errors)

    def to_json(self) -> dict[str, Any]:
        """The result as ``mpkg verify --json`` prints it."""
        return {
            "ok": self.ok,
            "path": self.path,
            "digest": str(self.digest) if self.digest else None,
            "name": self.manifest.name if self.manifest else None,
            "version": self.manifest.version if self.manifest else None,
            "signatures": [s.to_json() for s in self.signatures],
            "errors": list(self.errors),
        }


def verify(
    path: str | os.PathLike[str],
    policy: Policy | Sequence[str | os.PathLike[str]] = (),
    *,
    keys: Sequence[str | os.PathLike[str]] | None = None,
    progress: Progress | None = None,
) -> VerificationResult:
    """Verify a package completely: layout, manifest, signatures, every byte of every file.
    ``policy`` may be given as public-key paths (or ``keys=``; fail closed); unsigned packages
    pass only under ``Policy.unsafe_allow_unsigned()``."""
    with verified(path, as_policy(policy, keys), progress) as (_, result):
        return result


@contextlib.contextmanager
def verified(
    path: str | os.PathLike[str], policy: Policy, progress: Progress | None = None
) -> Iterator[tuple[PackageFile | None, VerificationResult]]:
    """Open and verify a package; yield the open file (None if it could not be opened) with
    the result, so a caller that goes on to load it uses exactly the bytes that were hashed,
    and hashes them once."""
    try:
        pkg = PackageFile(path)  # step 1: layout
    except Exception as exc:
        yield None, _failed(str(path), exc)
        return
    with pkg:
        try:
            result = verify_open(pkg, policy, progress)
        except Exception as exc:
            result = _failed(pkg.where, exc)
        yield pkg, result


def _failed(where: str, exc: Exception) -> VerificationResult:
    """A refusal as a result (``verify`` never raises for a package). Anything but an MpkgError
    is a bug in mpkg; the package still fails, with one line saying so."""
    if isinstance(exc, MpkgError):
        return VerificationResult(where, None, None, (), tuple(exc.reasons()))
    detail = f"{type(exc).__name__}: {exc}".splitlines()[0][:200] if str(exc) else type(exc).__name__
    reason = f"{where}: mpkg could not check this package ({printable(detail)}); it is refused. Please report this bug"
    return VerificationResult(where, None, None, (), (reason,))


def verify_open(pkg: PackageFile, policy: Policy, progress: Progress | None = None) -> VerificationResult:
    """Steps 2-5 on an already opened (and layout-checked) package: callers that go on to
    read the same file (load) verify exactly the bytes they will use."""
    where = pkg.where
    errors: list[str] = []
    # step 2: the manifest, strictly
    try:
        manifest = Manifest.from_bytes(pkg.manifest_bytes)
    except MpkgError as exc:
        return VerificationResult(where, None, None, (), tuple(f"{where}: {r}" for r in exc.reasons()))
    digest = manifest.digest
    # step 3: the members are exactly the manifest's files, in order, then the manifest, then signatures
    errors.extend(_check_members(pkg, manifest))
    # step 4: signatures against the policy
    checks, sig_errors = _check_signatures(pkg, manifest, policy)
    errors.extend(sig_errors)
    # step 5: every file's size and content digest
    errors.extend(_check_contents(pkg, manifest, progress))
    return VerificationResult(where, digest, manifest, checks, tuple(errors))


def _check_members(pkg: PackageFile, manifest: Manifest) -> list[str]:
    where = pkg.where
    expected = [f.member_name for f in manifest.files] + [MANIFEST_NAME]
    actual = [m.name for m in pkg.members]
    if actual and actual[-1] == SIGNATURES_NAME:
        actual = actual[:-1]
    if actual == expected:
        return []
    problems = []
    missing = [n if n.isprintable() else repr(n) for n in sorted(set(expected) - set(actual))]
    extra = [n if n.isprintable() else repr(n) for n in sorted(set(actual) - set(expected))]
    if missing:
        problems.append(f"{where}: files missing from the archive: {', '.join(missing)}")
    if extra:
        problems.append(f"{where}: files not listed in the manifest: {', '.join(extra)}")
    if not missing and not extra:
        problems.append(f"{where}: members are not in canonical order (files by path, manifest, signatures)")
    return problems


def _check_signatures(
    pkg: PackageFile, manifest: Manifest, policy: Policy
) -> tuple[tuple[SignatureCheck, ...], list[str]]:
    where = pkg.where
    if pkg.signatures_bytes is None:
        if policy.allow_unsigned:
            return (), []
        return (), [f"{where}: the package is not signed; sign it with `mpkg sign` or pass --allow-unsigned"]
    try:
        envelope = Envelope.from_bytes(pkg.signatures_bytes)
    except (SignatureError, FormatError) as exc:
        return (), [f"{where}: {r}" for r in exc.reasons()]
    reason = check_statement(
        envelope.payload, manifest.name, manifest.version, manifest.digest, manifest.format_version
    )
    checks = check_envelope(envelope, policy.keys, reason is None)
    errors = []
    if reason is not None:
        errors.append(f"{where}: {reason}")
    errors.extend(f"{where}: signature by key {c.keyid[:16]}: {c.reason}" for c in checks if c.trusted and not c.valid)
    if not any(c.valid for c in checks) and not policy.allow_unsigned:
        if not policy.keys:
            errors.append(f"{where}: no trusted keys given; pass --key NAME.pub (or --allow-unsigned)")
        elif reason is None and not any(c.trusted for c in checks):
            errors.append(
                f"{where}: no signature by a trusted key (signed by {', '.join(c.keyid[:16] for c in checks)}); "
                "pass the signer's public key with --key"
            )
    return checks, errors


def _check_contents(pkg: PackageFile, manifest: Manifest, progress: Progress | None) -> list[str]:
    errors = []
    for entry in manifest.files:
        member = pkg.by_name.get(entry.member_name)
        if member is None:
            continue  # reported by step 3
        try:
            actual = _digest_member(pkg, entry, member, progress)
        except MpkgError as exc:
            errors.extend(exc.reasons())
            continue
        if actual != entry.digest:
            errors.append(f"{pkg.where}: {entry.path}: content does not match its digest (modified or corrupted)")
    return errors


def _digest_member(pkg: PackageFile, entry: FileEntry, member: Member, progress: Progress | None) -> Digest:
    if member.size != entry.size:
        raise FormatError(f"is {member.size} bytes, the manifest says {entry.size}", f"{pkg.where}: {entry.path}")
    digest = hash_range(pkg.file, member.data_offset, member.size)
    if progress:
        progress(member.size)
    return digest


def verify_or_raise(
    path: str | os.PathLike[str], policy: Policy | Sequence[str | os.PathLike[str]] = ()
) -> VerificationResult:
    """``verify``, raising VerificationError listing every problem instead of returning them."""
    result = verify(path, policy)
    result.raise_for_errors()
    return result


def payload_bytes(pkg: PackageFile, entry: FileEntry) -> bytes:
    """A (small) file's bytes. Callers verify first."""
    return pkg.read(pkg.by_name[entry.member_name])


__all__ = [
    "Policy",
    "VerificationResult",
    "as_policy",
    "payload_bytes",
    "policy_for",
    "verified",
    "verify",
    "verify_open",
    "verify_or_raise",
]
