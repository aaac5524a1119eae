"""`mpkg containerize REF --follow`: the image that serves what a registry reference names.

Context tests run against the real registry process (tests/harness/registry.py): what REF names
now is pulled and verified for its lockfile, and no package goes into the context. One podman
test (slow) builds the image and watches it swap a promoted version in.
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from mpkg._internal.registry.refs import parse_ref
from mpkg.errors import MpkgError, UsageError
from mpkg_builder import containerize as cz
from mpkg_builder.containerize.follow import Followed
from mpkg_builder.registry import lifecycle
from mpkg_builder.registry.oci import OciBackend
from packaging.utils import parse_wheel_filename

from tests.builder.test_containerize import (
    BASE,
    EXAMPLE,
    _http,
    container_engine,
    engine_client,
    instructions,
    keypair,
    make_package,
    one_line,
    run_cli,
    wheelhouse,
)
from tests.harness.containers import Engine
from tests.harness.registry import RegistryProcess, oci_registry

__all__ = ["container_engine", "engine_client", "keypair", "make_package", "oci_registry", "wheelhouse"]


@pytest.fixture(autouse=True)
def _home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fresh MPKG_HOME: the package cache the build fetches into."""
    home = tmp_path / "home"
    monkeypatch.setenv("MPKG_HOME", str(home))
    monkeypatch.delenv("MPKG_KEYS", raising=False)
    return home


def _push(reg: RegistryProcess, package: Path, key: Path, tag: str = "1.0.0", promote: bool = False) -> str:
    backend = OciBackend(reg.host, insecure=True)
    try:
        ref = parse_ref(f"{reg.host}/team/iris-mlp:{tag}")
        lifecycle.push(backend, ref, package, key=key)
        if promote:
            lifecycle.promote(backend, ref, "production", key=key)
    finally:
        backend.close()
    return f"{reg.host}/team/iris-mlp:{'production' if promote else tag}"


def _labels(steps: list[tuple[str, str]]) -> dict[str, str]:
    out: dict[str, str] = {}
    for word, args in steps:
        if word == "LABEL":
            out.update({k: json.loads(v) for k, v in re.findall(r'(\S+)=("(?:[^"\\]|\\.)*")', args)})
    return out


def test_follow_context_serves_the_reference_and_holds_no_package(
    oci_registry: RegistryProcess,
    make_package: Callable[..., Path],
    keypair: tuple[Path, Path],
    wheelhouse: Path,
    tmp_path: Path,
) -> None:
    from mpkg._internal.format.package import read_info

    pkg = make_package()
    ref = _push(oci_registry, pkg, keypair[0])
    follow = Followed(ref, 2.5, insecure=True)
    ctx = cz.write_context(
        ref, tmp_path / "ctx", base=BASE, keys=[keypair[1]], wheelhouse=wheelhouse, offline=True, follow=follow
    )
    root = ctx.path
    assert sorted(p.name for p in root.iterdir()) == ["Dockerfile", "keys", "requirements", "runtime", "wheels"]
    assert ctx.package.digest == read_info(pkg).digest
    # the registry extra is in the image, pinned by hash with the runtime's own dependencies
    runtime_txt = (root / "requirements" / "runtime.txt").read_text()
    assert re.search(r"^httpx==\S+ \\\n    --hash=sha256:", runtime_txt, re.M), runtime_txt
    assert any(str(parse_wheel_filename(w.name)[0]) == "httpx" for w in (root / "wheels").glob("*.whl"))

    text = (root / "Dockerfile").read_text()
    steps = instructions(text)
    final = [w for w, _ in steps].index("FROM", 1)
    tail = steps[final:]
    assert not [a for w, a in tail if w == "COPY" and "package/" in a]
    assert not [a for w, a in tail if w == "RUN" and '"verify"' in a]
    entry = json.loads(dict(tail)["ENTRYPOINT"])
    assert entry == [
        "/opt/mpkg/bin/mpkg",
        "serve",
        ref,
        "--follow",
        "--interval",
        "2.5s",
        "--insecure",
        "--host",
        "0.0.0.0",
        "--port",
        "8080",
        "--key",
        "/keys/key-1.pub",
    ]
    env = " ".join(a for w, a in tail if w == "ENV")
    assert "MPKG_HOME=/var/cache/mpkg" in env and "DOCKER_CONFIG=/etc/mpkg/docker" in env
    assert ("VOLUME", '["/var/cache/mpkg"]') in tail
    words = [w for w, _ in tail]
    mkdir = next(i for i, (w, a) in enumerate(tail) if w == "RUN" and "/var/cache/mpkg" in a)
    assert "chown 10001:10001 /var/cache/mpkg" in tail[mkdir][1] and mkdir < words.index("USER")
    assert tail[words.index("USER")][1] == "10001:10001"

    labels = _labels(tail)
    assert labels == ctx.labels
    assert labels["dev.mpkg.follow.reference"] == ref
    assert labels["dev.mpkg.follow.interval"] == "2.5s"
    assert labels["dev.mpkg.follow.built-from.digest"] == ctx.package.digest
    assert labels["dev.mpkg.follow.built-from.version"] == "1.0.0"
    assert labels["dev.mpkg.package.name"] == "iris-mlp"
    assert "dev.mpkg.package.digest" not in labels  # what it serves moves with the tag


def test_follow_refuses_a_reference_signed_by_another_key(
    oci_registry: RegistryProcess,
    make_package: Callable[..., Path],
    keypair: tuple[Path, Path],
    wheelhouse: Path,
    tmp_path: Path,
) -> None:
    from mpkg_builder.signing import keygen

    ref = _push(oci_registry, make_package(), keypair[0])
    other = keygen(tmp_path / "other")
    with pytest.raises(MpkgError) as err:
        cz.write_context(
            ref,
            tmp_path / "ctx",
            base=BASE,
            keys=[other.public_path],
            wheelhouse=wheelhouse,
            offline=True,
            follow=Followed(ref, insecure=True),
        )
    one_line(err.value)
    assert not (tmp_path / "ctx").exists()


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["PKGFILE", "--follow"], "is a file; --follow takes a registry reference"),
        (["team/iris:1.0.0", "--follow"], "names the local store"),
        (["127.0.0.1:5000/team/iris@sha256:" + "a" * 64, "--follow"], "pinned by digest"),
        (["PKGFILE", "--interval", "5s"], "sets how often --follow polls; add --follow"),
        (["PKGFILE", "--insecure"], "add --follow"),
        (["127.0.0.1:5000/team/iris:production", "--follow", "--modelcar"], "--modelcar and --follow"),
    ],
)
def test_follow_refusals_are_one_line(
    args: list[str], needle: str, make_package: Callable[..., Path], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    args = [str(make_package()) if a == "PKGFILE" else a for a in args]
    common = ["-t", "localhost/iris:1", "--key", str(keypair[1]), "--base", BASE]
    code, _out, err = run_cli(["containerize", *args, *common, "--context-only", str(tmp_path / "ctx")])
    assert code == 2, err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and needle in lines[0], err
    assert not (tmp_path / "ctx").exists()


def test_cli_follow_context_only_json(
    oci_registry: RegistryProcess,
    make_package: Callable[..., Path],
    keypair: tuple[Path, Path],
    wheelhouse: Path,
    tmp_path: Path,
) -> None:
    ref = _push(oci_registry, make_package(), keypair[0], promote=True)
    ctx = tmp_path / "ctx"
    code, out, err = run_cli(
        ["containerize", ref, "--follow", "--interval", "2s", "--insecure", "-t", "localhost/iris:follow",
         "--key", str(keypair[1]), "--base", BASE, "--context-only", str(ctx),
         "--wheelhouse", str(wheelhouse), "--offline", "--json"]
    )  # fmt: skip
    assert code == 0, err
    doc = json.loads(out)
    assert doc["follow"] == ref and doc["labels"]["dev.mpkg.follow.interval"] == "2s"
    entry = json.loads(dict(instructions((ctx / "Dockerfile").read_text()))["ENTRYPOINT"])
    assert entry[2:7] == [ref, "--follow", "--interval", "2s", "--insecure"]
    assert not (ctx / "package").exists()


def test_followed_api_refuses_modelcar(keypair: tuple[Path, Path], tmp_path: Path) -> None:
    with pytest.raises(UsageError) as err:
        cz.containerize(
            "127.0.0.1:5000/team/iris:production",
            "localhost/iris:1",
            modelcar=True,
            follow=Followed("127.0.0.1:5000/team/iris:production"),
            context_only=tmp_path / "ctx",
        )
    assert "--modelcar and --follow" in one_line(err.value)


# --------------------------------------------------------------------------- end to end


def _version(tmp_path: Path, version: str, key: Path) -> Path:
    """iris-mlp under another version (another package digest), signed by ``key``."""
    from mpkg_builder.build import build_package

    src = tmp_path / f"src-{version}"
    shutil.copytree(EXAMPLE, src)
    text = (src / "mpkg.toml").read_text()
    (src / "mpkg.toml").write_text(re.sub(r'(?m)^version = "[^"]*"', f'version = "{version}"', text, count=1))
    out = tmp_path / f"iris-mlp-{version}.mpkg"
    build_package(src, out, key=key)
    return out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _served(url: str) -> list[dict[str, Any]] | None:
    try:
        status, meta = _http(f"{url}/v2")
    except OSError:
        return None
    return list(meta["models"]) if status == 200 else None


@pytest.mark.slow
def test_follow_image_serves_the_tag_and_swaps_in_a_promotion(
    container_engine: Engine,
    engine_client: Any,
    oci_registry: RegistryProcess,
    make_package: Callable[..., Path],
    keypair: tuple[Path, Path],
    wheelhouse: Path,
    tmp_path: Path,
) -> None:
    from mpkg._internal.format.package import read_info

    first = make_package()
    ref = _push(oci_registry, first, keypair[0], promote=True)
    tag = container_engine.test_tag("iris-mlp-follow")
    result = cz.containerize(
        ref,
        tag,
        base=container_engine.base_image,
        keys=[keypair[1]],
        wheelhouse=wheelhouse,
        offline=True,
        engine=container_engine.url,
        follow=Followed(ref, 0.5, insecure=True),
    )
    container = None
    try:
        image = engine_client.images.get(tag)
        assert image.id == result.image_id
        assert image.labels["dev.mpkg.follow.reference"] == ref
        assert "/var/cache/mpkg" in (image.attrs["Config"].get("Volumes") or {})
        port = _free_port()
        # --network host: the registry listens on 127.0.0.1; a later --port wins over the image's
        container = engine_client.containers.run(
            tag, ["--port", str(port)], detach=True, network_mode="host", read_only=True, tmpfs={"/tmp": ""}
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180  # start-up wait, not a timing assertion
        models = None
        while time.monotonic() < deadline and not models:
            container.reload()
            assert container.status in ("created", "running"), container.logs().decode(errors="replace")[-3000:]
            models = _served(url)
            time.sleep(0.5)
        assert models, container.logs().decode(errors="replace")[-3000:]
        assert [m["digest"] for m in models] == [read_info(first).digest]

        second = _version(tmp_path, "1.0.1", keypair[0])
        _push(oci_registry, second, keypair[0], tag="1.0.1", promote=True)
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            models = _served(url)
            if models and models[0]["digest"] == read_info(second).digest:
                break
            time.sleep(0.5)
        assert models and models[0]["version"] == "1.0.1", container.logs().decode(errors="replace")[-3000:]
    finally:
        if container is not None:
            container.remove(force=True)
        engine_client.images.remove(tag, force=True)
