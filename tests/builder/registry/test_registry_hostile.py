"""Hostile registry answers end in one line, in bounded time and memory (TUF: endless data,
slow retrieval; plus endless pagination and hostile JSON). The registry is a real HTTP server
on 127.0.0.1 that lies in one way per test (tests/harness/hostile_registry.py)."""

from __future__ import annotations

import io
import json
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from mpkg._internal.registry import transport
from mpkg._internal.registry.store import PACKAGE_ARTIFACT_TYPE, PACKAGE_LAYER_TYPE, digest_bytes
from mpkg._internal.registry.transport import Limits
from mpkg.cli import main
from mpkg.errors import RegistryError
from mpkg_builder.registry.backend import artifact_manifest
from mpkg_builder.registry.oci import OciBackend

from tests.harness.hostile_registry import Answer, HostileRegistry, endless, trickle

REPO = "team/iris-mlp"
QUICK = Limits(exchange_seconds=2.0, read_seconds=1.0, connect_seconds=2.0, min_rate=64 * 1024, max_tag_pages=100)
MiB = 1024 * 1024


@pytest.fixture
def quick_limits(monkeypatch: pytest.MonkeyPatch) -> Limits:
    """Short deadlines for every registry client this test makes (CLI included)."""
    monkeypatch.setattr(transport, "DEFAULT_LIMITS", QUICK)
    return QUICK


@pytest.fixture
def client(hostile_registry: HostileRegistry, quick_limits: Limits) -> Iterator[OciBackend]:
    with OciBackend(hostile_registry.host, insecure=True) as b:
        yield b


def _mpkg(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    code = main(list(argv))
    _, err = capsys.readouterr()
    return code, err


def _one_line(err: str) -> str:
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("mpkg: "), err
    return lines[0]


def _package_artifact(blob: str, size: int) -> bytes:
    layer = {"mediaType": PACKAGE_LAYER_TYPE, "digest": blob, "size": size}
    annotations = {
        "dev.mpkg.package.name": "iris-mlp",
        "dev.mpkg.package.version": "1.0.0",
        "dev.mpkg.package.digest": "sha256:" + "0" * 64,
    }
    return artifact_manifest(PACKAGE_ARTIFACT_TYPE, [layer], annotations)


def _bounded(fn: Callable[[], object], seconds: float, max_bytes: int = 32 * MiB) -> RegistryError:
    """Run ``fn``, which must raise RegistryError within ``seconds`` and ``max_bytes`` of peak
    Python memory; return the error."""
    tracemalloc.start()
    start = time.monotonic()
    try:
        with pytest.raises(RegistryError) as err:
            fn()
        took = time.monotonic() - start
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert took < seconds, f"took {took:.1f} s"
    assert peak < max_bytes, f"peak {peak / MiB:.1f} MiB"
    assert "\n" not in err.value.diagnostics()
    return err.value


# --- endless pagination ----------------------------------------------------------------


def _endless_pages(query: str) -> Answer:
    last = int(query.rsplit("last=t", 1)[1].split("&")[0]) if "last=t" in query else 0
    return Answer(
        body=json.dumps({"name": REPO, "tags": [f"t{last + 1}"]}).encode(),
        headers={"Link": f'</v2/{REPO}/tags/list?n=1&last=t{last + 1}>; rel="next"'},
    )


def test_endless_tag_pagination_is_refused(
    hostile_registry: HostileRegistry, client: OciBackend, capsys: pytest.CaptureFixture[str], local_home: Path
) -> None:
    hostile_registry.route(f"/v2/{REPO}/tags/list", _endless_pages)
    err = _bounded(lambda: client.list_tags(REPO), seconds=60)
    assert "endless pagination" in str(err)
    pages = [r for r in hostile_registry.requests if "/tags/list" in r[1]]
    assert len(pages) == QUICK.max_tag_pages
    # the command a user runs says the same, in one line
    code, err_text = _mpkg(capsys, "history", f"{hostile_registry.host}/{REPO}", "--insecure")
    assert code == 1 and "endless pagination" in _one_line(err_text)


def test_tag_pagination_loop_and_foreign_link_are_refused(
    hostile_registry: HostileRegistry, client: OciBackend
) -> None:
    page = json.dumps({"name": REPO, "tags": ["a"]}).encode()
    hostile_registry.route(
        f"/v2/{REPO}/tags/list", Answer(body=page, headers={"Link": f'</v2/{REPO}/tags/list?n=1000>; rel="next"'})
    )
    assert "already read" in str(_bounded(lambda: client.list_tags(REPO), seconds=10))
    hostile_registry.route(
        f"/v2/{REPO}/tags/list",
        Answer(body=page, headers={"Link": '<http://203.0.113.9/v2/x/tags/list>; rel="next"'}),
    )
    assert "another host" in str(_bounded(lambda: client.list_tags(REPO), seconds=10))


def test_endless_data_in_a_tag_page_is_cut_at_the_cap(hostile_registry: HostileRegistry, client: OciBackend) -> None:
    hostile_registry.route(f"/v2/{REPO}/tags/list", Answer(body=endless(b'["t",' * 8192)))
    assert "endless data" in str(_bounded(lambda: client.list_tags(REPO), seconds=30))


# --- hostile manifests ----------------------------------------------------------------------


def test_deeply_nested_manifest_is_one_line(
    hostile_registry: HostileRegistry, quick_limits: Limits, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    hostile_registry.route(f"/v2/{REPO}/manifests/1.0.0", Answer(body=b"[" * 200_000 + b"]" * 200_000))
    out = tmp_path / "p.mpkg"
    code, err = _mpkg(
        capsys, "pull", f"{hostile_registry.host}/{REPO}:1.0.0", "-o", str(out), "--insecure", "--allow-unsigned"
    )
    assert code == 1 and "nests 200000 levels deep" in _one_line(err)
    assert not list(tmp_path.iterdir())


def test_endless_data_manifest_declared_or_not(hostile_registry: HostileRegistry, client: OciBackend) -> None:
    path = f"/v2/{REPO}/manifests/1.0.0"
    hostile_registry.route(path, Answer(body=endless(b" " * 65536)))
    assert "endless data" in str(_bounded(lambda: client.get_manifest(REPO, "1.0.0"), seconds=30))
    hostile_registry.route(path, Answer(body=endless(b" " * 65536), content_length=50 * 1024 * MiB))
    err = _bounded(lambda: client.get_manifest(REPO, "1.0.0"), seconds=10, max_bytes=2 * MiB)
    assert "over the 4194304 byte limit" in str(err)


def test_endless_data_blob_is_cut_at_its_declared_size(
    hostile_registry: HostileRegistry, quick_limits: Limits, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    blob = "sha256:" + "ab" * 32
    hostile_registry.route(f"/v2/{REPO}/manifests/1.0.0", Answer(body=_package_artifact(blob, 1000)))
    hostile_registry.route(f"/v2/{REPO}/blobs/{blob}", Answer(body=endless(b"x" * 65536)))
    with OciBackend(hostile_registry.host, insecure=True) as b:
        err = _bounded(lambda: b.fetch_blob(REPO, blob, 1000, io.BytesIO()), seconds=10, max_bytes=4 * MiB)
    assert "endless data" in str(err)
    code, text = _mpkg(
        capsys,
        "pull",
        f"{hostile_registry.host}/{REPO}:1.0.0",
        "-o",
        str(tmp_path / "p.mpkg"),
        "--insecure",
        "--allow-unsigned",
    )
    assert code == 1 and "endless data" in _one_line(text)
    assert not list(tmp_path.iterdir())  # no partial file


# --- slow retrieval ---------------------------------------------------------------------


def test_slow_retrieval_of_a_manifest_ends_at_the_deadline(
    hostile_registry: HostileRegistry, client: OciBackend
) -> None:
    data = _package_artifact("sha256:" + "ab" * 32, 10)
    hostile_registry.route(f"/v2/{REPO}/manifests/1.0.0", Answer(body=trickle(data), pause=0.05))
    start = time.monotonic()
    err = _bounded(lambda: client.get_manifest(REPO, "1.0.0"), seconds=30)
    assert "did not answer in time" in str(err)
    assert time.monotonic() - start >= QUICK.exchange_seconds * 0.9  # it was the deadline, not an accident


def test_slow_retrieval_of_headers_ends_at_the_deadline(hostile_registry: HostileRegistry, client: OciBackend) -> None:
    hostile_registry.route(f"/v2/{REPO}/manifests/1.0.0", Answer(body=b"{}", status_pause=0.05))
    assert "did not answer in time" in str(_bounded(lambda: client.get_manifest(REPO, "1.0.0"), seconds=30))


def test_silent_registry_ends_at_the_read_timeout(hostile_registry: HostileRegistry, client: OciBackend) -> None:
    hostile_registry.route(f"/v2/{REPO}/manifests/1.0.0", Answer(body=trickle(b"{}"), pause=600))
    assert "did not answer in time" in str(_bounded(lambda: client.get_manifest(REPO, "1.0.0"), seconds=30))


def test_slow_retrieval_of_a_blob_is_held_to_the_minimum_rate(
    hostile_registry: HostileRegistry, client: OciBackend
) -> None:
    """A blob whose bytes come slower than ``min_rate`` (after the fixed allowance) is refused,
    however long the registry is willing to keep trickling."""
    data = b"y" * 4096
    blob = digest_bytes(data)
    hostile_registry.route(f"/v2/{REPO}/blobs/{blob}", Answer(body=trickle(data, 16), pause=0.05))
    deadline = QUICK.transfer_seconds(len(data))
    start = time.monotonic()
    err = _bounded(lambda: client.fetch_blob(REPO, blob, len(data), io.BytesIO()), seconds=deadline + 20)
    assert "did not answer in time" in str(err)
    assert time.monotonic() - start < deadline + 5


def test_honest_slow_registry_within_limits_still_works(hostile_registry: HostileRegistry, client: OciBackend) -> None:
    """The limits refuse hostility, not a registry that is merely slow."""
    data = b"z" * 2048
    blob = digest_bytes(data)
    hostile_registry.route(f"/v2/{REPO}/blobs/{blob}", Answer(body=trickle(data, 512), pause=0.1))
    out = io.BytesIO()
    client.fetch_blob(REPO, blob, len(data), out)
    assert out.getvalue() == data
