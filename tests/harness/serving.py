"""The packages the serve tests serve (built once per session from tests/runtime/serve/servepkgs.py)
and the independent answers they are checked against."""

from __future__ import annotations

import hashlib
import tarfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import onnxruntime as ort
from mpkg_builder.build import build_package

from tests.harness.server import MPKG_SERVE
from tests.runtime.serve.servepkgs import RECIPES, write_source

MAX_BODY = 1024 * 1024


@dataclass
class ModelSource:
    """Real packages for the server tests, built from generated sources with ``build_package``.

    Signed with ``key`` (serve with ``--key pub``) unless the recipe says unsigned.
    Packages are built on first use and cached for the session.
    """

    root: Path
    key: Path
    pub: Path
    command: list[str] = field(default_factory=lambda: list(MPKG_SERVE))
    sources: dict[str, Path] = field(default_factory=dict)
    digests: dict[str, str] = field(default_factory=dict)
    _built: dict[str, str] = field(default_factory=dict)

    def path(self, key: str) -> str:
        """The .mpkg for recipe ``key`` (see servepkgs.RECIPES), built once."""
        if key not in self._built:
            recipe = RECIPES[key]
            src = write_source(self.root / "src" / key, recipe)
            out = self.root / "pkgs" / f"{key}-{recipe.name}-{recipe.version}.mpkg"
            result = build_package(src, out, key=self.key if recipe.signed else None)
            assert (result.name, result.version) == (recipe.name, recipe.version)
            assert bool(result.signed_by) == recipe.signed
            self.sources[key] = src
            self.digests[key] = result.digest
            self._built[key] = str(out)
        return self._built[key]


def manifest_digest(package: str) -> str:
    """The package digest computed independently of mpkg: sha256 of the manifest member."""
    with tarfile.open(package) as tar:
        member = tar.extractfile("mpkg/manifest.json")
        assert member is not None
        return "sha256:" + hashlib.sha256(member.read()).hexdigest()


def reference_probabilities(model_source: ModelSource, key: str, x: object) -> np.ndarray:
    """The reference answer from an independent onnxruntime session on the package's source graph
    (the iris packages have no code module, so the graph is the whole model)."""
    model_source.path(key)
    session = ort.InferenceSession(str(model_source.sources[key] / "model.onnx"), providers=["CPUExecutionProvider"])
    (probabilities,) = session.run(["probabilities"], {"features": np.asarray(x, dtype=np.float32)})
    result: np.ndarray = probabilities
    return result
