"""Ordinary Python in package code, in real packages built from source.

Before: a module with ``from __future__ import annotations`` and ``@dataclass`` could not be
imported by the isolated importer (dataclasses looks the module up in ``sys.modules``), so
such a package could not even be built; pickling the package's own classes failed the same
way; and `python -m mpkg` (or a script using the library) imported a module from the current
directory when package code imported a module of that name.

The package here is iris-mlp with code that uses each feature: a frozen dataclass under
postponed annotations, pickle of its own class, relative imports in a subpackage,
``__file__``, ``importlib.resources`` and ``pkgutil.get_data`` for a data file, and an import
of ``colorsys`` (standard library, not imported by mpkg) that a ``colorsys.py`` in the
current directory tries to shadow.
"""

from __future__ import annotations

import inspect
import os
import pickle
import shutil
import subprocess
import sys
import typing
from pathlib import Path

import pytest

from tests.conftest import EXAMPLES, MPKG, RunMpkg

PIPELINE = '''"""Iris pre/post-processing written as ordinary Python."""

from __future__ import annotations

import colorsys
import importlib.resources
import pickle
import pkgutil
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import helpers
from .helpers.scaling import clip

@dataclass(frozen=True)
class Bounds:
    low: float
    high: float
    tags: list[str] = field(default_factory=list)


BOUNDS = Bounds(0.0, 20.0, ["cm"])
ROUND_TRIP = pickle.loads(pickle.dumps(BOUNDS))
HERE = Path(__file__).parent
LABELS = (importlib.resources.files(__package__) / "data" / "labels.txt").read_text().split()
LABELS_AGAIN = pkgutil.get_data(__name__, "data/labels.txt")
COLORSYS = colorsys.__file__


def preprocess(inputs):
    assert ROUND_TRIP == BOUNDS and helpers.SCALE == 1.0
    return {"features": clip(np.asarray(inputs["features"], dtype=np.float32), BOUNDS)}


def postprocess(outputs):
    return {"probabilities": outputs["probabilities"], "label": outputs["label"]}
'''
HELPERS = {
    "helpers/__init__.py": "from .constants import SCALE\n",
    "helpers/constants.py": "SCALE = 1.0\n",
    "helpers/scaling.py": (
        "from __future__ import annotations\n\nimport numpy as np\n\nfrom .constants import SCALE\n\n\n"
        "def clip(x: np.ndarray, bounds: Bounds) -> np.ndarray:  # noqa: F821 - a postponed annotation\n"
        "    return np.clip(x * SCALE, bounds.low, bounds.high)\n"
    ),
    "data/labels.txt": "setosa versicolor virginica\n",
}
# Shadows the standard library's colorsys for anything importing from the current directory.
SHADOW = "import pathlib\npathlib.Path('SHADOW-IMPORTED').write_text('the current directory was searched')\n"


@pytest.fixture(scope="module")
def ordinary(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(the built package, a key to verify it with)."""
    from mpkg_builder.build import build_package
    from mpkg_builder.signing import keygen

    root = tmp_path_factory.mktemp("ordinary")
    src = root / "src"
    shutil.copytree(EXAMPLES / "iris-mlp", src)
    (src / "src" / "pipeline.py").write_text(PIPELINE)
    for rel, text in HELPERS.items():
        (src / "src" / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / "src" / rel).write_text(text)
    pair = keygen(root / "k")
    build_package(src, root / "ordinary.mpkg", key=pair.private_path)
    return root / "ordinary.mpkg", pair.public_path


def test_build_and_verify_run(run_mpkg: RunMpkg, ordinary: tuple[Path, Path]) -> None:
    pkg, pub = ordinary
    run_mpkg("verify", pkg, "--key", pub, "--run", expect=0)


def test_dataclasses_pickle_resources_and_file_behave_as_usual(ordinary: tuple[Path, Path]) -> None:
    import mpkg

    pkg, pub = ordinary
    with mpkg.load(pkg, [pub]) as model:
        assert model.code is not None
        mod = model.code.modules["pipeline"]
        assert mod.__name__ == f"{model.code.prefix}.pipeline" and sys.modules[mod.__name__] is mod
        assert mod.ROUND_TRIP == mod.BOUNDS and typing.get_type_hints(mod.Bounds)["low"] is float
        again = pickle.loads(pickle.dumps(mod.BOUNDS))  # pickled by reference to the private module
        assert again == mod.BOUNDS and type(again) is mod.Bounds
        assert mod.__file__ == f"{pkg.resolve()}/code/pipeline.py"
        assert pkg.resolve() / "code" == mod.HERE
        assert mod.LABELS == ["setosa", "versicolor", "virginica"]
        assert mod.LABELS_AGAIN == b"setosa versicolor virginica\n"
        assert 'return {"probabilities"' in inspect.getsource(mod.postprocess)
        model.smoke_test()
        prefix = model.code.prefix
    assert not [m for m in sys.modules if m.split(".")[0] == prefix]  # closed: gone from sys.modules


def test_the_same_package_loaded_twice_at_once(ordinary: tuple[Path, Path]) -> None:
    import mpkg

    pkg, pub = ordinary
    with mpkg.load(pkg, [pub]) as first, mpkg.load(pkg, [pub]) as second:
        assert first.code is not None and second.code is not None
        assert second.code.prefix == first.code.prefix + "_2"
        a, b = first.code.modules["pipeline"], second.code.modules["pipeline"]
        assert a.Bounds is not b.Bounds and pickle.loads(pickle.dumps(b.BOUNDS)).__class__ is b.Bounds


@pytest.mark.parametrize(
    "argv",
    [
        [sys.executable, "-m", "mpkg", "verify", "{pkg}", "--key", "{pub}", "--run"],
        [MPKG, "verify", "{pkg}", "--key", "{pub}", "--run"],
        [
            sys.executable,
            "-c",
            "import mpkg; m = mpkg.load({pkg!r}, [{pub!r}]); print(m.code.modules['pipeline'].COLORSYS)",
        ],
    ],
    ids=["python-m-mpkg", "mpkg-script", "library"],
)
def test_current_directory_is_not_searched_for_package_imports(
    ordinary: tuple[Path, Path], tmp_path: Path, argv: list[str]
) -> None:
    pkg, pub = ordinary
    (tmp_path / "colorsys.py").write_text(SHADOW)
    args = [str(a).format(pkg=str(pkg), pub=str(pub)) for a in argv]
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONSAFEPATH", "MPKG_KEYS")}
    proc = subprocess.run(args, cwd=tmp_path, capture_output=True, text=True, env=env, timeout=240)
    assert proc.returncode == 0, proc.stderr
    assert not (tmp_path / "SHADOW-IMPORTED").exists(), "package code imported colorsys.py from the current directory"
    if "-c" in args:
        assert proc.stdout.strip().startswith(os.path.dirname(os.__file__)), proc.stdout
