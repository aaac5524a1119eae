"""Malformed numbers and mistyped fields: every command answers one line and exits 1.

Each package here is signed by a trusted key and valid except for one field (or one tar
number), so nothing but the parser stands between it and code that trusts the field's type.
Before: `inspect` gave tracebacks (IndexError, AttributeError, TypeError), `verify` said ok,
and a PAX size of '²' or of 5,000 digits made `mpkg.verify()` raise ValueError.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from mpkg._internal.format import canonical, layout
from mpkg._internal.format.manifest import MANIFEST_NAME, Manifest
from mpkg._internal.trust.verify import Policy, verify
from mpkg.errors import MpkgError

from tests.attacks.checks import Keys, unpack_refused
from tests.attacks.craft import archive, base_files, manifest_doc, member, package, pax_header, pax_record, write
from tests.conftest import RunMpkg
from tests.manifestgen import documents, rich_doc

_LOCK = "environment/requirements.lock"
_WEIGHTS = {"format": "safetensors", "files": ["model/w.safetensors"]}

# attack name -> (manifest overrides, the field the refusal must name)
MISTYPED: dict[str, tuple[dict[str, Any], str]] = {
    "card-metadata-list": ({"card": {"path": "card/MODEL_CARD.md", "metadata": [1, 2]}}, "card.metadata"),
    "card-metadata-string": ({"card": {"path": "card/MODEL_CARD.md", "metadata": "x"}}, "card.metadata"),
    "lineage-git-string": ({"lineage": {"git": "0123abc"}}, "lineage.git"),
    "lineage-git-dirty-string": ({"lineage": {"git": {"commit": "0" * 40, "dirty": "no"}}}, "lineage.git.dirty"),
    "requires-python-integer": (
        {"environment": {"lockfile": _LOCK, "kind": "requirements", "packages": [], "requires_python": 3}},
        "environment.requires_python",
    ),
    "architecture-list": ({"model": {**_WEIGHTS, "architecture": []}}, "model.architecture"),
    "architecture-tensors-string": (
        {"model": {**_WEIGHTS, "architecture": {"kind": "safetensors", "tensors": "x"}}},
        "model.architecture.tensors",
    ),
    "architecture-tensor-shape-strings": (
        {
            "model": {
                **_WEIGHTS,
                "architecture": {
                    "kind": "safetensors",
                    "tensors": [{"file": "model/w.safetensors", "name": "w", "dtype": "F32", "shape": ["2"]}],
                },
            }
        },
        "model.architecture.tensors[0].shape[0]",
    ),
    "metrics-string": ({"lineage": {"metrics": {"auc": "0.9"}}}, "lineage.metrics.auc"),
    "name-trailing-newline": ({"name": "victim\n"}, "name"),
    "version-unicode-digit": ({"version": "1\u0661.0.0"}, "version"),
}


def _pax_size_member(size_text: str) -> bytes:
    """The card member, with its size in a PAX record written as ``size_text``."""
    card = base_files()[0]
    ustar = layout.member_header(card.path, len(card.data))[-layout.BLOCK :]
    return pax_header(pax_record("size", size_text)) + ustar + card.data + b"\0" * layout.padding(len(card.data))


# attack name -> PAX size text
MALFORMED_NUMBERS = {
    "pax-size-superscript-two": "\u00b2",  # str.isdigit() is True, int() raises ValueError
    "pax-size-arabic-indic-digits": "\u0661\u0662",  # int() accepts it: 12
    "pax-size-5000-digits": "1" * 5000,  # int() refuses over 4,300 digits (ValueError)
    "pax-size-fullwidth-digit": "\uff11",
    "pax-size-negative": "-1",
    "pax-size-empty": "",
}


@pytest.fixture(scope="module")
def good(tmp_path_factory: pytest.TempPathFactory, keys: Keys) -> Path:
    return write(tmp_path_factory.mktemp("good") / "good.mpkg", package(keys=[keys.a.key]))


def _mistyped(tmp: Path, keys: Keys, name: str) -> Path:
    overrides, _ = MISTYPED[name]
    return write(tmp / f"{name}.mpkg", package(doc=manifest_doc(base_files(), **overrides), keys=[keys.a.key]))


def _malformed_number(tmp: Path, keys: Keys, name: str) -> Path:
    files = base_files()
    manifest = canonical.dumps(manifest_doc(files))
    chunks = [_pax_size_member(MALFORMED_NUMBERS[name]), *(member(f.member, f.stored) for f in files[1:])]
    return write(tmp / f"{name}.mpkg", archive([*chunks, member(MANIFEST_NAME, manifest)]))


def _every_command_refuses(run_mpkg: RunMpkg, pkg: Path, good: Path, pub: Path, tmp: Path, field: str) -> None:
    """verify, inspect, unpack and diff (both ways): exit 1, every stderr line one reason
    naming the package (run_mpkg itself asserts there is no traceback)."""
    commands: list[list[str | Path]] = [
        ["verify", pkg, "--key", pub],
        ["verify", pkg, "--key", pub, "--run"],
        ["inspect", pkg],
        ["unpack", pkg, tmp / "out", "--key", pub],
        ["diff", good, pkg],
        ["diff", pkg, good],
    ]
    for args in commands:
        proc = run_mpkg(*args, expect=1)
        lines = proc.stderr.strip().splitlines()
        assert lines and all(line.startswith("mpkg: ") for line in lines), (args, proc.stderr)
        assert any(str(pkg) in line and field in line for line in lines), (args, field, proc.stderr)
    assert not (tmp / "out").exists()


@pytest.mark.parametrize("attack", sorted(MISTYPED))
def test_mistyped_field(run_mpkg: RunMpkg, tmp_path: Path, keys: Keys, good: Path, attack: str) -> None:
    pkg = _mistyped(tmp_path, keys, attack)
    field = MISTYPED[attack][1]
    result = verify(pkg, [keys.a.pub])  # never raises
    assert not result.ok and any(f"mpkg/manifest.json: {field}:" in e for e in result.errors), result.errors
    with pytest.raises(MpkgError, match=field.replace("[", r"\[").replace("]", r"\]")):
        _load(pkg, keys.a.pub)
    _every_command_refuses(run_mpkg, pkg, good, keys.a.pub, tmp_path, field)


@pytest.mark.parametrize("attack", sorted(MALFORMED_NUMBERS))
def test_malformed_pax_number(run_mpkg: RunMpkg, tmp_path: Path, keys: Keys, good: Path, attack: str) -> None:
    pkg = _malformed_number(tmp_path, keys, attack)
    result = verify(pkg, Policy.unsafe_allow_unsigned())  # never raises
    assert result.errors == (f"{pkg} (member at byte 0): has a malformed PAX size (not 1-20 ASCII digits)",)
    with pytest.raises(MpkgError, match="malformed PAX size"):
        _load(pkg, keys.a.pub)
    unpack_refused(pkg, tmp_path, "malformed PAX size")
    _every_command_refuses(run_mpkg, pkg, good, keys.a.pub, tmp_path, "malformed PAX size")


def _load(pkg: Path, pub: Path) -> None:
    import mpkg

    mpkg.load(pkg, [pub])


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents())
def test_whatever_the_parser_accepts_every_reader_handles(doc: dict[str, Any]) -> None:
    """inspect's listing, diff against a valid package (both ways) and the environment check
    run on every generated manifest the parser accepts, without an exception."""
    from mpkg._internal.load.environment import check_environment
    from mpkg.commands import describe_manifest, describe_text
    from mpkg_builder.diff import diff_manifests

    try:
        data = canonical.dumps(doc)
        manifest = Manifest.from_bytes(data)
    except (MpkgError, TypeError, ValueError):
        return
    reference = Manifest.from_json(rich_doc())
    assert all("\n" not in line for line in describe_text(describe_manifest(manifest, 0)).splitlines())
    for old, new in ((reference, manifest), (manifest, reference)):
        with contextlib.suppress(MpkgError):
            diff_manifests(old, new).to_json()
    check_environment(manifest, lookup=lambda name: None)
