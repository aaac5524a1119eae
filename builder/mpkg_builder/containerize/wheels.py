"""The wheels of an image: every distribution the runtime and the package's lockfile need,
for the image's CPython on manylinux, collected by pip (never built: the image builds offline).
"""

from __future__ import annotations

import hashlib
import os
import platform
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

from mpkg.errors import MpkgError
from packaging.utils import parse_wheel_filename

from ..sources.lockfile import Lockfile
from .dockerfile import PY, TARGET_PYTHON
from .requirements import lock_requirements
from .runtime_wheel import build_runtime_wheel, extra_requirements

# glibc of Debian bookworm: the newest manylinux wheels the image can load.
TARGET_GLIBC_MINOR = 36


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


def name_version(wheel: Path) -> tuple[str, str]:
    """(name, version) from a wheel's file name."""
    name, version, _build, _tags = parse_wheel_filename(wheel.name)
    return str(name), str(version)


def pip_download(
    args: list[str], dest: Path, wheelhouse: str | os.PathLike[str] | None, offline: bool, what: str
) -> None:
    """pip's own resolver, for the image's Python and platform; a failure is one line of pip's words."""
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
            f"collecting wheels for {what} failed: {pip_reason(proc.stdout, proc.stderr)} "
            f"(wheels for CPython {PY} manylinux {platform.machine()}"
            f"{', offline from ' + str(wheelhouse) if offline else ''})"
        )


def pip_reason(stdout: str, stderr: str) -> str:
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


def collect_wheels(
    lock: Lockfile,
    dest: Path,
    *,
    wheelhouse: str | os.PathLike[str] | None = None,
    offline: bool = False,
    log: Callable[[str], None] | None = None,
    extras: Sequence[str] = (),
) -> tuple[str, list[Path]]:
    """Fill ``dest`` with the runtime wheel and every wheel it, its ``extras`` (``registry`` for
    an image that follows a reference) and ``lock`` need.

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
            (work / "lock.txt").write_text(lock_requirements(lock))
            say(f"collecting wheels for the lockfile ({len(pins)} pins)")
            pip_download(
                ["-r", str(work / "lock.txt")],
                lock_dir,
                wheelhouse,
                offline,
                "the package's lockfile",
            )
        constraints = sorted({f"{n}=={v}" for n, v in (name_version(w) for w in lock_dir.glob("*.whl"))})
        (work / "constraints.txt").write_text("".join(c + "\n" for c in constraints))
        say(f"collecting wheels for the mpkg runtime {version}{''.join(f' [{e}]' for e in extras)}")
        extra_reqs = [r for e in extras for r in extra_requirements(e)]
        pip_download(
            [str(runtime), *extra_reqs, "-c", str(work / "constraints.txt"), "--find-links", str(lock_dir)],
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


def pinned_wheels(comment: str, wheels: Iterable[Path]) -> str:
    """``name==version --hash=sha256:...`` for each wheel, for pip's hash-checking mode."""
    by_pin: dict[tuple[str, str], list[str]] = {}
    for wheel in wheels:
        by_pin.setdefault(name_version(wheel), []).append(hashlib.sha256(wheel.read_bytes()).hexdigest())
    lines = [f"# {comment}"]
    for (name, version), hashes in sorted(by_pin.items()):
        hashed = (f" \\\n    --hash=sha256:{h}" for h in sorted(hashes))
        lines.append("".join([f"{name}=={version}", *hashed]))
    return "\n".join(lines) + "\n"


__all__ = [
    "TARGET_GLIBC_MINOR",
    "collect_wheels",
    "name_version",
    "pinned_wheels",
    "pip_download",
    "pip_reason",
    "platform_tags",
]
