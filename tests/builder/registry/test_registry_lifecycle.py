"""push/pull/promote/rollback/history/gc with real packages, on a real registry and locally."""

from __future__ import annotations

import datetime as dt
import re
import threading
from collections.abc import Callable
from pathlib import Path

import pytest
from mpkg._internal.format.package import read_info
from mpkg._internal.registry.history import read_events
from mpkg._internal.registry.refs import parse_ref
from mpkg.errors import MpkgError, RegistryError, UsageError, VerificationError
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.local import LocalBackend

from tests.harness.registry import Store, trusting

MakePackage = Callable[..., Path]
Keys = dict[str, tuple[Path, Path]]


def _files(directory: Path) -> list[str]:
    return sorted(p.name for p in directory.iterdir())


# --- push / pull ----------------------------------------------------------------------


def test_push_pull_round_trip_is_byte_identical(store: Store, make_package: MakePackage, tmp_path: Path) -> None:
    pkg = make_package("1.0.0")
    info = read_info(pkg)
    pushed = lifecycle.push(store.backend, store.ref(), pkg)
    assert pushed.ref == f"{store.name}:1.0.0" and pushed.package_digest == info.digest
    assert pushed.uploaded and pushed.tagged
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    pulled = lifecycle.pull(store.backend, store.ref(":1.0.0"), out_dir / "p.mpkg", allow_unsigned=True)
    assert (out_dir / "p.mpkg").read_bytes() == pkg.read_bytes()
    assert pulled.package_digest == info.digest
    by_digest = lifecycle.pull(
        store.backend, store.ref(f"@{pushed.manifest_digest}"), out_dir / "q.mpkg", allow_unsigned=True
    )
    assert (out_dir / "q.mpkg").read_bytes() == pkg.read_bytes()
    assert by_digest.version == "1.0.0"
    assert _files(out_dir) == ["p.mpkg", "q.mpkg"]
    # deterministic manifest: the same package gives the same manifest digest elsewhere
    again = lifecycle.push(store.backend, parse_ref(store.name.replace("team/", "copy/") + ":x"), pkg)
    assert again.manifest_digest == pushed.manifest_digest


def test_push_and_pull_report_progress_byte_for_byte(store: Store, make_package: MakePackage, tmp_path: Path) -> None:
    """The progress callbacks (progress bars on a terminal) see every byte moved, once."""
    pkg = make_package("1.0.0")
    size = pkg.stat().st_size
    seen: dict[str, list[int]] = {"push": [], "pull": []}

    def tracker(kind: str) -> Callable[[int], Callable[[int], None]]:
        def factory(total: int) -> Callable[[int], None]:
            assert total == size
            return seen[kind].append

        return factory

    lifecycle.push(store.backend, store.ref(), pkg, progress=tracker("push"))
    lifecycle.pull(
        store.backend, store.ref(":1.0.0"), tmp_path / "p.mpkg", allow_unsigned=True, progress=tracker("pull")
    )
    assert sum(seen["push"]) == size and sum(seen["pull"]) == size
    assert (tmp_path / "p.mpkg").read_bytes() == pkg.read_bytes()


def test_push_is_idempotent(store: Store, make_package: MakePackage) -> None:
    pkg = make_package("1.0.0")
    lifecycle.push(store.backend, store.ref(), pkg)
    before = len(store.registry.requests()) if store.registry else 0
    other = store.fresh()
    try:
        second = lifecycle.push(other, store.ref(), pkg)
    finally:
        other.close()
    assert not second.uploaded and not second.tagged
    if store.registry is not None:
        new = store.registry.requests()[before:]
        assert not [r for r in new if r.method in ("POST", "PATCH", "PUT")], new
        assert [r for r in new if r.method == "HEAD" and "/blobs/" in r.path]
    events, problems = read_events(store.backend, "team/iris-mlp")
    assert [e.event.action for e in events] == ["push"] and not problems


def test_push_refuses_to_retag_a_version(store: Store, make_package: MakePackage) -> None:
    lifecycle.push(store.backend, store.ref(), make_package("1.0.0"))
    with pytest.raises(RegistryError, match="immutable"):
        lifecycle.push(store.backend, store.ref(), make_package("1.0.0", accuracy=0.5))
    with pytest.raises(UsageError, match="managed by mpkg"):
        lifecycle.push(store.backend, store.ref(":production"), make_package("1.0.0"))


def test_pull_refuses_tampered_blob_and_writes_nothing(store: Store, make_package: MakePackage, tmp_path: Path) -> None:
    pushed = lifecycle.push(store.backend, store.ref(), make_package("1.0.0"))
    blob = store.blob_file(pushed.blob_digest)
    data = bytearray(blob.read_bytes())
    data[len(data) // 2] ^= 0x01
    blob.write_bytes(bytes(data))
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    with pytest.raises(RegistryError, match="tampered"):
        lifecycle.pull(store.backend, store.ref(":1.0.0"), out_dir / "p.mpkg", allow_unsigned=True)
    assert _files(out_dir) == []


def test_pull_refuses_unverifiable_package(store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path) -> None:
    alice_key, alice_pub = keys["alice"]
    _, bob_pub = keys["bob"]
    lifecycle.push(store.backend, store.ref(), make_package("1.0.0"))
    lifecycle.push(store.backend, store.ref(), make_package("2.0.0", key=alice_key))
    out = tmp_path / "out"
    out.mkdir()
    with pytest.raises(VerificationError):  # unsigned, and unsigned is not allowed
        lifecycle.pull(store.backend, store.ref(":1.0.0"), out / "a.mpkg")
    with pytest.raises(VerificationError):  # signed, but not by a trusted key
        lifecycle.pull(store.backend, store.ref(":2.0.0"), out / "b.mpkg", keys=[bob_pub])
    assert _files(out) == []
    lifecycle.pull(store.backend, store.ref(":2.0.0"), out / "b.mpkg", keys=[alice_pub])
    assert _files(out) == ["b.mpkg"]
    with pytest.raises(RegistryError, match="not found"):
        lifecycle.pull(store.backend, store.ref(":9.9.9"), out / "c.mpkg", allow_unsigned=True)


# --- promote / rollback ---------------------------------------------------------------


def _push_versions(store: Store, make_package: MakePackage, **accuracies: float) -> dict[str, lifecycle.PushResult]:
    out = {}
    for version, acc in accuracies.items():
        v = version.lstrip("v").replace("_", ".")
        out[version] = lifecycle.push(store.backend, store.ref(), make_package(v, accuracy=acc))
    return out


def test_promote_with_gates(store: Store, make_package: MakePackage) -> None:
    p = _push_versions(store, make_package, v1_0_0=0.90, v2_0_0=0.95, v3_0_0=0.951)
    b = store.backend
    first = lifecycle.promote(
        b, store.ref(":1.0.0"), "production", requires=["accuracy>=0.85", "accuracy>=production+0.005"]
    )
    assert first.changed and first.source is None
    assert "no holder" in first.gates[1].detail
    second = lifecycle.promote(
        b, store.ref(":2.0.0"), "production", requires=["accuracy>=production+0.005", "log_loss<=production"]
    )
    assert second.source is not None and second.source.version == "1.0.0"
    assert all(g.passed for g in second.gates)
    with pytest.raises(VerificationError, match=re.escape("accuracy=0.951 >= 0.955: fail")):
        lifecycle.promote(b, store.ref(":3.0.0"), "production", requires=["accuracy>=production+0.005"])
    with pytest.raises(VerificationError, match="no finite metric 'f1'"):
        lifecycle.promote(b, store.ref(":3.0.0"), "production", requires=["f1>=0.1"])
    with pytest.raises(UsageError):
        lifecycle.promote(b, store.ref(":3.0.0"), "production", requires=["accuracy >= eval(1)"])
    holder = b.get_manifest("team/iris-mlp", "production")
    assert holder is not None and holder.digest == p["v2_0_0"].manifest_digest
    assert f"archived-1.0.0-{p['v1_0_0'].manifest_digest[7:19]}" in b.list_tags("team/iris-mlp")
    actions = [r.event.action for r in read_events(b, "team/iris-mlp")[0]]
    assert actions == ["push", "push", "push", "promote", "promote"]  # failed gates: no record
    same = lifecycle.promote(b, store.ref(":2.0.0"), "production")
    assert not same.changed


def test_require_signature(store: Store, make_package: MakePackage, keys: Keys) -> None:
    alice_key, alice_pub = keys["alice"]
    _, bob_pub = keys["bob"]
    lifecycle.push(store.backend, store.ref(), make_package("1.0.0"))
    lifecycle.push(store.backend, store.ref(), make_package("2.0.0", key=alice_key))
    with pytest.raises(VerificationError):
        lifecycle.promote(store.backend, store.ref(":1.0.0"), "staging", require_signature=alice_pub)
    with pytest.raises(VerificationError):
        lifecycle.promote(store.backend, store.ref(":2.0.0"), "staging", require_signature=bob_pub)
    assert store.backend.get_manifest("team/iris-mlp", "staging") is None
    ok = lifecycle.promote(store.backend, store.ref(":2.0.0"), "staging", require_signature=alice_pub)
    assert ok.changed and ok.target.version == "2.0.0"


def test_rollback_restores_the_same_digest(store: Store, make_package: MakePackage, tmp_path: Path) -> None:
    p = _push_versions(store, make_package, v1_0_0=0.90, v2_0_0=0.92, v3_0_0=0.93)
    b = store.backend
    for v in ("1.0.0", "2.0.0", "3.0.0"):
        lifecycle.promote(b, store.ref(f":{v}"), "production")
    back = lifecycle.rollback(b, store.ref(), "production")
    assert back.target.manifest == p["v2_0_0"].manifest_digest
    holder = b.get_manifest("team/iris-mlp", "production")
    assert holder is not None and holder.digest == p["v2_0_0"].manifest_digest
    pulled = lifecycle.pull(b, store.ref(":production"), tmp_path / "r.mpkg", allow_unsigned=True)
    assert pulled.package_digest == p["v2_0_0"].package_digest
    assert (tmp_path / "r.mpkg").read_bytes() == make_package("2.0.0", accuracy=0.92).read_bytes()
    again = lifecycle.rollback(b, store.ref(), "production")
    assert again.target.manifest == p["v1_0_0"].manifest_digest
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        lifecycle.rollback(b, store.ref(), "production")
    with pytest.raises(RegistryError, match="no holder"):
        lifecycle.rollback(b, store.ref(), "staging")


# --- history --------------------------------------------------------------------------


def test_history_is_complete_and_signed(store: Store, make_package: MakePackage, keys: Keys) -> None:
    alice_key, alice_pub = keys["alice"]
    _, bob_pub = keys["bob"]
    b = store.backend
    lifecycle.push(b, store.ref(), make_package("1.0.0"), key=alice_key)
    lifecycle.push(b, store.ref(), make_package("2.0.0", accuracy=0.97), key=alice_key)
    lifecycle.promote(b, store.ref(":1.0.0"), "staging", key=alice_key)
    lifecycle.promote(b, store.ref(":1.0.0"), "production", key=alice_key)
    lifecycle.promote(b, store.ref(":2.0.0"), "production", key=alice_key)
    lifecycle.rollback(b, store.ref(), "production", key=alice_key)
    report = lifecycle.history(b, store.ref(), policy=trusting(alice_pub), require_signed=True)
    assert report.ok, report.problems
    moves = [
        (
            r.event.action,
            r.event.stage,
            r.event.source and r.event.source.version,
            r.event.target and r.event.target.version,
        )
        for r in report.events
    ]
    assert moves == [
        ("push", None, None, "1.0.0"),
        ("push", None, None, "2.0.0"),
        ("promote", "staging", None, "1.0.0"),
        ("promote", "production", None, "1.0.0"),
        ("promote", "production", "1.0.0", "2.0.0"),
        ("rollback", "production", "2.0.0", "1.0.0"),
    ]
    assert [r.event.sequence for r in report.events] == list(range(6))
    assert all(r.signature == "verified" for r in report.events)
    assert all(r.event.parents == (prev.digest,) for prev, r in zip(report.events, report.events[1:], strict=False))
    holder = report.holders["production"]
    assert holder is not None and holder == report.events[-1].event.target
    untrusted = lifecycle.history(b, store.ref(), policy=trusting(bob_pub), require_signed=True)
    assert not untrusted.ok and all(r.signature == "untrusted" for r in untrusted.events)
    # removing an interior event breaks the chain, and history says so
    b.delete_manifest("team/iris-mlp", report.events[2].digest)
    broken = lifecycle.history(b, store.ref(), policy=trusting(alice_pub))
    assert any("missing" in p for p in broken.problems)


def test_raced_promotion_voids_itself(store: Store, make_package: MakePackage) -> None:
    """Two promoters plan against the same holder; the later one must not overwrite."""
    p = _push_versions(store, make_package, v1_0_0=0.90, v2_0_0=0.92, v3_0_0=0.93)
    lifecycle.promote(store.backend, store.ref(":1.0.0"), "production")
    other = store.fresh()
    try:
        plan_a = lifecycle.plan_promotion(store.backend, store.ref(":2.0.0"), "production")
        plan_b = lifecycle.plan_promotion(other, store.ref(":3.0.0"), "production")
        won = lifecycle.apply_move(store.backend, plan_a)
        with pytest.raises(RegistryError, match="another promotion won"):
            lifecycle.apply_move(other, plan_b)
    finally:
        other.close()
    assert won.changed
    holder = store.backend.get_manifest("team/iris-mlp", "production")
    assert holder is not None and holder.digest == p["v2_0_0"].manifest_digest
    report = lifecycle.history(store.backend, store.ref())
    assert report.ok, report.problems
    tail = [(r.event.action, r.event.target.version if r.event.target else None) for r in report.events[-3:]]
    assert sorted(tail) == [("promote", "2.0.0"), ("promote", "3.0.0"), ("void", None)]


def test_concurrent_promotions_keep_history_complete(store: Store, make_package: MakePackage) -> None:
    p = _push_versions(store, make_package, v1_0_0=0.90, v2_0_0=0.92, v3_0_0=0.93)
    lifecycle.promote(store.backend, store.ref(":1.0.0"), "production")
    barrier = threading.Barrier(2)
    outcomes: dict[str, object] = {}

    def run(version: str) -> None:
        backend = store.fresh()
        try:
            barrier.wait()
            # whichever goes second may be lower than the first: a downgrade, allowed here (races, not compat)
            outcomes[version] = lifecycle.promote(backend, store.ref(f":{version}"), "production", allow_downgrade=True)
        except MpkgError as exc:
            outcomes[version] = exc
        finally:
            backend.close()

    threads = [threading.Thread(target=run, args=(v,)) for v in ("2.0.0", "3.0.0")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert set(outcomes) == {"2.0.0", "3.0.0"}
    assert all(isinstance(o, lifecycle.MoveResult | RegistryError) for o in outcomes.values())
    report = lifecycle.history(store.backend, store.ref())
    chain_problems = [x for x in report.problems if "moved outside" not in x]
    assert not chain_problems, report.problems
    promoted = {
        r.event.target.version
        for r in report.events  # type: ignore[union-attr]
        if r.event.action == "promote"
    }
    assert promoted == {"1.0.0", "2.0.0", "3.0.0"}  # both racers' moves are recorded
    winners = [v for v, o in outcomes.items() if isinstance(o, lifecycle.MoveResult)]
    holder = store.backend.get_manifest("team/iris-mlp", "production")
    assert holder is not None
    assert holder.digest in {p["v2_0_0"].manifest_digest, p["v3_0_0"].manifest_digest}
    if len(winners) == 2:  # both succeeded: then they were serial, one saw the other
        assert not report.concurrent
    if len(winners) == 1:  # one success: the tag must be that one's
        assert holder.digest == p[f"v{winners[0].replace('.', '_')}"].manifest_digest
    if isinstance(store.backend, LocalBackend):
        assert len(winners) == 2  # the file lock serialises local moves


# --- gc -------------------------------------------------------------------------------


def test_gc_dry_run_then_yes(store: Store, make_package: MakePackage, tmp_path: Path) -> None:
    p = _push_versions(store, make_package, v1_0_0=0.90, v2_0_0=0.92, v3_0_0=0.93)
    b = store.backend
    lifecycle.promote(b, store.ref(":2.0.0"), "staging")
    later = dt.datetime.now(dt.UTC) + dt.timedelta(days=100)
    recent = lifecycle.gc(b, store.ref(), older_than=dt.timedelta(days=90))
    assert recent.candidates == ()
    dry = lifecycle.gc(b, store.ref(), older_than=dt.timedelta(days=90), now=later)
    assert {c.version for c in dry.candidates} == {"1.0.0", "3.0.0"} and not dry.deleted
    assert b.get_manifest("team/iris-mlp", "1.0.0") is not None  # dry run deletes nothing
    done = lifecycle.gc(b, store.ref(), older_than=dt.timedelta(days=90), now=later, yes=True)
    assert done.deleted and {c.version for c in done.candidates} == {"1.0.0", "3.0.0"}
    for v in ("v1_0_0", "v3_0_0"):
        assert b.get_manifest("team/iris-mlp", p[v].manifest_digest) is None
        assert not b.blob_exists("team/iris-mlp", p[v].blob_digest)
    lifecycle.pull(b, store.ref(":2.0.0"), tmp_path / "kept.mpkg", allow_unsigned=True)
    report = lifecycle.history(b, store.ref())
    assert report.ok, report.problems
    assert sorted(
        r.event.target.version
        for r in report.events  # type: ignore[union-attr]
        if r.event.action == "delete"
    ) == ["1.0.0", "3.0.0"]
    assert lifecycle.gc(b, store.ref(), older_than=dt.timedelta(days=90), now=later).candidates == ()
