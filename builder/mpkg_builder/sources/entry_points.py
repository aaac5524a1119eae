"""The protocol functions a package's code module defines, read from its syntax tree.

The build never executes package code to learn its shape: ``preprocess``, ``postprocess``
and ``predict`` are found as top-level functions (spec/format.md §7.1). Which ones exist
decides which side of an ONNX contract the graph must match (§6).
"""

from __future__ import annotations

import ast
from collections.abc import Iterable

from mpkg._internal.format.manifest import ENTRY_POINTS
from mpkg.errors import ProblemCollector

from ..config import SourceConfig


def read_entry_points(cfg: SourceConfig, problems: ProblemCollector) -> dict[str, list[str]]:
    """Entry point name -> parameter names; an unparseable module is a problem, not a crash."""
    if cfg.code is None:
        return {}
    base = cfg.path(cfg.code.root).joinpath(*cfg.code.module.split("."))
    path = base.with_suffix(".py") if base.with_suffix(".py").is_file() else base / "__init__.py"
    try:
        tree = ast.parse(path.read_bytes(), filename=str(path))
    except (SyntaxError, ValueError) as exc:
        problems.add(path.relative_to(cfg.src).as_posix(), f"is not valid Python ({exc})")
        return {}
    except OSError as exc:
        problems.add(path.relative_to(cfg.src).as_posix(), f"cannot be read: {exc.strerror}")
        return {}
    return entry_points_of(tree)


def entry_points_of(tree: ast.Module) -> dict[str, list[str]]:
    """The module's top-level protocol functions and their parameter names."""
    found: dict[str, list[str]] = {}
    for node in tree.body:
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)) and node.name in ENTRY_POINTS:
            found[node.name] = [a.arg for a in node.args.posonlyargs + node.args.args]
    return found


def graph_sides(entry_points: Iterable[str]) -> tuple[str, ...]:
    """The contract sides an ONNX graph must match: those no package code adapts (format.md §6)."""
    names = set(entry_points)
    return tuple(side for side, ep in (("inputs", "preprocess"), ("outputs", "postprocess")) if ep not in names)


__all__ = ["entry_points_of", "graph_sides", "read_entry_points"]
