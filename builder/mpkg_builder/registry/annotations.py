"""The listing annotations: what ``push`` writes on a package artifact so ``mpkg ls`` reads no package.

Push derives them from the package file alone (its manifest's metrics, ``lineage.params`` and
``lineage.data`` digests, and the key ids its signature envelope names), so the same file
always yields the same artifact manifest. Each value is compact sorted JSON under a byte
budget: a package with more metrics or params than fit keeps the first ones in key order and
names the cut field in ``dev.mpkg.package.truncated``; the package itself still holds all of
them. Signer key ids are *claimed*, not verified: ``pull --key`` verifies.

Readers get the annotations from a registry, so :func:`read_listing` checks every value
(types, sizes, digest and key-id grammar, printable text) and turns a bad one into a one-line
problem for that version, never an exception. spec/registry.md §2.1.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest as PackageManifest
from mpkg._internal.registry.store import check_depth
from mpkg._internal.trust.signatures import Envelope
from mpkg.errors import MpkgError

LISTING = "dev.mpkg.listing"  # "1": push wrote the annotations below
METRICS = "dev.mpkg.package.metrics"
PARAMS = "dev.mpkg.package.params"
DATA = "dev.mpkg.package.data"
SIGNERS = "dev.mpkg.package.signers"
TRUNCATED = "dev.mpkg.package.truncated"
LISTING_VERSION = "1"

BUDGETS = {METRICS: 32768, PARAMS: 16384, DATA: 16384, SIGNERS: 8192}  # bytes of each JSON value
MAX_TEXT = 256  # a string param longer than this is left out (truncated)
_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_./-]{0,127}\Z", re.ASCII)  # metric and param names (gate grammar)
_DATA_DIGEST = re.compile(r"^(?:sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}|md5:[0-9a-f]{32})\Z", re.ASCII)
_KEYID = re.compile(r"^[0-9a-f]{64}\Z", re.ASCII)
Scalar = str | int | float | bool
NUMBER = re.compile(r"^[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?\Z", re.ASCII)  # gates.py's, signed


def as_number(value: Scalar) -> float | None:
    """A param as a number: numbers, and text that spells one (YAML params often arrive as ``"0.1"``)."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | float):
        return float(value)
    return float(value) if NUMBER.match(value) and math.isfinite(float(value)) else None


def _json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True, allow_nan=False)


def _printable(text: str) -> bool:
    return text.isprintable() and len(text) <= MAX_TEXT


def _scalar(value: Any) -> bool:
    if isinstance(value, str):
        return _printable(value)
    return isinstance(value, bool | int) or (isinstance(value, float) and math.isfinite(value))


def _flatten(params: Mapping[str, Any], prefix: str = "", depth: int = 0) -> tuple[dict[str, Scalar], bool]:
    """Nested params as dotted names (``optimizer.lr``); what cannot be listed is reported as cut."""
    out: dict[str, Scalar] = {}
    cut = False
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and depth < 4:
            inner, inner_cut = _flatten(value, f"{name}.", depth + 1)
            out.update(inner)
            cut |= inner_cut
        elif _NAME.match(name) and _scalar(value):
            out[name] = value
        else:
            cut = True
    return out, cut


def _fit(value: Mapping[str, Any] | list[Any], budget: int) -> tuple[Any, bool]:
    """As many entries (in key order) as fit ``budget`` bytes of JSON, and whether any were cut."""
    entries = sorted(value.items()) if isinstance(value, Mapping) else list(enumerate(value))
    kept: list[tuple[Any, Any]] = []
    size = 2
    for k, entry in entries:
        size += len(_json({str(k): entry})) - 1
        if size > budget:
            break
        kept.append((k, entry))
    cut = len(kept) < len(entries)
    return (dict(kept) if isinstance(value, Mapping) else [e for _, e in kept]), cut


def _signers(package: Path) -> list[str]:
    """The key ids the package's signature envelope names (claimed; unsigned or unreadable: none)."""
    try:
        with PackageFile(package) as pkg:
            data = pkg.signatures_bytes
        return [s.keyid for s in Envelope.from_bytes(data).signatures if _KEYID.match(s.keyid)] if data else []
    except MpkgError:
        return []


def _data_digest(item: Mapping[str, Any]) -> str | None:
    """A dataset's digest: ``digest``, or a DVC entry's ``md5`` (``sha256``, ``sha512``) as ``ALGO:HEX``."""
    candidates = [item.get("digest"), *(f"{a}:{item[a]}" for a in ("sha256", "sha512", "md5") if a in item)]
    return next((c for c in candidates if isinstance(c, str) and _DATA_DIGEST.match(c)), None)


def listing_annotations(package: Path, manifest: PackageManifest) -> dict[str, str]:
    """The annotations ``mpkg ls`` reads, derived from the package file (same file, same values)."""
    metrics = manifest.metrics  # names as the manifest allows them: the history page charts every one
    params, params_cut = _flatten(manifest.lineage.get("params") or {})
    data = sorted({d for item in manifest.lineage.get("data") or [] if (d := _data_digest(item)) is not None})
    fields: dict[str, Any] = {METRICS: metrics, PARAMS: params, DATA: data, SIGNERS: _signers(package)}
    cut: list[str] = []
    cut += ["params"] if params_cut else []
    out = {LISTING: LISTING_VERSION}
    for key, value in fields.items():
        kept, over = _fit(value, BUDGETS[key])
        out[key] = _json(kept)
        if over:
            cut.append(key.rsplit(".", 1)[1])
    if cut:
        out[TRUNCATED] = ",".join(sorted(set(cut)))
    return out


@dataclass(frozen=True)
class Listing:
    """What a version's annotations say, checked; ``problems`` are one line each, for that version only."""

    annotated: bool  # push wrote the listing annotations (False: pushed by an older mpkg)
    metrics: Mapping[str, float] = field(default_factory=dict)
    params: Mapping[str, Scalar] = field(default_factory=dict)
    data: tuple[str, ...] = ()
    signers: tuple[str, ...] = ()
    truncated: tuple[str, ...] = ()
    problems: tuple[str, ...] = ()


def _parse(raw: Any, key: str, problems: list[str]) -> Any:
    if raw is None:
        return None
    if not isinstance(raw, str) or len(raw) > BUDGETS[key] * 2:
        problems.append(f"annotation {key} is not a string of at most {BUDGETS[key] * 2} bytes; ignored")
        return None
    try:
        check_depth(raw.encode(), key, 4)
        return json.loads(raw, parse_constant=lambda c: None)
    except (MpkgError, ValueError):
        problems.append(f"annotation {key} is not JSON; ignored")
        return None


def read_listing(annotations: Any) -> Listing:
    """Check a version's annotations as a registry sent them: bad values are dropped and named."""
    if not isinstance(annotations, Mapping):
        return Listing(False, problems=("the artifact has no annotations object",))
    problems: list[str] = []
    metrics = _parse(annotations.get(METRICS), METRICS, problems) or {}
    params = _parse(annotations.get(PARAMS), PARAMS, problems) or {}
    data = _parse(annotations.get(DATA), DATA, problems) or []
    signers = _parse(annotations.get(SIGNERS), SIGNERS, problems) or []
    if not isinstance(metrics, dict) or not all(
        isinstance(k, str) and _printable(k) and _scalar(v) and not isinstance(v, str | bool)
        for k, v in metrics.items()
    ):
        problems.append(f"annotation {METRICS} is not an object of finite numbers; ignored")
        metrics = {}
    if not isinstance(params, dict) or not all(
        isinstance(k, str) and _NAME.match(k) and _scalar(v) for k, v in params.items()
    ):
        problems.append(f"annotation {PARAMS} is not an object of names to numbers or short text; ignored")
        params = {}
    if not isinstance(data, list) or not all(isinstance(d, str) and _DATA_DIGEST.match(d) for d in data):
        problems.append(f"annotation {DATA} is not a list of dataset digests; ignored")
        data = []
    if not isinstance(signers, list) or not all(isinstance(s, str) and _KEYID.match(s) for s in signers):
        problems.append(f"annotation {SIGNERS} is not a list of key ids; ignored")
        signers = []
    truncated = annotations.get(TRUNCATED, "")
    if not isinstance(truncated, str) or not re.fullmatch(r"[a-z,]{0,64}", truncated, re.ASCII):
        problems.append(f"annotation {TRUNCATED} is malformed; ignored")
        truncated = ""
    return Listing(
        annotations.get(LISTING) == LISTING_VERSION,
        metrics,
        params,
        tuple(data),
        tuple(signers),
        tuple(t for t in truncated.split(",") if t),
        tuple(problems),
    )
