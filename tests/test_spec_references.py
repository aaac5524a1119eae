"""Every `spec/…` path named in code and docs exists: a reference to a document that was
renamed or never written (errors.py once cited a command-line spec that did not exist) sends
the reader nowhere."""

from __future__ import annotations

import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SCANNED = ("runtime", "builder", "tests", "bench", "examples", "docs", "schemas", "spec", ".ci")
SUFFIXES = {".py", ".md", ".toml", ".j2", ".json", ".yaml", ".yml", ".txt", ".sh", ""}
SPEC_PATH = re.compile(r"(?<![\w/.-])spec/[\w./-]*\w")


def _sources() -> list[Path]:
    files = [REPO / name for name in ("README.md", "ARCHITECTURE.md", "Makefile", "pyproject.toml")]
    for top in SCANNED:
        files.extend(p for p in (REPO / top).rglob("*") if p.is_file() and p.suffix in SUFFIXES)
    return [p for p in files if p.is_file() and "__pycache__" not in p.parts]


def test_every_spec_path_named_exists() -> None:
    named: dict[str, list[str]] = {}
    for path in _sources():
        text = path.read_text(encoding="utf-8", errors="replace")
        for match in SPEC_PATH.finditer(text):
            named.setdefault(match.group(0), []).append(str(path.relative_to(REPO)))
    assert "spec/format.md" in named  # the scan sees the references it is meant to check
    missing = {ref: where for ref, where in named.items() if not (REPO / ref).exists()}
    assert not missing, missing
