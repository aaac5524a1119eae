"""Real package sources for the ``mpkg serve`` tests, written at test time and built with
``mpkg_builder.build.build_package``.

Every package is a complete source folder (mpkg.toml, an ONNX graph made with
onnx.helper, contract, card, lockfile, example, and for the behaviour packages a real
code module). Behaviour that must differ between build and serve (a gate file, a
release file, an output offset) is read by the package code from environment
variables at call or import time: the package content is fixed at build, the
server's environment is not.
"""

from __future__ import annotations

import json
import textwrap
from dataclasses import dataclass
from importlib.metadata import version
from pathlib import Path
from typing import Any

import numpy as np

# Environment variables read by the behaviour packages' code (never set during the build).
STARTED_ENV = "MPKG_TEST_STARTED_FILE"  # slow: touched when a request enters the package code
RELEASE_ENV = "MPKG_TEST_RELEASE_FILE"  # slow: the request waits until this file exists
GATE_ENV = "MPKG_TEST_GATE_FILE"  # gated: importing the code module blocks until this file exists
OFFSET_ENV = "MPKG_TEST_OUTPUT_OFFSET"  # broken: postprocess adds this to every probability
SNOOP_ENV = "MPKG_TEST_SNOOP_FILE"  # snoop: writes what it could reach of other models here
CRASH_VALUE = 13.0  # crashy: preprocess raises when the first feature is this value
CRASH_MESSAGE = "package code failed on purpose (test)"

MLP_CONTRACT: dict[str, Any] = {
    "inputs": [{"name": "features", "dtype": "float32", "shape": ["batch", 4]}],
    "outputs": [{"name": "probabilities", "dtype": "float32", "shape": ["batch", 3]}],
}
TAB_CONTRACT: dict[str, Any] = {
    "inputs": [
        {"name": "a", "dtype": "float32", "shape": ["batch"]},
        {"name": "b", "dtype": "float32", "shape": ["batch"]},
    ],
    "outputs": [{"name": "score", "dtype": "float32", "shape": ["batch"]}],
}
ECHO_CONTRACT: dict[str, Any] = {
    "inputs": [{"name": "text", "dtype": "string", "shape": ["batch"]}],
    "outputs": [{"name": "echo", "dtype": "string", "shape": ["batch"]}],
}
EXAMPLES: dict[str, dict[str, Any]] = {
    "mlp": {"features": [[0.1, 0.2, 0.3, 0.4], [1.0, -1.0, 0.5, 2.0]]},
    "tab": {"a": [1.0, 2.0], "b": [0.5, -1.0]},
    "echo": {"text": ["hello", "wörld"]},
}
CARD = """\
---
license: apache-2.0
tags: [test]
---

# {name}

A tiny model built by the `mpkg serve` tests.

## Intended use

Exercising `mpkg serve` over real packages in the test suite only.

## Limitations

Random weights; its answers mean nothing.

## Training data

None: the weights are drawn from a seeded random generator.

## Evaluation

Not evaluated; the stored example pins its outputs.

## Ethical considerations

None: it is a test fixture.
"""

# --- package code (real modules, imported by mpkg.load from the verified package) ----------

CRASHY_CODE = f'''\
"""Fails on purpose for one input value: the server must answer a generic 500."""

import numpy as np


def preprocess(inputs):
    features = np.asarray(inputs["features"], dtype=np.float32)
    if features.size and float(features.ravel()[0]) == {CRASH_VALUE!r}:
        raise RuntimeError({CRASH_MESSAGE!r})
    return {{"features": features}}
'''

SLOW_CODE = f'''\
"""Holds a request inside package code until a release file exists (SIGTERM drain test).
The file paths come from the environment at call time; unset (as at build), it is instant."""

import os
import time
from pathlib import Path


def preprocess(inputs):
    started = os.environ.get({STARTED_ENV!r})
    release = os.environ.get({RELEASE_ENV!r})
    if started:
        Path(started).touch()
    if release:
        while not Path(release).exists():
            time.sleep(0.01)
    return dict(inputs)
'''

GATED_CODE = f'''\
"""Importing this module blocks until a gate file exists (readiness is 503 meanwhile).
The gate path comes from the environment; unset (as at build), the import is instant."""

import os
import time
from pathlib import Path

_gate = os.environ.get({GATE_ENV!r})
while _gate and not Path(_gate).exists():
    time.sleep(0.01)


def preprocess(inputs):
    return dict(inputs)
'''

BROKEN_CODE = f'''\
"""Adds an offset read from the environment at call time: 0 at build, so the stored example
matches; set when serving, so the smoke test must refuse the package."""

import os

import numpy as np


def postprocess(outputs):
    offset = np.float32(float(os.environ.get({OFFSET_ENV!r}, "0")))
    return {{"probabilities": np.asarray(outputs["probabilities"]) + offset}}
'''


BUSY_CODE = """\
\"\"\"Slow on demand: a first feature v in [100, 10000) sleeps v - 100 ms (the GIL released);
v >= 10000 spins in pure Python for v - 10000 ms (the GIL held). Anything else is instant.\"\"\"

import time

import numpy as np


def preprocess(inputs):
    features = np.asarray(inputs["features"], dtype=np.float32)
    v = float(features.ravel()[0]) if features.size else 0.0
    if 100 <= v < 10000:
        time.sleep((v - 100) / 1000)
    elif v >= 10000:
        end = time.perf_counter() + (v - 10000) / 1000
        while time.perf_counter() < end:
            pass
    return {"features": features}
"""

SNOOP_CODE = f'''\
"""Package code doing what no package should: walk the interpreter's objects for other
loaded models, write down which it found, and make them answer zeros."""

import gc
import os

import numpy as np


def _zeros(inputs):
    batch = len(np.asarray(inputs["features"]))
    return {{"probabilities": np.zeros((batch, 3), dtype=np.float32)}}


def preprocess(inputs):
    out = os.environ.get({SNOOP_ENV!r})
    if out:
        found = []
        gc.unfreeze()  # the server froze what it loaded; package code can undo that
        for obj in gc.get_objects():
            if type(obj).__name__ == "Model" and getattr(obj, "name", None) not in (None, "snoop"):
                found.append(obj.name)
                obj.predict = _zeros  # tamper with another package's model
        with open(out, "w") as f:
            f.write(" ".join(sorted(set(found))))
    return dict(inputs)
'''


# --- ONNX graphs ---------------------------------------------------------------------------


def mlp_onnx(seed: int) -> bytes:
    """A 4 -> 16 ReLU -> 3 softmax MLP with seeded random weights."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    w1 = rng.normal(size=(4, 16)).astype(np.float32)
    b1 = rng.normal(size=(16,)).astype(np.float32)
    w2 = rng.normal(size=(16, 3)).astype(np.float32)
    b2 = rng.normal(size=(3,)).astype(np.float32)
    graph = helper.make_graph(
        [
            helper.make_node("MatMul", ["features", "w1"], ["h0"]),
            helper.make_node("Add", ["h0", "b1"], ["h1"]),
            helper.make_node("Relu", ["h1"], ["h2"]),
            helper.make_node("MatMul", ["h2", "w2"], ["h3"]),
            helper.make_node("Add", ["h3", "b2"], ["logits"]),
            helper.make_node("Softmax", ["logits"], ["probabilities"], axis=-1),
        ],
        "mlp",
        [helper.make_tensor_value_info("features", TensorProto.FLOAT, ["batch", 4])],
        [helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["batch", 3])],
        [numpy_helper.from_array(a, n) for a, n in ((w1, "w1"), (b1, "b1"), (w2, "w2"), (b2, "b2"))],
    )
    return _serialize(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def tab_onnx() -> bytes:
    """score = 2a + b over two float32 columns."""
    from onnx import TensorProto, helper, numpy_helper

    graph = helper.make_graph(
        [helper.make_node("Mul", ["a", "two"], ["a2"]), helper.make_node("Add", ["a2", "b"], ["score"])],
        "tab",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["batch"]) for n in ("a", "b")],
        [helper.make_tensor_value_info("score", TensorProto.FLOAT, ["batch"])],
        [numpy_helper.from_array(np.array(2.0, dtype=np.float32), "two")],
    )
    return _serialize(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def echo_onnx() -> bytes:
    """Identity on a string tensor."""
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["text"], ["echo"])],
        "echo",
        [helper.make_tensor_value_info("text", TensorProto.STRING, ["batch"])],
        [helper.make_tensor_value_info("echo", TensorProto.STRING, ["batch"])],
    )
    return _serialize(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]))


def _serialize(model: Any) -> bytes:
    import onnx

    model.ir_version = 8
    onnx.checker.check_model(model)
    data: bytes = model.SerializeToString()
    return data


# --- source folders ------------------------------------------------------------------------


@dataclass(frozen=True)
class Recipe:
    """What one test package is: name, version, graph kind, seed, optional code module."""

    name: str
    version: str
    kind: str = "mlp"  # mlp | tab | echo
    seed: int = 0
    code: str | None = None
    signed: bool = True


RECIPES: dict[str, Recipe] = {
    "iris1": Recipe("iris", "1.0.0", seed=0),
    "iris2": Recipe("iris", "1.1.0", seed=1),
    "tab": Recipe("tab", "1.0.0", kind="tab"),
    "tab_unsigned": Recipe("tab", "1.0.0", kind="tab", signed=False),
    "echo": Recipe("echo", "1.0.0", kind="echo"),
    "crashy": Recipe("crashy", "2.0.0", seed=2, code=CRASHY_CODE),
    "slow": Recipe("slow", "1.0.0", seed=3, code=SLOW_CODE),
    "gated": Recipe("gated", "1.0.0", seed=4, code=GATED_CODE),
    "broken": Recipe("broken", "1.0.0", seed=5, code=BROKEN_CODE),
    "busy": Recipe("busy", "1.0.0", seed=6, code=BUSY_CODE),
    "snoop": Recipe("snoop", "1.0.0", seed=7, code=SNOOP_CODE),
    "iris_pre": Recipe("iris", "1.0.0-1", seed=8),
    # swap candidates that must be refused (test_swap.py)
    "iris_unsigned": Recipe("iris", "1.2.0", seed=9, signed=False),
    "iris_broken": Recipe("iris", "1.2.0", seed=10, code=BROKEN_CODE),
}


def write_source(folder: Path, recipe: Recipe) -> Path:
    """A complete package source folder for ``recipe``."""
    folder.mkdir(parents=True)
    if recipe.kind == "mlp":
        onnx_bytes, contract = mlp_onnx(recipe.seed), MLP_CONTRACT
    elif recipe.kind == "tab":
        onnx_bytes, contract = tab_onnx(), TAB_CONTRACT
    else:
        onnx_bytes, contract = echo_onnx(), ECHO_CONTRACT
    (folder / "model.onnx").write_bytes(onnx_bytes)
    (folder / "contract.json").write_text(json.dumps(contract, indent=2))
    (folder / "example.json").write_text(json.dumps({"inputs": EXAMPLES[recipe.kind]}, ensure_ascii=False))
    (folder / "MODEL_CARD.md").write_text(CARD.format(name=recipe.name))
    (folder / "requirements.lock").write_text("".join(f"{p}=={version(p)}\n" for p in ("numpy", "onnxruntime")))
    toml = textwrap.dedent(f"""\
        [package]
        name = "{recipe.name}"
        version = "{recipe.version}"
        description = "mpkg serve test package ({recipe.kind})"

        [model]
        format = "onnx"
        files = ["model.onnx"]

        [environment]
        lockfile = "requirements.lock"

        [contract]
        file = "contract.json"

        [card]
        file = "MODEL_CARD.md"

        [example]
        file = "example.json"
        """)
    if recipe.code is not None:
        (folder / "src").mkdir()
        (folder / "src" / "pipeline.py").write_text(recipe.code)
        toml += '\n[code]\nroot = "src"\nmodule = "pipeline"\n'
    (folder / "mpkg.toml").write_text(toml)
    return folder
