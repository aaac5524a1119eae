"""The runtime installs and runs without the builder-only dependencies.

A serving container installs only the runtime, so verify, load, predict and the
server's import must work with onnx, pyarrow, docker, yaml, jsonschema, rich and
mpkg_builder unimportable. Checked in a fresh interpreter that blocks them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from mpkg_builder.build import build_package
from mpkg_builder.signing import keygen

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BUILDER_ONLY = ("onnx", "pyarrow", "docker", "yaml", "jsonschema", "rich", "mpkg_builder", "safetensors", "httpx")

PROBE = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = set(sys.argv[3].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"{name} is builder-only")
            return None

    sys.meta_path.insert(0, Block())
    import numpy as np
    import mpkg
    from mpkg.cli import main

    package, key = sys.argv[1], sys.argv[2]
    assert mpkg.verify(package, [key]).ok
    model = mpkg.load(package, [key])
    out = model.predict({"features": np.ones((2, 4), dtype=np.float32)})
    assert out["probabilities"].shape == (2, 3), out
    model.smoke_test()
    import mpkg.serve.app, mpkg.serve.server  # the server stack imports too
    assert main(["verify", package, "--key", key]) == 0
    assert main(["build", "."]) == 2  # builder commands explain what to install
    loaded = sorted(m for m in sys.modules if m.split(".")[0] in BLOCKED)
    assert not loaded, loaded
    print("runtime-only ok")
    """
)


@pytest.fixture(scope="module")
def signed_iris(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    folder = tmp_path_factory.mktemp("isolation")
    pair = keygen(folder / "k")
    package = folder / "iris.mpkg"
    build_package(EXAMPLES / "iris-mlp", package, key=pair.private_path)
    return package, pair.public_path


def test_runtime_works_without_builder_dependencies(signed_iris: tuple[Path, Path]) -> None:
    package, key = signed_iris
    result = subprocess.run(
        [sys.executable, "-c", PROBE, str(package), str(key), ",".join(BUILDER_ONLY)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert "runtime-only ok" in result.stdout
    assert "needs the builder" in result.stderr
