"""``mpkg serve REF --follow`` against the real registry process and a real server under load
(spec/runtime.md §9): a client sends requests throughout a promote and a rollback, and not
one fails; a candidate the server may not serve (signed by a key it does not trust) is refused
while the old package keeps answering, once, not once per poll."""

from __future__ import annotations

import re
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from mpkg._internal.registry.refs import parse_ref
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.local import LocalBackend
from mpkg_builder.registry.oci import OciBackend

from tests.harness.registry import RegistryProcess, trusting
from tests.harness.server import MPKG_SERVE, ServerProcess, server_env
from tests.harness.traffic import Traffic

Keys = dict[str, tuple[Path, Path]]
INTERVAL = 0.5  # seconds between the server's polls in these tests
_WAIT = 120.0  # a bound for a busy shared machine, not a performance assertion


class Followed(ServerProcess):
    """A real ``mpkg serve REF --follow`` subprocess with its own MPKG_HOME."""

    def __init__(self, args: list[str], tmp: Path) -> None:
        super().__init__(MPKG_SERVE, args, tmp / "serve.log", server_env(MPKG_HOME=str(tmp / "server-home")))

    def answering(self) -> tuple[str, str]:
        """(version, digest) /v2/models/iris-mlp reports now."""
        doc = httpx.get(self.url + "/v2/models/iris-mlp", timeout=30).json()
        return doc["version"], doc["digest"]

    def wait_answering(self, version: str) -> float:
        """Seconds until ``version`` answers."""
        start = time.monotonic()
        while self.answering()[0] != version:
            assert time.monotonic() - start < _WAIT, self.log()
            time.sleep(0.02)
        return time.monotonic() - start

    def metric(self, line: str) -> float:
        """The value of the metric line that starts with ``line``."""
        text = httpx.get(self.url + "/metrics", timeout=30).text
        m = re.search(rf"^{re.escape(line)} (\S+)$", text, re.M)
        assert m, text
        return float(m.group(1))


@pytest.fixture
def repo(oci_registry: RegistryProcess, make_package: Callable[..., Path], keys: Keys) -> str:
    """team/iris-mlp with 1.0.0 and 1.1.0 signed by alice, and 1.0.0 in production."""
    priv, pub = keys["alice"]
    name = f"{oci_registry.host}/team/iris-mlp"
    backend = OciBackend(oci_registry.host, insecure=True)
    try:
        for version in ("1.0.0", "1.1.0"):
            lifecycle.push(backend, parse_ref(name), make_package(version, key=priv), key=priv)
        lifecycle.promote(backend, parse_ref(f"{name}:1.0.0"), "production", key=priv, policy=trusting(pub))
    finally:
        backend.close()
    return name


def _move(registry: RegistryProcess, keys: Keys, how: str, ref: str) -> None:
    priv, pub = keys["alice"]
    backend = OciBackend(registry.host, insecure=True)
    try:
        if how == "promote":
            lifecycle.promote(backend, parse_ref(ref), "production", key=priv, policy=trusting(pub))
        else:
            lifecycle.rollback(backend, parse_ref(ref), "production", key=priv, policy=trusting(pub))
    finally:
        backend.close()


def _serve(repo: str, keys: Keys, tmp_path: Path) -> Followed:
    args = [f"{repo}:production", "--follow", "--interval", f"{INTERVAL}s", "--insecure"]
    server = Followed([*args, "--key", str(keys["alice"][1])], tmp_path)
    server.wait_ready()
    return server


def test_follow_swaps_a_promote_and_a_rollback_under_load_without_a_failed_request(
    oci_registry: RegistryProcess, repo: str, keys: Keys, tmp_path: Path
) -> None:
    server = _serve(repo, keys, tmp_path)
    try:
        assert server.answering()[0] == "1.0.0"
        with Traffic(server.url, "/v2/models/iris-mlp/infer") as traffic:
            while traffic.count() < 50:
                time.sleep(0.01)
            _move(oci_registry, keys, "promote", f"{repo}:1.1.0")
            server.wait_answering("1.1.0")
            seen = traffic.count()
            while traffic.count() < seen + 50:
                time.sleep(0.01)
            _move(oci_registry, keys, "rollback", f"{repo}:production")
            rollback_seconds = server.wait_answering("1.0.0")
            seen = traffic.count()
            while traffic.count() < seen + 50:
                time.sleep(0.01)
        failures = traffic.failures()
        assert not failures, failures[:3]
        versions = [a.version for a in traffic.answers]
        assert versions[0] == "1.0.0" and "1.1.0" in versions and versions[-1] == "1.0.0"
        # the rollback reached the answers within the interval plus the load time (bounded
        # generously for a busy machine; the figure is in the report, not asserted tightly)
        print(f"rollback reached the answers {rollback_seconds:.2f} s after the move")
        assert rollback_seconds < INTERVAL + 60, rollback_seconds
        assert server.metric('mpkg_model_swaps_total{model="iris-mlp"}') == 2
        assert server.metric('mpkg_model_swap_failures_total{model="iris-mlp"}') == 0
        log = server.log()
        assert "swapped iris-mlp 1.0.0 -> 1.1.0" in log and "swapped iris-mlp 1.1.0 -> 1.0.0" in log, log
    finally:
        assert server.stop() == 0, server.log()


def test_follow_refuses_a_candidate_signed_by_an_untrusted_key(
    oci_registry: RegistryProcess, repo: str, keys: Keys, make_package: Callable[..., Path], tmp_path: Path
) -> None:
    """Attack: a package signed by a key the server does not trust is promoted (the move itself
    signed by a trusted key). The server refuses it, keeps answering with 1.0.0, and logs and
    counts it once however many polls see it; a later good promote is still taken."""
    alice, bob = keys["alice"][0], keys["bob"][0]
    backend = OciBackend(oci_registry.host, insecure=True)
    try:  # the push event is alice's (a trusted history), the package bob's
        lifecycle.push(backend, parse_ref(repo), make_package("1.2.0", key=bob), key=alice)
    finally:
        backend.close()
    server = _serve(repo, keys, tmp_path)
    try:
        with Traffic(server.url, "/v2/models/iris-mlp/infer") as traffic:
            while traffic.count() < 20:
                time.sleep(0.01)
            _move(oci_registry, keys, "promote", f"{repo}:1.2.0")
            deadline = time.monotonic() + _WAIT
            while server.metric('mpkg_model_swap_failures_total{model="iris-mlp"}') < 1:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
            time.sleep(INTERVAL * 4)  # several more polls see the same bad candidate
        assert not traffic.failures(), traffic.failures()[:3]
        assert {a.version for a in traffic.answers} == {"1.0.0"}
        assert server.answering()[0] == "1.0.0"
        assert server.metric('mpkg_model_swap_failures_total{model="iris-mlp"}') == 1
        assert server.metric('mpkg_model_swaps_total{model="iris-mlp"}') == 0
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200
        refused = [ln for ln in server.log().splitlines() if "swap refused" in ln]
        assert len(refused) == 1 and "ERROR" in refused[0] and "still serving iris-mlp 1.0.0" in refused[0]
        backend = OciBackend(oci_registry.host, insecure=True)
        try:  # a good package promoted afterwards is taken
            lifecycle.push(backend, parse_ref(repo), make_package("1.3.0", key=alice), key=alice)
        finally:
            backend.close()
        _move(oci_registry, keys, "promote", f"{repo}:1.3.0")
        server.wait_answering("1.3.0")
    finally:
        assert server.stop() == 0, server.log()


def test_follow_needs_a_reference(tmp_path: Path, make_package: Callable[..., Path], keys: Keys) -> None:
    package = make_package("1.0.0", key=keys["alice"][0])
    proc = subprocess.run(
        [sys.executable, "-m", "mpkg", "serve", str(package), "--follow", "--port", "0"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and "--follow" in proc.stderr and "Traceback" not in proc.stderr, proc.stderr


def test_follow_keeps_serving_while_the_store_is_out_of_reach(
    make_package: Callable[..., Path], keys: Keys, tmp_path: Path
) -> None:
    """The local store's repository gone for a while (as a registry down): every poll fails, the
    package answering keeps answering, the polls are counted and logged once, and following
    resumes when it is back."""
    priv, pub = keys["alice"]
    home = tmp_path / "server-home"  # the server's MPKG_HOME holds the local store
    store = LocalBackend(home)
    try:
        lifecycle.push(store, parse_ref("team/iris-mlp"), make_package("1.0.0", key=priv), key=priv)
        lifecycle.promote(store, parse_ref("team/iris-mlp:1.0.0"), "production", key=priv, policy=trusting(pub))
    finally:
        store.close()
    server = Followed(
        ["team/iris-mlp:production", "--follow", "--interval", f"{INTERVAL}s", "--key", str(pub)], tmp_path
    )
    server.wait_ready()
    repo, away = home / "repositories" / "team", home / "repositories" / "team.away"
    try:
        with Traffic(server.url, "/v2/models/iris-mlp/infer") as traffic:
            repo.rename(away)
            deadline = time.monotonic() + _WAIT
            while server.metric('mpkg_follow_errors_total{model="iris-mlp"}') < 3:
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
            away.rename(repo)
            while "following team/iris-mlp:production again" not in server.log():
                assert time.monotonic() < deadline, server.log()
                time.sleep(0.05)
        assert not traffic.failures() and traffic.count(), traffic.failures()[:3]
        assert {a.version for a in traffic.answers} == {"1.0.0"}
        warnings = [ln for ln in server.log().splitlines() if "cannot follow team/iris-mlp:production" in ln]
        assert len(warnings) == 1 and "WARNING" in warnings[0], server.log()
        assert httpx.get(server.url + "/v2/health/ready").status_code == 200
    finally:
        assert server.stop() == 0, server.log()
