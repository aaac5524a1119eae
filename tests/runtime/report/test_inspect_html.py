"""`mpkg inspect PKG --html OUT.html`: what the report says, and how the command behaves."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest
from mpkg._internal.format.package import read_manifest
from mpkg._internal.trust.signatures import load_public_keys, statement
from mpkg.report.inspect import base_chain, check_signatures, describe_page, read_card
from mpkg_builder.build import build_package
from mpkg_builder.signing import keygen, load_private_key

from tests.attacks.craft import envelope, members_of, rebuild, write
from tests.conftest import Built, RunMpkg
from tests.harness.without import REPORT_EXTRA, run_without


def _open(path: Path) -> tuple[PackageFile, Manifest]:
    pkg = PackageFile(path)
    return pkg, Manifest.from_bytes(pkg.manifest_bytes)


def test_html_is_written_and_the_usual_output_kept(run_mpkg: RunMpkg, built: Built, tmp_path: Path) -> None:
    package = built.signed["iris-mlp"]
    plain = run_mpkg("inspect", package, "--json", expect=0)
    out = tmp_path / "r.html"
    with_html = run_mpkg("inspect", package, "--json", "--html", out, "--key", built.pub, expect=0)
    assert json.loads(with_html.stdout) == json.loads(plain.stdout)
    assert with_html.stderr.strip() == f"wrote {out}"
    html = out.read_text()
    assert html.startswith("<!DOCTYPE html>") and "iris-mlp 1.0.0" in html
    run_mpkg("inspect", package, "--html", tmp_path / "again.html", "--key", built.pub, expect=0)
    assert (tmp_path / "again.html").read_bytes() == out.read_bytes()  # no timestamps: same package, same page


def test_key_or_base_without_html_is_a_usage_error(run_mpkg: RunMpkg, built: Built) -> None:
    proc = run_mpkg("inspect", built.signed["iris-mlp"], "--key", built.pub, expect=2)
    assert proc.stderr == "mpkg: --key: --key and --base only apply with --html OUT.html\n"


def test_missing_output_folder_is_one_line_and_writes_nothing(run_mpkg: RunMpkg, built: Built, tmp_path: Path) -> None:
    proc = run_mpkg("inspect", built.signed["iris-mlp"], "--html", tmp_path / "no" / "r.html", expect=1)
    assert len(proc.stderr.splitlines()) == 1 and "does not exist" in proc.stderr
    assert list(tmp_path.iterdir()) == []


def test_without_the_report_extra_html_names_the_extra(built: Built, tmp_path: Path) -> None:
    out = tmp_path / "r.html"
    package = str(built.signed["iris-mlp"])
    proc = run_without(REPORT_EXTRA, "inspect", package, "--html", str(out))
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr == (
        "mpkg: --html: needs the report extra: pip install 'mpkg[report]' (missing jinja2, markdown_it)\n"
    )
    assert not out.exists()
    plain = run_without(REPORT_EXTRA, "inspect", package)
    assert plain.returncode == 0 and "iris-mlp 1.0.0" in plain.stdout  # the runtime works without it


def test_signatures_verified_not_checked_or_invalid(built: Built, tmp_path: Path) -> None:
    package = built.signed["iris-mlp"]
    other = keygen(tmp_path / "other")
    pkg, manifest = _open(package)
    with pkg:
        verified = check_signatures(pkg, manifest, load_public_keys([built.pub]))
        assert [s.status for s in verified.entries] == ["verified"]
        none_given = check_signatures(pkg, manifest, ())
        assert [(s.status, s.reason) for s in none_given.entries] == [("not checked", "no trusted key was given")]
        assert none_given.note == "Not checked: pass --key PUB to check signatures."
        other_key = check_signatures(pkg, manifest, load_public_keys([other.public_path]))
        assert [s.status for s in other_key.entries] == ["not checked"]
    # a real signature by the trusted key, over another package's statement: invalid
    key = load_private_key(built.key)
    forged = statement("iris-mlp", "9.9.9", manifest.digest, 1)
    pairs = [(n, d) for n, d in members_of(package) if n != "mpkg/signatures.json"]
    manifest_bytes = dict(pairs)["mpkg/manifest.json"]
    path = write(
        tmp_path / "forged.mpkg",
        rebuild([*pairs, ("mpkg/signatures.json", envelope(manifest_bytes, [key], payload=forged))]),
    )
    pkg, manifest = _open(path)
    with pkg:
        result = check_signatures(pkg, manifest, load_public_keys([built.pub]))
    assert [s.status for s in result.entries] == ["invalid"]
    assert "names another package" in result.note
    unsigned_pkg, unsigned = _open(built.unsigned["iris-mlp"])
    with unsigned_pkg:
        assert check_signatures(unsigned_pkg, unsigned, ()).note == "The package is not signed."


def test_a_tampered_card_is_not_rendered(built: Built, tmp_path: Path) -> None:
    package = built.signed["iris-mlp"]
    pairs = members_of(package)
    tampered = [
        (n, d.replace(b"Teaching and testing", b"Trust me blindly!!!!") if n == "card/MODEL_CARD.md" else d)
        for n, d in pairs
    ]
    path = write(tmp_path / "tampered.mpkg", rebuild(tampered))
    pkg, manifest = _open(path)
    with pkg:
        card = read_card(pkg, manifest)
        html = describe_page(pkg, manifest)
    assert (
        card.html is None
        and card.problem == "card/MODEL_CARD.md: content does not match its digest (modified or corrupted)"
    )
    assert "Trust me blindly" not in html and "content does not match its digest" in html


def test_base_chain_is_followed_through_the_packages_given(built: Built, tmp_path: Path) -> None:

    v1 = built.unsigned["iris-mlp"]
    src = built.sources["iris-mlp"]
    v2 = tmp_path / "v2.mpkg"
    copy = tmp_path / "src"
    shutil.copytree(src, copy)
    toml = (copy / "mpkg.toml").read_text()
    (copy / "mpkg.toml").write_text(toml.replace('version = "1.0.0"\n', ""))
    (copy / "MODEL_CARD.md").write_text((copy / "MODEL_CARD.md").read_text() + "\nA note.\n")
    build_package(copy, v2, base=v1)
    m1, m2 = read_manifest(v1), read_manifest(v2)
    assert [(v, d, k is not None) for v, d, k in base_chain(m2, [])] == [("1.0.0", str(m1.digest), False)]
    assert [(v, k.name if k else None) for v, _, k in base_chain(m2, [m1])] == [("1.0.0", "iris-mlp")]
    assert base_chain(m1, [m2]) == []
