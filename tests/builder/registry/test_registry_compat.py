"""The promotion compatibility gate: a MAJOR change or a lower version never reaches a stage
silently; the gate reads two manifests, never a package, on a real registry and locally."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
from mpkg._internal.registry.history import read_events
from mpkg.cli import main
from mpkg.errors import VerificationError
from mpkg_builder.registry import lifecycle

from tests.harness.registry import Store

MakePackage = Callable[..., Path]
REPO = "team/iris-mlp"


def _blob_reads(store: Store, since: int, blobs: set[str]) -> list[str]:
    """Package blobs the registry served since request ``since`` (none for the local store)."""
    if store.registry is None:
        return []
    return [r.path for r in store.registry.requests()[since:] if r.method == "GET" and r.path.split("/")[-1] in blobs]


def test_promotion_refuses_a_major_change_naming_its_findings(store: Store, make_package: MakePackage) -> None:
    """2.0.0's `label` output lost its enum (output-enum-widened): consumers of production break."""
    b = store.backend
    one = lifecycle.push(b, store.ref(), make_package("1.0.0"))
    two = lifecycle.push(b, store.ref(), make_package("2.0.0", major=True))
    lifecycle.promote(b, store.ref(":1.0.0"), "production")
    since = len(store.registry.requests()) if store.registry else 0
    with pytest.raises(VerificationError) as err:
        lifecycle.promote(b, store.ref(":2.0.0"), "production")
    (line,) = err.value.reasons()
    assert line.startswith("--allow-major: iris-mlp 2.0.0 is a MAJOR change from 1.0.0 in production")
    assert "output-enum-widened (outputs.label" in line and "Pass --allow-major" in line
    holder = b.get_manifest(REPO, "production")
    assert holder is not None and holder.digest == one.manifest_digest
    assert [r.event.action for r in read_events(b, REPO)[0]][-1] == "promote"  # the refusal recorded nothing
    allowed = lifecycle.promote(b, store.ref(":2.0.0"), "production", allow_major=True)
    assert allowed.changed and allowed.compat is not None and allowed.compat.overrides == ("allow-major",)
    event = read_events(b, REPO)[0][-1].event
    assert event.overrides == ("allow-major",)
    assert any(n.startswith("compat: major change from 1.0.0 to 2.0.0 (output-enum-widened") for n in event.notes)
    assert _blob_reads(store, since, {one.blob_digest, two.blob_digest}) == []  # manifests only


def test_promotion_refuses_a_downgrade_and_rollback_stays_allowed(store: Store, make_package: MakePackage) -> None:
    b = store.backend
    lifecycle.push(b, store.ref(), make_package("1.0.0", accuracy=0.90))
    lifecycle.push(b, store.ref(), make_package("1.1.0", accuracy=0.95))
    lifecycle.promote(b, store.ref(":1.0.0"), "production")
    minor = lifecycle.promote(b, store.ref(":1.1.0"), "production")
    assert minor.compat is not None and minor.compat.overrides == () and not minor.compat.major
    with pytest.raises(VerificationError, match=r"--allow-downgrade: 1\.0\.0 is lower than 1\.1\.0 in production"):
        lifecycle.promote(b, store.ref(":1.0.0"), "production")
    back = lifecycle.rollback(b, store.ref(), "production")  # the way back is never gated
    assert back.target.version == "1.0.0" and back.compat is None
    lifecycle.promote(b, store.ref(":1.1.0"), "production")
    down = lifecycle.promote(b, store.ref(":1.0.0"), "production", allow_downgrade=True)
    assert down.changed and read_events(b, REPO)[0][-1].event.overrides == ("allow-downgrade",)


def test_cli_promote_gate_in_one_line(
    store: Store,
    make_package: MakePackage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MPKG_HOME", str(store.home or tmp_path / "client"))
    insecure = ["--insecure"] if store.registry else []
    lifecycle.push(store.backend, store.ref(), make_package("1.0.0"))
    lifecycle.push(store.backend, store.ref(), make_package("2.0.0", major=True))
    assert main(["promote", f"{store.name}:1.0.0", "--to", "staging", *insecure]) == 0
    capsys.readouterr()
    assert main(["promote", f"{store.name}:2.0.0", "--to", "staging", *insecure]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("mpkg: --allow-major: iris-mlp 2.0.0 is a MAJOR change"), err
    assert main(["promote", f"{store.name}:2.0.0", "--to", "staging", "--allow-major", "--json", *insecure]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["compat"]["bump"] == "major" and doc["compat"]["overrides"] == ["allow-major"]
    assert doc["compat"]["major_findings"][0]["rule"] == "output-enum-widened"
    assert main(["history", store.name, "--json", *insecure]) == 0
    events = json.loads(capsys.readouterr().out)["events"]
    assert events[-1]["overrides"] == ["allow-major"]


def _push_like_mpkg_0_1(store: Store, package: Path) -> str:
    """Store a package as mpkg 0.1 did: the empty config, and a push event whose tag carries only
    12 hex digits of its digest. Returns the artifact's manifest digest."""
    from mpkg._internal.format.package import read_info
    from mpkg._internal.registry.history import Event, PackageRef, now_text
    from mpkg._internal.registry.store import (
        EMPTY_DATA,
        EVENT_ARTIFACT_TYPE,
        EVENT_LAYER_TYPE,
        PACKAGE_ARTIFACT_TYPE,
        PACKAGE_LAYER_TYPE,
        digest_bytes,
    )
    from mpkg_builder.registry.backend import artifact_manifest, canonical_json, sha256_file

    b, info = store.backend, read_info(package)
    blob, size = sha256_file(package)
    b.push_blob_bytes(REPO, EMPTY_DATA)
    b.push_blob_file(REPO, package, blob, size)
    annotations = {
        "dev.mpkg.package.name": info.name,
        "dev.mpkg.package.version": info.version,
        "dev.mpkg.package.digest": info.digest,
    }
    layer = {"mediaType": PACKAGE_LAYER_TYPE, "digest": blob, "size": size}
    data = artifact_manifest(PACKAGE_ARTIFACT_TYPE, [layer], annotations)
    digest = b.put_manifest(REPO, info.version, data)
    target = PackageRef(digest, info.digest, info.name, info.version, blob, size)
    payload = canonical_json(Event(REPO, 0, (), "push", now_text(), "old", target=target).to_json())
    event_layer = {"mediaType": EVENT_LAYER_TYPE, "digest": b.push_blob_bytes(REPO, payload), "size": len(payload)}
    event = artifact_manifest(EVENT_ARTIFACT_TYPE, [event_layer], {})
    b.put_manifest(REPO, f"_mpkg-event-00000000-{digest_bytes(event)[7:19]}", event)
    return digest


def test_artifacts_and_events_written_by_mpkg_0_1_stay_readable(
    store: Store, make_package: MakePackage, tmp_path: Path
) -> None:
    """An old artifact has no manifest config: it still pulls, a re-push leaves it in place, and
    the gate reads its manifest from the package (downloading it, the one case that does)."""
    old_package = make_package("1.0.0")
    old = _push_like_mpkg_0_1(store, old_package)
    history = lifecycle.history(store.backend, store.ref())
    assert history.ok and [r.event.action for r in history.events] == ["push"], history.problems
    again = lifecycle.push(store.backend, store.ref(), old_package)
    assert not again.tagged and again.manifest_digest == old
    lifecycle.pull(store.backend, store.ref(":1.0.0"), tmp_path / "p.mpkg", allow_unsigned=True)
    assert (tmp_path / "p.mpkg").read_bytes() == old_package.read_bytes()
    lifecycle.promote(store.backend, store.ref(":1.0.0"), "production")
    new = lifecycle.push(store.backend, store.ref(), make_package("2.0.0", major=True))
    since = len(store.registry.requests()) if store.registry else 0
    with pytest.raises(VerificationError, match="output-enum-widened"):
        lifecycle.promote(store.backend, store.ref(":2.0.0"), "production")
    old_blob = again.blob_digest
    assert _blob_reads(store, since, {new.blob_digest}) == []
    if store.registry is not None:
        assert _blob_reads(store, since, {old_blob}), "the old holder's package is read: it has no config"
