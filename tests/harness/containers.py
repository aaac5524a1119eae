"""A real container engine for tests: podman's Docker-compatible API on a private socket.

``.ci/container-setup.sh`` (as root) installs podman, writes a CONTAINERS_CONF with runc and
explicit ulimits (this sandbox cannot raise rlimits) and imports a debootstrapped Debian
bookworm as ``localhost/mpkg-base:bookworm``. The ``container_engine`` fixture starts
``podman system service`` on a socket of its own for the test session, and afterwards stops
it and removes the images the session created (so repeated runs do not fill the disk).

Set ``MPKG_TEST_DOCKER_HOST`` (and ``MPKG_TEST_BASE_IMAGE``) to use another engine, e.g. a
real Docker daemon. Where no engine can be had, the fixture skips with the reason.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from tests.harness.process import stop

CACHE = Path(os.environ.get("MPKG_CI_CACHE", "/var/cache/mpkg-ci"))
STATUS_FILE = CACHE / "status"
CONTAINERS_CONF = Path("/etc/mpkg-ci/containers.conf")
BASE_IMAGE = "localhost/mpkg-base:bookworm"
# Every image a test builds is tagged under this name and a token of its session
# (Engine.test_tag), so teardown removes exactly that session's images.
TEST_IMAGES = "localhost/mpkg-test"
SETUP_HINT = "run `sudo bash .ci/container-setup.sh`"
# Waiting for the service to answer is set-up, not an assertion: generous on a loaded machine.
SERVICE_START_DEADLINE = 120.0


@dataclass(frozen=True)
class Engine:
    """A reachable Docker API. ``podman_env`` is set when it is our podman service."""

    url: str
    base_image: str
    podman_env: Mapping[str, str] | None = field(default=None, hash=False)
    images: str = TEST_IMAGES  # the repository prefix this session's test images are tagged under

    def test_tag(self, name: str) -> str:
        """A fresh tag for an image a test builds, under this session's own prefix: xdist workers
        and other checkouts share podman's storage, and removing an image (``rmi --force``)
        removes the containers running it, so no session may touch another's images."""
        return f"{self.images}/{name}:{uuid.uuid4().hex[:8]}"

    def client(self) -> Any:
        import docker

        return docker.DockerClient(base_url=self.url, timeout=600)

    def podman(self, *args: str) -> subprocess.CompletedProcess[str]:
        """Run the podman CLI against the same storage (for what the compat API hides)."""
        assert self.podman_env is not None, "not a podman engine"
        return subprocess.run(
            ["podman", *args],
            env=dict(self.podman_env),
            capture_output=True,
            text=True,
            check=False,
        )

    def podman_started(self, *args: str) -> subprocess.Popen[str]:
        """Start the podman CLI without waiting for it (``communicate()`` it, with a timeout)."""
        assert self.podman_env is not None, "not a podman engine"
        return subprocess.Popen(
            ["podman", *args],
            env=dict(self.podman_env),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
            text=True,
        )


def podman_env() -> dict[str, str]:
    return {**os.environ, "CONTAINERS_CONF": str(CONTAINERS_CONF)}


def why_unavailable() -> str | None:
    """Why the podman engine cannot be used here, or None when it can."""
    status = STATUS_FILE.read_text().strip() if STATUS_FILE.is_file() else ""
    if status.startswith("unavailable:"):
        return f"container engine {status} ({SETUP_HINT} to retry)"
    if shutil.which("podman") is None:
        return f"podman is not installed; {SETUP_HINT}"
    if not CONTAINERS_CONF.is_file():
        return f"{CONTAINERS_CONF} is missing; {SETUP_HINT}"
    try:
        import docker  # noqa: F401
    except ImportError:
        return "the docker SDK is not installed (pip install 'mpkg[builder]')"
    probe = subprocess.run(
        ["podman", "image", "exists", BASE_IMAGE],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    if probe.returncode != 0:
        said = probe.stderr.strip() or "not imported"
        return f"base image {BASE_IMAGE} is missing ({said}); {SETUP_HINT}"
    return None


def _ping(url: str) -> str | None:
    import docker

    try:
        client = docker.DockerClient(base_url=url, timeout=10)
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    try:
        client.ping()
        return None
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    finally:
        client.close()


@pytest.fixture(scope="session")
def container_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    external = os.environ.get("MPKG_TEST_DOCKER_HOST")
    if external:
        problem = _ping(external)
        if problem:
            pytest.skip(f"MPKG_TEST_DOCKER_HOST={external} does not answer: {problem}")
        yield Engine(external, os.environ.get("MPKG_TEST_BASE_IMAGE", BASE_IMAGE), images=_session_images())
        return
    reason = why_unavailable()
    if reason:
        pytest.skip(reason)
    images = _session_images()
    work = tmp_path_factory.mktemp("podman")
    sock = work / "podman.sock"
    log = work / "service.log"
    env = podman_env()
    with log.open("wb") as out:
        proc = subprocess.Popen(
            ["podman", "system", "service", "--time=0", f"unix://{sock}"],
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
    url = f"unix://{sock}"
    try:
        deadline = time.monotonic() + SERVICE_START_DEADLINE
        problem: str | None = "not started"
        while time.monotonic() < deadline and proc.poll() is None:
            problem = _ping(url) if sock.exists() else "no socket yet"
            if problem is None:
                break
            time.sleep(0.2)
        if problem is not None:
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            pytest.skip(f"podman system service did not answer on {sock}: {problem}; it said: {tail[0]}")
        yield Engine(url, BASE_IMAGE, env, images)
    finally:
        stop(proc, timeout=30)
        # the images this session's tests tagged, and nothing else: another xdist worker (or
        # another checkout's run) may be building or running containers at the same time, and
        # `rmi --force` would remove its running containers with its images
        created = sorted(_tagged_images(images))
        if created:
            subprocess.run(
                ["podman", "rmi", "--force", "--ignore", *created],
                env=env,
                capture_output=True,
                check=False,
            )


def _session_images() -> str:
    return f"{TEST_IMAGES}/{uuid.uuid4().hex[:12]}"


def _tagged_images(prefix: str) -> set[str]:
    listed = subprocess.run(
        ["podman", "images", "--format", "{{.Repository}}:{{.Tag}}", "--filter", f"reference={prefix}/*"],
        env=podman_env(),
        capture_output=True,
        text=True,
        check=False,
    )
    return {line for line in listed.stdout.split() if line.startswith(prefix + "/")}
