"""`mpkg diff --html`: the contract side by side, text diffs (attached or computed, bounded)."""

from __future__ import annotations

import shutil
from pathlib import Path

from mpkg.cli import main
from mpkg_builder.build import build_package
from mpkg_builder.diff import diff_packages
from mpkg_builder.report.diff import side_by_side
from mpkg_builder.report.texts import MAX_DIFF_LINES, MAX_TEXT_BYTES, classify, file_diffs, from_findings

from tests.conftest import Built
from tests.harness.without import REPORT_EXTRA, run_without


def _field(name: str, **kw: object) -> dict[str, object]:
    return {"name": name, "dtype": "float32", "shape": ["batch", 4], **kw}


def test_side_by_side_marks_added_removed_and_changed_cells() -> None:
    old = {"inputs": [_field("a"), _field("gone"), _field("b", description="x")], "outputs": [_field("y")]}
    new = {
        "inputs": [_field("a"), _field("b", description="y", optional=True), _field("new")],
        "outputs": [_field("y", dtype="float64")],
    }
    pairs = {p.name: p for p in side_by_side(old, new)}
    assert [p.name for p in side_by_side(old, new)] == ["a", "gone", "b", "y", "new"]
    assert pairs["a"].state == "" and pairs["gone"].state == "removed" and pairs["new"].state == "added"
    assert pairs["b"].changed == {"flags", "description"} and pairs["y"].changed == {"type"}
    assert side_by_side("junk", None) == []


def test_text_diffs_attached_to_findings_are_used() -> None:
    attached = "--- a/card\n+++ b/card\n@@ -1 +1 @@\n-old line\n+new line\n context"
    diffs = from_findings(
        [
            {"subject": "files.card/MODEL_CARD.md", "rule": "card-changed", "text_diff": attached},
            {"subject": "files.environment/requirements.lock", "text_diff": ["-numpy==1", "+numpy==2"]},
            {"subject": "inputs.x.dtype", "text_diff": "not a file"},
            {"subject": "files.code/p.py", "text_diff": 7},
        ]
    )
    assert [(d.path, d.role) for d in diffs] == [
        ("card/MODEL_CARD.md", "card"),
        ("environment/requirements.lock", "environment"),
    ]
    assert [k for k, _ in diffs[0].lines] == ["file", "file", "hunk", "del", "add", "ctx"]


def test_classify_is_bounded() -> None:
    lines, cut = classify(["+" + "x" * 10_000] * (MAX_DIFF_LINES + 5))
    assert cut and len(lines) == MAX_DIFF_LINES and len(lines[0][1]) < 500


def _variant(built: Built, tmp_path: Path, name: str, code: str) -> Path:
    src = tmp_path / name
    shutil.copytree(built.sources["iris-mlp"], src)
    (src / "src" / "pipeline.py").write_text((src / "src" / "pipeline.py").read_text() + code)
    out = tmp_path / f"{name}.mpkg"
    build_package(src, out)
    return out


def test_file_diffs_of_two_real_packages_are_bounded(built: Built, tmp_path: Path) -> None:
    old = built.unsigned["iris-mlp"]
    many = _variant(built, tmp_path, "many", "".join(f"# line {i}\n" for i in range(MAX_DIFF_LINES * 2)))
    (diff,) = file_diffs(old, many)
    assert diff.path == "code/pipeline.py" and diff.truncated and len(diff.lines) == MAX_DIFF_LINES
    assert diff.lines[0] == ("file", "--- 1.0.0/code/pipeline.py")
    big = _variant(built, tmp_path, "big", "#" * (MAX_TEXT_BYTES + 10) + "\n")
    (too_big,) = file_diffs(old, big)
    assert too_big.lines == () and f"over the {MAX_TEXT_BYTES} byte limit" in too_big.note
    assert file_diffs(old, old) == []
    assert file_diffs(old, many, skip={"code/pipeline.py"}) == []


def test_identical_packages_give_a_none_report(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "same.html"
    package = str(built.unsigned["iris-mlp"])
    assert main(["diff", package, package, "--html", str(out)]) == 0
    html = out.read_text()
    assert '<span class="badge b-none big">NONE</span>' in html and "the packages are identical" in html
    assert "The card, code and lockfile are the same in both packages." in html
    assert diff_packages(package, package).bump.label == "none"


def test_diff_without_the_report_extra_names_the_extra(built: Built, tmp_path: Path) -> None:
    package = str(built.unsigned["iris-mlp"])
    out = tmp_path / "d.html"
    proc = run_without(REPORT_EXTRA, "diff", package, package, "--html", str(out))
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr.startswith("mpkg: --html: needs the report extra: pip install 'mpkg[report]'")
    assert not out.exists()
