"""Report rendering: golden text, Markdown and JSON for one diff touching every section."""

from __future__ import annotations

import json

from mpkg_builder.diff import DiffReport, diff_manifests, render_markdown, render_text, verdict

from tests.builder.diff.mpkgdiff_factory import Doc, digest, field_of, file_of, mutate, onnx_manifest
from tests.builder.diff.mpkgdiff_sources import check_golden


def _everything(doc: Doc) -> None:
    doc["version"] = "1.0.1"
    field_of(doc, "inputs", "features")["shape"][1] = "n"
    field_of(doc, "inputs", "species_hint")["enum"] = ["setosa", "x|y"]
    field_of(doc, "outputs", "label")["description"] = "index into `species`"
    doc["model"]["architecture"]["initializers"][0]["shape"] = [16, 5]
    doc["environment"]["packages"][0]["version"] = "2.0.0"
    doc["environment"]["requires_python"] = ">=3.12"
    doc["lineage"]["metrics"]["accuracy"] = 0.99
    doc["lineage"]["params"]["lr"] = 0.02
    file_of(doc, "model/model.onnx")["digest"] = digest("onnx-v2")
    file_of(doc, "code/pipeline.py")["digest"] = digest("pipeline-v2")


def _report() -> DiffReport:
    base = onnx_manifest()
    return diff_manifests(base, mutate(base, _everything))


def test_golden_text() -> None:
    check_golden("composite.txt", render_text(_report()))


def test_golden_markdown() -> None:
    text = render_markdown(_report())
    check_golden("composite.md", text)
    assert "x\\|y" in text  # a pipe inside a cell does not split the table


def test_golden_json() -> None:
    check_golden("composite.json", json.dumps(_report().to_json(), indent=2, sort_keys=True) + "\n")


def test_verdict_is_the_first_line() -> None:
    report = _report()
    assert render_text(report).splitlines()[0] == verdict(report)
    assert verdict(report) == "MAJOR: iris-mlp 1.0.0 -> 1.0.1, suggested 2.0.0 (11 findings); 1.0.1 is too low"


def test_report_without_a_new_version() -> None:
    base = onnx_manifest()
    new = mutate(base, lambda d: d["lineage"]["params"].update(lr=0.5))
    del new["version"]
    report = diff_manifests(base, new)
    assert report.to_version is None and report.version_ok
    assert verdict(report) == "PATCH: iris-mlp 1.0.0 -> (new), suggested 1.0.1 (1 finding)"
