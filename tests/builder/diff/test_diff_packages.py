"""`mpkg diff` end to end: real packages built from generated ONNX and safetensors sources."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import pytest
from mpkg._internal.format import canonical, layout
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.format.package import read_manifest
from mpkg.cli import main
from mpkg_builder.diff import Bump, diff_packages, render_markdown, render_text

from tests.builder.diff.mpkgdiff_sources import Built, OnnxSpec, check_golden, write_onnx_source

MAJOR, MINOR, PATCH, NONE = Bump.MAJOR, Bump.MINOR, Bump.PATCH, Bump.NONE

# (kind, variant, rules that must fire, overall bump, variant's own version is enough)
E2E: list[tuple[str, str, set[str], Bump, bool]] = [
    ("onnx", "retrained", {"weights-changed", "metrics-changed"}, MINOR, True),
    ("onnx", "dynamic-dim", {"input-dim-dynamic", "graph-interface-changed"}, MINOR, True),
    ("onnx", "wider-input", {"input-dim-changed", "graph-interface-changed"}, MAJOR, False),
    ("onnx", "wider-hidden", {"tensor-shape-changed", "graph-structure-changed"}, MAJOR, True),
    ("onnx", "extra-op", {"graph-operators-changed", "graph-structure-changed"}, MAJOR, True),
    ("onnx", "dep-patch", {"dependency-patch-changed", "lockfile-changed"}, PATCH, True),
    ("safetensors", "code-fix", {"code-changed"}, PATCH, True),
    ("safetensors", "retrained", {"weights-changed", "metrics-changed"}, MINOR, True),
    ("safetensors", "optional-input", {"input-added-optional"}, MINOR, True),
    (
        "safetensors",
        "predict-signature",
        {"entry-point-signature-changed", "code-changed"},
        MAJOR,
        True,
    ),
]


@pytest.mark.parametrize(
    ("kind", "variant", "rules", "bump", "version_ok"),
    [pytest.param(*case, id=f"{case[0]}-{case[1]}") for case in E2E],
)
def test_real_packages(built: Built, kind: str, variant: str, rules: set[str], bump: Bump, version_ok: bool) -> None:
    pkgs = getattr(built, kind)
    report = diff_packages(pkgs["base"], pkgs[variant])
    fired = {c.rule for c in report.changes}
    assert rules <= fired, fired
    assert report.bump is bump
    assert report.version_ok is version_ok
    # The reverse diff is never smaller than a patch and never 'none'.
    assert diff_packages(pkgs[variant], pkgs["base"]).bump >= PATCH


def test_same_package_is_none(built: Built) -> None:
    report = diff_packages(built.onnx["base"], built.onnx["base"])
    assert report.bump is NONE and report.changes == ()
    assert render_text(report).startswith("NONE: tiny-mlp 1.0.0 and 1.0.0 are the same package")


def test_golden_onnx_major(built: Built) -> None:
    report = diff_packages(built.onnx["base"], built.onnx["wider-input"])
    check_golden("onnx-wider-input.txt", render_text(report))
    check_golden("onnx-wider-input.md", render_markdown(report))


def test_golden_safetensors_retrained(built: Built) -> None:
    report = diff_packages(built.safetensors["base"], built.safetensors["retrained"])
    check_golden("safetensors-retrained.txt", render_text(report))
    check_golden("safetensors-retrained.md", render_markdown(report))


# --- the command ---------------------------------------------------------------------------


def test_cli_json(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["diff", str(built.safetensors["base"]), str(built.safetensors["optional-input"]), "--json"])
    out = json.loads(capsys.readouterr().out)
    assert code == 0 and out["ok"] is True
    assert (out["bump"], out["from_version"], out["to_version"], out["suggested_version"]) == (
        "minor",
        "1.0.0",
        "1.1.0",
        "1.1.0",
    )
    change = next(c for c in out["changes"] if c["rule"] == "input-added-optional")
    assert change == {
        "rule": "input-added-optional",
        "bump": "minor",
        "category": "interface",
        "subject": "inputs.weight",
        "old": None,
        "new": "float32['batch'] optional",
        "message": "optional input 'weight' was added",
        "diff": None,
    }
    assert out["metrics"] == [{"name": "accuracy", "old": 0.8, "new": 0.8, "delta": 0.0}]


@pytest.mark.parametrize(("level", "code"), [("patch", 1), ("minor", 1), ("major", 0)])
def test_cli_fail_on(built: Built, capsys: pytest.CaptureFixture[str], level: str, code: int) -> None:
    args = ["diff", str(built.onnx["base"]), str(built.onnx["retrained"]), "--fail-on", level]
    assert main(args) == code
    captured = capsys.readouterr()
    assert captured.out.startswith("MINOR: tiny-mlp 1.0.0 -> 1.1.0")
    assert ("at or above --fail-on" in captured.err) is (code == 1)


def test_cli_markdown(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["diff", str(built.onnx["base"]), str(built.onnx["extra-op"]), "--markdown"]) == 0
    out = capsys.readouterr().out
    assert out == render_markdown(diff_packages(built.onnx["base"], built.onnx["extra-op"]))
    assert "| `graph.operators.Relu` | Relu operators: 1 -> 2 | `graph-operators-changed` |" in out


def test_cli_rules_file(built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    rules = tmp_path / "rules.toml"
    rules.write_text('[diff.rules]\ncode-changed = "minor"\n')
    args = ["diff", str(built.safetensors["base"]), str(built.safetensors["code-fix"]), "--json"]
    assert main([*args, "--rules", str(rules)]) == 0
    assert json.loads(capsys.readouterr().out)["bump"] == "minor"
    rules.write_text('[diff.rules]\ncode-changd = "minor"\n')
    assert main([*args, "--rules", str(rules)]) == 1
    assert "code-changd" in json.loads(capsys.readouterr().out)["errors"][0]


def test_cli_refuses_a_non_package(built: Built, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    junk = tmp_path / "junk.mpkg"
    junk.write_bytes(b"not a tar" * 100)
    assert main(["diff", str(built.onnx["base"]), str(junk)]) == 1
    err = capsys.readouterr().err
    assert str(junk) in err and "Traceback" not in err


def test_cli_usage_errors(built: Built) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["diff", str(built.onnx["base"]), str(built.onnx["base"]), "--fail-on", "huge"])
    assert exc.value.code == 2
    with pytest.raises(SystemExit) as exc:
        main(["diff", str(built.onnx["base"]), str(built.onnx["base"]), "--json", "--markdown"])
    assert exc.value.code == 2


# --- diff reads manifests, never weights ---------------------------------------------------


def _tampered(src: Path, out: Path, member_name: str, data: bytes | None = None) -> Path:
    """A copy of ``src`` whose member's first bytes are overwritten (all of them by default)."""
    shutil.copyfile(src, out)
    with PackageFile(out) as pkg:
        member = pkg.by_name[member_name]
    with open(out, "r+b") as f:
        f.seek(member.data_offset)
        f.write(data if data is not None else b"\xff" * member.size)
    return out


def test_diff_ignores_weight_bytes(built: Built, tmp_path: Path) -> None:
    """Overwriting every weight byte changes nothing: diff never reads (or hashes) tensors."""
    before = diff_packages(built.onnx["base"], built.onnx["retrained"])
    tampered = _tampered(built.onnx["retrained"], tmp_path / "tampered.mpkg", "model/model.onnx")
    assert diff_packages(built.onnx["base"], tampered) == before


def _sparse_copy(src: Path, out: Path, weights_size: int) -> None:
    """A copy of ``src`` whose weights member claims ``weights_size`` bytes, left as a hole.

    Layout-valid (canonical headers, contiguous members), so read_manifest accepts it; the
    weights digest is stale, which only verification would notice.
    """
    manifest = read_manifest(src)
    doc = json.loads(manifest.to_bytes())
    for entry in doc["files"]:
        if entry["role"] == "weights":
            entry["size"] = weights_size
    data = Manifest.from_json(doc).to_bytes()
    assert data == canonical.dumps(doc)
    with PackageFile(src) as pkg, open(out, "wb") as f:
        for entry in doc["files"]:
            name = entry["path"]
            if entry["role"] == "weights":
                f.write(layout.member_header(name, weights_size))
                f.seek(weights_size + layout.padding(weights_size), os.SEEK_CUR)
            else:
                body = pkg.read(pkg.by_name[name])
                f.write(layout.member_header(name, len(body)) + body + b"\0" * layout.padding(len(body)))
        f.write(layout.member_header("mpkg/manifest.json", len(data)) + data + b"\0" * layout.padding(len(data)))
        f.write(layout.end_of_archive(f.tell()))


def _bytes_read() -> int:
    for line in Path("/proc/self/io").read_text().splitlines():
        if line.startswith("rchar:"):
            return int(line.split()[1])
    raise AssertionError("no rchar in /proc/self/io")


def test_diff_of_two_gib_packages_reads_kilobytes(built: Built, tmp_path: Path) -> None:
    two_gib = 2 * 1024**3
    old, new = tmp_path / "old.mpkg", tmp_path / "new.mpkg"
    _sparse_copy(built.safetensors["base"], old, two_gib)
    _sparse_copy(built.safetensors["retrained"], new, two_gib)
    assert old.stat().st_size > two_gib and new.stat().st_size > two_gib
    before = _bytes_read()
    report = diff_packages(old, new)
    read = _bytes_read() - before
    assert report.bump is MINOR
    assert read < 1024 * 1024, f"diff read {read} bytes of two 2 GiB packages"


# --- version inference in a real build -----------------------------------------------------


def test_build_with_base_infers_the_version(built: Built, tmp_path: Path) -> None:
    from mpkg_builder.build import build_package

    src = write_onnx_source(tmp_path / "src", OnnxSpec(seed=1, in_dim="n_features"))
    toml = (src / "mpkg.toml").read_text().replace('version = "1.0.0"\n', "")
    (src / "mpkg.toml").write_text(toml)
    result = build_package(src, tmp_path / "next.mpkg", base=built.onnx["base"])
    manifest = read_manifest(tmp_path / "next.mpkg")
    base = read_manifest(built.onnx["base"])
    assert result.version == manifest.version == "1.1.0"
    assert manifest.base == {"digest": str(base.digest), "version": "1.0.0"}


def test_build_with_base_refuses_a_too_low_version(built: Built, tmp_path: Path) -> None:
    from mpkg.errors import SourceError
    from mpkg_builder.build import build_package

    src = write_onnx_source(tmp_path / "src", OnnxSpec(version="1.1.0", in_dim=5))
    with pytest.raises(SourceError) as err:
        build_package(src, tmp_path / "next.mpkg", base=built.onnx["base"])
    where = [p.where for p in err.value.problems]
    assert where[0] == "mpkg.toml: [package].version" and "2.0.0" in err.value.problems[0].reason
    assert "inputs.features.shape[1]" in where
    assert not (tmp_path / "next.mpkg").exists()


# --- [diff.rules] of the package's own mpkg.toml applies to build --base ----------------------


def test_build_base_applies_the_sources_diff_rules(built: Built, tmp_path: Path) -> None:
    from mpkg_builder.build import build_package

    src = write_onnx_source(tmp_path / "src", OnnxSpec(seed=1))
    toml = (src / "mpkg.toml").read_text().replace('version = "1.0.0"\n', "")
    (src / "mpkg.toml").write_text(toml + '\n[diff.rules]\nweights-changed = "major"\n')
    assert build_package(src, tmp_path / "next.mpkg", base=built.onnx["base"]).version == "2.0.0"


def test_build_refuses_a_misspelt_rule_in_one_line(tmp_path: Path, run_mpkg: Any) -> None:
    src = write_onnx_source(tmp_path / "src", OnnxSpec())
    (src / "mpkg.toml").write_text((src / "mpkg.toml").read_text() + '\n[diff.rules]\nweights-changd = "minor"\n')
    proc = run_mpkg("build", src, "-o", tmp_path / "out.mpkg", expect=1)
    assert "mpkg.toml: [diff.rules].weights-changd" in proc.stderr
    assert "did you mean 'weights-changed'?" in proc.stderr
    assert not (tmp_path / "out.mpkg").exists()


# --- the generated card section is not the card ---------------------------------------------


def test_new_version_alone_is_not_a_card_change(built: Built, tmp_path: Path) -> None:
    """Only the version the generated section states differs: no card-changed finding."""
    from mpkg_builder.build import build_package

    src = write_onnx_source(tmp_path / "src", OnnxSpec(version="1.0.1"))
    build_package(src, tmp_path / "again.mpkg")
    report = diff_packages(built.onnx["base"], tmp_path / "again.mpkg")
    assert [c.rule for c in report.changes] == ["metadata-changed"]


# --- what changed: text diffs -----------------------------------------------------------------


def test_code_fix_carries_its_diff(built: Built, capsys: pytest.CaptureFixture[str]) -> None:
    report = diff_packages(built.safetensors["base"], built.safetensors["code-fix"])
    change = next(c for c in report.changes if c.rule == "code-changed")
    assert change.diff is not None
    assert '-"""A linear model."""' in change.diff and '+"""A linear model. Fixed."""' in change.diff
    check_golden("safetensors-code-fix.txt", render_text(report))
    check_golden("safetensors-code-fix.md", render_markdown(report))
    assert main(["diff", str(built.safetensors["base"]), str(built.safetensors["code-fix"]), "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert next(c for c in out["changes"] if c["rule"] == "code-changed")["diff"] == change.diff


def test_lockfile_change_carries_its_diff(built: Built) -> None:
    report = diff_packages(built.onnx["base"], built.onnx["dep-patch"])
    change = next(c for c in report.changes if c.rule == "lockfile-changed")
    assert change.diff is not None and "-numpy==2.4.6\n+numpy==2.4.7" in change.diff


def _with_card(src: Path, extra: str) -> Path:
    card = src / "MODEL_CARD.md"
    card.write_text(card.read_text().replace("## Limitations\n", "## Limitations\n\n" + extra))
    return src


def test_card_text_change_shows_the_authors_words_only(built: Built, tmp_path: Path) -> None:
    from mpkg_builder.build import build_package

    src = _with_card(write_onnx_source(tmp_path / "src", OnnxSpec(version="1.0.1")), "Fails on petals over 9 cm.\n")
    build_package(src, tmp_path / "card.mpkg")
    report = diff_packages(built.onnx["base"], tmp_path / "card.mpkg")
    change = next(c for c in report.changes if c.rule == "card-changed")
    assert change.diff is not None and "+Fails on petals over 9 cm." in change.diff
    assert "Version" not in change.diff and "mpkg:generated" not in change.diff


def test_card_diff_escapes_terminal_escape_sequences(built: Built, tmp_path: Path) -> None:
    """A hostile card cannot move the reviewer's cursor, retitle the window or reorder text."""
    from mpkg_builder.build import build_package

    hostile = "\x1b[2J\x1b]0;pwned\x07 ok \u202egnp.exe\r\n"
    src = _with_card(write_onnx_source(tmp_path / "src", OnnxSpec(version="1.0.1")), hostile)
    build_package(src, tmp_path / "hostile.mpkg")
    report = diff_packages(built.onnx["base"], tmp_path / "hostile.mpkg")
    for text in (render_text(report), render_markdown(report), json.dumps(report.to_json())):
        assert "\x1b" not in text and "\x07" not in text and "\u202e" not in text
    assert "\\x1b[2J\\x1b]0;pwned\\x07 ok \\u202egnp.exe" in render_text(report)


def test_text_diff_is_bounded(built: Built, tmp_path: Path) -> None:
    from mpkg_builder.diff.textdiff import MAX_DIFF_BYTES, MAX_DIFF_LINES, unified

    old = "".join(f"line {i}\n" for i in range(2000))
    new = "".join(f"LINE {i} " + "x" * 200 + "\n" for i in range(2000))
    text = unified("code/big.py", old, new)
    lines = text.splitlines()
    assert len(lines) <= MAX_DIFF_LINES + 1 and len(text.encode()) <= MAX_DIFF_BYTES + 100
    assert lines[-1].startswith("... diff cut: ") and lines[-1].endswith(" more lines")


def test_text_diff_refuses_a_member_that_does_not_match_its_digest(built: Built, tmp_path: Path) -> None:
    tampered = _tampered(built.safetensors["code-fix"], tmp_path / "tampered.mpkg", "code/linear.py", b"#")
    report = diff_packages(built.safetensors["base"], tampered)
    change = next(c for c in report.changes if c.rule == "code-changed")
    assert change.diff == "(no text diff: code/linear.py does not match its manifest digest; run mpkg verify)"


def test_package_built_before_the_split_still_diffs_against_one_built_now() -> None:
    """iris-mlp 1.0.0 as the builder wrote it before the ONNX split and the card author digest,
    against the same example built today: the graph digests still agree, so only the card
    (compared by file digest, the old package has no author digest) is reported."""
    legacy = Path(__file__).parent / "golden" / "iris-mlp-1.0.0-before-split.mpkg"
    current = Path(__file__).resolve().parents[2] / "golden" / "rebuild" / "iris-mlp-1.0.0.mpkg"
    report = diff_packages(legacy, current)
    assert [(c.rule, c.diff) for c in report.changes] == [
        ("card-changed", "(no text diff: the author's text is the same)")
    ]
    assert report.bump is PATCH
