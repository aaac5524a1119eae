"""Helpers for the `mpkg init` tests: where models.py wrote each source kind, and the real
`mpkg serve` harness of tests/runtime/serve, loaded by path."""

from __future__ import annotations

import importlib.util
import json
import sys
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType

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


def serve_harness() -> ModuleType:
    """tests/runtime/serve/conftest.py, the real `mpkg serve` subprocess harness, by path."""
    name = "mpkg_serve_harness"
    if name not in sys.modules:
        folder = REPO / "tests" / "runtime" / "serve"
        if str(folder) not in sys.path:
            sys.path.insert(0, str(folder))  # its own import of servepkgs
        spec = importlib.util.spec_from_file_location(name, folder / "conftest.py")
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]
