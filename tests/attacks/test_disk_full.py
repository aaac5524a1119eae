"""Disk full while writing: one line naming the output and saying the disk is full, exit 1,
and nothing left behind (no partial output, no temporary).

The small disk is a real 4 MiB tmpfs, mounted in a private mount namespace of the command
(``unshare --mount --map-root-user``), so the test needs no root and leaves no mount behind;
where user namespaces are not allowed those cases skip. The file-size limit (RLIMIT_FSIZE,
EFBIG) needs nothing and always runs.
"""

from __future__ import annotations

import resource
import shutil
import signal
import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from bench.gen import make_source
from tests.conftest import MPKG

UNSHARE = shutil.which("unshare")
# $1 size, $2 mount point, then the command; prints the mount point's listing after it.
_SCRIPT = 'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; d="$2"; shift 2; "$@"; rc=$?; ls -A "$d"; exit $rc'


def _small_disk_usable(tmp: Path) -> bool:
    if UNSHARE is None:
        return False
    probe = subprocess.run(
        [UNSHARE, "--mount", "--map-root-user", "sh", "-c", _SCRIPT, "sh", "1m", str(tmp), "true"],
        capture_output=True,
    )
    return probe.returncode == 0


def on_small_disk(
    tmp: Path, mount: Path, argv: Sequence[str | Path], size: str = "4m"
) -> tuple[int, list[str], list[str]]:
    """Run ``argv`` with a ``size`` tmpfs at ``mount``: (exit code, stderr lines, what the
    tmpfs held afterwards)."""
    if not _small_disk_usable(tmp):
        pytest.skip("cannot mount a tmpfs in a private mount namespace here (unshare -rm refused)")
    mount.mkdir(exist_ok=True)
    cmd = [UNSHARE, "--mount", "--map-root-user", "sh", "-c", _SCRIPT, "sh", size, str(mount), *map(str, argv)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert proc.returncode != 99, proc.stderr
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc.returncode, proc.stderr.strip().splitlines(), proc.stdout.split()


@pytest.fixture(scope="module")
def eight_mib(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A source with 8 MiB of weights and its package: neither fits on a 4 MiB disk."""
    root = tmp_path_factory.mktemp("eight")
    src = make_source(root / "src", 8 << 20)
    subprocess.run([MPKG, "build", src, "-o", root / "pkg.mpkg"], check=True, capture_output=True)
    return src, root / "pkg.mpkg"


def _full(path: Path) -> str:
    return f"mpkg: {path}: cannot be written: the disk is full (No space left on device); free space or write elsewhere"


def test_disk_full_during_build(eight_mib: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "disk" / "model.mpkg"
    code, err, left = on_small_disk(tmp_path, out.parent, [MPKG, "build", eight_mib[0], "-o", out])
    assert (code, err[-1:], left) == (1, [_full(out)], [])


def test_disk_full_during_unpack(eight_mib: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "disk" / "unpacked"
    code, err, left = on_small_disk(tmp_path, out.parent, [MPKG, "unpack", eight_mib[1], out, "--allow-unsigned"])
    assert (code, err[-1:], left) == (1, [_full(out)], [])


def test_disk_full_during_pull(eight_mib: tuple[Path, Path], tmp_path: Path) -> None:
    home = tmp_path / "home"
    env_cmd = ["env", f"MPKG_HOME={home}", MPKG]
    subprocess.run([*env_cmd, "push", eight_mib[1], "team/bench-model"], check=True, capture_output=True)
    out = tmp_path / "disk" / "m.mpkg"
    code, err, left = on_small_disk(
        tmp_path, out.parent, [*env_cmd, "pull", "team/bench-model:1.0.0", "-o", out, "--allow-unsigned"]
    )
    assert (code, err[-1:], left) == (1, [_full(out)], [])


def test_disk_full_during_sign(eight_mib: tuple[Path, Path], tmp_path: Path) -> None:
    """The package fits, its signed copy does not: the original is left as it was."""
    from mpkg_builder.signing import keygen

    pair = keygen(tmp_path / "k")
    disk = tmp_path / "disk"
    script = f'cp "{eight_mib[1]}" "{disk}/m.mpkg" && "{MPKG}" sign "{disk}/m.mpkg" --key "{pair.private_path}"'
    code, err, left = on_small_disk(tmp_path, disk, ["sh", "-c", script], size="12m")
    assert (code, err[-1:], left) == (1, [_full(disk / "m.mpkg")], ["m.mpkg"])


def test_file_size_limit_during_build(eight_mib: tuple[Path, Path], tmp_path: Path) -> None:
    """RLIMIT_FSIZE (with SIGXFSZ ignored, as under `ulimit -f` in many job runners): EFBIG."""

    def limit() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
        resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, 1 << 20))

    out = tmp_path / "model.mpkg"
    proc = subprocess.run(
        [MPKG, "build", eight_mib[0], "-o", out], capture_output=True, text=True, preexec_fn=limit, timeout=240
    )
    assert "Traceback" not in proc.stderr
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines()[-1] == (
        f"mpkg: {out}: cannot be written: the file is larger than this process may write (file size limit) "
        "(File too large); free space or write elsewhere"
    )
    assert [p.name for p in tmp_path.iterdir()] == []
