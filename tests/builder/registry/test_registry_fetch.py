"""Load and serve by reference (mpkg._internal.registry.fetch) against the real registry process:
the checks of `mpkg pull`, the package cache under MPKG_HOME, and a second start that downloads
nothing (counted in the registry's own access log)."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import mpkg
import numpy as np
import pytest
from mpkg._internal.registry.fetch import FetchPolicy, cached_path, fetch, is_reference, resolve
from mpkg._internal.registry.refs import parse_ref
from mpkg.errors import MpkgError, RegistryError, VerificationError
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.local import LocalBackend
from mpkg_builder.registry.oci import OciBackend

from tests.harness.process import stop
from tests.harness.registry import RegistryProcess, trusting

Keys = dict[str, tuple[Path, Path]]
_LISTENING = re.compile(r"listening on (http://[0-9.:]+)")


def _env(home: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "MPKG_KEYS"}
    return {**env, "MPKG_HOME": str(home), "PYTHONUNBUFFERED": "1"}


def _serve_ready(args: list[str], log: Path, env: dict[str, str]) -> tuple[subprocess.Popen[bytes], str]:
    """A real `mpkg serve` on a free port, once it answers ready."""
    with log.open("wb") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "mpkg", "serve", *args, "--host", "127.0.0.1", "--port", "0"],
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
        )
    deadline = time.monotonic() + 120  # a bound for a busy machine, not a performance assertion
    while time.monotonic() < deadline:
        m = _LISTENING.search(log.read_text(errors="replace"))
        if m and httpx.get(m.group(1) + "/v2/health/ready", timeout=10).status_code == 200:
            return proc, m.group(1)
        assert proc.poll() is None, log.read_text(errors="replace")
        time.sleep(0.05)
    stop(proc, 5)
    raise AssertionError(log.read_text(errors="replace"))


def _blob_gets(reg: RegistryProcess) -> int:
    return sum(1 for r in reg.requests() if r.method == "GET" and "/blobs/" in r.path)


def _push(reg: RegistryProcess, package: Path, key: Path, tag: str = "") -> None:
    backend = OciBackend(reg.host, insecure=True)
    try:
        ref = parse_ref(f"{reg.host}/team/iris-mlp" + (f":{tag}" if tag else ""))
        lifecycle.push(backend, ref, package, key=key)
    finally:
        backend.close()


def test_load_by_version_tag_downloads_once(
    oci_registry: RegistryProcess, make_package: Callable[..., Path], keys: Keys, local_home: Path
) -> None:
    priv, pub = keys["alice"]
    _push(oci_registry, make_package("1.0.0", key=priv), priv)
    ref = f"{oci_registry.host}/team/iris-mlp:1.0.0"
    before = _blob_gets(oci_registry)
    model = mpkg.load(ref, keys=[pub], insecure=True)
    assert (model.name, model.version) == ("iris-mlp", "1.0.0")
    first = _blob_gets(oci_registry)
    assert first > before  # the package came from the registry
    again = mpkg.load(ref, keys=[pub], insecure=True)
    assert again.digest == model.digest
    assert _blob_gets(oci_registry) == first  # second start: from the cache, no blob fetched
    assert cached_path(local_home, model.digest).is_file()
    x = np.asarray([[5.1, 3.5, 1.4, 0.2]], dtype=np.float32)
    assert again.predict({"features": x}).keys()


def test_load_refuses_unsigned_without_keys_and_a_repointed_version_tag(
    oci_registry: RegistryProcess, make_package: Callable[..., Path], keys: Keys, local_home: Path
) -> None:
    """Attack: version tag 1.1.0 re-pointed to the signed 1.0.0 artifact (rollback). load by REF
    refuses it as pull does; without keys an unsigned-by-trusted-key package is refused."""
    priv, pub = keys["alice"]
    _push(oci_registry, make_package("1.0.0", key=priv), priv)
    _push(oci_registry, make_package("1.1.0", key=priv), priv)
    with pytest.raises(VerificationError):
        mpkg.load(f"{oci_registry.host}/team/iris-mlp:1.0.0", keys=[], insecure=True)
    backend = OciBackend(oci_registry.host, insecure=True)
    old = backend.get_manifest("team/iris-mlp", "1.0.0")
    assert old is not None
    backend.put_manifest("team/iris-mlp", "1.1.0", old.data)
    backend.close()
    with pytest.raises(RegistryError, match="tag was re-pointed"):
        mpkg.load(f"{oci_registry.host}/team/iris-mlp:1.1.0", keys=[pub], insecure=True)
    assert not any((local_home / "packages" / "sha256").glob("*.mpkg.*"))  # no temporaries left


def test_stage_reference_follows_the_trusted_history(
    oci_registry: RegistryProcess, make_package: Callable[..., Path], keys: Keys, local_home: Path
) -> None:
    """A stage tag resolves to what the newest trusted move put there; re-pointed outside mpkg
    (mix-and-match), resolve refuses it."""
    priv, pub = keys["alice"]
    for version in ("1.0.0", "1.1.0"):
        _push(oci_registry, make_package(version, key=priv), priv)
    backend = OciBackend(oci_registry.host, insecure=True)
    name = f"{oci_registry.host}/team/iris-mlp"
    policy = trusting(pub)
    lifecycle.promote(backend, parse_ref(f"{name}:1.1.0"), "production", key=priv, policy=policy)
    fetch_policy = FetchPolicy.from_paths([pub], insecure=True, home=local_home)
    resolved = resolve(f"{name}:production", fetch_policy)
    assert resolved.version == "1.1.0"
    digest, path = fetch(f"{name}:production", fetch_policy)
    assert digest == resolved.digest and path.is_file()
    old = backend.get_manifest("team/iris-mlp", "1.0.0")
    assert old is not None
    backend.put_manifest("team/iris-mlp", "production", old.data)
    backend.close()
    with pytest.raises(RegistryError, match="re-pointed outside mpkg"):
        resolve(f"{name}:production", fetch_policy)


def test_local_store_reference(make_package: Callable[..., Path], keys: Keys, local_home: Path) -> None:
    priv, pub = keys["alice"]
    store = LocalBackend(local_home)
    lifecycle.push(store, parse_ref("team/iris-mlp"), make_package("1.0.0", key=priv), key=priv)
    model = mpkg.load("team/iris-mlp:1.0.0", keys=[pub])
    assert model.version == "1.0.0"
    with pytest.raises(RegistryError, match="not found"):
        mpkg.load("team/iris-mlp:9.9.9", keys=[pub])


def test_a_tampered_cache_file_is_refused(make_package: Callable[..., Path], keys: Keys, local_home: Path) -> None:
    """Attack: the cached package swapped for another verifying package (an older version):
    load checks the verified digest against the one the reference resolved to."""
    priv, pub = keys["alice"]
    store = LocalBackend(local_home)
    for version in ("1.0.0", "1.1.0"):
        lifecycle.push(store, parse_ref("team/iris-mlp"), make_package(version, key=priv), key=priv)
    policy = FetchPolicy.from_paths([pub], home=local_home)
    _, new = fetch("team/iris-mlp:1.1.0", policy)
    new.write_bytes(make_package("1.0.0", key=priv).read_bytes())
    model = mpkg.load("team/iris-mlp:1.1.0", keys=[pub])  # the swapped file is not used: fetched again
    assert model.version == "1.1.0"


def test_is_reference_tells_files_from_refs(tmp_path: Path) -> None:
    existing = tmp_path / "fraud:1.0.0"
    existing.write_bytes(b"")
    assert is_reference("127.0.0.1:5000/fraud:production")
    assert is_reference("fraud:1.2.0")
    assert not is_reference(str(existing))
    assert not is_reference("model.mpkg")
    assert not is_reference("fraud")  # no tag: a file name


def test_serve_a_reference(
    oci_registry: RegistryProcess, make_package: Callable[..., Path], keys: Keys, tmp_path: Path
) -> None:
    priv, pub = keys["alice"]
    _push(oci_registry, make_package("1.0.0", key=priv), priv)
    ref = f"{oci_registry.host}/team/iris-mlp:1.0.0"
    env = _env(tmp_path / "home")
    for attempt in range(2):
        before = _blob_gets(oci_registry)
        proc, url = _serve_ready([ref, "--insecure", "--key", str(pub)], tmp_path / f"s{attempt}.log", env)
        try:
            doc = httpx.get(url + "/v2/models/iris-mlp", timeout=10).json()
            assert doc["name"] == "iris-mlp" and doc["versions"] == ["1.0.0"]
        finally:
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=60) == 0
        fetched = _blob_gets(oci_registry) - before
        assert (fetched > 0) if attempt == 0 else (fetched == 0)


def test_without_the_registry_extra_one_line(tmp_path: Path) -> None:
    """A runtime without httpx answers a registry reference with one line naming the extra."""
    code = (
        "import sys; sys.modules['httpx'] = None; sys.modules['httpcore'] = None\n"
        "from mpkg.cli import main; sys.exit(main(sys.argv[1:]))"
    )
    proc = subprocess.run(
        [sys.executable, "-c", code, "serve", "127.0.0.1:1/team/iris-mlp:1.0.0", "--insecure"],
        capture_output=True,
        text=True,
        timeout=120,
        env=_env(tmp_path),
    )
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr
    assert "mpkg[registry]" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_a_reference_without_tag_or_digest_is_a_usage_error(local_home: Path) -> None:
    with pytest.raises(MpkgError, match="names no tag or digest"):
        fetch("team/iris-mlp", FetchPolicy(home=local_home))
