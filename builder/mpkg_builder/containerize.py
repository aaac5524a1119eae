"""``mpkg containerize``: a serving image for one package, built from a deterministic context.

The context holds everything the build needs, so the build itself runs offline:

- ``runtime/``: the mpkg runtime, a wheel made here from the running ``mpkg`` without the
  builder (its own layer, so changing mpkg does not invalidate the dependency layer);
- ``wheels/``: every wheel the runtime and the package's lockfile need, for CPython 3.11 on
  manylinux;
- ``requirements/runtime.txt``: the runtime's dependencies, pinned with the wheels' sha256;
  ``requirements/mpkg.txt`` pins the runtime wheel the same way;
- ``requirements/lock.txt``: the package's lockfile, normalised (hashes kept when it has them);
- ``package/NAME-VERSION.mpkg`` and ``keys/key-N.pub``;
- ``Dockerfile``: installs into a venv in a first stage, copies the venv into the final stage,
  verifies the package there as the non-root user, and serves it with ``mpkg serve``.

Same package, keys, base and wheels in -> same bytes out (file contents, modes and mtimes).

The image is built through the Docker Engine API with the ``docker`` SDK: ``DOCKER_HOST`` when
set, else the first socket that answers among Docker's and podman's default ones. With podman,
run ``podman system service --time=0 unix:///run/podman/podman.sock`` and point ``DOCKER_HOST``
at that socket.
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import importlib.metadata
import json
import os
import platform
import re
import shutil
import subprocess
import sys
import tempfile
import tomllib
import zipfile
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import mpkg
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.io.atomic import temporary
from mpkg._internal.trust.keyfiles import PUBLIC, pem_blocks, read_key_file
from mpkg._internal.trust.verify import payload_bytes, policy_for, verified
from mpkg.cli import add_key_options, emit_json, info, trusted_keys
from mpkg.errors import MpkgError, UsageError
from packaging.specifiers import InvalidSpecifier, SpecifierSet
from packaging.utils import parse_wheel_filename

from .baseimage import how_to_pin, is_pinned, resolve_base, split_pinned
from .sources.lockfile import Lockfile, Pin, parse_pylock, parse_requirements

if TYPE_CHECKING:
    from .modelcar import ModelcarContext

Log = Callable[[str], None]

DEFAULT_BASE = "python:3.11-slim-bookworm"
# The Python the context's wheels are for; the base image must have it as `python3`.
TARGET_PYTHON = (3, 11)
PY = f"{TARGET_PYTHON[0]}.{TARGET_PYTHON[1]}"
# glibc of Debian bookworm: the newest manylinux wheels the image can load.
TARGET_GLIBC_MINOR = 36
CONTAINER_PORT = 8080
RUNTIME_UID = 10001
VENV = "/opt/mpkg"
# File times in the context (1980-01-01, the earliest a zip entry can hold).
EPOCH = 315532800

LABEL_TITLE = "org.opencontainers.image.title"
LABEL_VERSION = "org.opencontainers.image.version"
LABEL_BASE = "org.opencontainers.image.base.name"
LABEL_BASE_DIGEST = "org.opencontainers.image.base.digest"
LABEL_NAME = "dev.mpkg.package.name"
LABEL_PKG_VERSION = "dev.mpkg.package.version"
LABEL_DIGEST = "dev.mpkg.package.digest"
LABEL_RUNTIME = "dev.mpkg.runtime.version"

# Docker image references (distribution/reference grammar), without and with a digest.
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_HOST_PART = r"[a-zA-Z0-9](?:[a-zA-Z0-9-]*[a-zA-Z0-9])?"
# Like docker: a first component is a registry host only with a dot, a port or "localhost".
_HOST = rf"(?:localhost|{_HOST_PART}(?:\.{_HOST_PART})+)(?::[0-9]+)?|{_HOST_PART}:[0-9]+"
_DOMAIN = rf"(?:(?:{_HOST})/)?"
_NAME = rf"{_DOMAIN}{_COMPONENT}(?:/{_COMPONENT})*"
_TAG = r"[\w][\w.-]{0,127}"
TAG_RE = re.compile(rf"^{_NAME}(?::{_TAG})?\Z", re.ASCII)  # \Z: "iris:1\n" is no tag
BASE_RE = re.compile(rf"^{_NAME}(?::{_TAG})?(?:@sha256:[0-9a-f]{{64}})?\Z", re.ASCII)


class EngineUnavailable(MpkgError):
    """No Docker-API container engine answered."""


@dataclass(frozen=True)
class ImagePackage:
    """The package an image serves (the registry's ``PackageRef`` is another thing: an artifact)."""

    name: str
    version: str
    digest: str
    filename: str  # under package/ in the context and /models/ in the image


@dataclass(frozen=True)
class BuildContext:
    """A written build context and what it says about the image."""

    path: Path
    package: ImagePackage
    base: str
    runtime_version: str
    lock_hashed: bool
    wheels: tuple[str, ...]
    labels: Mapping[str, str] = field(hash=False)


@dataclass(frozen=True)
class ContainerizeResult:
    tag: str
    image_id: str | None  # None with context_only
    context: Path | None  # the kept context (context_only), else None: it was temporary
    package: ImagePackage
    labels: Mapping[str, str] = field(hash=False)

    @property
    def built(self) -> bool:
        return self.image_id is not None

    def to_json(self) -> dict[str, Any]:
        return {
            "ok": True,
            "tag": self.tag,
            "image_id": self.image_id,
            "built": self.built,
            "context": str(self.context) if self.context else None,
            "package": {
                "name": self.package.name,
                "version": self.package.version,
                "digest": self.package.digest,
            },
            "labels": dict(self.labels),
        }


# --------------------------------------------------------------------------- library API


def containerize(
    package: str | os.PathLike[str],
    tag: str,
    *,
    base: str | None = None,
    keys: Sequence[str | os.PathLike[str]] = (),
    allow_unsigned: bool = False,
    context_only: str | os.PathLike[str] | None = None,
    wheelhouse: str | os.PathLike[str] | None = None,
    offline: bool = False,
    engine: str | None = None,
    log: Log | None = None,
    modelcar: bool = False,
) -> ContainerizeResult:
    """Write the build context for ``package`` and, unless ``context_only``, build ``tag``.

    ``wheelhouse`` is a folder of wheels to take dependencies from first; ``offline`` takes
    them only from there. ``engine`` is a Docker API URL (default: $DOCKER_HOST or a default
    socket). ``modelcar`` builds the image that only carries the package, for KServe's
    ``storageUri: oci://`` (see :mod:`.modelcar`). Refusals raise :class:`MpkgError` with
    one-line reasons.
    """
    check_reference(tag, "--tag", TAG_RE, "NAME[:TAG], e.g. registry.example/team/iris:1.0.0")
    if modelcar and (wheelhouse is not None or offline):
        raise UsageError("--wheelhouse and --offline do not apply to --modelcar: that image holds no Python")
    if base is None:
        from .modelcar import DEFAULT_MODELCAR_BASE

        base = DEFAULT_MODELCAR_BASE if modelcar else DEFAULT_BASE
    check_reference(base, "--base", BASE_RE, "NAME[:TAG][@sha256:DIGEST], e.g. python:3.11-slim-bookworm")
    say = log or (lambda _msg: None)

    def context_in(dest: str | os.PathLike[str], pinned: str) -> BuildContext | ModelcarContext:
        if modelcar:
            from .modelcar import write_modelcar_context

            return write_modelcar_context(package, dest, base=pinned, keys=keys, allow_unsigned=allow_unsigned, log=log)
        return write_context(
            package,
            dest,
            base=pinned,
            keys=keys,
            allow_unsigned=allow_unsigned,
            wheelhouse=wheelhouse,
            offline=offline,
            log=log,
        )

    if context_only is not None:
        pinned = base
        if not is_pinned(base):  # a tag needs an engine to resolve it; without one, say how to pin
            try:
                client = connect_engine(engine)
            except EngineUnavailable:
                client = None
            try:
                pinned = resolve_base(base, client)
            finally:
                if client is not None:
                    client.close()
            say(f"base image {base} is {pinned}")
        ctx = context_in(context_only, pinned)
        return ContainerizeResult(tag, None, ctx.path, ctx.package, ctx.labels)
    client = connect_engine(engine)  # before the slow part: no engine, no work
    try:
        pinned = resolve_base(base, client)
        if pinned != base:
            say(f"base image {base} is {pinned}")
        with tempfile.TemporaryDirectory(prefix="mpkg-containerize-") as tmp:
            ctx = context_in(Path(tmp) / "context", pinned)
            image_id = build_image(client, ctx.path, tag, log=log)
    finally:
        client.close()
    return ContainerizeResult(tag, image_id, None, ctx.package, ctx.labels)


def write_context(
    package: str | os.PathLike[str],
    dest: str | os.PathLike[str],
    *,
    base: str = DEFAULT_BASE,
    keys: Sequence[str | os.PathLike[str]] = (),
    allow_unsigned: bool = False,
    wheelhouse: str | os.PathLike[str] | None = None,
    offline: bool = False,
    log: Log | None = None,
) -> BuildContext:
    """Verify ``package`` and write its build context to ``dest`` (new or empty folder).
    ``base`` must be pinned by digest (see :mod:`mpkg_builder.baseimage`); the package is
    verified once, and its lockfile and bytes come from the file that was verified."""
    say = log or (lambda _msg: None)
    check_base(base, "python:3.11-slim-bookworm")
    dest = Path(dest)
    check_context_folder(dest)
    if wheelhouse is not None and not Path(wheelhouse).is_dir():
        raise UsageError(f"{wheelhouse}: is not a folder; --wheelhouse takes a folder of .whl files")
    if offline and wheelhouse is None:
        raise UsageError("--offline needs --wheelhouse DIR: with no index, wheels come only from there")
    key_bytes = _read_keys(keys)
    with staged_context(dest) as stage:
        with verified_copy(package, keys, allow_unsigned, stage) as (pkg, manifest, ref):
            lock = read_lockfile(pkg, manifest)  # re-validated: the package may come from anyone
        _check_requires_python(lock, manifest, str(package))
        say(f"verified {ref.name} {ref.version} {ref.digest}")
        runtime_version, runtime_wheels = collect_wheels(
            lock, stage / "wheels", wheelhouse=wheelhouse, offline=offline, log=say
        )
        (stage / "runtime").mkdir()
        mpkg_wheel = next(w for w in runtime_wheels if _name_version(w)[0] == "mpkg")
        os.replace(mpkg_wheel, stage / "runtime" / mpkg_wheel.name)
        deps = [w for w in runtime_wheels if w != mpkg_wheel]
        req = stage / "requirements"
        req.mkdir()
        (req / "runtime.txt").write_text(
            _pinned("The mpkg runtime's dependencies, pinned to the wheels in wheels/.", deps)
        )
        (req / "mpkg.txt").write_text(
            _pinned("The mpkg runtime, pinned to the wheel in runtime/.", [stage / "runtime" / mpkg_wheel.name])
        )
        (req / "lock.txt").write_text(_lock_requirements(lock))
        key_names = []
        if key_bytes:
            (stage / "keys").mkdir()
            for i, data in enumerate(key_bytes, start=1):
                key_names.append(f"key-{i}.pub")
                (stage / "keys" / key_names[-1]).write_bytes(data)
        labels = image_labels(ref, base, runtime_version)
        (stage / "Dockerfile").write_text(
            render_dockerfile(ref, base, labels, key_names, allow_unsigned, lock_hashed=_hashed(lock))
        )
    say(f"wrote build context {dest}")
    wheels = tuple(sorted(p.name for p in [*(dest / "wheels").iterdir(), *(dest / "runtime").iterdir()]))
    return BuildContext(dest, ref, base, runtime_version, _hashed(lock), wheels, labels)


def check_base(base: str, example: str) -> None:
    """A well-formed base reference, pinned by digest (what a context's FROM may name)."""
    check_reference(base, "--base", BASE_RE, f"NAME[:TAG][@sha256:DIGEST], e.g. {example}")
    if not is_pinned(base):
        raise UsageError(f"--base {base} is a tag, which can move; " + how_to_pin(base))


def check_context_folder(dest: Path) -> None:
    if dest.exists() and (not dest.is_dir() or any(dest.iterdir())):
        raise UsageError(f"{dest}: exists and is not an empty folder; name a new folder for the context")


@contextlib.contextmanager
def staged_context(dest: Path) -> Iterator[Path]:
    """A build context that appears at ``dest`` (new or empty) complete or not at all: written
    into a locked temporary beside it (removed on signals, swept if orphaned), normalised for
    reproducible layers, then renamed into place."""
    check_context_folder(dest)
    dest.parent.mkdir(parents=True, exist_ok=True)
    staging = temporary(dest, is_dir=True)
    try:
        yield staging.path
        _normalise_tree(staging.path)
        if dest.exists():
            dest.rmdir()
        staging.commit()
    finally:
        staging.release()


@contextlib.contextmanager
def verified_copy(
    package: str | os.PathLike[str], keys: Sequence[str | os.PathLike[str]], allow_unsigned: bool, stage: Path
) -> Iterator[tuple[PackageFile, Manifest, ImagePackage]]:
    """Verify ``package`` once and copy the verified bytes to ``stage/package/``; the open,
    verified file is yielded for reading more of it (never reopened by name)."""
    with verified(package, policy_for(keys, allow_unsigned=allow_unsigned)) as (pkg, result):
        result.raise_for_errors()
        assert pkg is not None and result.manifest is not None
        manifest = result.manifest
        ref = ImagePackage(
            manifest.name, manifest.version, str(manifest.digest), f"{manifest.name}-{manifest.version}.mpkg"
        )
        (stage / "package").mkdir()
        _copy_open(pkg, stage / "package" / ref.filename)
        yield pkg, manifest, ref


def image_labels(ref: ImagePackage, base: str, runtime_version: str) -> dict[str, str]:
    """OCI and mpkg labels: what is served, and from which digest, on which base."""
    base_name, base_digest = split_pinned(base) if is_pinned(base) else (base, "")
    return {
        LABEL_TITLE: ref.name,
        LABEL_VERSION: ref.version,
        LABEL_BASE: base_name,
        **({LABEL_BASE_DIGEST: base_digest} if base_digest else {}),
        LABEL_NAME: ref.name,
        LABEL_PKG_VERSION: ref.version,
        LABEL_DIGEST: ref.digest,
        LABEL_RUNTIME: runtime_version,
    }


def render_dockerfile(
    ref: ImagePackage,
    base: str,
    labels: Mapping[str, str],
    key_names: Sequence[str],
    allow_unsigned: bool,
    lock_hashed: bool,
) -> str:
    """The Dockerfile text. Exec-form JSON arrays are written with json.dumps."""
    model = f"/models/{ref.filename}"
    policy = [a for k in key_names for a in ("--key", f"/keys/{k}")]
    if allow_unsigned:
        policy.append("--allow-unsigned")
    lock_flags = " --require-hashes" if lock_hashed else ""
    pip = f"{VENV}/bin/python -m pip install --no-index --find-links /build/wheels --no-cache-dir"
    want = PY
    check_python = (
        "import sys; v = sys.version_info[:2]; "
        f"sys.exit(0 if v == {TARGET_PYTHON!r} else 'mpkg containerize: the base image has Python "
        f"%d.%d but the wheels are for {want}; pick a Python {want} base with --base' % v)"
    )
    health = (
        "import sys, urllib.request; "
        f"r = urllib.request.urlopen('http://127.0.0.1:{CONTAINER_PORT}/v2/health/ready', "
        "timeout=4); "
        "sys.exit(0 if r.status == 200 else 1)"
    )
    serve = [
        f"{VENV}/bin/mpkg",
        "serve",
        model,
        "--host",
        "0.0.0.0",
        "--port",
        str(CONTAINER_PORT),
        *policy,
    ]
    lines = [
        f"# Generated by mpkg containerize from {ref.name} {ref.version} ({ref.digest}).",
        "# Built offline from this folder: every wheel is here, pinned by requirements/.",
        "# Layers go from what changes least (dependencies) to what changes most (the package).",
        "",
        f"FROM {base} AS install",
        "COPY wheels/ /build/wheels/",
        "COPY requirements/runtime.txt requirements/lock.txt /build/requirements/",
        f'RUN python3 -c "{check_python}" \\',
        f"    && python3 -m venv {VENV} \\",
        f"    && {pip} --require-hashes -r /build/requirements/runtime.txt \\",
        f"    && {pip}{lock_flags} -r /build/requirements/lock.txt",
        "COPY runtime/ /build/runtime/",
        "COPY requirements/mpkg.txt /build/requirements/",
        f"RUN {pip} --find-links /build/runtime --require-hashes --no-deps -r /build/requirements/mpkg.txt \\",
        f"    && {VENV}/bin/python -m pip check",
        "",
        f"FROM {base}",
        f"RUN useradd --system --uid {RUNTIME_UID} --user-group --home-dir /nonexistent "
        "--no-create-home --shell /usr/sbin/nologin mpkg",
        f"ENV PATH={VENV}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \\",
        "    PYTHONUNBUFFERED=1 \\",
        "    PYTHONDONTWRITEBYTECODE=1",
        f"COPY --from=install {VENV} {VENV}",
        f"COPY package/{ref.filename} {model}",
        *(["COPY keys/ /keys/"] if key_names else []),
        f"USER {RUNTIME_UID}:{RUNTIME_UID}",
        "# Refuse to build an image whose package does not verify, as the user that serves it.",
        f"RUN {json.dumps([f'{VENV}/bin/mpkg', 'verify', model, *policy])}",
        f"EXPOSE {CONTAINER_PORT}",
        "HEALTHCHECK --interval=30s --timeout=5s --start-period=60s --retries=3 \\",
        f"    CMD {json.dumps([f'{VENV}/bin/python3', '-c', health])}",
        f"ENTRYPOINT {json.dumps(serve)}",
        "LABEL " + " \\\n      ".join(f"{k}={json.dumps(v)}" for k, v in sorted(labels.items())),
        "",
    ]
    return "\n".join(lines)


def check_reference(ref: str, option: str, pattern: re.Pattern[str], example: str) -> None:
    if not pattern.match(ref) or len(ref) > 255:
        raise UsageError(f"{option} {ref!r} is not an image reference; use {example}")


# --------------------------------------------------------------------------- package inputs


def read_lockfile(pkg: PackageFile, manifest: Manifest) -> Lockfile:
    """The verified package's lockfile (``environment.lockfile``), from the open file, parsed
    and validated with the builder's rules: what the image installs is only what they produce."""
    env = manifest.environment
    path, kind = env["lockfile"], env["kind"]
    where = f"{pkg.where}: {path}"
    entry = manifest.file(path)
    assert entry is not None  # the manifest parser checked environment.lockfile names a file
    try:
        text = payload_bytes(pkg, entry).decode("utf-8")
    except UnicodeDecodeError:
        raise MpkgError("is not UTF-8 text", where) from None
    return parse_pylock(text, where) if kind == "pylock" else parse_requirements(text, where)


def _copy_open(pkg: PackageFile, out: Path) -> None:
    """The package's bytes, from the file that was verified (never reopened by name)."""
    pkg.file.seek(0)
    with open(out, "xb") as f:
        shutil.copyfileobj(pkg.file, f, 8 << 20)


def _check_requires_python(lock: Lockfile, manifest: Manifest, where: str) -> None:
    for field_name, spec in (
        ("lockfile requires-python", lock.requires_python),
        ("environment.requires_python", manifest.environment.get("requires_python")),
    ):
        if not spec:
            continue
        try:
            specs = SpecifierSet(str(spec))
        except InvalidSpecifier:
            raise MpkgError(f"{field_name} {spec!r} is not a version specifier", where) from None
        want = PY
        if not any(specs.contains(f"{want}.{micro}") for micro in range(100)):
            raise MpkgError(
                f"{field_name} {spec!r} excludes Python {want}, the only Python the image has",
                where,
            )


def _read_keys(keys: Sequence[str | os.PathLike[str]]) -> list[bytes]:
    """Each trusted key as its own PEM file for the image (a file may hold several)."""
    out: list[bytes] = []
    for key in keys:
        for block in pem_blocks(read_key_file(key), PUBLIC, str(key)):
            if block + b"\n" not in out:
                out.append(block + b"\n")
    return out


def _hashed(lock: Lockfile) -> bool:
    """Whether the image installs the lockfile with --require-hashes: whenever it has hashes."""
    return any(p.hashes for p in lock.packages)


def _lock_requirements(lock: Lockfile) -> str:
    lines = [
        "# The package's lockfile, normalised by mpkg containerize.",
        f"# Installed {'with' if _hashed(lock) else 'without'} --require-hashes.",
    ]
    lines.extend(_pin_line(p) for p in lock.packages)
    return "\n".join(lines) + "\n"


def _pin_line(pin: Pin) -> str:
    line = f"{pin.name}=={pin.version}"
    if pin.marker:
        line += f" ; {pin.marker}"
    return "".join([line, *(f" \\\n    --hash={h}" for h in pin.hashes)])


# --------------------------------------------------------------------------- wheels


def platform_tags(machine: str | None = None) -> list[str]:
    """manylinux tags the image's glibc accepts, newest first (pip does not expand them)."""
    arch = {"amd64": "x86_64", "arm64": "aarch64"}.get(
        (machine or platform.machine()).lower(), machine or platform.machine()
    )
    tags = [f"manylinux_2_{minor}_{arch}" for minor in range(TARGET_GLIBC_MINOR, 4, -1)]
    tags.append(f"manylinux2014_{arch}")
    if arch in ("x86_64", "i686"):
        tags += [f"manylinux2010_{arch}", f"manylinux1_{arch}"]
    return tags


def collect_wheels(
    lock: Lockfile,
    dest: Path,
    *,
    wheelhouse: str | os.PathLike[str] | None = None,
    offline: bool = False,
    log: Log | None = None,
) -> tuple[str, list[Path]]:
    """Fill ``dest`` with the runtime wheel and every wheel it and ``lock`` need.

    The lockfile is resolved first (its hashes checked by pip), then the runtime with the
    lockfile's versions as constraints, so both agree. Returns the runtime's version and the
    runtime closure's wheels (what requirements/runtime.txt pins).
    """
    say = log or (lambda _msg: None)
    dest.mkdir(parents=True)
    with tempfile.TemporaryDirectory(prefix="mpkg-wheels-") as tmp:
        work = Path(tmp)
        runtime = build_runtime_wheel(work / "runtime")
        version = parse_wheel_filename(runtime.name)[1]
        lock_dir, rt_dir = work / "lock", work / "rt"
        lock_dir.mkdir()
        pins = [p for p in lock.packages]
        if pins:
            (work / "lock.txt").write_text(_lock_requirements(lock))
            say(f"collecting wheels for the lockfile ({len(pins)} pins)")
            _pip_download(
                ["-r", str(work / "lock.txt")],
                lock_dir,
                wheelhouse,
                offline,
                "the package's lockfile",
            )
        constraints = sorted({f"{n}=={v}" for n, v in (_name_version(w) for w in lock_dir.glob("*.whl"))})
        (work / "constraints.txt").write_text("".join(c + "\n" for c in constraints))
        say(f"collecting wheels for the mpkg runtime {version}")
        _pip_download(
            [str(runtime), "-c", str(work / "constraints.txt"), "--find-links", str(lock_dir)],
            rt_dir,
            wheelhouse,
            offline,
            f"the mpkg {version} runtime",
        )
        for src in [*lock_dir.glob("*.whl"), *rt_dir.glob("*.whl")]:
            if not (dest / src.name).exists():
                shutil.copyfile(src, dest / src.name)
        runtime_wheels = sorted(dest / p.name for p in rt_dir.glob("*.whl"))
    return str(version), runtime_wheels


def _name_version(wheel: Path) -> tuple[str, str]:
    name, version, _build, _tags = parse_wheel_filename(wheel.name)
    return str(name), str(version)


def _pip_download(
    args: list[str], dest: Path, wheelhouse: str | os.PathLike[str] | None, offline: bool, what: str
) -> None:
    cmd = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--disable-pip-version-check",
        "--no-input",
        "--only-binary=:all:",
        "--implementation",
        "cp",
        "--python-version",
        PY,
        "--abi",
        f"cp{TARGET_PYTHON[0]}{TARGET_PYTHON[1]}",
        *[a for t in platform_tags() for a in ("--platform", t)],
        "--dest",
        str(dest),
    ]
    if wheelhouse is not None:
        cmd += ["--find-links", str(Path(wheelhouse).resolve())]
    if offline:
        cmd.append("--no-index")
    env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
    try:
        proc = subprocess.run(cmd + args, capture_output=True, text=True, env=env, check=False)
    except OSError as exc:
        raise MpkgError(f"cannot run pip to collect wheels ({exc.strerror})") from None
    if proc.returncode != 0:
        raise MpkgError(
            f"collecting wheels for {what} failed: {_pip_reason(proc.stdout, proc.stderr)} "
            f"(wheels for CPython {PY} manylinux {platform.machine()}"
            f"{', offline from ' + str(wheelhouse) if offline else ''})"
        )


def _pip_reason(stdout: str, stderr: str) -> str:
    """pip's own words, on one line: its ERROR lines, and for a conflict what it is between
    (pip prints that part on stdout)."""
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip()]
    errors = [ln.removeprefix("ERROR: ") for ln in lines if ln.startswith("ERROR:")]
    errors = [e for e in errors if not e.startswith("ResolutionImpossible")]
    text = "; ".join(dict.fromkeys(errors)) if errors else (lines[-1] if lines else "pip failed")
    out = stdout.splitlines()
    if "The conflict is caused by:" in out:
        cause = []
        for line in out[out.index("The conflict is caused by:") + 1 :]:
            if not line.startswith(" "):
                break
            cause.append(line.strip().replace("The user requested (constraint)", "the lockfile pins"))
        text += f" ({', '.join(cause)})"
    return text if len(text) <= 600 else text[:597] + "..."


def _pinned(comment: str, wheels: Iterable[Path]) -> str:
    """``name==version --hash=sha256:...`` for each wheel, for pip's hash-checking mode."""
    by_pin: dict[tuple[str, str], list[str]] = {}
    for wheel in wheels:
        by_pin.setdefault(_name_version(wheel), []).append(hashlib.sha256(wheel.read_bytes()).hexdigest())
    lines = [f"# {comment}"]
    for (name, version), hashes in sorted(by_pin.items()):
        hashed = (f" \\\n    --hash=sha256:{h}" for h in sorted(hashes))
        lines.append("".join([f"{name}=={version}", *hashed]))
    return "\n".join(lines) + "\n"


def build_runtime_wheel(dest: Path) -> Path:
    """A py3-none-any wheel of the running ``mpkg`` runtime alone (no builder), made here so
    it is byte-for-byte reproducible and needs no build backend or network."""
    src = Path(mpkg.__file__).resolve().parent
    meta = _runtime_metadata(src)
    name, version = "mpkg", meta["version"]
    dist_info = f"{name}-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(src.rglob("*")):
        rel = path.relative_to(src.parent).as_posix()
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files.append((rel, path.read_bytes()))
    metadata = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {meta['summary']}",
        *([f"Requires-Python: {meta['requires_python']}"] if meta["requires_python"] else []),
        *(f"Requires-Dist: {d}" for d in meta["dependencies"]),
    ]
    files.append((f"{dist_info}/METADATA", ("\n".join(metadata) + "\n").encode()))
    wheel_meta = "Wheel-Version: 1.0\nGenerator: mpkg-containerize\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files.append((f"{dist_info}/WHEEL", wheel_meta.encode()))
    if meta["scripts"]:
        scripts = "".join(f"{k} = {v}\n" for k, v in sorted(meta["scripts"].items()))
        files.append((f"{dist_info}/entry_points.txt", f"[console_scripts]\n{scripts}".encode()))
    record = [f"{p},sha256={_b64_sha256(d)},{len(d)}" for p, d in files]
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for rel, data in files:
            zi = zipfile.ZipInfo(rel, date_time=(1980, 1, 1, 0, 0, 0))
            zi.external_attr = 0o100644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return out


def _b64_sha256(data: bytes) -> str:
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def _runtime_metadata(src: Path) -> dict[str, Any]:
    """Version, base dependencies and scripts: from the source tree's pyproject.toml when
    running from a checkout (it may be newer than an editable install's metadata), else
    from the installed distribution."""
    pyproject = src.parent.parent / "pyproject.toml"
    if pyproject.is_file():
        project = tomllib.loads(pyproject.read_text()).get("project", {})
        if project.get("name") == "mpkg":
            return {
                "version": project["version"],
                "summary": project.get("description", ""),
                "requires_python": project.get("requires-python"),
                "dependencies": list(project.get("dependencies", [])),
                "scripts": dict(project.get("scripts", {})),
            }
    try:
        dist = importlib.metadata.distribution("mpkg")
    except importlib.metadata.PackageNotFoundError:
        raise MpkgError(
            "cannot tell the mpkg runtime's version and dependencies: no pyproject.toml "
            f"beside {src} "
            "and no installed mpkg distribution; install mpkg with pip"
        ) from None
    deps = [r for r in dist.requires or [] if "extra ==" not in r.replace("extra==", "extra ==")]
    scripts = {ep.name: ep.value for ep in dist.entry_points if ep.group == "console_scripts"}
    return {
        "version": dist.version,
        "summary": dist.metadata["Summary"] or "",
        "requires_python": dist.metadata["Requires-Python"],
        "dependencies": deps,
        "scripts": scripts,
    }


def _normalise_tree(root: Path) -> None:
    """Fixed modes and times, so the context (and a tar of it) is the same every time."""
    for path in sorted(root.rglob("*"), reverse=True):
        os.chmod(path, 0o755 if path.is_dir() else 0o644)
        os.utime(path, (EPOCH, EPOCH))
    os.chmod(root, 0o755)
    os.utime(root, (EPOCH, EPOCH))


# --------------------------------------------------------------------------- engine


def engine_candidates(engine: str | None = None) -> list[str]:
    """Where to look for a Docker API: the explicit URL, $DOCKER_HOST, else default sockets."""
    if engine:
        return [engine]
    if os.environ.get("DOCKER_HOST"):
        return [os.environ["DOCKER_HOST"]]
    sockets = ["/var/run/docker.sock", "/run/podman/podman.sock"]
    if os.environ.get("XDG_RUNTIME_DIR"):
        sockets.append(os.path.join(os.environ["XDG_RUNTIME_DIR"], "podman", "podman.sock"))
    return [f"unix://{s}" for s in sockets]


def connect_engine(engine: str | None = None) -> Any:
    """A ``docker.DockerClient`` for the first engine that answers a ping."""
    try:
        import docker
    except ImportError:
        raise MpkgError("building an image needs the docker package: pip install 'mpkg[builder]'") from None
    tried = engine_candidates(engine)
    for url in tried:
        if url.startswith("unix://") and not Path(url[len("unix://") :]).exists():
            continue
        client = docker.DockerClient(base_url=url, timeout=600)
        try:
            client.ping()
        except Exception:  # any transport or API failure means: not this one
            client.close()
            continue
        return client
    raise EngineUnavailable(
        f"no container engine is reachable (tried {', '.join(tried)}): start Docker, or run "
        "`podman system service --time=0 unix:///run/podman/podman.sock` and set "
        "DOCKER_HOST=unix:///run/podman/podman.sock; "
        "or write the context only with --context-only DIR"
    )


def build_image(client: Any, context: Path, tag: str, log: Log | None = None) -> str:
    """Build ``context`` as ``tag`` through the Docker API; the build log goes to ``log``."""
    say = log or (lambda _msg: None)
    tail: list[str] = []
    error = None
    try:
        for chunk in client.api.build(path=str(context), tag=tag, rm=True, forcerm=True, pull=False, decode=True):
            text = chunk.get("stream") or chunk.get("status") or ""
            for line in str(text).splitlines():
                if line.strip():
                    say(line.rstrip())
                    tail = [*tail[-19:], line.strip()]
            if chunk.get("error") or chunk.get("errorDetail"):
                error = str(chunk.get("error") or chunk["errorDetail"].get("message", "")).strip()
        if error is None:
            image_id: str = client.images.get(tag).id
            return image_id
    except MpkgError:
        raise
    except Exception as exc:
        error = f"{type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    reason = _build_reason(tail)
    raise MpkgError(f"building image {tag} failed: {error}{'; ' + reason if reason else ''} (the build log is above)")


def _build_reason(tail: Sequence[str]) -> str:
    """The line of the build output most likely to say why (mpkg's or pip's own)."""
    for line in reversed(tail):
        if line.startswith(("mpkg:", "ERROR:", "mpkg containerize:")):
            return line
    return ""


# --------------------------------------------------------------------------- CLI


def register(subparsers: Any) -> None:
    """Add ``containerize`` to the ``mpkg`` parser (CLI convention)."""
    p = subparsers.add_parser(
        "containerize",
        help="build a serving container image for a package",
        description="Write a deterministic build context (Dockerfile, wheels, the package, keys) "
        "and "
        "build it through the Docker Engine API ($DOCKER_HOST, Docker's or podman's socket). The "
        "image verifies the package while building and serves it with `mpkg serve` as a "
        "non-root user.",
    )
    p.add_argument("package", metavar="PKG", help="the .mpkg to serve")
    p.add_argument("-t", "--tag", required=True, metavar="IMAGE[:TAG]", help="name of the image to build")
    p.add_argument(
        "--base",
        metavar="IMAGE",
        help=f"base image with Python 3.11 as python3 (default {DEFAULT_BASE}; "
        "with --modelcar one with sh, ln and sleep, default busybox:1.36)",
    )
    p.add_argument(
        "--modelcar",
        action="store_true",
        help="build the image that carries only the package under /models, for KServe's storageUri oci://",
    )
    add_key_options(p)
    p.add_argument("--context-only", metavar="DIR", help="write the build context to DIR and do not build")
    p.add_argument("--wheelhouse", metavar="DIR", help="folder of wheels to take dependencies from first")
    p.add_argument("--offline", action="store_true", help="take wheels only from --wheelhouse (no index)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_containerize)


def cmd_containerize(args: argparse.Namespace) -> int:
    result = containerize(
        args.package,
        args.tag,
        base=args.base,
        keys=trusted_keys(args),
        allow_unsigned=args.allow_unsigned,
        context_only=args.context_only,
        wheelhouse=args.wheelhouse,
        offline=args.offline,
        log=info,
        modelcar=args.modelcar,
    )
    if args.json:
        emit_json(result.to_json())
    elif result.built:
        info(
            f"built {result.tag} ({result.image_id}) {'carrying' if args.modelcar else 'serving'} "
            f"{result.package.name} {result.package.version} {result.package.digest}"
        )
    else:
        info(f"wrote the build context for {result.tag} to {result.context}")
    return 0


__all__ = [
    "DEFAULT_BASE",
    "BuildContext",
    "ContainerizeResult",
    "EngineUnavailable",
    "ImagePackage",
    "build_image",
    "build_runtime_wheel",
    "collect_wheels",
    "connect_engine",
    "containerize",
    "image_labels",
    "register",
    "render_dockerfile",
    "write_context",
]
