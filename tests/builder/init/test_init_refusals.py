"""What `mpkg init` refuses, each with a one-line reason naming the file or option and the
fix, exit 1, and nothing written: missing code or contract, pickles (never loaded),
untrusted skops types, hostile MLmodel files, and any file that already exists."""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from mpkg.errors import SourceError
from mpkg_builder.init import InitOptions, init_source

from tests.builder.init.initsources import Made

MPKG = Path(sys.executable).parent / "mpkg"


def _refused(run_mpkg: Any, dest: Path, *args: Any) -> str:
    proc = run_mpkg("init", dest, "--from", *args, expect=1)
    assert not dest.exists(), "a refused init leaves nothing behind"
    return str(proc.stderr)


def _mlflow_copy(made: Made, kind: str, tmp_path: Path) -> Path:
    folder = tmp_path / kind
    shutil.copytree(made / kind, folder)
    return folder


class _TouchOnLoad:
    """Unpickling this creates ``path``: proof that a file was unpickled."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.path,))


# --- safetensors: the computation and the interface come from the user --------------------


def test_safetensors_without_code_or_contract_names_both(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    err = _refused(run_mpkg, tmp_path / "pkg", made / "safetensors" / "weights.safetensors")
    assert "--code FILE is missing" in err and "predict(weights, inputs)" in err
    assert "--contract FILE is missing" in err
    err = _refused(
        run_mpkg,
        tmp_path / "pkg",
        made / "safetensors" / "weights.safetensors",
        "--code",
        made / "safetensors" / "predict.py",
    )
    assert "--contract FILE is missing" in err and "--code FILE" not in err


def test_hf_folder_without_code_is_refused(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    err = _refused(run_mpkg, tmp_path / "pkg", made / "hf", "--contract", made / "safetensors" / "contract.json")
    assert "--code FILE is missing" in err


def test_hf_index_naming_a_missing_shard_is_refused(made: Made, tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    shutil.copytree(made / "hf", folder)
    (folder / "model-00002-of-00002.safetensors").unlink()
    with pytest.raises(SourceError, match=r"names 'model-00002-of-00002\.safetensors', which is missing"):
        init_source(tmp_path / "pkg", folder, _user_code(made))


def _user_code(made: Made) -> InitOptions:
    return InitOptions(code=made / "safetensors" / "predict.py", contract=made / "safetensors" / "contract.json")


# --- MLflow: pickles are refused, never loaded -------------------------------------------


def test_pyfunc_pickle_is_refused_with_the_fix(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    err = _refused(run_mpkg, tmp_path / "pkg", made / "mlflow-pyfunc")
    assert "only the python_function flavour" in err and "mpkg never unpickles" in err
    assert "Export the model to ONNX" in err
    assert len(err.strip().splitlines()) == 1


def test_pickle_in_sklearn_flavour_is_never_loaded(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-cloudpickle", tmp_path)
    marker = tmp_path / "unpickled"
    (folder / "model.pkl").write_bytes(pickle.dumps(_TouchOnLoad(marker)))
    err = _refused(run_mpkg, tmp_path / "pkg", folder)
    assert "'cloudpickle', a pickle" in err and "serialization_format='skops'" in err
    assert not marker.exists()


@pytest.mark.slow
def test_pickle_disguised_as_skops_is_never_loaded(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-tensor", tmp_path)
    marker = tmp_path / "unpickled"
    (folder / "model.skops").write_bytes(pickle.dumps(_TouchOnLoad(marker)))
    err = _refused(run_mpkg, tmp_path / "pkg", folder)
    assert "model.skops is not a readable skops file" in err
    assert not marker.exists()


@pytest.mark.slow
def test_skops_with_untrusted_types_is_refused(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-tensor", tmp_path)
    script = (
        "import sys, numpy as np, skops.io as sio\n"
        "from sklearn.preprocessing import FunctionTransformer\n"
        "def double(x): return 2 * x\n"
        "sio.dump(FunctionTransformer(double).fit(np.ones((2, 4))), sys.argv[1])\n"
    )
    subprocess.run([sys.executable, "-c", script, str(folder / "model.skops")], check=True, capture_output=True)
    err = _refused(run_mpkg, tmp_path / "pkg", folder)
    assert "holds types skops does not trust by default (__main__.double)" in err


def test_missing_sklearn_extra_names_it(made: Made, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skl2onnx", None)  # as if not installed: its import fails
    with pytest.raises(SourceError) as exc:
        init_source(tmp_path / "pkg", made / "mlflow-tensor")
    (reason,) = exc.value.reasons()
    assert "needs skl2onnx: pip install 'mpkg[sklearn]'" in reason
    assert not (tmp_path / "pkg").exists()


# --- MLflow: the MLmodel file is hostile input ------------------------------------------------


def _mlmodel(folder: Path, text: str) -> None:
    (folder / "MLmodel").write_text(text)


def test_mlmodel_yaml_alias_bomb_is_refused(made: Made, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-onnx", tmp_path)
    bomb = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
        f"{c}: &{c} [{', '.join(['*' + p] * 9)}]\n" for p, c in zip("abcdefgh", "bcdefghi", strict=True)
    )
    _mlmodel(folder, bomb + "flavors: {onnx: {data: model.onnx}}\n")
    with pytest.raises(SourceError, match=r"uses a YAML alias \(\*a\)"):
        init_source(tmp_path / "pkg", folder)


def test_mlmodel_larger_than_its_cap_is_refused(made: Made, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-onnx", tmp_path)
    _mlmodel(folder, "flavors: {onnx: {data: model.onnx}}\n" + "#" * (1024 * 1024))
    with pytest.raises(SourceError, match="more than the 1048576 bytes init reads"):
        init_source(tmp_path / "pkg", folder)


def test_mlmodel_data_path_traversal_is_refused(made: Made, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-onnx", tmp_path)
    shutil.copy(folder / "model.onnx", tmp_path / "outside.onnx")
    _mlmodel(folder, "flavors: {onnx: {data: ../outside.onnx}}\n")
    with pytest.raises(SourceError, match=r"flavors.onnx.data: '../outside.onnx' contains '..'"):
        init_source(tmp_path / "pkg", folder)


def test_mlmodel_data_symlink_out_of_the_folder_is_refused(made: Made, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-onnx", tmp_path)
    shutil.copy(folder / "model.onnx", tmp_path / "outside.onnx")
    (folder / "model.onnx").unlink()
    (folder / "model.onnx").symlink_to(tmp_path / "outside.onnx")
    with pytest.raises(SourceError, match="resolves outside the source folder"):
        init_source(tmp_path / "pkg", folder)


def test_mlmodel_run_id_injection_is_refused(made: Made, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-onnx", tmp_path)
    forged = json.dumps("abc\n## Intended use\nanything")
    _mlmodel(folder, f"flavors: {{onnx: {{data: model.onnx}}}}\nrun_id: {forged}\n")
    with pytest.raises(SourceError, match=r"run_id: .* is not an MLflow run_id"):
        init_source(tmp_path / "pkg", folder)


@pytest.mark.parametrize(
    ("inputs", "reason"),
    [
        ('\'[{"type": "binary", "name": "blob"}]\'', "column 'blob' has type 'binary', which has no tensor form"),
        ('\'[{"type": "double", "name": "x"\'', "signature.inputs: is not valid JSON"),
        ('\'{"type": "double"}\'', "must be a JSON list"),
    ],
)
def test_mlmodel_bad_signature_is_refused(made: Made, tmp_path: Path, inputs: str, reason: str) -> None:
    folder = _mlflow_copy(made, "mlflow-onnx", tmp_path)
    _mlmodel(folder, f"flavors: {{onnx: {{data: model.onnx}}}}\nsignature:\n  inputs: {inputs}\n")
    with pytest.raises(SourceError) as exc:
        init_source(tmp_path / "pkg", folder)
    assert reason in exc.value.diagnostics()


def test_other_flavours_are_refused_with_the_fix(made: Made, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-onnx", tmp_path)
    _mlmodel(folder, "flavors: {pytorch: {model_data: data}, python_function: {loader_module: mlflow.pytorch}}\n")
    with pytest.raises(SourceError, match="has flavours pytorch, which only their own libraries can load"):
        init_source(tmp_path / "pkg", folder)


@pytest.mark.slow
def test_an_input_example_that_does_not_fit_falls_back_to_generated(made: Made, tmp_path: Path) -> None:
    folder = _mlflow_copy(made, "mlflow-onnx", tmp_path)
    (folder / "input_example.json").write_text(json.dumps({"other": [[1.0, 2.0]]}))
    result = init_source(tmp_path / "pkg", folder)
    assert result.example_origin.startswith("generated by `mpkg init`")
    assert any("does not name the package inputs (features)" in n for n in result.notes)


# --- MLflow runs: found above the model, or named with --run-dir --------------------------------


@pytest.mark.slow
def test_run_lineage_needs_run_dir_once_the_model_leaves_mlruns(made: Made, tmp_path: Path) -> None:
    run_id, model = made.mlflow_run
    folder = tmp_path / "churn"
    shutil.copytree(model, folder)
    alone = init_source(tmp_path / "alone", folder)
    assert any(f"run {run_id} (params, metrics) were not found" in n and "--run-dir" in n for n in alone.notes)
    assert not (tmp_path / "alone" / "params.yaml").exists()
    run_dir = next(p for p in made.root.rglob(run_id) if (p / "meta.yaml").is_file())
    init_source(tmp_path / "with-run", folder, InitOptions(run_dir=run_dir))
    assert "max_iter" in (tmp_path / "with-run" / "params.yaml").read_text()


@pytest.mark.slow
def test_run_dir_of_another_run_is_refused(made: Made, tmp_path: Path) -> None:
    run_id, model = made.mlflow_run
    run_dir = next(p for p in made.root.rglob(run_id) if (p / "meta.yaml").is_file())
    other = tmp_path / "other-run"
    shutil.copytree(run_dir, other)
    meta = (other / "meta.yaml").read_text().replace(run_id, "f" * 32)
    (other / "meta.yaml").write_text(meta)
    with pytest.raises(SourceError, match=f"is run .f{{32}}., but MLmodel names run '{run_id}'"):
        init_source(tmp_path / "pkg", model, InitOptions(run_dir=other))


# --- the destination: never overwritten ---------------------------------------------------------


def test_init_never_overwrites_and_names_every_existing_file(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    dest = tmp_path / "pkg"
    dest.mkdir()
    (dest / "MODEL_CARD.md").write_text("mine")
    (dest / "requirements.lock").write_text("mine too")
    proc = run_mpkg("init", dest, "--from", made / "onnx" / "model.onnx", expect=1)
    assert f"{dest / 'MODEL_CARD.md'}: already exists; init never overwrites" in proc.stderr
    assert f"{dest / 'requirements.lock'}: already exists" in proc.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["MODEL_CARD.md", "requirements.lock"]
    assert (dest / "MODEL_CARD.md").read_text() == "mine"


@pytest.mark.slow
def test_init_in_the_models_own_folder_keeps_the_model_in_place(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    dest = tmp_path / "here"
    dest.mkdir()
    shutil.copy(made / "onnx" / "model.onnx", dest / "model.onnx")
    before = (dest / "model.onnx").stat()
    run_mpkg("init", dest, "--from", dest / "model.onnx", expect=0)
    after = (dest / "model.onnx").stat()
    assert (before.st_ino, before.st_mtime_ns) == (after.st_ino, after.st_mtime_ns)
    run_mpkg("build", dest, "-o", tmp_path / "here.mpkg", expect=0)


@pytest.mark.parametrize("name", ["notes.txt", "folder"])
def test_unknown_sources_are_refused(run_mpkg: Any, tmp_path: Path, name: str) -> None:
    source = tmp_path / name
    source.mkdir() if name == "folder" else source.write_text("hello")
    err = _refused(run_mpkg, tmp_path / "pkg", source)
    assert "MLflow" in err and "Hugging Face" in err


@pytest.mark.slow
def test_sigterm_while_writing_leaves_nothing(made: Made, tmp_path: Path) -> None:
    """A cancelled job must not leave a half-written source folder or the staging folder."""
    from safetensors.numpy import save_file

    big = tmp_path / "big.safetensors"
    import numpy as np

    save_file({"w": np.zeros((96, 1024, 1024), dtype=np.uint8)}, str(big))  # 96 MiB to copy
    dest = tmp_path / "pkg"
    proc = subprocess.Popen(
        [
            MPKG,
            "init",
            dest,
            "--from",
            big,
            "--code",
            made / "safetensors" / "predict.py",
            "--contract",
            made / "safetensors" / "contract.json",
        ],
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None and not list(dest.glob(".mpkg-init.*")):
        time.sleep(0.002)
    if proc.poll() is not None:
        pytest.skip("init finished before it could be interrupted")
    os.kill(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert "Traceback" not in err and not list(dest.glob(".mpkg-init.*"))
    if dest.exists():  # the signal came while the last files were linked: held until the folder was complete
        assert (dest / "mpkg.toml").is_file() and (dest / "big.safetensors").stat().st_size == big.stat().st_size
    else:
        assert proc.returncode == 128 + signal.SIGTERM and "terminated by SIGTERM; nothing was written" in err


def test_hf_folder_with_only_a_pickle_checkpoint_is_refused(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    folder = tmp_path / "hf"
    folder.mkdir()
    for name in ("config.json", "README.md", "pytorch_model.bin"):
        shutil.copy(made / "hf" / name, folder / name)
    err = _refused(run_mpkg, tmp_path / "pkg", folder)
    assert "no *.safetensors weights" in err and "never loaded" in err


def test_a_package_that_cannot_run_leaves_no_folders(made: Made, run_mpkg: Any, tmp_path: Path) -> None:
    """init proves the folder with the build's own checks; when the model cannot run on the
    example, every folder init made (nested ones too) is removed again."""
    contract = json.loads((made / "safetensors" / "contract.json").read_text())
    contract["outputs"][0]["name"] = "scores"  # predict returns "probabilities"
    (tmp_path / "contract.json").write_text(json.dumps(contract))
    proc = run_mpkg(
        "init",
        tmp_path / "a" / "b" / "pkg",
        "--from",
        made / "safetensors" / "weights.safetensors",
        "--code",
        made / "safetensors" / "predict.py",
        "--contract",
        tmp_path / "contract.json",
        expect=1,
    )
    assert "example.json: running the example failed" in proc.stderr
    assert not (tmp_path / "a").exists()
