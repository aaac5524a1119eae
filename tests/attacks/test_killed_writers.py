"""Crash and signal hygiene: SIGTERM, SIGINT or kill -9 while mpkg writes.

Before, each killed `mpkg build` left its hidden partial package beside the output
(1.5 GB after ten killed builds of a 150 MB model), and SIGTERM killed the process
without cleanup. Now SIGTERM/SIGHUP unwind like Ctrl-C and remove the temporary (exit
128+signal, one line), and the temporaries a `kill -9` cannot clean up are locked by their
(dead) process: the next run of any writing command in that folder removes them.

Every test runs the real `mpkg` command on a package large enough (512 MiB) that the
write is still in progress when the test sees its temporary appear; the process is then
stopped (SIGSTOP) at that moment, sent the signal, and continued.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import pytest
from mpkg._internal.io.atomic import SUFFIX

from bench.gen import make_source
from tests.conftest import MPKG

pytestmark = pytest.mark.timeout(600)
SIZE = 512 << 20


def _temporaries(folder: Path) -> list[str]:
    return sorted(n for n in os.listdir(folder) if n.endswith((SUFFIX, ".mpkg-new")))


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("MPKG_KEYS", "MPKG_KEY_PASSPHRASE")}
    return {**env, **extra}


def _default_signals() -> None:
    """A test runner (or nohup) may start us with SIGINT/SIGHUP ignored, which children inherit
    and Python respects; a user's shell starts mpkg with them at their defaults."""
    for sig in (signal.SIGINT, signal.SIGHUP, signal.SIGTERM):
        signal.signal(sig, signal.SIG_DFL)


def signal_mid_write(
    argv: Sequence[str | os.PathLike[str]],
    folder: Path,
    sig: int,
    output: Path,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``argv``; when a temporary appears in ``folder`` stop the process, send ``sig`` and
    continue it. Retried when the process finished before it could be stopped."""
    for _attempt in range(3):
        proc = subprocess.Popen(
            [str(a) for a in argv],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env or _env(),
            preexec_fn=_default_signals,
        )
        deadline = time.monotonic() + 120
        while proc.poll() is None and not _temporaries(folder) and time.monotonic() < deadline:
            time.sleep(0.0005)
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGSTOP)
            os.kill(proc.pid, sig)
            os.kill(proc.pid, signal.SIGCONT)
            out, err = proc.communicate(timeout=120)
            assert "Traceback" not in err, err
            return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        proc.communicate()
        if output.is_dir():
            shutil.rmtree(output)
        output.unlink(missing_ok=True)
    pytest.fail(f"{argv[1]} finished three times before its temporary could be seen")


@pytest.fixture(scope="module")
def big(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A 512 MiB safetensors source and its package (unsigned)."""
    root = tmp_path_factory.mktemp("big")
    src = make_source(root / "src", SIZE)
    subprocess.run([MPKG, "build", src, "-o", root / "big.mpkg"], check=True, capture_output=True)
    return src, root / "big.mpkg"


@pytest.mark.parametrize(
    ("sig", "code", "message"),
    [
        (signal.SIGTERM, 128 + signal.SIGTERM, "mpkg: terminated by SIGTERM; nothing was written"),
        (signal.SIGHUP, 128 + signal.SIGHUP, "mpkg: terminated by SIGHUP; nothing was written"),
        (signal.SIGINT, 1, "mpkg: interrupted; nothing was written"),
    ],
    ids=["sigterm", "sighup", "sigint"],
)
def test_signal_during_build_removes_the_partial_package(
    big: tuple[Path, Path], tmp_path: Path, sig: int, code: int, message: str
) -> None:
    out = tmp_path / "model.mpkg"
    proc = signal_mid_write([MPKG, "build", big[0], "-o", out], tmp_path, sig, out)
    assert (proc.returncode, proc.stderr.strip().splitlines()[-1:]) == (code, [message]), proc.stderr
    assert os.listdir(tmp_path) == []


def test_kill_9_during_build_does_not_pile_up(big: tuple[Path, Path], tmp_path: Path) -> None:
    """Three builds killed with SIGKILL leave at most one temporary at a time (each run
    sweeps the last one's), and the build that completes leaves none."""
    out = tmp_path / "model.mpkg"
    for _ in range(3):
        proc = signal_mid_write([MPKG, "build", big[0], "-o", out], tmp_path, signal.SIGKILL, out)
        assert proc.returncode == -signal.SIGKILL
        left = _temporaries(tmp_path)
        assert len(left) == 1, left  # the killed one's only: each run swept the one before
    subprocess.run([MPKG, "build", big[0], "-o", out], check=True, capture_output=True)
    assert os.listdir(tmp_path) == ["model.mpkg"]


def test_signal_during_unpack_removes_the_staging_directory(big: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "unpacked"
    argv = [MPKG, "unpack", big[1], out, "--allow-unsigned"]
    proc = signal_mid_write(argv, tmp_path, signal.SIGTERM, out)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert os.listdir(tmp_path) == []
    killed = signal_mid_write(argv, tmp_path, signal.SIGKILL, out)
    assert killed.returncode == -signal.SIGKILL and len(_temporaries(tmp_path)) == 1
    subprocess.run(argv, check=True, capture_output=True)
    assert os.listdir(tmp_path) == ["unpacked"]


def test_signal_during_sign_keeps_the_package(big: tuple[Path, Path], tmp_path: Path) -> None:
    """sign rewrites the package in place through a temporary: a signal leaves the original."""
    from mpkg_builder.signing import keygen

    pair = keygen(tmp_path / "k")
    work = tmp_path / "work"
    work.mkdir()
    pkg = work / "big.mpkg"
    shutil.copyfile(big[1], pkg)
    proc = signal_mid_write([MPKG, "sign", pkg, "--key", pair.private_path], work, signal.SIGTERM, work / "none")
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert os.listdir(work) == ["big.mpkg"] and pkg.stat().st_size == big[1].stat().st_size


def test_signal_during_pull_and_push_to_a_local_store(big: tuple[Path, Path], tmp_path: Path) -> None:
    """push copies the package into the store's tmp/ first; pull writes beside its output."""
    home = tmp_path / "home"
    env = _env(MPKG_HOME=str(home))
    (home / "tmp").mkdir(parents=True)
    push = [MPKG, "push", big[1], "team/bench-model"]
    killed = signal_mid_write(push, home / "tmp", signal.SIGKILL, home / "none", env)
    assert killed.returncode == -signal.SIGKILL and len(_temporaries(home / "tmp")) == 1
    subprocess.run(push, check=True, capture_output=True, env=env)
    assert _temporaries(home / "tmp") == []

    dest = tmp_path / "pulled"
    dest.mkdir()
    pull = [MPKG, "pull", "team/bench-model:1.0.0", "-o", dest / "big.mpkg", "--allow-unsigned"]
    proc = signal_mid_write(pull, dest, signal.SIGTERM, dest / "big.mpkg", env)
    assert proc.returncode == 128 + signal.SIGTERM, proc.stderr
    assert os.listdir(dest) == []
    killed = signal_mid_write(pull, dest, signal.SIGKILL, dest / "big.mpkg", env)
    assert len(_temporaries(dest)) == 1
    subprocess.run(pull, check=True, capture_output=True, env=env)
    assert os.listdir(dest) == ["big.mpkg"]


def test_a_live_writers_temporary_is_never_swept(tmp_path: Path) -> None:
    """The sweep takes a temporary's lock before removing it: a running writer keeps its own."""
    from mpkg._internal.io.atomic import sweep, temporary

    code = (
        "import sys, time; from mpkg._internal.io.atomic import temporary; "
        f"t = temporary({str(tmp_path / 'x.mpkg')!r}); print(t.path.name, flush=True); time.sleep(60)"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True) as child:
        assert child.stdout is not None
        name = child.stdout.readline().strip()
        assert name.startswith(f".x.mpkg.{child.pid}.") and name.endswith(SUFFIX)
        assert sweep(tmp_path) == [] and (tmp_path / name).exists()
        mine = temporary(tmp_path / "y.mpkg")
        assert (tmp_path / name).exists()
        mine.release()
        child.kill()
        child.wait()
        assert sweep(tmp_path) == [name] and os.listdir(tmp_path) == []
