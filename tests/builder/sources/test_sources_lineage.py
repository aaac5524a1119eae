"""Lineage: git state, DVC digests, params and metrics."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
from mpkg.errors import SourceError
from mpkg_builder.config import load_config
from mpkg_builder.sources.lineage import (
    collect_lineage,
    git_state,
    parse_dvc_file,
    parse_metrics,
    parse_params,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
MD5 = "0123456789abcdef0123456789abcdef"


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


def test_iris_example_lineage() -> None:
    lineage = collect_lineage(EXAMPLES / "iris-mlp", load_config(EXAMPLES / "iris-mlp"))
    assert lineage["data"] == [
        {
            "source": "data/iris.csv.dvc",
            "path": "data/iris.csv",
            "md5": "04ed69383af337e9dabf934cbc8abc11",
            "size": 3858,
        }
    ]
    assert lineage["params"]["train"] == {
        "epochs": 2000,
        "learning_rate": "0.1",
        "l2": "0.0001",
        "seed": 0,
    }
    assert set(lineage["metrics"]) == {"accuracy.test", "accuracy.train", "log_loss.test"}


def test_dvc_pointer_md5_matches_the_committed_data() -> None:
    import hashlib

    data = (EXAMPLES / "iris-mlp" / "data" / "iris.csv").read_bytes()
    [entry] = parse_dvc_file(EXAMPLES / "iris-mlp" / "data" / "iris.csv.dvc", "data/iris.csv.dvc")
    assert entry["md5"] == hashlib.md5(data).hexdigest() and entry["size"] == len(data)


# --- git ---------------------------------------------------------------------------

needs_git = pytest.mark.skipif(shutil.which("git") is None, reason="git is not installed")


def git(cwd: Path, *args: str) -> None:
    subprocess.run(
        [
            "git",
            "-c",
            "user.name=t",
            "-c",
            "user.email=t@example.org",
            "-c",
            "commit.gpgsign=false",
            *args,
        ],
        cwd=cwd,
        check=True,
        capture_output=True,
    )


@needs_git
def test_git_commit_and_dirty_state(tmp_path: Path) -> None:
    repo = tmp_path / "repo"
    src = repo / "models" / "m"
    write(src, "a.txt", "a")
    write(repo, "other.txt", "o")
    git(repo, "init", "-q")
    git(repo, "add", ".")
    git(repo, "commit", "-q", "-m", "init")
    state = git_state(src)
    assert state is not None and len(state["commit"]) == 40
    assert state["dirty"] is False and state["subdir"] == "models/m"
    write(repo, "other.txt", "changed elsewhere")
    assert git_state(src)["dirty"] is False  # type: ignore[index]
    write(src, "a.txt", "changed here")
    assert git_state(src)["dirty"] is True  # type: ignore[index]


@needs_git
def test_repo_without_commits_records_nothing(tmp_path: Path) -> None:
    git(tmp_path, "init", "-q")
    assert git_state(tmp_path) is None


def test_outside_a_repo_records_nothing(tmp_path: Path) -> None:
    assert git_state(tmp_path) is None


def test_without_git_records_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # no git on PATH: the machine without git
    assert git_state(tmp_path) is None


# --- DVC ---------------------------------------------------------------------------


def test_dvc3_pointer_with_directory_output(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data/images.dvc",
        f"outs:\n- md5: {MD5}.dir\n  size: 100\n  nfiles: 3\n  hash: md5\n  path: images\n",
    )
    assert parse_dvc_file(path, "data/images.dvc") == [
        {
            "source": "data/images.dvc",
            "path": "data/images",
            "md5": f"{MD5}.dir",
            "size": 100,
            "nfiles": 3,
        }
    ]


def test_dvc_lock_stages(tmp_path: Path) -> None:
    text = f"""schema: '2.0'
stages:
  train:
    cmd: python train.py
    deps:
    - path: data/train.csv
      md5: {MD5}
      size: 10
    outs:
    - path: model.onnx
      hash: md5
      md5: {"f" * 32}
"""
    entries = parse_dvc_file(write(tmp_path, "dvc.lock", text), "dvc.lock")
    assert entries == [
        {
            "source": "dvc.lock",
            "stage": "train",
            "role": "dep",
            "path": "data/train.csv",
            "md5": MD5,
            "size": 10,
        },
        {
            "source": "dvc.lock",
            "stage": "train",
            "role": "out",
            "path": "model.onnx",
            "md5": "f" * 32,
        },
    ]


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("outs:\n- path: x.csv\n", "has no valid md5"),
        ("outs:\n- md5: nothex\n  path: x.csv\n", "has no valid md5"),
        (f"outs:\n- md5: {MD5}\n  path: ../../x.csv\n", "leaves the source folder"),
        (f"outs:\n- md5: {MD5}\n  path: /etc/x.csv\n", "must be relative"),
        (f"outs:\n- md5: {MD5}\n  path: x.csv\n  size: -1\n", "must be a non-negative integer"),
        ("outs: []\n", "has no 'outs' list"),
        ("- a\n", "must be a YAML mapping"),
        ("outs: [\n", "is not valid YAML"),
    ],
)
def test_bad_dvc_pointers_refused(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(SourceError) as exc:
        parse_dvc_file(write(tmp_path, "data/x.csv.dvc", text), "data/x.csv.dvc")
    assert reason in exc.value.diagnostics()


def test_dvc_lock_without_stages_refused(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="has no 'stages'"):
        parse_dvc_file(write(tmp_path, "dvc.lock", "schema: '2.0'\n"), "dvc.lock")


# --- params and metrics ------------------------------------------------------------------


def test_params_floats_become_text(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "params.yaml",
        "lr: 0.001\nlayers: [64, 32]\nname: mlp\nwarm: true\nnothing: null\n",
    )
    assert parse_params(path, "params.yaml") == {
        "lr": "0.001",
        "layers": [64, 32],
        "name": "mlp",
        "warm": True,
        "nothing": None,
    }


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ("- 1\n", "must be a YAML mapping"),
        ("1: a\n", "must be strings"),
        ("a: [\n", "not valid YAML"),
    ],
)
def test_bad_params_refused(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(SourceError) as exc:
        parse_params(write(tmp_path, "params.yaml", text), "params.yaml")
    assert reason in exc.value.diagnostics()


def test_metrics_flattened_and_sorted(tmp_path: Path) -> None:
    path = write(tmp_path, "metrics.json", '{"test": {"auc": 0.9, "n": 30}, "acc": 1}')
    assert parse_metrics(path, "metrics.json") == {"acc": 1, "test.auc": 0.9, "test.n": 30}


@pytest.mark.parametrize(
    ("text", "reason"),
    [
        ('{"a": NaN}', "NaN is not valid JSON"),
        ('{"a": Infinity}', "Infinity is not valid JSON"),
        ('{"a": 1e999}', "is not a finite number"),
        ('{"a": true}', "True is not a finite number"),
        ('{"a": "0.9"}', "'0.9' is not a finite number"),
        ('{"a": [1, 2]}', "is not a finite number"),
        ('{"a": 1, "a": 2}', "duplicate key 'a'"),
        ('{"a.b": 1, "a": {"b": 2}}', "collides with another metric"),
        ('{"a": {}}', "is an empty object"),
        ("{}", "has no metrics"),
        ("[1]", "must be a JSON object"),
        ("{", "is not valid JSON"),
    ],
)
def test_bad_metrics_refused(tmp_path: Path, text: str, reason: str) -> None:
    with pytest.raises(SourceError) as exc:
        parse_metrics(write(tmp_path, "metrics.json", text), "metrics.json")
    assert reason in exc.value.diagnostics()


def test_collect_lineage_reports_every_problem(tmp_path: Path) -> None:
    src = tmp_path / "src"
    for name, text in {
        "mpkg.toml": (EXAMPLES / "iris-mlp" / "mpkg.toml").read_text(),
        "metrics.json": '{"a": NaN}',
        "params.yaml": "- not a mapping\n",
        "data/iris.csv.dvc": "outs:\n- path: iris.csv\n",
    }.items():
        write(src, name, text)
    for name in (
        "model.onnx",
        "contract.json",
        "MODEL_CARD.md",
        "requirements.lock",
        "example.json",
        "src/pipeline.py",
    ):
        (src / name).parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(EXAMPLES / "iris-mlp" / name, src / name)
    with pytest.raises(SourceError) as exc:
        collect_lineage(src, load_config(src))
    assert {p.where.split(":")[0] for p in exc.value.problems} == {
        "metrics.json",
        "params.yaml",
        "data/iris.csv.dvc",
    }
