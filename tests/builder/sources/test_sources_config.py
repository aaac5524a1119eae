"""mpkg.toml parsing: strict keys and types, and paths that must stay inside the source."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from mpkg.errors import SourceError
from mpkg_builder.config import list_code_files, load_config

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"


def refused(src: Path) -> str:
    with pytest.raises(SourceError) as exc:
        load_config(src)
    return exc.value.diagnostics()


def edit(src: Path, old: str, new: str) -> None:
    text = (src / "mpkg.toml").read_text()
    assert old in text
    (src / "mpkg.toml").write_text(text.replace(old, new, 1))


def test_iris_example_loads_every_section() -> None:
    cfg = load_config(EXAMPLES / "iris-mlp")
    assert cfg.package.name == "iris-mlp" and cfg.package.version == "1.0.0"
    assert cfg.model.format == "onnx" and cfg.model.files == ("model.onnx",)
    assert cfg.code is not None and (cfg.code.root, cfg.code.module) == ("src", "pipeline")
    assert (cfg.lockfile, cfg.contract, cfg.card) == (
        "requirements.lock",
        "contract.json",
        "MODEL_CARD.md",
    )
    assert cfg.lineage.data == ("data/iris.csv.dvc",)
    assert cfg.example is not None and cfg.example.rtol == 1e-5 and cfg.example.atol == 1e-6


def test_churn_example_loads() -> None:
    cfg = load_config(EXAMPLES / "churn-tabular")
    assert cfg.model.format == "safetensors" and cfg.contract == "contract.json"
    assert cfg.example is not None and cfg.example.rtol is None


def test_minimal_source_defaults(source: Path) -> None:
    cfg = load_config(source)
    assert cfg.code is None and cfg.contract is None and cfg.example is None
    assert cfg.package.description == "" and cfg.lineage.data == ()


def test_version_is_optional(source: Path) -> None:
    edit(source, 'version = "1.0.0"\n', "")
    assert load_config(source).package.version is None


@pytest.mark.parametrize("version", ["1.0.0-rc.1", "2.3.4+build.5", "0.0.0", "1.2.3-alpha.0+x"])
def test_semver_versions_accepted(source: Path, version: str) -> None:
    edit(source, '"1.0.0"', f'"{version}"')
    assert load_config(source).package.version == version


@pytest.mark.parametrize("version", ["1.0", "01.0.0", "1.0.0-", "v1.0.0", "1.0.0-01", "1.0.0.0"])
def test_non_semver_version_refused(source: Path, version: str) -> None:
    edit(source, '"1.0.0"', f'"{version}"')
    assert "is not a SemVer 2.0.0 version" in refused(source)


@pytest.mark.parametrize("name", ["Tiny", "1tiny", "tiny_model", "", "a" * 65, "tiny model"])
def test_bad_package_name_refused(source: Path, name: str) -> None:
    edit(source, 'name = "tiny"', f'name = "{name}"')
    assert "[package].name" in refused(source)


def test_unknown_table_refused(source: Path, base_toml: str) -> None:
    (source / "mpkg.toml").write_text(base_toml + '\n[extras]\nfoo = "bar"\n')
    assert "unknown key or table 'extras'" in refused(source)


def test_unknown_key_refused(source: Path) -> None:
    edit(source, 'format = "onnx"', 'format = "onnx"\nfromat = "onnx"')
    assert "[model].fromat: unknown key 'fromat'" in refused(source)


def test_missing_required_key_named(source: Path) -> None:
    edit(source, 'lockfile = "requirements.lock"\n', "")
    assert "[environment].lockfile: missing required key" in refused(source)


def test_missing_required_table_named(source: Path) -> None:
    edit(source, '[card]\nfile = "MODEL_CARD.md"\n', "")
    assert "missing required table [card]" in refused(source)


def test_table_given_as_value_refused(source: Path, base_toml: str) -> None:
    (source / "mpkg.toml").write_text('code = "src"\n' + base_toml)
    assert "must be a table ([code])" in refused(source)


def test_wrong_types_named(source: Path) -> None:
    edit(source, 'name = "tiny"', "name = 3")
    edit(source, 'files = ["model.onnx"]', 'files = "model.onnx"')
    text = refused(source)
    assert "[package].name: must be a string, not an integer" in text
    assert "[model].files: must be a list of strings" in text


def test_unknown_format_refused(source: Path) -> None:
    edit(source, 'format = "onnx"', 'format = "pickle"')
    assert "'pickle' is not supported" in refused(source)


def test_onnx_takes_exactly_one_file(source: Path) -> None:
    (source / "other.onnx").write_bytes((source / "model.onnx").read_bytes())
    edit(source, '["model.onnx"]', '["model.onnx", "other.onnx"]')
    assert "exactly one model file" in refused(source)


def test_duplicate_files_refused(source: Path) -> None:
    edit(source, '["model.onnx"]', '["model.onnx", "model.onnx"]')
    assert "more than once" in refused(source)


def test_empty_files_refused(source: Path) -> None:
    edit(source, '["model.onnx"]', "[]")
    assert "is empty" in refused(source)


def test_safetensors_requires_contract(source: Path) -> None:
    edit(source, 'format = "onnx"', 'format = "safetensors"')
    assert "is required for safetensors models" in refused(source)


@pytest.mark.parametrize(
    ("path", "reason"),
    [
        ("/etc/passwd", "is absolute"),
        ("C:/model.onnx", "is absolute"),
        ("../model.onnx", "contains '..'"),
        ("sub/../../model.onnx", "contains '..'"),
        ("sub\\\\model.onnx", "contains a backslash"),
        ("./model.onnx", "is not normalised"),
        ("sub//model.onnx", "is not normalised"),
        ("", "is empty"),
    ],
)
def test_non_normalised_paths_refused(source: Path, path: str, reason: str) -> None:
    edit(source, '"MODEL_CARD.md"', f'"{path}"')
    assert reason in refused(source)


def test_symlink_leaving_source_refused(source: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside.md"
    outside.write_text((source / "MODEL_CARD.md").read_text())
    (source / "MODEL_CARD.md").unlink()
    os.symlink(outside, source / "MODEL_CARD.md")
    assert "resolves outside the source folder" in refused(source)


def test_symlinked_folder_leaving_source_refused(source: Path, tmp_path: Path) -> None:
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / "elsewhere" / "card.md").write_text("x")
    os.symlink(tmp_path / "elsewhere", source / "docs")
    edit(source, '"MODEL_CARD.md"', '"docs/card.md"')
    assert "resolves outside the source folder" in refused(source)


def test_symlink_inside_source_allowed(source: Path) -> None:
    os.symlink("MODEL_CARD.md", source / "CARD.md")
    edit(source, '"MODEL_CARD.md"', '"CARD.md"')
    assert load_config(source).card == "CARD.md"


def test_missing_file_refused(source: Path) -> None:
    (source / "MODEL_CARD.md").unlink()
    assert "'MODEL_CARD.md' does not exist in the source folder" in refused(source)


def test_directory_instead_of_file_refused(source: Path) -> None:
    (source / "cards").mkdir()
    edit(source, '"MODEL_CARD.md"', '"cards"')
    assert "is a folder; name a file" in refused(source)


def test_fifo_instead_of_file_refused(source: Path) -> None:
    os.mkfifo(source / "card.fifo")
    edit(source, '"MODEL_CARD.md"', '"card.fifo"')
    assert "is not a regular file" in refused(source)


def test_all_problems_reported_at_once(source: Path) -> None:
    edit(source, 'name = "tiny"', 'name = "Tiny"')
    edit(source, 'format = "onnx"', 'format = "onnx"\nextra = 1')
    (source / "MODEL_CARD.md").unlink()
    with pytest.raises(SourceError) as exc:
        load_config(source)
    wheres = [p.where for p in exc.value.problems]
    assert any("[package].name" in w for w in wheres)
    assert any("[model].extra" in w for w in wheres)
    assert any("[card].file" in w for w in wheres)


def test_invalid_toml_refused(source: Path) -> None:
    (source / "mpkg.toml").write_text("[package\nname=")
    assert "is not valid TOML" in refused(source)


def test_non_utf8_toml_refused(source: Path) -> None:
    (source / "mpkg.toml").write_bytes(b'[package]\nname = "\xff"\n')
    assert "is not UTF-8" in refused(source)


def test_missing_config_refused(tmp_path: Path) -> None:
    assert "no mpkg.toml" in refused(tmp_path)


def test_missing_source_folder_refused(tmp_path: Path) -> None:
    assert "does not exist" in refused(tmp_path / "nope")


@pytest.mark.parametrize(("key", "value"), [("rtol", "-1.0"), ("atol", "true"), ("rtol", "nan"), ("atol", '"1e-5"')])
def test_bad_tolerance_refused(source: Path, key: str, value: str, base_toml: str) -> None:
    (source / "example.json").write_text('{"inputs": {"x": [[1.0, 2.0]]}}')
    (source / "mpkg.toml").write_text(base_toml + f'\n[example]\nfile = "example.json"\n{key} = {value}\n')
    assert f"[example].{key}: must be a finite number >= 0" in refused(source)


# --- code ----------------------------------------------------------------------------


def add_code(src: Path, module: str = "pipeline") -> Path:
    (src / "mpkg.toml").write_text((src / "mpkg.toml").read_text() + f'\n[code]\nroot = "src"\nmodule = "{module}"\n')
    root = src / "src"
    root.mkdir()
    return root


def test_code_module_must_exist(source: Path) -> None:
    add_code(source)
    assert "module 'pipeline' not found: expected src/pipeline.py or src/pipeline/__init__.py" in refused(source)


def test_code_module_as_package(source: Path) -> None:
    root = add_code(source, "pkg.predict")
    (root / "pkg" / "predict").mkdir(parents=True)
    (root / "pkg" / "predict" / "__init__.py").write_text("")
    assert load_config(source).code is not None


def test_code_module_name_checked(source: Path) -> None:
    add_code(source, "my-module")
    assert "is not a dotted Python module name" in refused(source)


def test_code_root_must_be_folder(source: Path, base_toml: str) -> None:
    (source / "mpkg.toml").write_text(base_toml + '\n[code]\nroot = "MODEL_CARD.md"\nmodule = "x"\n')
    assert "is not a folder" in refused(source)


def test_list_code_files_sorted_and_skips_bytecode(source: Path) -> None:
    root = add_code(source)
    (root / "pipeline.py").write_text("")
    (root / "b" / "__pycache__").mkdir(parents=True)
    (root / "b" / "__pycache__" / "x.cpython-311.pyc").write_bytes(b"")
    (root / "b" / "z.txt").write_text("z")
    (root / "a.pyc").write_bytes(b"")
    (root / "a.json").write_text("{}")
    assert list_code_files(source, "src") == ("src/a.json", "src/b/z.txt", "src/pipeline.py")


def test_list_code_files_refuses_symlink_leaving_source(source: Path, tmp_path: Path) -> None:
    root = add_code(source)
    (tmp_path / "secret.txt").write_text("s")
    os.symlink(tmp_path / "secret.txt", root / "leak.txt")
    with pytest.raises(SourceError) as exc:
        list_code_files(source, "src")
    assert "src/leak.txt: 'src/leak.txt' resolves outside the source folder" in exc.value.diagnostics()


def test_list_code_files_refuses_symlinked_folder(source: Path) -> None:
    root = add_code(source)
    (root / "real").mkdir()
    os.symlink("real", root / "alias")
    with pytest.raises(SourceError) as exc:
        list_code_files(source, "src")
    assert "is a symlinked folder" in exc.value.diagnostics()


def test_list_code_files_refuses_special_files(source: Path) -> None:
    root = add_code(source)
    os.mkfifo(root / "pipe")
    with pytest.raises(SourceError) as exc:
        list_code_files(source, "src")
    assert "src/pipe: is a special file" in exc.value.diagnostics()


def test_list_code_files_keeps_inside_symlink(source: Path) -> None:
    root = add_code(source)
    (root / "data.txt").write_text("d")
    os.symlink("data.txt", root / "alias.txt")
    assert list_code_files(source, "src") == ("src/alias.txt", "src/data.txt")


def test_list_code_files_refuses_escaping_root(source: Path) -> None:
    with pytest.raises(SourceError) as exc:
        list_code_files(source, "../x")
    assert "contains '..'" in exc.value.diagnostics()


# --- [diff.rules]: one validation for `mpkg diff --rules` and `mpkg build --base` -------------


def test_diff_rules_are_loaded_for_build(source: Path) -> None:
    from mpkg_builder.diff import Bump

    (source / "mpkg.toml").write_text(
        (source / "mpkg.toml").read_text() + '\n[diff.rules]\nweights-changed = "major"\n'
    )
    assert load_config(source).diff_rules.bump("weights-changed") is Bump.MAJOR
    assert load_config(source).diff_rules.bump("input-removed") is Bump.MAJOR


def test_misspelt_diff_rule_refused_with_the_closest(source: Path) -> None:
    (source / "mpkg.toml").write_text(
        (source / "mpkg.toml").read_text() + '\n[diff.rules]\nweights-changd = "major"\ninput-removed = "none"\n'
    )
    diagnostics = refused(source)
    assert (
        "mpkg.toml: [diff.rules].weights-changd: 'weights-changd' is not a diff rule; "
        "did you mean 'weights-changed'?" in diagnostics
    )
    assert "mpkg.toml: [diff.rules].input-removed: must be one of major, minor, patch, not 'none'" in diagnostics
