"""The packages the report pages describe: the examples, a second iris version, hostile ones."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from tests.conftest import Built
from tests.harness.payloads import PAYLOADS, hostile_source

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


@dataclass(frozen=True)
class ReportPackages:
    """The examples (signed), a second iris version built on the first, and one hostile
    package per payload, each made by the real builder."""

    built: Built
    iris_v2: Path
    hostile: dict[str, Path]


def second_version(src: Path) -> Path:
    """iris-mlp 2.0.0: a new enum value (major), a card edit, a code fix, a retrain's metrics."""
    toml = (src / "mpkg.toml").read_text()
    (src / "mpkg.toml").write_text(toml.replace('version = "1.0.0"', 'version = "2.0.0"'))
    contract = (src / "contract.json").read_text()
    (src / "contract.json").write_text(contract.replace('"enum": [0, 1, 2]', '"enum": [0, 1, 2, 3]'))
    card = (src / "MODEL_CARD.md").read_text()
    (src / "MODEL_CARD.md").write_text(card.replace("Teaching and testing", "Teaching, testing and demos"))
    code = (src / "src" / "pipeline.py").read_text()
    (src / "src" / "pipeline.py").write_text(code + "\n# 2.0.0: clip measurements to 0-25 cm\n")
    (src / "metrics.json").write_text('{"accuracy": {"test": 0.9333, "train": 0.9917}, "log_loss": {"test": 0.0612}}\n')
    return src


def build_report_packages(built: Built, root: Path) -> ReportPackages:
    from mpkg_builder.build import build_package

    v2_src = second_version(Path(shutil.copytree(EXAMPLES / "iris-mlp", root / "iris-v2")))
    iris_v2 = root / "iris-mlp-2.0.0.mpkg"
    build_package(v2_src, iris_v2, key=built.key, base=built.signed["iris-mlp"])
    hostile = {}
    for name, payload in PAYLOADS.items():
        src = hostile_source(EXAMPLES / "iris-mlp", root / "hostile" / name, payload)
        hostile[name] = root / f"hostile-{name}.mpkg"
        build_package(src, hostile[name], key=built.key)
    return ReportPackages(built, iris_v2, hostile)
