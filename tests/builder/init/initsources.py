"""Helpers for the `mpkg init` tests: where models.py wrote each source kind, and the real
`mpkg serve` harness of tests/runtime/serve, loaded by path."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
MODELS = Path(__file__).with_name("models.py")


@dataclass(frozen=True)
class Made:
    """Where models.py wrote each source kind."""

    root: Path

    def __truediv__(self, kind: str) -> Path:
        return self.root / kind

    @property
    def mlflow_run(self) -> tuple[str, Path]:
        """(run id, model folder) of the model logged into the mlruns/ file store."""
        doc = json.loads((self.root / "MLFLOW_RUN").read_text())
        return doc["run_id"], Path(doc["model"])
