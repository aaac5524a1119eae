"""Golden packages: what format v1 wrote must verify forever, and rebuilding gives the same digest.

``v1/`` holds the packages as format v1 first wrote them (never regenerated); ``rebuild/`` holds
what today's builder writes for the same examples (regenerated deliberately). Both sets verify,
load and replay with the current code; only ``rebuild/`` is compared with a fresh build.

See README.md here for what the files are and how to regenerate them deliberately.
"""

from __future__ import annotations

import hashlib
import json
import platform
import shutil
import sys
from pathlib import Path
from typing import Any

import mpkg
import pytest
from mpkg._internal.format.package import read_manifest
from mpkg._internal.trust.verify import Policy, verify

HERE = Path(__file__).resolve().parent
V1 = HERE / "v1"  # the keys live here; the packages as format v1 first wrote them
REBUILD = HERE / "rebuild"  # today's builder output for the same examples
EXAMPLES = HERE.parents[1] / "examples"
SETS: dict[str, dict[str, Any]] = {s.name: json.loads((s / "DIGESTS.json").read_text()) for s in (V1, REBUILD)}
CASES = [(s, f) for s, doc in sorted(SETS.items()) for f in sorted(doc["packages"])]
DIGESTS = SETS["rebuild"]
PACKAGES: dict[str, dict[str, Any]] = DIGESTS["packages"]


@pytest.mark.parametrize("golden_set", sorted(SETS))
def test_the_set_covers_both_examples_and_both_key_types(golden_set: str) -> None:
    doc = SETS[golden_set]
    assert doc["format_version"] == 1
    assert {r["example"] for r in doc["packages"].values()} == {"iris-mlp", "churn-tabular"}
    assert {r["public_key"] for r in doc["packages"].values()} == {None, "golden-test.pub", "golden-test-ecdsa.pub"}


def test_the_first_written_set_is_older_than_the_rebuilt_one() -> None:
    """Both sets are kept: if they were equal, the first-written packages would not be tested."""
    assert {r["digest"] for r in SETS["v1"]["packages"].values()}.isdisjoint(
        {r["digest"] for r in SETS["rebuild"]["packages"].values()}
    )


@pytest.mark.parametrize(("golden_set", "filename"), CASES)
def test_golden_package_verifies_with_current_code(golden_set: str, filename: str) -> None:
    record = SETS[golden_set]["packages"][filename]
    path = HERE / golden_set / filename
    assert hashlib.sha256(path.read_bytes()).hexdigest() == record["file_sha256"], (
        f"{filename} changed; golden packages are immutable (see tests/golden/README.md)"
    )
    if record["public_key"]:
        result = verify(path, [V1 / record["public_key"]])
        assert [(s.keyid, s.valid) for s in result.signatures] == [(record["keyid"], True)]
    else:
        assert not verify(path).ok  # unsigned packages need an explicit opt-in
        result = verify(path, Policy.unsafe_allow_unsigned())
    assert result.ok, result.errors
    assert str(result.digest) == record["digest"]
    assert result.manifest is not None
    assert (result.manifest.name, result.manifest.version) == (record["name"], record["version"])


@pytest.mark.parametrize(("golden_set", "filename"), CASES)
def test_golden_package_loads_and_replays_its_example(golden_set: str, filename: str) -> None:
    record = SETS[golden_set]["packages"][filename]
    keys = [V1 / record["public_key"]] if record["public_key"] else []
    model = mpkg.load(HERE / golden_set / filename, keys or Policy.unsafe_allow_unsigned())
    model.smoke_test()


@pytest.mark.parametrize("golden_set", sorted(SETS))
def test_golden_signatures_do_not_cross(golden_set: str) -> None:
    """The Ed25519 golden key does not vouch for the ECDSA-signed package, and vice versa."""
    folder = HERE / golden_set
    assert not verify(folder / "churn-tabular-0.3.0-ecdsa.mpkg", [V1 / "golden-test.pub"]).ok
    assert not verify(folder / "iris-mlp-1.0.0.mpkg", [V1 / "golden-test-ecdsa.pub"]).ok


def _current_builder() -> dict[str, str]:
    return {
        "mpkg": mpkg.__version__,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        "platform": f"{sys.platform}-{platform.machine()}",
    }


@pytest.mark.parametrize("example", ["iris-mlp", "churn-tabular"])
def test_rebuilding_the_example_gives_the_golden_digest(example: str, tmp_path: Path) -> None:
    from mpkg_builder.build import build_package

    if DIGESTS["builder"] != _current_builder():
        pytest.skip(f"golden digests were recorded by {DIGESTS['builder']}, this is {_current_builder()}")
    filename, record = next((f, r) for f, r in sorted(PACKAGES.items()) if r["example"] == example)
    src = shutil.copytree(EXAMPLES / example, tmp_path / "src" / example)  # outside git: no lineage.git
    result = build_package(src, tmp_path / "rebuilt.mpkg")
    if result.digest != record["digest"]:
        golden = read_manifest(REBUILD / filename).raw
        fresh = read_manifest(tmp_path / "rebuilt.mpkg").raw
        changed = sorted(k for k in set(golden) | set(fresh) if golden.get(k) != fresh.get(k))
        files = sorted(f["path"] for f in fresh.get("files", []) if f not in golden.get("files", []))
        pytest.fail(
            f"examples/{example} no longer builds to its golden digest: manifest fields {changed} differ "
            f"(files: {files}). If the example changed on purpose, run tests/golden/regenerate.py --write."
        )
