"""Someone with write access to the registry lies about tags and history (TUF's attack names),
against the real registry process and the local store. Each test states the attack, shows what
it got before (where that was a wrong package or a silent success) and that it is refused now."""

from __future__ import annotations

import datetime as dt
import json
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mpkg._internal.format.package import read_manifest
from mpkg._internal.registry.history import Event, RecordedEvent, now_text, read_events
from mpkg._internal.registry.refs import parse_ref
from mpkg._internal.registry.seen import SeenHeads
from mpkg._internal.registry.store import DSSE_LAYER_TYPE, EVENT_ARTIFACT_TYPE, EVENT_LAYER_TYPE, digest_bytes
from mpkg._internal.registry.trust import HistoryPolicy, load_history
from mpkg._internal.trust.signatures import load_public_keys
from mpkg.errors import MpkgError, RegistryError, UsageError, VerificationError
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.backend import artifact_manifest, canonical_json
from mpkg_builder.registry.record import Signer, current_user, event_tag, write_event

from tests.harness.registry import Store

MakePackage = Callable[..., Path]
Keys = dict[str, tuple[Path, Path]]
REPO = "team/iris-mlp"


def _policy(*pubs: Path, seen: SeenHeads | None = None, since_head: str | None = None) -> HistoryPolicy:
    return HistoryPolicy(load_public_keys(pubs), seen, None, since_head)


def _signed_history(store: Store, make_package: MakePackage, keys: Keys) -> dict[str, lifecycle.PushResult]:
    """1.0.0 and 2.0.0 pushed and promoted to production in turn, every event signed by alice;
    3.0.0 pushed and promoted to staging."""
    alice = keys["alice"][0]
    b, pushed = store.backend, {}
    for v, acc in (("1.0.0", 0.90), ("2.0.0", 0.92), ("3.0.0", 0.93)):
        pushed[v] = lifecycle.push(b, store.ref(), make_package(v, accuracy=acc, key=alice), key=alice)
    lifecycle.promote(b, store.ref(":1.0.0"), "production", key=alice)
    lifecycle.promote(b, store.ref(":2.0.0"), "production", key=alice)
    lifecycle.promote(b, store.ref(":3.0.0"), "staging", key=alice)
    return pushed


def _forge(store: Store, action: str, **fields: Any) -> str:
    """Write one unsigned event straight into the store, linked to the newest event (what an
    attacker with write access and no key can do)."""
    last = _events(store)[-1]
    event = Event(REPO, last.event.sequence + 1, (last.digest,), action, now_text(), "mallory", **fields)
    return write_event(store.backend, REPO, event, None)


@pytest.fixture
def out(tmp_path: Path) -> Path:
    """An empty directory for pulled packages: refused pulls must leave it empty."""
    path = tmp_path / "out"
    path.mkdir()
    return path


def _client_home(store: Store, tmp_path: Path) -> Path:
    """MPKG_HOME for a CLI client: the local store lives there, a registry client keeps its marks there."""
    return store.home if store.home is not None else tmp_path / "client"


def _events(store: Store) -> list[RecordedEvent]:
    return read_events(store.backend, REPO)[0]


# --- rollback: tags re-pointed to older signed packages -----------------------------------


def test_rollback_version_tag_repointed_to_an_older_signed_package(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path, out: Path
) -> None:
    """Tag 2.0.0 is pointed at the 1.0.0 manifest: before, `pull repo:2.0.0 --key` wrote 1.0.0."""
    pushed = _signed_history(store, make_package, keys)
    alice_pub = keys["alice"][1]
    old = store.backend.get_manifest(REPO, pushed["1.0.0"].manifest_digest)
    assert old is not None
    store.backend.put_manifest(REPO, "2.0.0", old.data)
    with pytest.raises(MpkgError, match=r"holds version 1\.0\.0, not the 2\.0\.0 its tag names"):
        lifecycle.pull(store.backend, store.ref(":2.0.0"), out / "p.mpkg", keys=[alice_pub])
    assert not list(out.iterdir())
    report = lifecycle.history(store.backend, store.ref(), policy=_policy(alice_pub), require_signed=True)
    assert not report.ok
    assert any(":2.0.0 names" in p and "re-pointed outside mpkg" in p for p in report.problems), report.problems


def test_rollback_version_tag_with_forged_annotations_is_caught_by_the_package_itself(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path, out: Path
) -> None:
    """The attacker also writes an artifact whose annotations claim 2.0.0 around the 1.0.0 blob:
    only the verified package can tell, and it does."""
    pushed = _signed_history(store, make_package, keys)
    one = pushed["1.0.0"]
    layer = {"mediaType": "application/vnd.mpkg.package.v1.tar", "digest": one.blob_digest, "size": one.size}
    annotations = {
        "dev.mpkg.package.name": "iris-mlp",
        "dev.mpkg.package.version": "2.0.0",
        "dev.mpkg.package.digest": one.package_digest,
    }
    store.backend.put_manifest(
        REPO, "2.0.0", artifact_manifest("application/vnd.mpkg.package.v1", [layer], annotations)
    )
    with pytest.raises(VerificationError, match=r"holds version 1\.0\.0, not the 2\.0\.0"):
        lifecycle.pull(store.backend, store.ref(":2.0.0"), out / "p.mpkg", keys=[keys["alice"][1]])
    assert not list(out.iterdir())


def test_arbitrary_package_from_another_repository_is_refused(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path, out: Path
) -> None:
    """A signed package of another model, copied under this repository's tag: the repository
    names the package it holds, so the name is checked (on the claim and on the package)."""
    package = make_package("1.0.0", key=keys["alice"][0])
    pushed = lifecycle.push(store.backend, store.ref(), package)
    manifest = store.backend.get_manifest(REPO, pushed.manifest_digest)
    assert manifest is not None
    other = "team/fraud-detector"  # the attacker copies the artifact over, blobs and all
    store.backend.push_blob_file(other, package, pushed.blob_digest, pushed.size)
    store.backend.push_blob_bytes(other, read_manifest(package).encoded)
    store.backend.put_manifest(other, "1.0.0", manifest.data)
    ref = parse_ref(store.name.replace(REPO, other) + ":1.0.0")
    with pytest.raises(RegistryError, match="holds package 'iris-mlp', but the repository is named after"):
        lifecycle.pull(store.backend, ref, out / "p.mpkg", keys=[keys["alice"][1]])
    assert not list(out.iterdir())


def test_rollback_stage_tag_repointed_to_the_previous_holder(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path, out: Path
) -> None:
    """production is pointed back at 1.0.0 outside mpkg: pull of the stage refuses it, history
    reports it, and the next promotion repairs the tag (and says so in its event)."""
    pushed = _signed_history(store, make_package, keys)
    alice_key, alice_pub = keys["alice"]
    old = store.backend.get_manifest(REPO, pushed["1.0.0"].manifest_digest)
    assert old is not None
    store.backend.put_manifest(REPO, "production", old.data)
    policy = _policy(alice_pub)
    with pytest.raises(
        RegistryError, match=r"production names 1\.0\.0 .* put 2\.0\.0 \(.*\) there: the tag was re-pointed"
    ):
        lifecycle.pull(store.backend, store.ref(":production"), out / "p.mpkg", keys=[alice_pub], policy=policy)
    assert not list(out.iterdir())
    report = lifecycle.history(store.backend, store.ref(), policy=policy)
    assert any("production names 1.0.0" in p for p in report.problems), report.problems
    repaired = lifecycle.promote(store.backend, store.ref(":2.0.0"), "production", key=alice_key, policy=policy)
    assert repaired.changed and any("repairs the tag" in n for n in repaired.notes)
    assert "repairs the tag" in " ".join(_events(store)[-1].event.notes)
    pulled = lifecycle.pull(store.backend, store.ref(":production"), out / "p.mpkg", keys=[alice_pub], policy=policy)
    assert pulled.version == "2.0.0"


def test_mix_and_match_stage_tag_names_another_stages_package(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path, out: Path
) -> None:
    """production is pointed at staging's (newer, signed) package: a state that never existed."""
    pushed = _signed_history(store, make_package, keys)
    staging = store.backend.get_manifest(REPO, pushed["3.0.0"].manifest_digest)
    assert staging is not None
    store.backend.put_manifest(REPO, "production", staging.data)
    alice_pub = keys["alice"][1]
    with pytest.raises(RegistryError, match=r"production names 3\.0\.0 .* put 2\.0\.0 \(.*\) there"):
        lifecycle.pull(
            store.backend, store.ref(":production"), out / "p.mpkg", keys=[alice_pub], policy=_policy(alice_pub)
        )


# --- arbitrary events: forged, untrusted, altered -------------------------------------------


def test_arbitrary_package_forged_unsigned_event_moves_rollback_only_without_keys(
    store: Store, make_package: MakePackage, keys: Keys
) -> None:
    """The attacker writes one unsigned promote event saying 3.0.0 held production before 2.0.0.
    Before, `rollback --key` followed it and put 3.0.0 in production. With trusted keys every
    command that reads the history now refuses, naming the event."""
    pushed = _signed_history(store, make_package, keys)
    alice_key, alice_pub = keys["alice"]
    events = _events(store)
    two = next(r.event.target for r in events if r.event.action == "push" and r.event.target.version == "2.0.0")
    three = next(r.event.target for r in events if r.event.action == "push" and r.event.target.version == "3.0.0")
    forged = _forge(store, action="promote", stage="production", source=three, target=two)
    policy = _policy(alice_pub)
    name = f"history event {events[-1].event.sequence + 1} ({forged[:19]})"
    for attempt in (
        lambda: lifecycle.rollback(store.backend, store.ref(), "production", key=alice_key, policy=policy),
        lambda: lifecycle.promote(store.backend, store.ref(":3.0.0"), "production", key=alice_key, policy=policy),
        lambda: lifecycle.gc(store.backend, store.ref(), older_than=dt.timedelta(0), policy=policy),
        lambda: lifecycle.push(store.backend, store.ref(), make_package("4.0.0"), key=alice_key, policy=policy),
    ):
        with pytest.raises(RegistryError) as err:
            attempt()
        assert any(name in line and "it is not signed" in line for line in err.value.reasons()), err.value.reasons()
    report = lifecycle.history(store.backend, store.ref(), policy=policy, require_signed=True)
    assert not report.ok and any(name in p for p in report.problems)
    holder = store.backend.get_manifest(REPO, "production")
    assert holder is not None and holder.digest == pushed["2.0.0"].manifest_digest  # nothing moved
    # without keys the history is unauthenticated: the forged event is believed (and the CLI says so)
    moved = lifecycle.rollback(store.backend, store.ref(), "production")
    assert moved.target.version == "3.0.0"


def test_arbitrary_package_event_signed_by_an_untrusted_key_is_refused(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path, out: Path
) -> None:
    _signed_history(store, make_package, keys)
    bob = Signer.load(keys["bob"][0])
    events = _events(store)
    last = events[-1]
    event = Event(REPO, last.event.sequence + 1, (last.digest,), "void", now_text(), "bob", bob.keyid, "production")
    forged = write_event(store.backend, REPO, event, bob)
    alice_pub = keys["alice"][1]
    with pytest.raises(RegistryError, match=rf"\({forged[:19]}\): it is signed by key {bob.keyid[:16]}, which is not"):
        lifecycle.pull(
            store.backend,
            store.ref(":production"),
            out / "p.mpkg",
            keys=[alice_pub],
            policy=_policy(alice_pub),
        )
    # trusting bob as well accepts it
    assert load_history(store.backend, REPO, _policy(alice_pub, keys["bob"][1])).ok


def test_arbitrary_package_altered_event_with_a_borrowed_signature_is_refused(
    store: Store, make_package: MakePackage, keys: Keys
) -> None:
    """A forged event carries a real, valid envelope of another event: the envelope signs other bytes."""
    _signed_history(store, make_package, keys)
    events = _events(store)
    last = events[-1]
    manifest = store.backend.get_manifest(REPO, last.digest)
    assert manifest is not None
    envelope_layer = manifest.json()["layers"][1]
    payload = canonical_json(
        Event(
            REPO, last.event.sequence + 1, (last.digest,), "void", now_text(), current_user(), last.event.key
        ).to_json()
    )
    layers = [
        {"mediaType": EVENT_LAYER_TYPE, "digest": store.backend.push_blob_bytes(REPO, payload), "size": len(payload)},
        {"mediaType": DSSE_LAYER_TYPE, "digest": envelope_layer["digest"], "size": envelope_layer["size"]},
    ]
    data = artifact_manifest(EVENT_ARTIFACT_TYPE, layers, {})
    store.backend.put_manifest(REPO, event_tag(last.event.sequence + 1, digest_bytes(data)), data)
    history = load_history(store.backend, REPO)  # even without keys an altered event is a problem
    assert any("signs other bytes than the event" in p for p in history.problems), history.problems


def test_every_registry_command_honours_mpkg_keys(
    store: Store,
    make_package: MakePackage,
    keys: Keys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
    out: Path,
) -> None:
    """MPKG_KEYS alone (no flag) makes push, pull of a stage, promote, rollback, history and gc
    refuse the forged event, each in one line naming it."""
    from mpkg.cli import main

    _signed_history(store, make_package, keys)
    forged = _forge(store, action="void", stage="production")
    monkeypatch.setenv("MPKG_HOME", str(_client_home(store, tmp_path)))
    monkeypatch.setenv("MPKG_KEYS", str(keys["alice"][1]))
    insecure = ["--insecure"] if store.registry else []
    name = store.name
    sign = ["--key", str(keys["alice"][0])]
    commands = [
        ["push", str(make_package("4.0.0")), name, *sign],
        ["pull", f"{name}:production", "-o", str(out / "p.mpkg")],
        ["promote", f"{name}:3.0.0", "--to", "production", *sign],
        ["rollback", name, "--stage", "production", *sign],
        ["history", name],
        ["gc", name, "--older-than", "1d"],
    ]
    for argv in commands:
        code = main([*argv, *insecure])
        err = capsys.readouterr().err
        assert code == 1, (argv, err)
        assert f"({forged[:19]}): it is not signed" in err, (argv, err)
        if argv[0] != "history":  # history lists everything it found; the others stop at the first
            assert len(err.strip().splitlines()) == 1, (argv, err)
    assert not (out / "p.mpkg").exists()


def test_unauthenticated_history_is_said_loudly(
    store: Store,
    make_package: MakePackage,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from mpkg.cli import main

    monkeypatch.setenv("MPKG_HOME", str(_client_home(store, tmp_path)))
    monkeypatch.delenv("MPKG_KEYS", raising=False)
    insecure = ["--insecure"] if store.registry else []
    lifecycle.push(store.backend, store.ref(), make_package("1.0.0"))
    assert main(["promote", f"{store.name}:1.0.0", "--to", "staging", *insecure]) == 0
    assert "history of " + store.name + " is unauthenticated" in capsys.readouterr().err
    assert main(["history", store.name, "--json", *insecure]) == 0
    captured = capsys.readouterr()
    assert '"authenticated": false' in captured.out and "unauthenticated" in captured.err


# --- freeze and truncation: the high-water mark ---------------------------------------------


def test_freeze_truncated_history_is_refused_by_a_client_that_saw_more(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path
) -> None:
    """Deleting the newest events left `history --require-signed` "ok" before. A client that saw
    them now refuses the shorter history, until told the reset was deliberate."""
    _signed_history(store, make_package, keys)
    seen = SeenHeads(tmp_path / "client")
    alice_pub = keys["alice"][1]
    assert load_history(store.backend, REPO, _policy(alice_pub, seen=seen)).ok
    newest = _events(store)[-2:]
    for r in newest:
        store.backend.delete_manifest(REPO, r.digest)
    truncated = load_history(store.backend, REPO, _policy(alice_pub, seen=seen))
    assert len(truncated.problems) == 1
    assert "is shorter than the one this client saw" in truncated.problems[0]
    assert "--forget-seen" in truncated.problems[0]
    with pytest.raises(RegistryError, match="is shorter than"):
        lifecycle.rollback(
            store.backend, store.ref(), "production", key=keys["alice"][0], policy=_policy(alice_pub, seen=seen)
        )
    assert seen.forget(store.backend.origin, REPO)
    assert load_history(store.backend, REPO, _policy(alice_pub, seen=seen)).ok


def test_freeze_rewritten_history_is_a_fork(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path
) -> None:
    """The whole history is replaced by another one at least as long: it forks from what was seen."""
    _signed_history(store, make_package, keys)
    seen = SeenHeads(tmp_path / "client")
    assert load_history(store.backend, REPO, _policy(seen=seen)).ok
    events = _events(store)
    store.backend.delete_manifest(REPO, events[-1].digest)
    parents: tuple[str, ...] = (events[-2].digest,)
    for i in range(3):
        parents = (
            write_event(
                store.backend,
                REPO,
                Event(REPO, events[-2].event.sequence + 1 + i, parents, "void", now_text(), "mallory"),
                None,
            ),
        )
    history = load_history(store.backend, REPO, _policy(seen=seen))
    assert len(history.problems) == 1 and "forks from the one this client saw" in history.problems[0]


def test_freeze_first_time_client_is_protected_only_by_a_pinned_head(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path
) -> None:
    """A client that never saw the repository cannot tell an old view from the current one; a
    head pinned in CI (``--since-head``) can."""
    _signed_history(store, make_package, keys)
    alice_pub = keys["alice"][1]
    head = load_history(store.backend, REPO, _policy(alice_pub)).head
    assert len(head) == 1
    store.backend.delete_manifest(REPO, head[0])
    assert load_history(store.backend, REPO, _policy(alice_pub, seen=SeenHeads(tmp_path / "new"))).ok  # not seen
    pinned = load_history(store.backend, REPO, _policy(alice_pub, since_head=head[0]))
    assert any(f"the pinned head {head[0]} is not in the history" in p for p in pinned.problems)


def test_fast_forward_unsigned_future_event_does_not_move_the_mark(
    store: Store, make_package: MakePackage, keys: Keys, tmp_path: Path
) -> None:
    """An attacker appends an event so clients remember it, then removes it so they refuse the
    real history forever. With keys the unsigned event is refused and never remembered."""
    _signed_history(store, make_package, keys)
    seen = SeenHeads(tmp_path / "client")
    policy = _policy(keys["alice"][1], seen=seen)
    assert load_history(store.backend, REPO, policy).ok
    before = seen.load(store.backend.origin, REPO)
    forged = _forge(store, action="void", stage="production")
    assert not load_history(store.backend, REPO, policy).ok
    assert seen.load(store.backend.origin, REPO) == before
    store.backend.delete_manifest(REPO, forged)
    assert load_history(store.backend, REPO, policy).ok  # no denial of service


def test_high_water_mark_never_moves_back_under_concurrent_clients(
    store: Store, make_package: MakePackage, tmp_path: Path
) -> None:
    """Clients advancing the mark at once with older and newer views: the newest view wins, the
    file is always whole."""
    lifecycle.push(store.backend, store.ref(), make_package("1.0.0"))
    for _ in range(5):
        _forge(store, action="void", stage="staging")
    events = _events(store)
    seen = SeenHeads(tmp_path / "client")
    views = [events[: n + 1] for n in range(len(events))] * 4
    barrier = threading.Barrier(len(views))

    def advance(view: list[RecordedEvent]) -> None:
        barrier.wait()
        seen.advance(store.backend.origin, REPO, view)

    threads = [threading.Thread(target=advance, args=(v,)) for v in views]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    head = seen.load(store.backend.origin, REPO)
    assert head is not None and head.tips == (events[-1].digest,) and head.events == len(events)
    assert not seen.check(store.backend.origin, REPO, events)


def test_freeze_through_the_cli_and_a_deliberate_reset(
    store: Store,
    make_package: MakePackage,
    keys: Keys,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """`mpkg history` remembers the head, refuses the truncated history in one line that says how
    to reset, `--forget-seen` resets; `--since-head` pins a head for a first-time client (CI)."""
    from mpkg.cli import main

    _signed_history(store, make_package, keys)
    monkeypatch.setenv("MPKG_HOME", str(_client_home(store, tmp_path)))
    monkeypatch.setenv("MPKG_KEYS", str(keys["alice"][1]))
    insecure = ["--insecure"] if store.registry else []
    assert main(["history", store.name, "--json", *insecure]) == 0
    head = json.loads(capsys.readouterr().out)["head"]
    mark = SeenHeads(_client_home(store, tmp_path)).path(store.backend.origin, REPO)
    assert json.loads(mark.read_text())["tips"] == head
    store.backend.delete_manifest(REPO, head[0])
    assert main(["history", store.name, *insecure]) == 1
    problems = [line for line in capsys.readouterr().err.splitlines() if "shorter than" in line]
    assert len(problems) == 1 and f"mpkg history {store.name} --forget-seen" in problems[0]
    assert main(["history", store.name, "--forget-seen", *insecure]) == 1  # the staging tag now disagrees
    err = capsys.readouterr().err
    assert "forgot the history head" in err and "shorter than" not in err and "set outside mpkg" in err
    assert main(["history", store.name, "--since-head", head[0], *insecure]) == 1
    assert f"the pinned head {head[0]} is not in the history" in capsys.readouterr().err
    assert main(["history", store.name, "--since-head", "abc", *insecure]) == 2


def test_keyed_clients_write_only_events_keyed_clients_accept(
    store: Store, make_package: MakePackage, keys: Keys
) -> None:
    """With trusted keys, writing an unsigned event (or one signed by an untrusted key) would
    poison the history for every keyed client: refused before anything is read or written."""
    alice_key, alice_pub = keys["alice"]
    _signed_history(store, make_package, keys)
    before = _events(store)
    policy = _policy(alice_pub)
    for key in (None, keys["bob"][0]):
        with pytest.raises(UsageError, match="must be signed by one of them"):
            lifecycle.promote(store.backend, store.ref(":1.0.0"), "production", key=key, policy=policy)
        with pytest.raises(UsageError, match="must be signed by one of them"):
            lifecycle.push(store.backend, store.ref(), make_package("4.0.0"), key=key, policy=policy)
    assert [r.digest for r in _events(store)] == [r.digest for r in before]
    lifecycle.rollback(store.backend, store.ref(), "production", key=alice_key, policy=policy)
    assert load_history(store.backend, REPO, policy).ok
