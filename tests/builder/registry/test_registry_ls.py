"""`mpkg ls`: every version from its annotations, filtered and sorted, on a real registry and locally."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from mpkg._internal.registry.cache import DiskCache
from mpkg._internal.registry.refs import parse_ref
from mpkg._internal.registry.trust import HistoryPolicy
from mpkg.errors import UsageError
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.annotations import LISTING, METRICS, PARAMS, TRUNCATED, listing_annotations
from mpkg_builder.registry.listing import list_versions
from mpkg_builder.registry.oci import OciBackend
from mpkg_builder.registry.query import parse_where, sort_rows

from tests.conftest import EXAMPLES, RunMpkg
from tests.harness.registry import RegistryProcess, Store

MakePackage = Callable[..., Path]
Keys = dict[str, tuple[Path, Path]]
REPO = "team/iris-mlp"


def _rows(store: Store, *wheres: str, sort: str | None = None) -> list[tuple[str, tuple[str, ...]]]:
    found = list_versions(store.backend, store.ref())
    kept = [r for r in found.rows if all(parse_where(w).matches(r, found.rows) for w in wheres)]
    return [(r.version, r.aliases) for r in sort_rows(kept, sort)]


def test_ls_lists_every_version_with_its_annotations(store: Store, make_package: MakePackage, keys: Keys) -> None:
    alice_key, _ = keys["alice"]
    b = store.backend
    lifecycle.push(b, store.ref(), make_package("1.0.0", accuracy=0.90))
    lifecycle.push(b, store.ref(), make_package("1.1.0", accuracy=0.97, key=alice_key))
    lifecycle.push(b, store.ref(), make_package("1.2.0", accuracy=0.95))
    lifecycle.promote(b, store.ref(":1.1.0"), "production")
    lifecycle.promote(b, store.ref(":1.2.0"), "champion")
    found = list_versions(b, store.ref())
    assert not found.warnings and all(not r.warnings for r in found.rows)
    by = {r.version: r for r in found.rows}
    assert set(by) == {"1.0.0", "1.1.0", "1.2.0"}
    signed = by["1.1.0"]
    assert signed.aliases == ("production",) and signed.tags == ("1.1.0",)
    assert signed.listing.metrics == {"accuracy": 0.97, "log_loss": 0.0483}
    assert len(signed.listing.signers) == 1 and len(signed.listing.signers[0]) == 64
    assert by["1.0.0"].listing.signers == ()
    assert signed.listing.params["train.learning_rate"] == "0.1" and signed.listing.params["model.hidden"] == 16
    assert signed.listing.data == ("md5:04ed69383af337e9dabf934cbc8abc11",)
    assert signed.pushed is not None and signed.pushed.endswith("Z")
    assert (
        signed.package
        == lifecycle.push(b, store.ref(), make_package("1.1.0", accuracy=0.97, key=alice_key)).package_digest
    )

    assert _rows(store, sort="-accuracy") == [("1.1.0", ("production",)), ("1.2.0", ("champion",)), ("1.0.0", ())]
    assert _rows(store, "accuracy>=0.95", "data=md5:04ed69383af337e9dabf934cbc8abc11") == [
        ("1.1.0", ("production",)),
        ("1.2.0", ("champion",)),
    ]
    assert _rows(store, "stage=production") == [("1.1.0", ("production",))]
    assert _rows(store, "stage!=production", "param.train.learning_rate<0.5", "param.model.activation=relu") == [
        ("1.0.0", ()),
        ("1.2.0", ("champion",)),
    ]
    assert _rows(store, "accuracy>champion") == [("1.1.0", ("production",))]
    assert _rows(store, f"signer={signed.listing.signers[0][:12]}") == [("1.1.0", ("production",))]
    assert _rows(store, "f1>=0.1") == []  # lacking the metric never matches


@pytest.mark.parametrize("text", ["acc>", "stage>=production", "signer=xyz", "accuracy>=eval(1)", "param.lr<Fast"])
def test_bad_filters_are_usage_errors(text: str) -> None:
    with pytest.raises(UsageError):
        parse_where(text)


def _forge(store: Store, tag: str, source_tag: str, annotations: dict[str, str], drop: tuple[str, ...] = ()) -> None:
    """Put a copy of ``source_tag``'s artifact, its annotations changed, under ``tag`` (outside mpkg)."""
    found = store.backend.get_manifest(REPO, source_tag)
    assert found is not None
    doc = found.json()
    doc["annotations"] = {k: v for k, v in doc["annotations"].items() if k not in drop} | annotations
    store.backend.put_manifest(REPO, tag, json.dumps(doc).encode())


def test_hostile_annotations_are_one_line_warnings(store: Store, make_package: MakePackage) -> None:
    """A registry answers annotations of the wrong type, size, grammar or text: each is a warning for
    that version, never a traceback; a re-pointed version tag or non-mpkg artifact is skipped."""
    b = store.backend
    lifecycle.push(b, store.ref(), make_package("1.0.0"))
    lifecycle.push(b, store.ref(), make_package("1.1.0", accuracy=0.95))
    lifecycle.push(b, store.ref(), make_package("1.2.0", accuracy=0.96))
    _forge(
        store,
        "1.0.0",
        "1.0.0",
        {
            METRICS: "[" * 30000,
            PARAMS: json.dumps({"lr": "\x1b[31mred"}),
            "dev.mpkg.package.signers": json.dumps(["not-a-key"]),
            "dev.mpkg.package.data": json.dumps(["sha256:short"]),
            TRUNCATED: "\n",
        },
    )
    _forge(store, "1.1.0", "1.1.0", {}, drop=(LISTING, PARAMS))  # as pushed by mpkg 0.1
    _forge(store, "1.2.0", "1.1.0", {})  # the 1.2.0 tag re-pointed at 1.1.0
    _forge(store, "evil", "1.1.0", {"dev.mpkg.package.version": "1.1.0\x1b]0;pwned\x07"})
    other = store.backend.get_manifest(REPO, "1.1.0")
    assert other is not None
    store.backend.put_manifest(
        REPO, "junk", json.dumps(other.json() | {"artifactType": "application/x-other"}).encode()
    )
    if store.registry is None:  # a tag file no registry would accept: names are checked before use
        assert store.home is not None
        (store.home / "repositories" / REPO / "_tags" / "x\x1b[2J").write_text("sha256:" + "0" * 64 + "\n")
    found = list_versions(b, store.ref())
    warnings = [*found.warnings, *(w for r in found.rows for w in r.warnings)]
    assert all(w.isprintable() for w in warnings), warnings
    text = "\n".join(warnings)
    for expected in (
        "annotation dev.mpkg.package.metrics is not JSON",
        "annotation dev.mpkg.package.params is not an object",
        "annotation dev.mpkg.package.signers is not a list of key ids",
        "annotation dev.mpkg.package.data is not a list of dataset digests",
        "annotation dev.mpkg.package.truncated is malformed",
        "no annotations (pushed before mpkg wrote them)",
        "team/iris-mlp:1.2.0: holds version 1.1.0, not the 1.2.0 its tag names",
        "team/iris-mlp:evil: the version annotation is not a SemVer version; skipped",
        "team/iris-mlp:junk: is not an mpkg package artifact",
    ):
        assert expected in text, text
    by = {r.version: r for r in found.rows}
    assert set(by) == {"1.0.0", "1.1.0"}
    assert by["1.0.0"].listing.metrics == {} and by["1.0.0"].listing.params == {}
    old = by["1.1.0"]
    assert not old.listing.annotated and old.listing.metrics["accuracy"] == 0.95  # the cheap part still read


def test_huge_metrics_are_cut_to_the_budget_and_say_so(tmp_path: Path, store: Store) -> None:
    from mpkg._internal.format.package import read_manifest
    from mpkg_builder.build import build_package

    src = tmp_path / "src"
    shutil.copytree(EXAMPLES / "iris-mlp", src)
    (src / "metrics.json").write_text(json.dumps({f"class_{i:05d}.f1": i / 10000 for i in range(5000)}))
    package = tmp_path / "big.mpkg"
    build_package(src, package)
    annotations = listing_annotations(package, read_manifest(package))
    assert annotations[TRUNCATED] == "metrics" and len(annotations[METRICS]) <= 32768
    lifecycle.push(store.backend, store.ref(), package)
    (row,) = list_versions(store.backend, store.ref()).rows
    assert row.listing.truncated == ("metrics",) and "class_00000.f1" in row.listing.metrics
    assert any("annotations truncated: metrics" in w for w in row.warnings)
    assert len(row.listing.metrics) < 5000


@pytest.mark.slow
def test_ls_of_50_versions_reads_no_package_and_few_requests(
    oci_registry: RegistryProcess, make_package: MakePackage, tmp_path: Path
) -> None:
    backend, cold_reader, warm_reader = (OciBackend(oci_registry.host, insecure=True) for _ in range(3))
    name = parse_ref(f"{oci_registry.host}/{REPO}")
    pushing = HistoryPolicy(cache=DiskCache(tmp_path / "pusher"))
    layers = set()
    for i in range(50):
        pushed = lifecycle.push(backend, name, make_package(f"1.0.{i}", accuracy=0.5 + i / 100), policy=pushing)
        layers.add(pushed.blob_digest)
    before = len(oci_registry.requests())
    reader = HistoryPolicy(cache=DiskCache(tmp_path / "reader"))  # a first-time client: nothing cached
    found = list_versions(cold_reader, name, policy=reader)
    cold = oci_registry.requests()[before:]
    assert len(found.rows) == 50 and not found.warnings
    assert sort_rows(found.rows, "-accuracy")[0].version == "1.0.49"
    assert not [r for r in cold if any(d in r.path for d in layers)], "ls fetched a package blob"
    assert len(cold) <= 5 * 50, len(cold)
    before = len(oci_registry.requests())
    list_versions(warm_reader, name, policy=reader)
    warm = oci_registry.requests()[before:]
    for b in (backend, cold_reader, warm_reader):
        b.close()
    assert len(warm) <= 2 * 50, len(warm)  # events cached: the tag listings and one manifest per tag


def test_ls_through_the_cli(run_mpkg: RunMpkg, make_package: MakePackage, tmp_path: Path) -> None:
    env = {"MPKG_HOME": str(tmp_path / "home")}
    run_mpkg("push", str(make_package("1.0.0", accuracy=0.9)), REPO, env=env)
    run_mpkg("push", str(make_package("1.1.0", accuracy=0.97)), REPO, env=env)
    run_mpkg("promote", f"{REPO}:1.1.0", "--to", "champion", env=env)
    table = run_mpkg("ls", REPO, "--sort", "-accuracy", env=env, expect=0)
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["VERSION", "PUSHED", "ALIASES"]
    assert lines[1].startswith("1.1.0") and "champion" in lines[1] and "accuracy=0.97" in lines[1]
    assert lines[2].startswith("1.0.0")
    shown = run_mpkg("ls", REPO, "--where", "stage=champion", "--json", env=env, expect=0)
    doc = json.loads(shown.stdout)
    assert [v["version"] for v in doc["versions"]] == ["1.1.0"] and doc["authenticated"] is False
    bad = run_mpkg("ls", REPO, "--where", "accuracy>>1", env=env, expect=2)
    assert bad.stderr.count("\n") == 1 and "is not a filter" in bad.stderr
    run_mpkg("ls", REPO, "--where", "accuracy>=0.95", "--html", tmp_path / "ls.html", env=env, expect=0)
    html = (tmp_path / "ls.html").read_text()
    assert "1.1.0" in html and "champion" in html and ">1.0.0<" not in html
