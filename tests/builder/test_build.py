"""`mpkg build` end to end: round trips, byte-reproducibility, refusals, interruption, memory.

Sources are copies of examples/ outside git (see tests/conftest.py), so lineage.git is absent.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from mpkg._internal.format.package import read_manifest
from mpkg._internal.trust.verify import verify
from mpkg.cli import main
from mpkg.errors import SourceError
from mpkg_builder.build import build_package

from tests.scenarios import catalog

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"


SCENARIOS: dict[str, str] = catalog.SCENARIOS


def _same(a: object, b: object) -> bool:
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float | int) and isinstance(b, float | int) and not isinstance(a, bool):
        return bool(np.isclose(a, b, rtol=1e-6, atol=0))
    return a == b


def _source_of(src: Path, package_path: str) -> Path | None:
    """The source file a packaged file was copied from (None for generated files)."""
    top, rest = package_path.split("/", 1)
    return {
        "model": src / rest,
        "code": src / "src" / rest,
        "environment": src / rest,
        "lineage": src / rest,
    }.get(top)


@pytest.mark.parametrize("example", ["iris-mlp", "churn-tabular"])
def test_round_trip_build_verify_inspect_unpack(example: str, built, run_mpkg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    src = built.sources[example]
    pkg = tmp_path / f"{example}.mpkg"
    proc = run_mpkg("build", src, "-o", pkg, "--key", built.key, expect=0)
    assert proc.stdout == "" and built.digests[example] in proc.stderr
    run_mpkg("verify", pkg, "--key", built.pub, expect=0)
    info = json.loads(run_mpkg("inspect", pkg, "--json", expect=0).stdout)
    assert info["digest"] == built.digests[example] and len(info["signatures"]) == 1
    out = tmp_path / "unpacked"
    run_mpkg("unpack", pkg, out, "--key", built.pub, expect=0)

    manifest = read_manifest(pkg)
    assert [f["path"] for f in info["files"]] == [f.path for f in manifest.files]
    for entry in manifest.files:
        packed = (out / entry.path).read_bytes()
        origin = _source_of(src, entry.path)
        if origin is not None:
            assert packed == origin.read_bytes(), entry.path
    author = (src / "MODEL_CARD.md").read_bytes()
    assert (out / "card" / "MODEL_CARD.md").read_bytes().startswith(author)
    example_doc = json.loads((out / "example" / "example.json").read_bytes())
    source_inputs = json.loads((src / "example.json").read_bytes())["inputs"]
    for field in manifest.contract.inputs:  # stored as the contract's dtype (float32 rounds)
        assert _same(example_doc["inputs"][field.name], source_inputs[field.name]), field.name
    assert set(example_doc["outputs"]) == {f.name for f in manifest.contract.outputs}


def _copy_reversed(src: Path, dest: Path, rng: random.Random) -> None:
    """Copy a tree creating entries in reverse order, with scrambled mtimes."""
    dest.mkdir(parents=True)
    for root, dirs, files in os.walk(src):
        rel = Path(root).relative_to(src)
        for d in sorted(dirs, reverse=True):
            (dest / rel / d).mkdir()
        for f in sorted(files, reverse=True):
            target = dest / rel / f
            target.write_bytes((Path(root) / f).read_bytes())
            t = rng.randrange(10**8, 2 * 10**9)
            os.utime(target, (t, t))
    for root, dirs, _files in os.walk(dest):
        for d in dirs:
            t = rng.randrange(10**8, 2 * 10**9)
            os.utime(Path(root) / d, (t, t))


@pytest.mark.parametrize("example", ["iris-mlp", "churn-tabular"])
def test_byte_reproducible_from_anywhere(example: str, built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Another path, reversed creation order, other mtimes, umask 077 and (as root) another owner:
    same digest and identical bytes. Two builds in a row are identical too."""
    reference = built.unsigned[example].read_bytes()
    again = tmp_path / "again.mpkg"
    build_package(built.sources[example], again)
    assert again.read_bytes() == reference

    old = os.umask(0o077)
    try:
        elsewhere = tmp_path / "some" / "other place" / "ünïcode" / example
        _copy_reversed(built.sources[example], elsewhere, random.Random(example))
        if os.geteuid() == 0:
            for root, dirs, files in os.walk(elsewhere):
                for n in dirs + files:
                    os.chown(Path(root) / n, 12345, 23456)
        assert (elsewhere / "mpkg.toml").stat().st_mode & 0o077 == 0
        out = tmp_path / "elsewhere.mpkg"
        result = build_package(elsewhere, out)
    finally:
        os.umask(old)
    assert result.digest == built.digests[example]
    assert out.read_bytes() == reference


def _build_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    code = main(argv)
    captured = capsys.readouterr()
    assert "Traceback" not in captured.err
    return code, captured.out, captured.err


@pytest.mark.parametrize("scenario", sorted(SCENARIOS))
def test_refused_source(scenario: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Every scenario in tests/scenarios: exit 1, one line naming the problem, nothing written."""
    src = catalog.materialise(scenario, tmp_path / "src")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, stdout, stderr = _build_cli(["build", str(src), "-o", str(out_dir / "pkg.mpkg")], capsys)
    assert code == 1 and stdout == ""
    lines = stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("mpkg: ") and SCENARIOS[scenario] in lines[0], stderr
    assert list(out_dir.iterdir()) == []  # no package, no .pkg.mpkg.*.tmp


def test_refused_source_json(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    src = catalog.materialise("unpinned-lockfile", tmp_path / "src")
    code, stdout, _ = _build_cli(["build", str(src), "-o", str(tmp_path / "p.mpkg"), "--json"], capsys)
    doc = json.loads(stdout)
    assert code == 1 and doc["ok"] is False and SCENARIOS["unpinned-lockfile"] in doc["errors"][0]
    assert len(stdout.splitlines()) == 1


def test_failing_example_leaves_nothing(built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:  # type: ignore[no-untyped-def]
    """The package code raises when the builder replays the example: refused, nothing written."""
    src = tmp_path / "src"
    shutil.copytree(built.sources["churn-tabular"], src)
    code_file = src / "src" / "churn.py"
    code_file.write_text(code_file.read_text() + "\n\ndef predict(weights, inputs):\n    raise RuntimeError('boom')\n")
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    code, _, stderr = _build_cli(["build", str(src), "-o", str(out_dir / "p.mpkg")], capsys)
    assert (
        code == 1
        and "running the example failed: churn-tabular@0.3.0: code: predict raised RuntimeError: boom" in stderr
    )
    assert len(stderr.splitlines()) == 1
    assert list(out_dir.iterdir()) == []


def test_interrupted_while_writing_leaves_nothing(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Ctrl-C arrives after some bytes were written: no package and no temp file remain, and an
    existing package at the output path is left as it was."""
    out = tmp_path / "p.mpkg"
    out.write_bytes(b"previous")
    written: list[int] = []

    def progress(total: int):  # type: ignore[no-untyped-def]
        def advance(n: int) -> None:
            written.append(n)
            if len(written) == 3:
                raise KeyboardInterrupt

        return advance

    with pytest.raises(KeyboardInterrupt):
        build_package(built.sources["iris-mlp"], out, progress=progress)
    assert len(written) == 3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["p.mpkg"] and out.read_bytes() == b"previous"


def test_signed_at_build_time(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    result = build_package(built.sources["iris-mlp"], tmp_path / "s.mpkg", key=built.key)
    assert result.digest == built.digests["iris-mlp"] and len(result.signed_by) == 1
    assert verify(tmp_path / "s.mpkg", [built.pub]).ok
    assert (tmp_path / "s.mpkg").read_bytes() == built.signed["iris-mlp"].read_bytes()  # Ed25519 is deterministic


def test_missing_source_folder(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match=r"no mpkg\.toml here"):
        build_package(tmp_path, tmp_path / "p.mpkg")


_MEASURE = textwrap.dedent(
    """
    import resource, subprocess, sys
    proc = subprocess.run(sys.argv[1:], capture_output=True, text=True)
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(proc.returncode, peak_kib)
    sys.stderr.write(proc.stderr)
    """
)


def _peak_rss_mib(*argv: str | Path) -> float:
    """Run ``argv`` under a fresh parent process and return its peak RSS in MiB."""
    proc = subprocess.run(
        [sys.executable, "-c", _MEASURE, *map(str, argv)], capture_output=True, text=True, timeout=600
    )
    code, peak = proc.stdout.split()
    assert code == "0", proc.stderr
    return int(peak) / 1024


def _big_safetensors(path: Path, nbytes: int) -> None:
    """One F32 tensor of ``nbytes`` zeros, written sparsely (no RAM needed)."""
    header = json.dumps({"big": {"dtype": "F32", "shape": [nbytes // 4], "data_offsets": [0, nbytes]}}).encode()
    header += b" " * (-len(header) % 8)
    with open(path, "wb") as f:
        f.write(struct.pack("<Q", len(header)) + header)
        f.truncate(8 + len(header) + nbytes)


def test_memory_stays_bounded_for_a_300_mb_model(built, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Build and verify stream the weights: peak RSS stays under 256 MiB for a 300 MB tensor file."""
    src = tmp_path / "src"
    shutil.copytree(built.sources["churn-tabular"], src)
    _big_safetensors(src / "big.safetensors", 300 * 1000 * 1000)
    toml = (src / "mpkg.toml").read_text()
    (src / "mpkg.toml").write_text(
        toml.replace('files = ["weights.safetensors"]', 'files = ["weights.safetensors", "big.safetensors"]')
    )
    mpkg = Path(sys.executable).parent / "mpkg"
    pkg = tmp_path / "big.mpkg"
    build_peak = _peak_rss_mib(mpkg, "build", src, "-o", pkg)
    assert pkg.stat().st_size > 300 * 1000 * 1000
    verify_peak = _peak_rss_mib(mpkg, "verify", pkg, "--allow-unsigned")
    print(f"peak RSS: build {build_peak:.0f} MiB, verify {verify_peak:.0f} MiB")
    assert build_peak < 256, f"build peaked at {build_peak:.0f} MiB"
    assert verify_peak < 256, f"verify peaked at {verify_peak:.0f} MiB"
