"""Runtime commands: verify, inspect, unpack."""

from __future__ import annotations

import argparse
from typing import Any

from mpkg._internal.commandline import add_key_options, emit_json, exit_code, info, trusted_keys
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.format.package import manifest_of
from mpkg._internal.io.progress import progress_bar
from mpkg._internal.trust.signatures import Envelope, SignatureCheck
from mpkg._internal.trust.verify import Policy, VerificationResult, policy_for, verified

from .errors import EXIT_FAILED, MpkgError, UsageError, printable


def register(sub: Any) -> None:
    """Add verify, inspect and unpack to the `mpkg` parser."""
    p = sub.add_parser("verify", help="verify a package: layout, digests, signatures")
    p.add_argument("package")
    add_key_options(p)
    p.add_argument("--env", action="store_true", help="also compare this Python environment with the lockfile")
    p.add_argument("--run", action="store_true", help="also load it and replay the stored example")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_verify)

    p = sub.add_parser("inspect", help="show what a package holds (does not verify contents)")
    p.add_argument("package")
    p.add_argument("--json", action="store_true")
    add_html_options(p)
    p.set_defaults(handler=cmd_inspect)

    p = sub.add_parser("unpack", help="verify, then extract safely into a new directory")
    p.add_argument("package")
    p.add_argument("directory")
    add_key_options(p)
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_unpack)


def _policy(args: argparse.Namespace) -> Policy:
    """The trust policy of ``--key``/``--allow-unsigned``."""
    return policy_for(trusted_keys(args), allow_unsigned=args.allow_unsigned)


def cmd_verify(args: argparse.Namespace) -> int:
    """`mpkg verify`: every step of spec/format.md §10, then optionally the environment and a run."""
    policy = _policy(args)
    total = _size(args.package)
    with (
        progress_bar("verifying", total, not args.json) as advance,
        verified(args.package, policy, advance) as (pkg, result),
    ):
        doc = result.to_json()
        errors = list(result.errors)
        if result.ok and result.manifest is not None and args.env:
            from mpkg._internal.load.environment import check_environment

            env_problems = check_environment(result.manifest)
            doc["environment"] = {"ok": not env_problems, "mismatches": env_problems}
            errors.extend(f"environment: {p}" for p in env_problems)
        if result.ok and args.run:
            assert pkg is not None
            smoke_errors = _smoke_test(pkg, result, args.package)
            doc["smoke_test"] = {"ok": not smoke_errors, **({"errors": smoke_errors} if smoke_errors else {})}
            errors.extend(smoke_errors)
    doc["ok"] = not errors
    doc["errors"] = errors
    if args.json:
        emit_json(doc)
    else:
        for sig in result.signatures:
            info(f"signature {sig.keyid[:16]}: {_signature_state(sig, policy)}")
        for line in errors:
            info(f"mpkg: {line}")
        if not errors:
            assert result.manifest is not None
            info(f"ok: {result.manifest.name} {result.manifest.version} {result.digest}")
    return exit_code(not errors)


def _signature_state(sig: SignatureCheck, policy: Policy) -> str:
    """A signature no trusted key covers was not checked: it is neither valid nor invalid."""
    if sig.valid:
        return f"valid ({sig.reason})"
    if not sig.trusted:
        return "not checked: " + ("no trusted key given" if not policy.keys else "signed by a key not trusted here")
    return f"NOT valid ({sig.reason})"


def _smoke_test(pkg: PackageFile, result: VerificationResult, where: str) -> list[str]:
    """Load the verified package from the same open file and replay its stored example."""
    from mpkg._internal.load.model import from_verified

    try:
        with from_verified(pkg, result) as model:
            model.smoke_test()
    except MpkgError as exc:  # every line names the package file, once
        return [(r if where in r else f"{where}: {r}").splitlines()[0] for r in exc.reasons()]
    except Exception as exc:  # the package's own code failed: report it, never a traceback
        return [f"{where}: the package code raised {type(exc).__name__}: {exc}".splitlines()[0]]
    return []


def _size(path: str) -> int:
    try:
        import os

        return os.stat(path).st_size
    except OSError:
        return 0


def describe(pkg: PackageFile, manifest: Manifest) -> dict[str, Any]:
    """What `mpkg inspect --json` shows: the manifest and the signatures' key ids (unverified)."""
    doc = describe_manifest(manifest, pkg.size)
    if pkg.signatures_bytes is not None:
        try:
            env = Envelope.from_bytes(pkg.signatures_bytes)
            doc["signatures"] = [{"keyid": s.keyid} for s in env.signatures]
        except MpkgError as exc:
            doc["signatures"] = [{"error": r} for r in exc.reasons()]
    return doc


def describe_manifest(manifest: Manifest, size: int) -> dict[str, Any]:
    """What `mpkg inspect --json` shows of a manifest (signatures: none yet)."""
    raw = manifest.raw
    doc: dict[str, Any] = {
        "name": manifest.name,
        "version": manifest.version,
        "description": manifest.description,
        "digest": str(manifest.digest),
        "format_version": manifest.format_version,
        "size": size,
        "model": {"format": manifest.model_format, "files": list(manifest.model_files)},
        "files": [f.to_json() for f in manifest.files],
        "contract": manifest.contract.to_json(),
        "card": dict(manifest.card),
        "lineage": dict(manifest.lineage),
        "environment": dict(manifest.environment),
        "code": raw.get("code"),
        "example": raw.get("example"),
        "base": raw.get("base"),
        "signatures": [],
    }
    return doc


def add_html_options(p: argparse.ArgumentParser) -> None:
    """--html and the options that only mean something with it."""
    p.add_argument("--html", metavar="OUT.html", help="also write the package as a self-contained HTML report")
    add_key_options(p, help="with --html: check signatures against it (also $MPKG_KEYS)", allow_unsigned=False)
    p.add_argument("--base", action="append", default=[], metavar="PKG", help="with --html: follow the base chain")


def cmd_inspect(args: argparse.Namespace) -> int:
    """`mpkg inspect`: what a package says it holds, without verifying it."""
    if args.html is None and (args.key or args.base):
        raise UsageError("--key and --base only apply with --html OUT.html", "--key" if args.key else "--base")
    if args.html is not None:
        from .report import require

        require()
    with PackageFile(args.package) as pkg:
        manifest = manifest_of(pkg)
        doc = describe(pkg, manifest)
        if args.html is not None:
            _write_inspect_report(args, pkg, manifest)
    if args.json:
        emit_json(doc)
        return 0
    print(describe_text(doc))
    return 0


def _write_inspect_report(args: argparse.Namespace, pkg: PackageFile, manifest: Manifest) -> None:
    from mpkg._internal.format.package import read_manifest
    from mpkg._internal.trust.signatures import load_public_keys

    from .report import page
    from .report.inspect import describe_page

    keys = load_public_keys(trusted_keys(args))
    bases = [read_manifest(path) for path in args.base]
    page.write(args.html, describe_page(pkg, manifest, keys, bases))
    info(f"wrote {args.html}")


def describe_text(doc: dict[str, Any]) -> str:
    """The human listing, one line per entry, every line escaped: nothing here is verified."""
    lines: list[str] = []
    out = lines.append
    out(f"{doc['name']} {doc['version']}  {doc['digest']}")
    if doc["description"]:
        out(f"  {doc['description']}")
    out(f"  format v{doc['format_version']}, model {doc['model']['format']}, {doc['size']} bytes")
    out("files:")
    for f in doc["files"]:
        out(f"  {f['size']:>12}  {f['encoding']:<8} {f['role']:<11} {f['path']}  {f['digest'][:23]}…")
    out("contract:")
    for side in ("inputs", "outputs"):
        for field in doc["contract"][side]:
            flags = [k for k in ("optional", "nullable") if field.get(k)]
            extra = f" [{', '.join(flags)}]" if flags else ""
            out(f"  {side[:-1]:<6} {field['name']!r}: {field['dtype']}{field['shape']}{extra}")
    if doc["contract"].get("extra") == "ignore":
        out("  inputs the contract does not name: ignored")
    meta = doc["card"].get("metadata") or {}
    scalars = [f"{k}={meta[k]}" for k in sorted(meta) if isinstance(meta[k], (str, int, float))]
    if scalars:
        out("card: " + ", ".join(scalars))
    metrics = doc["lineage"].get("metrics") or {}
    if metrics:
        out("metrics: " + ", ".join(f"{k}={v}" for k, v in sorted(metrics.items())))
    params = doc["lineage"].get("params") or {}
    if isinstance(params, dict) and params:
        out("params: " + ", ".join(f"{k}={v}" for k, v in _flat(params)))
    for item in doc["lineage"].get("data") or []:
        if isinstance(item, dict):
            digest = item.get("md5") or item.get("hash") or item.get("digest")
            size = f" ({item['size']} bytes)" if isinstance(item.get("size"), int) else ""
            out(f"data: {item.get('path') or item.get('uri')} {digest}{size}")
    git = doc["lineage"].get("git")
    if git:
        subdir = f" in {git['subdir']}/" if git.get("subdir") else ""
        out(f"git: {git.get('commit')}{' (dirty)' if git.get('dirty') else ''}{subdir}")
    origin = doc["lineage"].get("origin")
    if isinstance(origin, dict) and origin:
        out("origin: " + ", ".join(f"{k}={v}" for k, v in sorted(origin.items()) if isinstance(v, (str, int, float))))
    env = doc["environment"]
    out(
        f"environment: {env.get('kind')} {len(env.get('packages', []))} packages"
        + (f", python {env['requires_python']}" if env.get("requires_python") else "")
    )
    if doc["signatures"]:
        for s in doc["signatures"]:
            out(f"signature: {s.get('keyid', s.get('error'))}")
    else:
        out("signatures: none")
    return "\n".join(printable(line) for line in lines)


def _flat(doc: dict[str, Any], prefix: str = "") -> list[tuple[str, Any]]:
    """Nested parameters as (dotted name, value), in order."""
    out: list[tuple[str, Any]] = []
    for key, value in sorted(doc.items()):
        name = f"{prefix}{key}"
        out.extend(_flat(value, f"{name}.") if isinstance(value, dict) else [(name, value)])
    return out


def cmd_unpack(args: argparse.Namespace) -> int:
    """`mpkg unpack`: verify, then write the files into a new folder."""
    from mpkg._internal.unpack import unpack

    result = unpack(args.package, args.directory, _policy(args))
    if args.json:
        emit_json({**result.to_json(), "directory": args.directory})
    else:
        info(f"unpacked {result.digest} into {args.directory}")
    return 0 if result.ok else EXIT_FAILED
