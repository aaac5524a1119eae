"""The `mpkg` command's contract: exactly one JSON object with --json (success and failure),
exit codes 0/1/2, messages on stderr, never a traceback. Runs the installed console script."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mpkg.cli import main


def _one_object(stdout: str) -> dict:  # type: ignore[type-arg]
    lines = stdout.splitlines()
    assert len(lines) == 1, stdout
    doc = json.loads(lines[0])
    assert isinstance(doc, dict)
    return doc


def test_json_success_and_failure_for_every_command(built, run_mpkg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    pkg = tmp_path / "iris.mpkg"
    src = built.sources["iris-mlp"]

    doc = _one_object(run_mpkg("build", src, "-o", pkg, "--json", expect=0).stdout)
    assert doc["digest"] == built.digests["iris-mlp"] and doc["signed_by"] == []
    doc = _one_object(run_mpkg("build", tmp_path / "nowhere", "-o", tmp_path / "x.mpkg", "--json", expect=1).stdout)
    assert doc["ok"] is False and "no mpkg.toml here" in doc["errors"][0]

    doc = _one_object(run_mpkg("keygen", tmp_path / "k", "--json", expect=0).stdout)
    assert doc["algorithm"] == "ed25519" and len(doc["keyid"]) == 64
    doc = _one_object(run_mpkg("keygen", tmp_path / "k", "--json", expect=1).stdout)
    assert doc["ok"] is False and "already exists" in doc["errors"][0]

    doc = _one_object(run_mpkg("sign", pkg, "--key", tmp_path / "k.key", "--json", expect=0).stdout)
    assert (
        doc["ok"] is True
        and doc["keyid"] == _one_object(run_mpkg("inspect", pkg, "--json", expect=0).stdout)["signatures"][0]["keyid"]
    )
    doc = _one_object(run_mpkg("sign", pkg, "--key", tmp_path / "k.pub", "--json", expect=1).stdout)
    assert doc["ok"] is False and "it must hold one private key" in doc["errors"][0]

    doc = _one_object(run_mpkg("verify", pkg, "--key", tmp_path / "k.pub", "--json", expect=0).stdout)
    assert doc["ok"] is True and doc["errors"] == [] and doc["digest"] == built.digests["iris-mlp"]
    doc = _one_object(run_mpkg("verify", pkg, "--json", expect=1).stdout)
    assert doc["ok"] is False and "no trusted keys given" in doc["errors"][0]

    doc = _one_object(run_mpkg("inspect", tmp_path / "k.pub", "--json", expect=1).stdout)
    assert doc["ok"] is False and doc["errors"]

    doc = _one_object(run_mpkg("unpack", pkg, tmp_path / "out", "--key", tmp_path / "k.pub", "--json", expect=0).stdout)
    assert doc["ok"] is True and (tmp_path / "out" / "model" / "model.onnx").is_file()
    doc = _one_object(run_mpkg("unpack", pkg, tmp_path / "out", "--key", tmp_path / "k.pub", "--json", expect=1).stdout)
    assert doc["ok"] is False and "already exists" in doc["errors"][0]


def test_human_output_goes_to_stderr(built, run_mpkg) -> None:  # type: ignore[no-untyped-def]
    proc = run_mpkg("verify", built.signed["churn-tabular"], "--key", built.pub, expect=0)
    assert proc.stdout == "" and proc.stderr.splitlines()[-1].startswith("ok: churn-tabular 0.3.0 sha256:")
    proc = run_mpkg("verify", built.unsigned["churn-tabular"], "--key", built.pub, expect=1)
    assert proc.stdout == "" and all(line.startswith("mpkg: ") for line in proc.stderr.splitlines())


def test_keys_from_environment(built, run_mpkg) -> None:  # type: ignore[no-untyped-def]
    run_mpkg("verify", built.signed["iris-mlp"], env={"MPKG_KEYS": str(built.pub)}, expect=0)


@pytest.mark.parametrize(
    "argv",
    [
        [],
        ["verify"],
        ["verify", "a.mpkg", "--bogus"],
        ["nonsense"],
        ["build"],
        ["keygen", "k", "--algorithm", "rsa"],
        ["unpack", "a.mpkg"],
    ],
    ids=[
        "no-command",
        "missing-arg",
        "unknown-option",
        "unknown-command",
        "build-no-output",
        "bad-choice",
        "unpack-one",
    ],
)
def test_usage_errors_exit_2(argv: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse exits directly
        code = exc.code  # type: ignore[assignment]
    assert code == 2
    out = capsys.readouterr()
    assert out.out == "" and out.err.strip()


def test_usage_error_through_the_console_script(run_mpkg) -> None:  # type: ignore[no-untyped-def]
    proc = run_mpkg("verify", "--json", expect=2)
    assert proc.stdout == "" and "required" in proc.stderr


def test_version(run_mpkg) -> None:  # type: ignore[no-untyped-def]
    import mpkg

    assert run_mpkg("--version", expect=0).stdout.strip() == f"mpkg {mpkg.__version__}"


@pytest.mark.parametrize(
    "argv",
    [
        ["build", "{src}", "-o", "{tmp}/afile/out.mpkg"],  # a missing folder is created; a file is in the way
        ["build", "{src}", "-o", "{tmp}"],
        ["keygen", "{tmp}/no/such/dir/k"],
        ["unpack", "{pkg}", "{tmp}/afile/out", "--allow-unsigned"],
    ],
    ids=["build-under-a-file", "build-onto-a-directory", "keygen-into-missing-folder", "unpack-under-a-file"],
)
def test_file_system_refusals_are_one_line(  # type: ignore[no-untyped-def]
    built, run_mpkg, tmp_path: Path, argv: list[str]
) -> None:
    """Bad output locations are user input too: exit 1 with a reason, no traceback, nothing left."""
    (tmp_path / "afile").write_text("x")
    pkg = tmp_path / "p.mpkg"
    shutil.copyfile(built.unsigned["iris-mlp"], pkg)
    args = [a.format(src=built.sources["iris-mlp"], tmp=tmp_path, pkg=pkg) for a in argv]
    before = sorted(p.name for p in tmp_path.iterdir())
    proc = run_mpkg(*args, expect=1)
    assert proc.stderr.startswith("mpkg: ") and len(proc.stderr.splitlines()) == 1, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == before


def test_verify_run_reports_a_failing_package_code_in_one_line(run_mpkg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """Package code is the author's: when it raises during the smoke test, `verify --run` says so
    in one line naming the package and exits 1 (the run_mpkg fixture refuses any traceback)."""
    src = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "iris-mlp", src)
    pipeline = src / "src" / "pipeline.py"
    pipeline.write_text(
        pipeline.read_text()
        + "\n\nimport os\n_post = postprocess\n\n\ndef postprocess(outputs):\n"
        + "    if os.environ.get('IRIS_FAIL'):\n        raise RuntimeError('boom: calibration table missing')\n"
        + "    return _post(outputs)\n"
    )
    package = tmp_path / "iris.mpkg"
    run_mpkg("build", src, "-o", package, expect=0)
    run_mpkg("verify", package, "--allow-unsigned", "--run", expect=0)
    failed = run_mpkg("verify", package, "--allow-unsigned", "--run", env={"IRIS_FAIL": "1"}, expect=1)
    lines = [line for line in failed.stderr.splitlines() if "boom" in line]
    assert len(lines) == 1 and "RuntimeError" in lines[0] and str(package) in lines[0], failed.stderr
    doc = _one_object(run_mpkg("verify", package, "--allow-unsigned", "--run", "--json", env={"IRIS_FAIL": "1"}).stdout)
    assert doc["ok"] is False and doc["smoke_test"]["ok"] is False


def test_inspect_escapes_what_the_package_says(run_mpkg, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    """inspect does not verify: a card's front matter with a newline or a terminal escape must
    not forge lines or drive the terminal."""
    src = tmp_path / "src"
    shutil.copytree(Path(__file__).resolve().parents[2] / "examples" / "iris-mlp", src)
    card = src / "MODEL_CARD.md"
    card.write_text(card.read_text().replace("---\n", '---\nnote: "fine\\nok: iris-mlp verified\\u001b[2J"\n', 1))
    package = tmp_path / "iris.mpkg"
    run_mpkg("build", src, "-o", package, expect=0)
    out = run_mpkg("inspect", package, expect=0).stdout
    assert "\x1b" not in out
    assert not any(line.startswith("ok:") for line in out.splitlines())
    assert "note=fine\\nok: iris-mlp verified\\x1b[2J" in out
