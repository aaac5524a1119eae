"""Aliases beyond staging/production (champion, canary, eu-production), on a real registry and locally."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest
from mpkg._internal.registry.aliases import alias_problem, check_alias, is_alias
from mpkg._internal.registry.history import read_events
from mpkg.errors import RegistryError, UsageError, VerificationError
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.gates import parse_gate

from tests.conftest import RunMpkg
from tests.harness.registry import Store

MakePackage = Callable[..., Path]
REPO = "team/iris-mlp"


def _push(store: Store, make_package: MakePackage, **accuracies: float) -> dict[str, lifecycle.PushResult]:
    return {
        v: lifecycle.push(store.backend, store.ref(), make_package(v, accuracy=acc)) for v, acc in accuracies.items()
    }


@pytest.mark.parametrize("name", ["champion", "challenger", "canary", "eu-production", "eu-west1", "staging"])
def test_alias_grammar_accepts_role_names(name: str) -> None:
    assert is_alias(name) and check_alias(name) == name


@pytest.mark.parametrize(
    ("name", "why"),
    [
        ("1.0.0", "not an alias"),
        ("1.0.0_build", "not an alias"),
        ("v2", "looks like a version"),
        ("v1-rc", "looks like a version"),
        ("archived-1.0.0-abc", "not an alias"),
        ("archived-champion", "reserved"),
        ("_mpkg-event-00000001-ab", "not an alias"),
        ("Champion", "not an alias"),
        ("eu--production", "not an alias"),
        ("canary-2", "not an alias"),  # would make f1>=canary-2 ambiguous
        ("inf", "reserved"),
        ("nan", "reserved"),
        ("champion\n", "not an alias"),
        ("a" * 64, "not an alias"),
    ],
)
def test_alias_grammar_refuses_versions_reserved_and_malformed_names(name: str, why: str) -> None:
    problem = alias_problem(name)
    assert problem is not None and why in problem
    with pytest.raises(UsageError):
        check_alias(name)


def test_gates_compare_against_any_alias() -> None:
    gate = parse_gate("f1>=eu-production-0.005")
    assert (gate.stage, str(gate.value)) == ("eu-production", "-0.005")
    assert parse_gate("loss<=champion").stage == "champion"
    with pytest.raises(UsageError, match="reserved"):
        parse_gate("f1>=inf")
    with pytest.raises(UsageError, match="looks like a version"):
        parse_gate("f1>=v2")


def test_promote_to_an_alias_has_history_gates_archive_and_rollback(
    store: Store, make_package: MakePackage, tmp_path: Path
) -> None:
    p = _push(store, make_package, **{"1.0.0": 0.90, "1.1.0": 0.95, "1.2.0": 0.951})
    b = store.backend
    first = lifecycle.promote(b, store.ref(":1.0.0"), "champion", requires=["accuracy>=champion+0.005"])
    assert first.changed and first.source is None and "no holder" in first.gates[0].detail
    second = lifecycle.promote(b, store.ref(":1.1.0"), "champion", requires=["accuracy>=champion+0.005"])
    assert second.source is not None and second.source.version == "1.0.0"
    assert second.archived_as == f"archived-1.0.0-{p['1.0.0'].manifest_digest[7:19]}"
    assert second.archived_as in b.list_tags(REPO)
    with pytest.raises(VerificationError, match=re.escape("accuracy=0.951 >= 0.955: fail")):
        lifecycle.promote(b, store.ref(":1.2.0"), "champion", requires=["accuracy>=champion+0.005"])
    with pytest.raises(UsageError, match="'champoin' is no alias of this repository"):
        lifecycle.promote(b, store.ref(":1.2.0"), "canary", requires=["accuracy>=champoin"])
    lifecycle.promote(b, store.ref(":1.2.0"), "canary", requires=["accuracy>=champion"])
    events = read_events(b, REPO)[0]
    assert [(r.event.action, r.event.stage) for r in events][-3:] == [
        ("promote", "champion"),
        ("promote", "champion"),
        ("promote", "canary"),
    ]
    report = lifecycle.history(b, store.ref())
    assert report.ok, report.problems
    held = {k: v.version if v else None for k, v in report.holders.items()}
    assert held == {"staging": None, "production": None, "canary": "1.2.0", "champion": "1.1.0"}
    pulled = lifecycle.pull(b, store.ref(":champion"), tmp_path / "c.mpkg", allow_unsigned=True)
    assert pulled.version == "1.1.0"
    back = lifecycle.rollback(b, store.ref(), "champion")
    assert back.target.manifest == p["1.0.0"].manifest_digest
    assert lifecycle.pull(b, store.ref(":champion"), tmp_path / "c.mpkg", allow_unsigned=True).version == "1.0.0"
    with pytest.raises(RegistryError, match="nothing to roll back to"):
        lifecycle.rollback(b, store.ref(), "champion")
    with pytest.raises(RegistryError, match="no holder"):
        lifecycle.rollback(b, store.ref(), "challenger")


def test_rollback_alias_tag_repointed_is_refused_by_pull(
    store: Store, make_package: MakePackage, tmp_path: Path
) -> None:
    """champion pointed back at 1.0.0 outside mpkg: the alias is checked against the history as production is."""
    p = _push(store, make_package, **{"1.0.0": 0.90, "1.1.0": 0.95})
    b = store.backend
    lifecycle.promote(b, store.ref(":1.0.0"), "champion")
    lifecycle.promote(b, store.ref(":1.1.0"), "champion")
    old = b.get_manifest(REPO, p["1.0.0"].manifest_digest)
    assert old is not None
    b.put_manifest(REPO, "champion", old.data)
    with pytest.raises(RegistryError, match=r"champion names 1\.0\.0 .* the tag was re-pointed"):
        lifecycle.pull(b, store.ref(":champion"), tmp_path / "c.mpkg", allow_unsigned=True)
    assert not (tmp_path / "c.mpkg").exists()
    assert any("champion names 1.0.0" in x for x in lifecycle.history(b, store.ref()).problems)


def test_pushed_tags_and_aliases_never_share_a_name(store: Store, make_package: MakePackage, tmp_path: Path) -> None:
    b = store.backend
    lifecycle.push(b, store.ref(":latest"), make_package("1.0.0"))
    lifecycle.push(b, store.ref(), make_package("1.1.0"))
    # a pushed tag that fits the alias grammar is still an ordinary, immutable tag
    assert lifecycle.pull(b, store.ref(":latest"), tmp_path / "l.mpkg", allow_unsigned=True).version == "1.0.0"
    with pytest.raises(UsageError, match="pushed with `mpkg push`"):
        lifecycle.promote(b, store.ref(":1.1.0"), "latest")
    lifecycle.promote(b, store.ref(":1.1.0"), "champion")
    with pytest.raises(UsageError, match="is an alias"):
        lifecycle.push(b, store.ref(":champion"), make_package("1.2.0"))
    for reserved in ("production", "archived-x", "_mpkg-event-00000009-ab"):
        with pytest.raises(UsageError):
            lifecycle.push(b, store.ref(f":{reserved}"), make_package("1.2.0"))
    with pytest.raises(UsageError, match="looks like a version"):
        lifecycle.promote(b, store.ref(":1.1.0"), "v2")


def test_promote_alias_through_the_cli(run_mpkg: RunMpkg, make_package: MakePackage, tmp_path: Path) -> None:
    env = {"MPKG_HOME": str(tmp_path / "home")}
    run_mpkg("push", str(make_package("1.0.0")), REPO, env=env)
    done = run_mpkg("promote", f"{REPO}:1.0.0", "--to", "eu-production", env=env)
    assert "eu-production" in done.stderr
    shown = run_mpkg("history", REPO, env=env)
    assert "promote eu-production" in shown.stdout and "eu-production: 1.0.0" in shown.stdout
    bad = run_mpkg("promote", f"{REPO}:1.0.0", "--to", "1.0.0", env=env, expect=2)
    assert bad.stderr.count("\n") == 1 and "not an alias" in bad.stderr
