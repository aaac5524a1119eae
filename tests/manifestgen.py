"""Manifest documents for property tests: valid ones with every optional section, and
mutations of them (deleted, added, retyped and reshaped fields) that may or may not be valid.

Shared by the parser/schema agreement test (tests/test_schemas_agree.py) and the
"whatever the parser accepts, every command handles" test (tests/attacks/test_mistyped_fields.py).
"""

from __future__ import annotations

import copy
from collections.abc import Iterator
from typing import Any

from hypothesis import strategies as st

HEX = "ab" * 32
DIGEST = "blake3:" + HEX


def entry(path: str, role: str, size: int = 3) -> dict[str, Any]:
    return {"path": path, "size": size, "digest": DIGEST, "encoding": "identity", "role": role}


def rich_doc(model_format: str = "onnx") -> dict[str, Any]:
    """A valid manifest using every optional field the spec defines."""
    weights = "model/model.onnx" if model_format == "onnx" else "model/w.safetensors"
    architecture: dict[str, Any] = (
        {
            "kind": "onnx",
            "ir_version": 8,
            "opset_imports": {"ai.onnx": 17},
            "operators": {"MatMul": 2, "Relu": 1},
            "graph_digest": "sha256:" + HEX,
            "initializers": [{"name": "W", "dtype": "float32", "shape": [4, 3]}],
            "structure_digest": DIGEST,
            "weights_digest": DIGEST,
            "class_labels": [[0, 1], ["cat", "dog"], DIGEST],
            "producer": {"name": "skl2onnx", "version": "1.17.0"},
            "interface": {
                "inputs": [{"name": "X", "dtype": "float32", "shape": ["N", 4]}],
                "outputs": [{"name": "label", "dtype": "int64", "shape": [-1]}],
            },
        }
        if model_format == "onnx"
        else {
            "kind": "safetensors",
            "tensors": [{"file": weights, "name": "w", "dtype": "F32", "shape": [2, 1]}],
            "weights_digest": "sha256:" + HEX,  # as packages built before the learned/structure split
        }
    )
    return {
        "format_version": 1,
        "name": "victim",
        "version": "1.2.3-rc.1+build.5",
        "description": "A model.",
        "model": {"format": model_format, "files": [weights], "architecture": architecture},
        "code": {"root": "code", "module": "pkg.pipeline", "entry_points": {"preprocess": ["inputs"]}},
        "contract": {
            "inputs": [{"name": "mean radius", "dtype": "float32", "shape": ["batch", 4], "description": "d"}],
            "outputs": [{"name": "y", "dtype": "int64", "shape": ["batch"], "enum": [0, 1], "nullable": True}],
            "extra": "ignore",
        },
        "environment": {
            "lockfile": "environment/requirements.lock",
            "kind": "requirements",
            "requires_python": ">=3.11",
            "packages": [{"name": "numpy", "version": "2.1.0"}, {"name": "zope-interface", "version": "1!2.0.post1"}],
        },
        "card": {
            "path": "card/MODEL_CARD.md",
            "metadata": {"license": "mit", "tags": ["a"], "n": {"deep": [1]}},
            "author_digest": DIGEST,
        },
        "example": {"path": "example/example.json", "rtol": 0.001, "atol": 0},
        "lineage": {
            "git": {"commit": "0" * 40, "dirty": False, "subdir": "models/x"},
            "data": [
                {"source": "data.dvc", "path": "data.csv", "md5": "0" * 32, "size": 10},
                {"path": "data/train.parquet", "digest": "sha256:" + HEX, "size": 2048},
                {"uri": "s3://bucket/eval-1.parquet", "digest": "md5:" + "0" * 32},
            ],
            "origin": {"mlflow": {"run_id": "0a1b", "artifact_path": "model"}},
            "params": {"lr": "0.1", "epochs": 3},
            "metrics": {"accuracy": 0.97, "loss": 1},
            "builder": {"mpkg": "0.1.0", "python": "3.11", "platform": "linux-x86_64"},
        },
        "base": {"digest": "sha256:" + "00" * 32, "version": "1.2.2"},
        "files": sorted(
            [
                entry("card/MODEL_CARD.md", "card"),
                entry("code/pkg/pipeline.py", "code"),
                entry("environment/requirements.lock", "environment"),
                entry("example/example.json", "example"),
                entry("lineage/params.yaml", "lineage"),
                entry(weights, "weights"),
            ],
            key=lambda f: f["path"].encode(),
        ),
    }


_text = st.text(max_size=8)
_scalars = (
    st.none()
    | st.booleans()
    | st.integers(-(2**53), 2**53)
    | st.floats(allow_nan=False, allow_infinity=False)
    | _text
    | st.sampled_from(["", "1.0.0", "sha256:" + HEX, DIGEST, "identity", "weights", "model/x", "onnx", "-1"])
)
JSON = st.recursive(
    _scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(_text, inner, max_size=3),
    max_leaves=8,
)
# Edits that keep the type but may break the form: what a careless or hostile writer does.
_STRING_EDITS = [
    lambda s: s + "\n",
    lambda s: s + "\u2028",
    lambda s: "\x85" + s,
    lambda s: s.upper(),
    lambda s: "",
    lambda s: s + "/..",
    lambda s: s.replace("1", "\u0661"),  # ARABIC-INDIC DIGIT ONE: a Unicode digit
    lambda s: s + "é",
]
_NUMBER_EDITS = [lambda n: -1, lambda n: n + 0.5, lambda n: 2**53, lambda n: True, lambda n: str(n)]


def node_paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """The path (keys and indexes) of every node of a JSON document, the root first."""
    out = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            out += node_paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            out += node_paths(v, (*prefix, i))
    return out


_SWAPS: list[Any] = [None, True, 0, -1, 1.5, "", "x", [], [1], {}, {"x": 1}]


def single_edits(doc: dict[str, Any], under: tuple[Any, ...] = ()) -> Iterator[tuple[str, dict[str, Any]]]:
    """(what was edited, document) for every document one edit away from ``doc`` (nodes
    under ``under``): each node deleted, replaced by each JSON type, its string or number
    edited each way, an unknown key added to each object, an item repeated in each list."""
    for path in node_paths(doc):
        if path[: len(under)] != under:
            continue
        variants: list[Any] = []
        if path:
            variants += [_DELETE, *_SWAPS]
        target = _get(doc, path)
        if isinstance(target, str):
            variants += [edit(target) for edit in _STRING_EDITS]
        elif isinstance(target, (int, float)) and not isinstance(target, bool):
            variants += [edit(target) for edit in _NUMBER_EDITS]
        elif isinstance(target, dict):
            variants += [{**target, "extra": 1}]
        elif isinstance(target, list) and target:
            variants += [[*target, target[0]]]
        for value in variants:
            new = copy.deepcopy(doc)
            label = f"{'.'.join(map(str, path)) or '(document)'} -> {'deleted' if value is _DELETE else repr(value)}"
            if not path:
                yield label, value if isinstance(value, dict) else new
                continue
            parent = _get(new, path[:-1])
            if value is _DELETE:
                del parent[path[-1]]
            else:
                parent[path[-1]] = copy.deepcopy(value)
            yield label, new


_DELETE = object()


def _get(doc: Any, path: tuple[Any, ...]) -> Any:
    for key in path:
        doc = doc[key]
    return doc


@st.composite
def documents(draw: st.DrawFn, max_edits: int = 3) -> dict[str, Any]:
    """A rich valid document with 0 to ``max_edits`` random edits."""
    doc = copy.deepcopy(rich_doc(draw(st.sampled_from(["onnx", "safetensors"]))))
    for _ in range(draw(st.sampled_from([0, 1, 1, 1, *range(2, max_edits + 1)]))):
        path = draw(st.sampled_from(node_paths(doc)))
        parent: Any = doc
        for key in path[:-1]:
            parent = parent[key]
        target = parent[path[-1]] if path else doc
        op = draw(st.sampled_from(["delete", "replace", "add", "edit", "edit", "edit"]))
        if not path:
            op = "add"
        if op == "delete":
            del parent[path[-1]]
        elif op == "replace":
            parent[path[-1]] = draw(JSON)
        elif op == "add":
            if isinstance(target, dict):
                target[draw(st.sampled_from(["extra", "kind", "git", "x\nok", *target]))] = draw(JSON)
            elif isinstance(target, list):
                target.append(copy.deepcopy(target[0]) if target and draw(st.booleans()) else draw(JSON))
            else:
                parent[path[-1]] = [target]
        elif isinstance(target, str):
            parent[path[-1]] = draw(st.sampled_from(_STRING_EDITS))(target)
        elif isinstance(target, (int, float)) and not isinstance(target, bool):
            parent[path[-1]] = draw(st.sampled_from(_NUMBER_EDITS))(target)
        else:
            parent[path[-1]] = draw(JSON)
    return doc


__all__ = ["DIGEST", "JSON", "documents", "entry", "node_paths", "rich_doc", "single_edits"]
