"""Where hostile text can enter a package: free text is accepted (and the reports escape it),
names the format restricts are refused at build with a one-line reason."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mpkg.errors import SourceError
from mpkg_builder.build import build_package

from tests.harness.payloads import BIDI

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "iris-mlp"


def test_contract_field_named_with_a_bidi_override_is_refused_at_build(tmp_path: Path) -> None:
    """Any name real data uses is a contract name ("mean radius", even "</td><script>", which the
    reports escape); a name that would rewrite the line it is shown on is not."""
    src = Path(shutil.copytree(EXAMPLE, tmp_path / "src"))
    contract = json.loads((src / "contract.json").read_text())
    contract["inputs"][0]["name"] = BIDI
    (src / "contract.json").write_text(json.dumps(contract))
    with pytest.raises(SourceError) as exc:
        build_package(src, tmp_path / "x.mpkg")
    assert "inputs[0].name: 'admin\\u202egnp.exe' holds '\\u202e'" in exc.value.diagnostics()
    assert not (tmp_path / "x.mpkg").exists()
