"""`mpkg history --html` on the local store: versions, stage spans, holders, metric trends."""

from __future__ import annotations

import datetime as dt
import json
import shutil
from pathlib import Path

import pytest
from mpkg._internal.registry.artifact import ANNOTATION_METRICS, PACKAGE_ARTIFACT_TYPE
from mpkg._internal.registry.history import Event, RecordedEvent, now_text
from mpkg._internal.registry.refs import parse_ref
from mpkg._internal.registry.store import EMPTY_DATA
from mpkg._internal.registry.trust import HistoryPolicy, load_history
from mpkg._internal.trust.signatures import key_id, load_public_keys
from mpkg.cli import main
from mpkg_builder.build import build_package
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.backend import artifact_manifest
from mpkg_builder.registry.local import LocalBackend
from mpkg_builder.registry.record import append_event
from mpkg_builder.report.history import Signed, collect_versions, history_page, metrics_annotation, stage_spans
from mpkg_builder.signing import load_private_key

from tests.conftest import Built


@pytest.fixture
def store(built: Built, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> LocalBackend:
    """team/iris-mlp: 1.0.0 and 1.1.0 pushed (signed), both through staging, production moved
    to 1.1.0 and rolled back to 1.0.0."""
    home = tmp_path / "home"
    monkeypatch.setenv("MPKG_HOME", str(home))
    backend = LocalBackend(home)
    src = tmp_path / "v2"
    shutil.copytree(built.sources["iris-mlp"], src)
    toml = (src / "mpkg.toml").read_text()
    (src / "mpkg.toml").write_text(toml.replace('version = "1.0.0"', 'version = "1.1.0"'))
    (src / "metrics.json").write_text(json.dumps({"accuracy": {"test": 0.99, "train": 0.99}}))
    v2 = tmp_path / "v2.mpkg"
    build_package(src, v2, key=built.key)
    for package in (built.signed["iris-mlp"], v2):
        lifecycle.push(backend, parse_ref("team/iris-mlp"), package, key=built.key)
    for version, stage in (
        ("1.0.0", "staging"),
        ("1.1.0", "staging"),
        ("1.0.0", "production"),
        ("1.1.0", "production"),
    ):
        lifecycle.promote(backend, parse_ref(f"team/iris-mlp:{version}"), stage, key=built.key)
    lifecycle.rollback(backend, parse_ref("team/iris-mlp"), "production", key=built.key)
    return backend


def test_versions_moves_holders_and_spans(store: LocalBackend, built: Built) -> None:
    policy = HistoryPolicy(load_public_keys([built.pub]))
    report = lifecycle.history(store, parse_ref("team/iris-mlp"), policy=policy)
    assert report.authenticated and report.ok
    versions = collect_versions(store, report)
    assert [v.version for v in versions] == ["1.0.0", "1.1.0"]
    v1, v2 = versions
    assert v1.holds == ["production"] and v2.holds == ["staging"]
    assert [(m.action, m.stage) for m in v1.moves] == [
        ("promote", "staging"),
        ("promote", "production"),
        ("rollback", "production"),
    ]
    assert v1.pushed is not None and v1.pushed.by.status == "verified"
    assert v1.pushed.by.key == key_id(load_private_key(built.key).public_key())
    assert v1.metrics == {"accuracy.test": 0.9667, "accuracy.train": 0.9833, "log_loss.test": 0.0483}
    assert v2.metrics == {"accuracy.test": 0.99, "accuracy.train": 0.99}
    now = dt.datetime.now(dt.UTC)
    spans = [(s.lane, s.stage) for s in stage_spans(versions, now)]
    # staging: 1.0.0 then 1.1.0 (still); production: 1.0.0, 1.1.0, back to 1.0.0 (still)
    assert sorted(spans) == [(0, "production"), (0, "production"), (0, "staging"), (1, "production"), (1, "staging")]


def test_history_html_through_the_cli(store: LocalBackend, built: Built, tmp_path: Path) -> None:
    out = tmp_path / "h.html"
    assert main(["history", "team/iris-mlp", "--html", str(out)]) == 0
    html = out.read_text()
    assert html.count('<tr>\n<td class="mono">1.') == 2
    assert ">not checked<" in html and ">invalid<" not in html  # signed events, no key given
    assert "<strong>Unauthenticated:</strong> no trusted keys were given" in html and "Authenticated:" not in html
    signer = key_id(load_private_key(built.key).public_key())
    events = html.split('id="events"', 1)[1]
    assert events.count(f'title="{signer}"') == events.count("<li class=") == 7  # each event's signer key id
    assert events.count('<span class="s-unknown">not checked</span>') == 7
    assert html.count('class="chart"') == 1 + 3  # the timeline and three metric trends
    assert "holds production" in html and "holds staging" in html
    assert 'id="events"' in html and "rollback" in html


def test_history_html_with_keys_says_authenticated(store: LocalBackend, built: Built, tmp_path: Path) -> None:
    out = tmp_path / "h.html"
    assert main(["history", "team/iris-mlp", "--key", str(built.pub), "--html", str(out)]) == 0
    html = out.read_text()
    assert "<strong>Authenticated:</strong> every event carries a valid signature" in html
    assert "nauthenticated" not in html and ">not checked<" not in html
    events = html.split('id="events"', 1)[1]
    assert events.count('<span class="s-ok">verified</span>') == events.count("<li class=") == 7


def test_forged_history_writes_no_html_report(
    store: LocalBackend, built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Attack: an unsigned event appended by whoever can write to the registry (here: a promotion
    of 1.1.0). With keys the policy refuses the history, so `history --html` fails like every
    other command: no page presents the forged event as the record, one line names it."""
    history = load_history(store, "team/iris-mlp")
    append_event(history, store, "promote", None, stage="production", target=history.events[1].event.target)
    out = tmp_path / "h.html"
    assert main(["history", "team/iris-mlp", "--key", str(built.pub), "--html", str(out)]) == 1
    assert not out.exists() and list(tmp_path.glob("*.html*")) == []
    err = capsys.readouterr().err.splitlines()
    forged = [line for line in err if "history event 7 (" in line]
    assert len(forged) == 1 and forged[0].startswith("mpkg: team/iris-mlp: history event 7 (sha256:")
    assert "it is not signed; with trusted keys every event must carry a valid signature" in forged[0]
    assert err[-1] == f"mpkg: {out}: no report written: the history was refused; `mpkg history` without --html lists it"
    # without --html the same command lists the events and the problem (exit 1)
    assert main(["history", "team/iris-mlp", "--key", str(built.pub)]) == 1
    listed = capsys.readouterr()
    assert "[none]" in listed.out and "history event 7 (" in listed.err


def test_repointed_stage_tag_is_reported_first_on_the_page(store: LocalBackend, built: Built, tmp_path: Path) -> None:
    """Attack: production re-pointed outside mpkg (rollback by tag). The history itself is
    accepted, so the page is written, with the tag problem first, and the command fails."""
    newer = store.get_manifest("team/iris-mlp", "1.1.0")
    assert newer is not None
    store.put_manifest("team/iris-mlp", "production", newer.data)
    out = tmp_path / "h.html"
    assert main(["history", "team/iris-mlp", "--key", str(built.pub), "--html", str(out)]) == 1
    html = out.read_text()
    problems = html.index("The history has problems")
    assert problems < html.index('id="versions"')
    assert "team/iris-mlp:production names 1.1.0" in html and "re-pointed outside mpkg" in html


def test_versions_page_without_events_for_ls(store: LocalBackend) -> None:
    report = lifecycle.history(store, parse_ref("team/iris-mlp"))
    html = history_page("team/iris-mlp", collect_versions(store, report), holders=report.holders)
    assert "mpkg versions report" in html and 'id="events"' not in html and 'id="versions"' in html


def test_signer_words_follow_the_reader_and_the_keys_given() -> None:
    """The key shown is the envelope's; an unsigned event's claim to a key is not a signer."""
    event = Event("team/iris-mlp", 0, (), "push", now_text(), "eve", "f" * 64)
    digest = "sha256:" + "0" * 64
    unsigned = RecordedEvent(digest, event, "none", None, "it is not signed")
    assert Signed.of(unsigned, authenticated=False) == Signed("eve", None, "unsigned", "it is not signed")
    other = RecordedEvent(digest, event, "untrusted", "a" * 64, "it is signed by key aaaa, which is not trusted here")
    assert Signed.of(other, authenticated=False).status == "not checked"
    assert Signed.of(other, authenticated=True) == Signed("eve", "a" * 64, "untrusted", other.reason)
    good = RecordedEvent(digest, event, "verified", "b" * 64)
    assert Signed.of(good, authenticated=True) == Signed("eve", "b" * 64, "verified", "")
    bad = RecordedEvent(digest, event, "invalid", "b" * 64, "bad signature: the event was altered")
    assert Signed.of(bad, authenticated=False).status == "invalid"


def test_metrics_annotation_keeps_finite_numbers_only(tmp_path: Path) -> None:
    backend = LocalBackend(tmp_path / "home")
    backend.push_blob_bytes("r", EMPTY_DATA)

    def artifact(metrics: str) -> str:
        data = artifact_manifest(PACKAGE_ARTIFACT_TYPE, [], {ANNOTATION_METRICS: metrics})
        return backend.put_manifest("r", f"t{abs(hash(metrics))}", data)

    assert metrics_annotation(backend, "r", artifact('{"a": 1, "b": {"c": 2.5}, "d": "x", "e": 1e999}')) == (
        {"a": 1.0, "b.c": 2.5},
        "",
    )
    assert metrics_annotation(backend, "r", artifact("{not json")) == ({}, "its metrics annotation is not JSON")
    assert metrics_annotation(backend, "r", artifact("[1, 2]")) == ({}, "")
    missing = "sha256:" + "0" * 64
    assert metrics_annotation(backend, "r", missing) == ({}, "no longer in the store")
