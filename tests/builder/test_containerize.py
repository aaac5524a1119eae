"""`mpkg containerize`: the build context (always), and a real image served over HTTP.

The context tests build real packages from examples/iris-mlp and collect real wheels once
per session (pip download into a wheelhouse; later calls run offline from it). The end-to-end
test builds the image with podman through the Docker SDK, runs it with the port published on
127.0.0.1 and checks an inference; it skips with the reason where no engine can be started
(see tests/harness/containers.py and .ci/container-setup.sh).
"""

from __future__ import annotations

import hashlib
import io
import json
import re
import shutil
import time
import urllib.error
import urllib.request
import zipfile
from collections.abc import Callable, Iterator
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest
from mpkg._internal.format.package import read_info
from mpkg.errors import MpkgError, UsageError, VerificationError
from mpkg_builder import containerize as cz
from mpkg_builder.containerize.baseimage import resolve_base
from mpkg_builder.containerize.runtime_wheel import record_digest
from mpkg_builder.containerize.wheels import pip_download
from mpkg_builder.sources.lockfile import Lockfile, parse_requirements
from packaging.utils import parse_wheel_filename

from tests.harness.containers import Engine, container_engine

ROOT = Path(__file__).resolve().parents[2]

__all__ = ["container_engine"]

EXAMPLE = ROOT / "examples" / "iris-mlp"
BASE = "localhost/mpkg-base:bookworm@sha256:" + "0" * 64  # context tests never build it


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def wheelhouse(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every wheel the tests' packages need, collected once (online), then used offline:
    the mpkg runtime's closure (with its registry extra) resolved against the example's lockfile,
    plus `six` (a package outside the runtime) and packaging 23.2 (older than the runtime allows)."""
    out = tmp_path_factory.mktemp("wheelhouse")
    lock = parse_requirements((EXAMPLE / "requirements.lock").read_text(), "requirements.lock")
    cz.collect_wheels(lock, out / "w", extras=("registry",))  # and what a --follow image adds
    extra = Lockfile("requirements", None, parse_requirements("six==1.16.0\n").packages)
    extra_dir = out / "extra"
    cz.collect_wheels(extra, extra_dir)
    old = out / "old"
    old.mkdir()
    pip_download(["packaging==23.2", "--no-deps"], old, None, False, "packaging 23.2")
    house = out / "house"
    house.mkdir()
    for wheel in [*(out / "w").glob("*.whl"), *extra_dir.glob("six-*.whl"), *old.glob("*.whl")]:
        shutil.copyfile(wheel, house / wheel.name)
    return house


def wheel_of(house: Path, name: str) -> Path:
    found = [w for w in house.glob("*.whl") if str(parse_wheel_filename(w.name)[0]) == name]
    assert len(found) == 1, f"{name}: {found}"
    return found[0]


def pin_of(house: Path, name: str, hashed: bool) -> str:
    wheel = wheel_of(house, name)
    line = f"{name}=={parse_wheel_filename(wheel.name)[1]}"
    if hashed:
        line += f" --hash=sha256:{hashlib.sha256(wheel.read_bytes()).hexdigest()}"
    return line


@pytest.fixture(scope="session")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from mpkg_builder.signing import keygen

    pair = keygen(tmp_path_factory.mktemp("keys") / "signer")
    return Path(pair.private_path), Path(pair.public_path)


@pytest.fixture(scope="session")
def make_package(tmp_path_factory: pytest.TempPathFactory, keypair: tuple[Path, Path]) -> Callable[..., Path]:
    """Real packages from examples/iris-mlp with a given lockfile; signed unless asked not to."""
    from mpkg_builder.build import build_package

    made: dict[tuple[str | None, bool], Path] = {}

    def make(lock: str | None = None, signed: bool = True) -> Path:
        if (lock, signed) in made:
            return made[(lock, signed)]
        work = tmp_path_factory.mktemp("pkg")
        src = work / "src"
        shutil.copytree(EXAMPLE, src)
        if lock is not None:
            (src / "requirements.lock").write_text(lock)
        out = work / "iris.mpkg"
        build_package(src, out, key=keypair[0] if signed else None)
        made[(lock, signed)] = out
        return out

    return make


@pytest.fixture
def context_of(tmp_path: Path, wheelhouse: Path, keypair: tuple[Path, Path]) -> Callable[..., cz.BuildContext]:
    counter = iter(range(1000))

    def write(package: Path, **kw: Any) -> cz.BuildContext:
        kw.setdefault("keys", [keypair[1]])
        kw.setdefault("base", BASE)
        return cz.write_context(package, tmp_path / f"ctx{next(counter)}", wheelhouse=wheelhouse, offline=True, **kw)

    return write


def instructions(dockerfile: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuations joined and comments dropped."""
    out: list[tuple[str, str]] = []
    for logical in re.sub(r"\\\n", " ", dockerfile).splitlines():
        line = logical.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word, rest.strip()))
    return out


def flip_weight_byte(package: bytes) -> bytes:
    """The package with one byte of its ONNX weights changed (headers intact)."""
    weights = (EXAMPLE / "model.onnx").read_bytes()
    at = package.find(weights)
    assert at > 0
    data = bytearray(package)
    data[at + len(weights) // 2] ^= 0xFF
    return bytes(data)


def one_line(exc: MpkgError) -> str:
    reasons = exc.reasons()
    assert len(reasons) == 1 and "\n" not in reasons[0], reasons
    return reasons[0]


def tree(root: Path) -> dict[str, tuple[int, int, str]]:
    return {
        p.relative_to(root).as_posix(): (
            p.stat().st_mode,
            int(p.stat().st_mtime),
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "",
        )
        for p in sorted(root.rglob("*"))
    }


# --------------------------------------------------------------------------- context


def test_context_holds_package_keys_wheels_and_a_dockerfile(
    make_package: Callable[..., Path],
    context_of: Callable[..., cz.BuildContext],
    keypair: tuple[Path, Path],
) -> None:
    pkg = make_package()
    info = read_info(pkg)
    ctx = context_of(pkg)
    root = ctx.path

    assert ctx.package.digest == info.digest and ctx.package.name == "iris-mlp"
    assert (root / "package" / "iris-mlp-1.0.0.mpkg").read_bytes() == pkg.read_bytes()
    assert (root / "keys" / "key-1.pub").read_bytes() == keypair[1].read_bytes()
    assert sorted(p.name for p in root.iterdir()) == [
        "Dockerfile",
        "keys",
        "package",
        "requirements",
        "runtime",
        "wheels",
    ]
    runtime_wheel = wheel_of(root / "runtime", "mpkg")
    assert not list((root / "wheels").glob("mpkg-*"))
    assert parse_wheel_filename(runtime_wheel.name)[1].public == ctx.runtime_version

    steps = instructions((root / "Dockerfile").read_text())
    words = [w for w, _ in steps]
    assert steps[0] == ("FROM", f"{BASE} AS install")
    final = words.index("FROM", 1)
    assert steps[final] == ("FROM", BASE)
    install = " ".join(a for w, a in steps[:final] if w == "RUN")
    assert "--no-index --find-links /build/wheels" in install
    assert "--require-hashes -r /build/requirements/runtime.txt" in install
    assert "pip check" in install
    assert "--find-links /build/runtime --require-hashes --no-deps -r /build/requirements/mpkg.txt" in install
    # the runtime wheel is copied after the dependencies are installed: its own layer
    copies = [a for w, a in steps[:final] if w == "COPY"]
    assert copies.index("runtime/ /build/runtime/") > copies.index("wheels/ /build/wheels/")
    tail = steps[final:]
    # the venv comes from the install stage: no wheels in the final image
    assert ("COPY", "--from=install /opt/mpkg /opt/mpkg") in tail
    assert ("COPY", "package/iris-mlp-1.0.0.mpkg /models/iris-mlp-1.0.0.mpkg") in tail
    user = next(i for i, (w, _) in enumerate(tail) if w == "USER")
    assert tail[user][1] == "10001:10001"
    verify_at = next(i for i, (w, a) in enumerate(tail) if w == "RUN" and '"verify"' in a)
    assert verify_at > user, "the package is verified as the user that serves it"
    assert json.loads(tail[verify_at][1]) == [
        "/opt/mpkg/bin/mpkg",
        "verify",
        "/models/iris-mlp-1.0.0.mpkg",
        "--key",
        "/keys/key-1.pub",
    ]
    entry = json.loads(dict(tail)["ENTRYPOINT"])
    assert entry[:3] == ["/opt/mpkg/bin/mpkg", "serve", "/models/iris-mlp-1.0.0.mpkg"]
    assert entry[3:] == ["--host", "0.0.0.0", "--port", "8080", "--key", "/keys/key-1.pub"]
    health = dict(tail)["HEALTHCHECK"]
    cmd = json.loads(health.split(" CMD ", 1)[1])
    assert cmd[0] == "/opt/mpkg/bin/python3" and "/v2/health/ready" in cmd[2]
    assert "curl" not in (root / "Dockerfile").read_text()

    labels = {}
    for w, a in tail:
        if w == "LABEL":
            labels.update({k: json.loads(v) for k, v in re.findall(r'(\S+)=("(?:[^"\\]|\\.)*")', a)})
    assert labels == ctx.labels
    assert labels["org.opencontainers.image.title"] == "iris-mlp"
    assert labels["org.opencontainers.image.version"] == "1.0.0"
    assert labels["dev.mpkg.package.digest"] == info.digest
    assert labels["org.opencontainers.image.base.name"] == BASE.rpartition("@")[0]
    assert labels["org.opencontainers.image.base.digest"] == BASE.rpartition("@")[2]


def test_runtime_requirements_pin_every_runtime_wheel_by_hash(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext]
) -> None:
    ctx = context_of(make_package())
    req = ctx.path / "requirements"
    mpkg_pin = parse_requirements((req / "mpkg.txt").read_text(), "mpkg.txt").packages
    assert [(p.name, p.version) for p in mpkg_pin] == [("mpkg", ctx.runtime_version)]
    pins = parse_requirements((req / "runtime.txt").read_text(), "runtime.txt").packages
    names = {p.name for p in pins}
    assert "mpkg" not in names
    assert {
        "numpy",
        "onnxruntime",
        "uvicorn",
        "orjson",
        "blake3",
        "cryptography",
    } <= names
    assert not names & {"onnx", "pyarrow", "docker", "jsonschema", "rich", "httpx"}  # builder-only
    wheels = [*(ctx.path / "wheels").glob("*.whl"), *(ctx.path / "runtime").glob("*.whl")]
    by_hash = {"sha256:" + hashlib.sha256(w.read_bytes()).hexdigest(): w for w in wheels}
    for pin in (*pins, *mpkg_pin):
        assert pin.hashes, pin
        for h in pin.hashes:
            name, version, _, _ = parse_wheel_filename(by_hash[h].name)
            assert (str(name), str(version)) == (pin.name, pin.version)


def test_runtime_wheel_is_the_runtime_alone_and_reproducible(tmp_path: Path) -> None:
    a = cz.build_runtime_wheel(tmp_path / "a")
    b = cz.build_runtime_wheel(tmp_path / "b")
    assert a.read_bytes() == b.read_bytes()
    with zipfile.ZipFile(a) as zf:
        names = zf.namelist()
        assert "mpkg/__init__.py" in names and "mpkg/_internal/trust/verify.py" in names
        assert not [n for n in names if n.startswith("mpkg_builder") or "__pycache__" in n]
        dist = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
        meta = zf.read(f"{dist}/METADATA").decode()
        import tomllib

        project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
        assert re.findall(r"^Requires-Dist: (.*)$", meta, re.M) == project["dependencies"]
        assert "[console_scripts]\nmpkg = mpkg.cli:main" in zf.read(f"{dist}/entry_points.txt").decode()
        for row in zf.read(f"{dist}/RECORD").decode().splitlines():
            path, digest, size = row.rsplit(",", 2)
            if path.endswith("RECORD"):
                continue
            data = zf.read(path)
            assert int(size) == len(data)
            assert digest == "sha256=" + record_digest(data)


def test_hashed_lockfile_is_installed_with_require_hashes(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext], wheelhouse: Path
) -> None:
    lock = "\n".join([pin_of(wheelhouse, "numpy", True), pin_of(wheelhouse, "six", True)]) + "\n"
    ctx = context_of(make_package(lock))
    assert ctx.lock_hashed
    text = (ctx.path / "requirements" / "lock.txt").read_text()
    assert parse_requirements(text, "lock.txt").packages == parse_requirements(lock, "x").packages
    dockerfile = (ctx.path / "Dockerfile").read_text()
    assert "--require-hashes -r /build/requirements/lock.txt" in dockerfile
    # six is the package's own dependency: shipped, but not part of the runtime's pins
    assert wheel_of(ctx.path / "wheels", "six")
    assert "six==" not in (ctx.path / "requirements" / "runtime.txt").read_text()


def test_lockfile_without_hashes_is_installed_without_require_hashes(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext], wheelhouse: Path
) -> None:
    lock = pin_of(wheelhouse, "numpy", False) + "\n" + pin_of(wheelhouse, "six", False) + "\n"
    ctx = context_of(make_package(lock))
    assert not ctx.lock_hashed
    text = (ctx.path / "requirements" / "lock.txt").read_text()
    assert "--hash" not in text and "six==1.16.0" in text
    lock_line = next(ln for ln in (ctx.path / "Dockerfile").read_text().splitlines() if "lock.txt" in ln)
    assert "--require-hashes" not in lock_line
    assert wheel_of(ctx.path / "wheels", "six")


def test_lockfile_hash_mismatch_is_refused_in_one_line(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext], wheelhouse: Path
) -> None:
    wrong = pin_of(wheelhouse, "six", False) + " --hash=sha256:" + "0" * 64 + "\n"
    with pytest.raises(MpkgError) as err:
        context_of(make_package(wrong))
    line = one_line(err.value)
    assert "lockfile" in line and "hash" in line.lower(), line


def test_lockfile_that_conflicts_with_the_runtime_is_refused(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext], wheelhouse: Path
) -> None:
    # the runtime needs packaging>=24; this lock pins 23.2 (present in the wheelhouse)
    with pytest.raises(MpkgError) as err:
        context_of(make_package("packaging==23.2\n"))
    line = one_line(err.value)
    assert "runtime" in line and "packaging" in line, line


def test_lockfile_pin_with_no_wheel_is_refused(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext]
) -> None:
    with pytest.raises(MpkgError) as err:
        context_of(make_package("six==1.15.0\n"))
    line = one_line(err.value)
    assert "lockfile" in line and "six==1.15.0" in line, line


def test_context_is_deterministic(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext]
) -> None:
    pkg = make_package()
    a, b = context_of(pkg), context_of(pkg)
    assert a.path != b.path
    assert tree(a.path) == tree(b.path)
    assert (a.labels, a.wheels) == (b.labels, b.wheels)


def test_unsigned_package_needs_allow_unsigned(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext]
) -> None:
    pkg = make_package(signed=False)
    with pytest.raises(VerificationError) as err:
        context_of(pkg, keys=[])
    assert "--allow-unsigned" in one_line(err.value)
    ctx = context_of(pkg, keys=[], allow_unsigned=True)
    steps = dict(instructions((ctx.path / "Dockerfile").read_text()))
    assert "--allow-unsigned" in json.loads(steps["ENTRYPOINT"])
    assert not (ctx.path / "keys").exists()


def test_package_signed_by_another_key_is_refused(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext], tmp_path: Path
) -> None:
    from mpkg_builder.signing import keygen

    other = keygen(tmp_path / "other")
    with pytest.raises(VerificationError) as err:
        context_of(make_package(), keys=[other.public_path])
    assert "--key" in one_line(err.value)


def test_tampered_package_is_refused(
    make_package: Callable[..., Path], context_of: Callable[..., cz.BuildContext], tmp_path: Path
) -> None:
    bad = tmp_path / "bad.mpkg"
    bad.write_bytes(flip_weight_byte(make_package().read_bytes()))
    with pytest.raises(VerificationError) as err:
        context_of(bad)
    line = one_line(err.value)
    assert "bad.mpkg" in line and "model.onnx" in line and "digest" in line, line


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"base": "Not A Ref"}, "--base"),
        ({"base": "python:3.11@sha256:abc"}, "--base"),
        ({"base": "python:3.11-slim-bookworm"}, "is a tag, which can move; pin it by digest"),
        ({"keys": ["/nonexistent/key.pub"]}, "/nonexistent/key.pub: cannot be read"),
        ({"wheelhouse": "/nonexistent/wheels"}, "--wheelhouse"),
    ],
)
def test_bad_options_are_refused_in_one_line(
    make_package: Callable[..., Path], tmp_path: Path, kwargs: dict[str, Any], needle: str
) -> None:
    kwargs = {"base": BASE, **kwargs}
    with pytest.raises(MpkgError) as err:
        cz.write_context(make_package(), tmp_path / "ctx", **kwargs)
    assert needle in one_line(err.value)
    assert not (tmp_path / "ctx").exists()


def test_non_empty_destination_is_refused(make_package: Callable[..., Path], tmp_path: Path) -> None:
    (tmp_path / "ctx").mkdir()
    (tmp_path / "ctx" / "keep.txt").write_text("mine")
    with pytest.raises(UsageError) as err:
        cz.write_context(make_package(), tmp_path / "ctx", base=BASE, allow_unsigned=True)
    assert "not an empty folder" in one_line(err.value)
    assert [p.name for p in (tmp_path / "ctx").iterdir()] == ["keep.txt"]


def test_bad_tag_is_refused(make_package: Callable[..., Path], tmp_path: Path) -> None:
    for tag in ("UPPER/case:1", "name:tag:extra", "x" * 300, "trailing-:1"):
        with pytest.raises(UsageError) as err:
            cz.containerize(make_package(), tag, context_only=tmp_path / "ctx")
        assert "--tag" in one_line(err.value)


def test_missing_package_is_refused(tmp_path: Path) -> None:
    with pytest.raises(MpkgError) as err:
        cz.write_context(tmp_path / "missing.mpkg", tmp_path / "ctx", base=BASE, allow_unsigned=True)
    assert "missing.mpkg" in err.value.reasons()[0]


def test_engine_candidates_follow_docker_host(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DOCKER_HOST", "tcp://127.0.0.1:2375")
    assert cz.engine_candidates() == ["tcp://127.0.0.1:2375"]
    assert cz.engine_candidates("unix:///x.sock") == ["unix:///x.sock"]
    monkeypatch.delenv("DOCKER_HOST")
    monkeypatch.setenv("XDG_RUNTIME_DIR", "/run/user/1000")
    assert cz.engine_candidates() == [
        "unix:///var/run/docker.sock",
        "unix:///run/podman/podman.sock",
        "unix:///run/user/1000/podman/podman.sock",
    ]


def run_cli(argv: list[str]) -> tuple[int, str, str]:
    from mpkg.cli import main

    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main(argv)
        except SystemExit as exc:  # argparse's usage errors
            code = int(exc.code or 0)
    return code, out.getvalue(), err.getvalue()


def test_cli_without_an_engine_says_so_in_one_line(
    make_package: Callable[..., Path],
    keypair: tuple[Path, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("DOCKER_HOST", f"unix://{tmp_path}/no-engine.sock")
    code, out, err = run_cli(["containerize", str(make_package()), "-t", "iris:1", "--key", str(keypair[1])])
    assert code == 1 and out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "no container engine is reachable" in lines[0] and "--context-only" in lines[0]
    code, out, _ = run_cli(["containerize", str(make_package()), "-t", "iris:1", "--key", str(keypair[1]), "--json"])
    assert code == 1 and len(json.loads(out)["errors"]) == 1


def test_cli_context_only_json(
    make_package: Callable[..., Path], keypair: tuple[Path, Path], tmp_path: Path, wheelhouse: Path
) -> None:
    pkg = make_package()
    code, out, _ = run_cli(
        [
            "containerize",
            str(pkg),
            "-t",
            "localhost/iris:1.0.0",
            "--key",
            str(keypair[1]),
            "--base",
            BASE,
            "--context-only",
            str(tmp_path / "ctx"),
            "--wheelhouse",
            str(wheelhouse),
            "--offline",
            "--json",
        ]
    )
    assert code == 0
    doc = json.loads(out)
    assert doc["ok"] and not doc["built"] and doc["image_id"] is None
    assert doc["context"] == str(tmp_path / "ctx")
    assert doc["package"]["digest"] == read_info(pkg).digest == doc["labels"]["dev.mpkg.package.digest"]
    assert (tmp_path / "ctx" / "Dockerfile").is_file()


def test_cli_usage_errors_exit_2(tmp_path: Path) -> None:
    code, _, err = run_cli(["containerize", str(tmp_path / "x.mpkg")])
    assert code == 2 and "--tag" in err


# --------------------------------------------------------------------------- end to end


def _http(url: str, body: dict[str, Any] | None = None) -> tuple[int, Any]:
    data = json.dumps(body).encode() if body is not None else None
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json"} if data else {})
    try:
        with urllib.request.urlopen(req, timeout=30) as resp:
            return resp.status, json.loads(resp.read() or b"null")
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(errors="replace")


@pytest.fixture
def engine_client(container_engine: Engine) -> Iterator[Any]:
    client = container_engine.client()
    yield client
    client.close()


def test_build_refuses_a_package_that_does_not_verify_in_the_image(
    container_engine: Engine,
    engine_client: Any,
    make_package: Callable[..., Path],
    keypair: tuple[Path, Path],
    wheelhouse: Path,
    tmp_path: Path,
) -> None:
    ctx = cz.write_context(
        make_package(),
        tmp_path / "ctx",
        base=resolve_base(container_engine.base_image, engine_client),  # the engine's digest of the tag
        keys=[keypair[1]],
        wheelhouse=wheelhouse,
        offline=True,
    )
    copied = ctx.path / "package" / ctx.package.filename
    copied.write_bytes(flip_weight_byte(copied.read_bytes()))
    tag = container_engine.test_tag("iris-mlp-tampered")
    with pytest.raises(MpkgError) as err:
        cz.build_image(engine_client, ctx.path, tag)
    line = one_line(err.value)
    assert "building image" in line and "digest" in line, line
    with pytest.raises(Exception):  # noqa: B017 - the docker SDK's ImageNotFound
        engine_client.images.get(tag)


def test_image_builds_verifies_and_serves_inference(
    container_engine: Engine,
    engine_client: Any,
    make_package: Callable[..., Path],
    keypair: tuple[Path, Path],
    wheelhouse: Path,
) -> None:
    pkg = make_package()
    info = read_info(pkg)
    tag = container_engine.test_tag("iris-mlp")
    log: list[str] = []
    result = cz.containerize(
        pkg,
        tag,
        base=container_engine.base_image,
        keys=[keypair[1]],
        wheelhouse=wheelhouse,
        offline=True,
        engine=container_engine.url,
        log=log.append,
    )
    container = None
    try:
        assert result.built and result.image_id
        image = engine_client.images.get(tag)
        assert image.id == result.image_id
        labels = image.labels
        assert labels["dev.mpkg.package.digest"] == info.digest
        assert labels["org.opencontainers.image.title"] == "iris-mlp"
        assert labels["org.opencontainers.image.version"] == "1.0.0"
        assert image.attrs["Config"]["User"] == "10001:10001"

        container = engine_client.containers.run(tag, detach=True, ports={"8080/tcp": ("127.0.0.1", None)})
        container.reload()
        port = container.attrs["NetworkSettings"]["Ports"]["8080/tcp"][0]["HostPort"]
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 180  # start-up wait, not a timing assertion
        status: Any = None
        while time.monotonic() < deadline:
            container.reload()
            if container.status not in ("created", "running"):
                break
            try:
                status, _ = _http(f"{url}/v2/health/ready")
            except OSError:
                status = None
            if status == 200:
                break
            time.sleep(0.5)
        assert status == 200, container.logs().decode(errors="replace")[-3000:]

        status, meta = _http(f"{url}/v2")
        assert status == 200
        assert {"name": "iris-mlp", "version": "1.0.0", "digest": info.digest} in meta["models"]
        assert [m["digest"] for m in meta["models"]] == [labels["dev.mpkg.package.digest"]]

        example = json.loads((EXAMPLE / "example.json").read_text())
        features = example["inputs"]["features"]
        status, resp = _http(
            f"{url}/v2/models/iris-mlp/infer",
            {
                "inputs": [
                    {
                        "name": "features",
                        "shape": [len(features), 4],
                        "datatype": "FP32",
                        "data": [x for row in features for x in row],
                    }
                ]
            },
        )
        assert status == 200, resp
        outputs = {o["name"]: o for o in resp["outputs"]}
        assert outputs["label"]["data"] == example["outputs"]["label"]
        probs = outputs["probabilities"]["data"]
        assert outputs["probabilities"]["shape"] == [3, 3]
        import mpkg
        import numpy as np

        expected = mpkg.load(pkg, [keypair[1]]).predict({"features": np.asarray(features, dtype=np.float32)})
        np.testing.assert_allclose(
            np.asarray(probs, dtype=np.float32).reshape(3, 3),
            expected["probabilities"],
            rtol=1e-5,
            atol=1e-6,
        )

        # the image's own HEALTHCHECK command, run inside the container, reports ready
        if container_engine.podman_env is not None:
            checked = container_engine.podman("healthcheck", "run", container.id)
            assert checked.returncode == 0, checked.stdout + checked.stderr
        uid = container.exec_run(["/opt/mpkg/bin/python3", "-c", "import os; print(os.getuid())"])
        assert uid.output.decode().strip() == "10001"
    finally:
        if container is not None:
            container.remove(force=True)
        engine_client.images.remove(tag, force=True)


@pytest.mark.parametrize(
    ("reference", "digest", "ok"),
    [
        ("iris:1.0.0", False, True),
        ("registry.example:5000/team/iris:1", False, True),
        ("localhost/iris", False, True),
        ("python:3.11-slim@sha256:" + "a" * 64, True, True),
        ("python:3.11-slim@sha256:" + "a" * 64, False, False),  # -t names a tag, not bytes
        ("iris:1\n", False, False),  # a trailing newline is no tag ($ would have let it through)
        ("Iris:1", False, False),
        ("Not A Ref", True, False),
        ("python:3.11@sha256:abc", True, False),
        ("a/" * 130 + "b", True, False),  # over 255 characters
    ],
)
def test_image_references_use_the_registry_grammar(reference: str, digest: bool, ok: bool) -> None:
    """One grammar for image and package references (registry/refs.py), not a copy that drifts."""
    from mpkg_builder.containerize.imageref import is_image_reference

    assert is_image_reference(reference, digest=digest) is ok
