"""[lineage].data beyond DVC: plain files (hashed at build, not packed) and {uri, digest}
references for data that lives elsewhere; origin.json recorded as lineage.origin."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from mpkg._internal.format.package import read_manifest
from mpkg.errors import SourceError
from mpkg_builder.build import build_package

DIGEST = "sha256:" + "ab" * 32


def _with_lineage(source: Path, base_toml: str, table: str) -> None:
    (source / "mpkg.toml").write_text(base_toml + "\n[lineage]\n" + table)


def test_plain_file_and_references_are_recorded(source: Path, base_toml: str, tmp_path: Path) -> None:
    rows = b"x,y\n1,2\n" * 1000
    (source / "data").mkdir()
    (source / "data" / "train.csv").write_bytes(rows)
    (source / "origin.json").write_text(json.dumps({"kind": "mlflow", "run_id": "0" * 32}))
    _with_lineage(
        source,
        base_toml,
        f'data = ["data/train.csv", {{uri = "s3://bucket/eval.parquet", digest = "{DIGEST}"}}]\n'
        'origin = "origin.json"\n',
    )
    out = tmp_path / "p.mpkg"
    build_package(source, out)
    manifest = read_manifest(out)
    assert manifest.lineage["data"] == [
        {"path": "data/train.csv", "digest": f"sha256:{hashlib.sha256(rows).hexdigest()}", "size": len(rows)},
        {"uri": "s3://bucket/eval.parquet", "digest": DIGEST},
    ]
    assert manifest.lineage["origin"] == {"kind": "mlflow", "run_id": "0" * 32}
    packed = {f.path for f in manifest.files}
    assert "lineage/origin.json" in packed and "lineage/data/train.csv" not in packed  # data is hashed, not packed


@pytest.mark.parametrize(
    ("item", "reason"),
    [
        ('{uri = "s3://user:secret@bucket/x", digest = "' + DIGEST + '"}', "carries credentials"),
        ('{uri = "https://token@host/x", digest = "' + DIGEST + '"}', "carries credentials"),
        ('{uri = "s3://bucket/x y", digest = "' + DIGEST + '"}', "must be scheme://location"),
        ('{uri = "bucket/x", digest = "' + DIGEST + '"}', "must be scheme://location"),
        # a trailing newline: Python's $ matches before it (the regex is anchored with \Z)
        ('{uri = "s3://bucket/x\\n", digest = "' + DIGEST + '"}', "must be scheme://location"),
        ('{uri = "s3://bucket/x", digest = "' + DIGEST + '\\n"}', "must be sha256:<64 hex>"),
        ('{uri = "s3://bucket/x", digest = "sha256:ABC"}', "must be sha256:<64 hex>"),
        ('{uri = "s3://bucket/x", digest = "' + DIGEST + '", note = "x"}', "exactly the keys uri and digest"),
        ("42", "must be a path or a {uri, digest} table"),
    ],
)
def test_bad_data_references_are_refused(source: Path, base_toml: str, tmp_path: Path, item: str, reason: str) -> None:
    _with_lineage(source, base_toml, f"data = [{item}]\n")
    with pytest.raises(SourceError) as exc:
        build_package(source, tmp_path / "p.mpkg")
    assert "mpkg.toml: [lineage].data[0]" in exc.value.diagnostics() and reason in exc.value.diagnostics()


def test_origin_must_be_a_json_object(source: Path, base_toml: str, tmp_path: Path) -> None:
    (source / "origin.json").write_text("[1, 2]")
    _with_lineage(source, base_toml, 'origin = "origin.json"\n')
    with pytest.raises(SourceError, match=r"origin\.json: must be a JSON object"):
        build_package(source, tmp_path / "p.mpkg")
