"""What a first trial of mpkg hit: inspect hiding lineage, verify calling an unchecked
signature "NOT valid", build failing on a missing output folder."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]


@pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")
def test_inspect_shows_params_data_and_git(run_mpkg: Any, tmp_path: Path) -> None:
    src = tmp_path / "iris"
    shutil.copytree(REPO / "examples" / "iris-mlp", src)
    for args in (["init", "-q"], ["add", "."], ["-c", "user.name=t", "-c", "user.email=t@t", "commit", "-qm", "x"]):
        subprocess.run(["git", *args], cwd=src, check=True, capture_output=True)
    commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=src, check=True, capture_output=True, text=True)
    out = tmp_path / "dist" / "nested" / "iris.mpkg"  # build creates the output's folders
    run_mpkg("build", src, "-o", out, expect=0)
    text = run_mpkg("inspect", out, expect=0).stdout
    assert "params: model.activation=relu, model.hidden=16, split.test_every=5, train.epochs=2000" in text
    assert "data: data/iris.csv 04ed69383af337e9dabf934cbc8abc11 (3858 bytes)" in text  # md5 from the .dvc file
    assert f"git: {commit.stdout.strip()}" in text
    assert "metrics: accuracy.test=" in text


def test_verify_without_a_key_says_not_checked(built: Any, run_mpkg: Any) -> None:
    proc = run_mpkg("verify", built.signed["iris-mlp"], expect=1)
    assert "not checked: no trusted key given" in proc.stderr and "NOT valid" not in proc.stderr
    other = run_mpkg("verify", built.signed["iris-mlp"], "--key", built.pub, expect=0)
    assert "valid (valid signature by" in other.stderr
