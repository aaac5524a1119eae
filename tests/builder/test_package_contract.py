"""The package's contract is what clients send (issue 11): package code adapts it to the graph.

Real models throughout: a scikit-learn pipeline fitted on scikit-learn's breast-cancer data and
converted by skl2onnx takes one float32 matrix ``X``; the package's contract takes the data's
own columns by name ("mean radius", ...), and its code builds the matrix. The build runs the
example through the whole chain and names the boundary that breaks.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import mpkg
import numpy as np
import pandas as pd
import pytest
from mpkg._internal.format.package import read_manifest
from mpkg.errors import ContractError

from tests.harness.server import MPKG_SERVE, ServerProcess
from tests.scenarios.catalog import CHAIN_SCENARIOS, breast_cancer_onnx, materialise

PIPELINE = '''"""Clients send the breast-cancer columns by name; the graph takes one float32 matrix."""

import numpy as np

COLUMNS = __COLUMNS__
GRAPH_INPUT = __GRAPH_INPUT__


def preprocess(inputs):
    return {GRAPH_INPUT: np.stack([np.asarray(inputs[c], dtype=np.float32) for c in COLUMNS], axis=1)}


def postprocess(outputs):
    label = np.asarray(outputs["label"])
    return {
        "diagnosis": np.where(label == 1, "benign", "malignant"),
        "probability benign": np.asarray(outputs["probabilities"])[:, 1],
    }
'''
OUTPUTS = [
    {"name": "diagnosis", "dtype": "string", "shape": ["batch"], "enum": ["malignant", "benign"]},
    {"name": "probability benign", "dtype": "float32", "shape": ["batch"]},
]


def _columns() -> list[str]:
    from sklearn.datasets import load_breast_cancer

    return [str(c) for c in load_breast_cancer().feature_names]


def _project(tmp: Path, columns: list[str], graph_input: str = "X") -> Path:
    """The files a user hands to `mpkg init`: the converted model, the code, the contract."""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "model.onnx").write_bytes(breast_cancer_onnx(columns, graph_input))
    code = PIPELINE.replace("__COLUMNS__", json.dumps(columns)).replace("__GRAPH_INPUT__", json.dumps(graph_input))
    (tmp / "pipeline.py").write_text(code)
    inputs = [{"name": c, "dtype": "float64", "shape": ["batch"]} for c in columns]
    (tmp / "contract.json").write_text(json.dumps({"inputs": inputs, "outputs": OUTPUTS}))
    return tmp


def _init(run_mpkg: Any, project: Path, dest: Path, extra: str = "refuse") -> Path:
    """`mpkg init` from the project, then ``[contract] extra`` set as a user would."""
    files = ["--code", project / "pipeline.py", "--contract", project / "contract.json"]
    run_mpkg("init", dest, "--from", project / "model.onnx", *files, expect=0)
    config = (dest / "mpkg.toml").read_text()
    assert "[contract]\n" in config
    (dest / "mpkg.toml").write_text(config.replace("[contract]\n", f'[contract]\nextra = "{extra}"\n'))
    return dest


def _rows(columns: list[str], n: int = 3) -> pd.DataFrame:
    from sklearn.datasets import load_breast_cancer

    return load_breast_cancer(as_frame=True).frame[columns].head(n)


@pytest.mark.parametrize("scenario", sorted(CHAIN_SCENARIOS))
def test_broken_chain_is_refused_naming_the_boundary(scenario: str, run_mpkg: Any, tmp_path: Path) -> None:
    src = materialise(scenario, tmp_path)
    out = tmp_path / "out" / "x.mpkg"
    result = run_mpkg("build", src, "-o", out, expect=1)
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and CHAIN_SCENARIOS[scenario] in lines[0], result.stderr
    assert not out.exists()


def test_named_columns_init_build_verify_serve(run_mpkg: Any, tmp_path: Path) -> None:
    """Clients send the data's own columns ("mean radius"); the graph's X is internal."""
    columns = _columns()
    assert "mean radius" in columns
    dest = _init(run_mpkg, _project(tmp_path / "project", columns), tmp_path / "pkg", extra="ignore")
    out = tmp_path / "dist" / "cancer.mpkg"
    run_mpkg("build", dest, "-o", out, expect=0)
    verify = run_mpkg("verify", out, "--allow-unsigned", "--run", "--json", expect=0)
    assert json.loads(verify.stdout)["smoke_test"] == {"ok": True}

    manifest = read_manifest(out)
    assert [f.name for f in manifest.contract.inputs] == columns
    listing = run_mpkg("inspect", out, expect=0).stdout
    assert "input  'mean radius': float64['batch']" in listing
    assert "inputs the contract does not name: ignored" in listing
    interface = manifest.architecture["interface"]  # the graph's own interface, recorded apart
    assert [f["name"] for f in interface["inputs"]] == ["X"]
    assert interface["inputs"][0]["dtype"] == "float32"

    rows = _rows(columns)
    body = {"inputs": [{"name": c, "datatype": "FP64", "shape": [3], "data": rows[c].tolist()} for c in columns]}
    server = ServerProcess(MPKG_SERVE, [str(out), "--allow-unsigned"], tmp_path / "serve.log")
    try:
        url = server.wait_ready()
        answer = httpx.post(f"{url}/v2/models/{manifest.name}/infer", json=body, timeout=60)
        extra = {"name": "patient id", "datatype": "BYTES", "shape": [3], "data": ["a", "b", "c"]}
        with_extra = httpx.post(
            f"{url}/v2/models/{manifest.name}/infer", json={"inputs": [*body["inputs"], extra]}, timeout=60
        )
    finally:
        assert server.stop() == 0
    assert answer.status_code == 200, answer.text
    outputs = {o["name"]: o["data"] for o in answer.json()["outputs"]}
    assert outputs["diagnosis"] == ["malignant", "malignant", "malignant"]  # the first rows are malignant
    assert all(0 <= p < 0.5 for p in outputs["probability benign"])
    assert with_extra.status_code == 200, with_extra.text  # extra = "ignore": dropped
    assert with_extra.json()["outputs"] == answer.json()["outputs"]


def test_extra_columns_refused_by_default_and_dropped_when_ignored(run_mpkg: Any, tmp_path: Path) -> None:
    columns = ["mean radius", "mean texture", "worst area"]
    project = _project(tmp_path / "project", columns)
    refusing, ignoring = tmp_path / "refuse.mpkg", tmp_path / "ignore.mpkg"
    run_mpkg("build", _init(run_mpkg, project, tmp_path / "a"), "-o", refusing, expect=0)  # the default, said
    run_mpkg("build", _init(run_mpkg, project, tmp_path / "b", extra="ignore"), "-o", ignoring, expect=0)
    assert read_manifest(ignoring).raw["contract"]["extra"] == "ignore"
    assert "extra" not in read_manifest(refusing).raw["contract"]  # the default is not written

    frame = _rows(columns).assign(**{"patient id": ["a", "b", "c"]})
    with mpkg.load(refusing, mpkg.Policy.unsafe_allow_unsigned()) as model:
        with pytest.raises(ContractError) as exc:
            model.predict(frame)
        assert "input 'patient id': is not an input of this model" in exc.value.diagnostics()
        with pytest.raises(ContractError):
            model.predict({c: frame[c].to_numpy() for c in frame.columns})
        expected = model.predict(frame[columns])
    with mpkg.load(ignoring, mpkg.Policy.unsafe_allow_unsigned()) as model:
        for given in (frame, {c: frame[c].to_numpy() for c in frame.columns}):
            got = model.predict(given)
            assert list(got["diagnosis"]) == list(expected["diagnosis"])
            assert np.array_equal(got["probability benign"], expected["probability benign"])


def test_diff_graph_interface_change_behind_the_same_contract(run_mpkg: Any, tmp_path: Path) -> None:
    """The converter names the graph's input differently and preprocess follows: callers see
    nothing change, so the bump is PATCH (spec/semver.md §4), never the MAJOR of a new graph."""
    columns = ["mean radius", "mean texture"]
    old_src = _init(run_mpkg, _project(tmp_path / "a", columns), tmp_path / "old")
    new_src = _init(run_mpkg, _project(tmp_path / "b", columns, graph_input="F"), tmp_path / "new")
    old, new = tmp_path / "old.mpkg", tmp_path / "new.mpkg"
    run_mpkg("build", old_src, "-o", old, expect=0)
    run_mpkg("build", new_src, "-o", new, expect=0)
    report = json.loads(run_mpkg("diff", old, new, "--json", expect=0).stdout)
    rules = {c["rule"] for c in report["changes"]}
    assert "graph-interface-internal" in rules and "code-changed" in rules, rules
    assert report["bump"] == "patch", report["changes"]
    finding = next(c for c in report["changes"] if c["rule"] == "graph-interface-internal")
    assert finding["old"][0].startswith("input 'X' float32") and finding["new"][0].startswith("input 'F' float32")
