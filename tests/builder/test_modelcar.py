"""`mpkg containerize --modelcar`: the build context of the image that only carries the package.

The image itself is built and run as KServe runs it in tests/builder/deploy/test_deploy_containers.py.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
from mpkg.errors import MpkgError, UsageError
from mpkg_builder import containerize as cz
from mpkg_builder.containerize.modelcar import DEFAULT_MODELCAR_BASE, write_modelcar_context

from tests.harness.tamper import flip_weight_byte

ROOT = Path(__file__).resolve().parents[2]

BASE = DEFAULT_MODELCAR_BASE + "@sha256:" + "1" * 64  # context tests never build it


def test_context_holds_the_package_alone(built: Any, tmp_path: Path) -> None:
    pkg = built.signed["iris-mlp"]
    ctx = write_modelcar_context(pkg, tmp_path / "ctx", base=BASE, keys=[built.pub])
    files = sorted(p.relative_to(ctx.path).as_posix() for p in ctx.path.rglob("*") if p.is_file())
    assert files == ["Dockerfile", "package/iris-mlp-1.0.0.mpkg"]
    assert (ctx.path / "package" / "iris-mlp-1.0.0.mpkg").read_bytes() == pkg.read_bytes()
    assert ctx.base == BASE and ctx.package.digest == built.digests["iris-mlp"]

    text = (ctx.path / "Dockerfile").read_text()
    steps = [line for line in re.sub(r"\\\n", " ", text).splitlines() if line and not line.startswith("#")]
    words = [s.split(" ", 1)[0] for s in steps]
    assert words == ["FROM", "ENV", "RUN", "COPY", "USER", "LABEL"]
    assert steps[0] == f"FROM {BASE}"
    check = json.loads(steps[2].split(" ", 1)[1])
    assert check[:2] == ["/bin/sh", "-c"] and "ln" in check[2] and "sleep" in check[2]
    assert steps[3] == "COPY package/iris-mlp-1.0.0.mpkg /models/iris-mlp-1.0.0.mpkg"
    assert steps[4] == f"USER {cz.RUNTIME_UID}:{cz.RUNTIME_UID}"  # the runtime's user: /proc/PID/root needs it
    labels = {k: json.loads(v) for k, v in re.findall(r'(\S+)=("(?:[^"\\]|\\.)*")', steps[5])}
    assert labels == dict(ctx.labels)
    assert labels[cz.LABEL_DIGEST] == built.digests["iris-mlp"]
    assert cz.LABEL_RUNTIME not in labels  # no runtime in this image
    assert "ENTRYPOINT" not in text and "CMD" not in text  # KServe gives the command


def test_context_is_reproducible(built: Any, tmp_path: Path) -> None:
    a = write_modelcar_context(built.signed["iris-mlp"], tmp_path / "a", keys=[built.pub], base=BASE)
    b = write_modelcar_context(built.signed["iris-mlp"], tmp_path / "b", keys=[built.pub], base=BASE)
    for rel in ("", "Dockerfile", "package", "package/iris-mlp-1.0.0.mpkg"):
        sa, sb = (a.path / rel).stat(), (b.path / rel).stat()
        assert (sa.st_mode, sa.st_mtime_ns) == (sb.st_mode, sb.st_mtime_ns), rel
    assert (a.path / "Dockerfile").read_bytes() == (b.path / "Dockerfile").read_bytes()


def test_tampered_package_gets_no_context(built: Any, tmp_path: Path) -> None:
    """Attack: a package changed after signing is not wrapped into an image."""
    pkg = flip_weight_byte(built.signed["iris-mlp"], built.sources["iris-mlp"] / "model.onnx", tmp_path / "iris.mpkg")
    with pytest.raises(MpkgError) as err:
        write_modelcar_context(pkg, tmp_path / "ctx", base=BASE, keys=[built.pub])
    assert "digest" in " ".join(err.value.reasons())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["iris.mpkg"]


def test_unsigned_package_needs_allow_unsigned(built: Any, tmp_path: Path) -> None:
    with pytest.raises(MpkgError):
        write_modelcar_context(built.unsigned["iris-mlp"], tmp_path / "ctx", base=BASE)
    ctx = write_modelcar_context(built.unsigned["iris-mlp"], tmp_path / "ctx2", base=BASE, allow_unsigned=True)
    assert (ctx.path / "package" / "iris-mlp-1.0.0.mpkg").is_file()


def test_python_options_do_not_apply(built: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--modelcar"):
        cz.containerize(
            built.signed["iris-mlp"],
            "iris:1",
            keys=[built.pub],
            modelcar=True,
            wheelhouse=tmp_path,
            context_only=tmp_path / "ctx",
        )


def test_bad_base_and_busy_destination_are_refused(built: Any, tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="--base"):
        write_modelcar_context(built.signed["iris-mlp"], tmp_path / "ctx", keys=[built.pub], base="Not A Base")
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "x").write_text("x")
    with pytest.raises(UsageError, match="not an empty folder"):
        write_modelcar_context(built.signed["iris-mlp"], tmp_path / "busy", base=BASE, keys=[built.pub])


def test_base_given_by_tag_is_refused(built: Any, tmp_path: Path) -> None:
    """Attack: a tag moves, so an image FROM busybox:1.36 can change under a signed package;
    the context's FROM is always pinned by digest, as for the runtime image."""
    with pytest.raises(UsageError, match="is a tag, which can move; pin it by digest"):
        write_modelcar_context(built.signed["iris-mlp"], tmp_path / "ctx", keys=[built.pub], base="busybox:1.36")
    assert list(tmp_path.iterdir()) == []


def test_context_only_without_an_engine_asks_to_pin_the_base(built: Any, tmp_path: Path) -> None:
    """The default base is a tag: with no engine to resolve it, containerize says how to pin it."""
    with pytest.raises(MpkgError, match="no container engine is here to resolve it; pin it by digest"):
        cz.containerize(
            built.signed["iris-mlp"],
            "iris:1",
            keys=[built.pub],
            modelcar=True,
            context_only=tmp_path / "ctx",
            engine=f"unix://{tmp_path / 'no-engine.sock'}",
        )
    assert list(tmp_path.iterdir()) == []


def test_cli_context_only(built: Any, tmp_path: Path, run_mpkg: Any) -> None:
    proc = run_mpkg(
        "containerize",
        built.signed["iris-mlp"],
        "-t",
        "registry.example/ml/iris-model:1.0.0",
        "--modelcar",
        "--base",
        BASE,
        "--key",
        built.pub,
        "--context-only",
        tmp_path / "ctx",
        "--json",
        expect=0,
    )
    doc = json.loads(proc.stdout)
    assert doc["ok"] and not doc["built"] and doc["package"]["digest"] == built.digests["iris-mlp"]
    assert (tmp_path / "ctx" / "Dockerfile").read_text().startswith("# Generated by mpkg containerize --modelcar")
