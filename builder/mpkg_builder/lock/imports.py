"""What package code imports, read from its syntax tree (the code is never executed).

Only absolute imports of modules outside the standard library and outside the code folder
itself count. Imports under ``if TYPE_CHECKING:`` are for type checkers, not run time;
imports inside ``try: ... except ImportError:`` are optional (locked when installed).
"""

from __future__ import annotations

import ast
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from mpkg.errors import Problem

_IMPORT_ERRORS = {"ImportError", "ModuleNotFoundError", "Exception", "BaseException"}


@dataclass(frozen=True)
class Import:
    """One imported top-level module and the first place that imports it."""

    module: str
    where: str  # "src/pipeline.py:12"
    optional: bool = False


def local_modules(files: Iterable[str], root: str) -> frozenset[str]:
    """Top-level module names the code folder provides itself (``root``-relative files)."""
    names = set()
    prefix = root.rstrip("/") + "/"
    for rel in files:
        inner = rel[len(prefix) :] if rel.startswith(prefix) else rel
        first = inner.split("/", 1)[0]
        names.add(first[:-3] if first.endswith(".py") else first)
    return frozenset(names)


def scan_imports(sources: Iterable[tuple[str, bytes]], local: frozenset[str]) -> tuple[list[Import], list[Problem]]:
    """Third-party top-level imports of ``(path, source bytes)`` pairs, first occurrence each.

    A module imported both optionally and unconditionally counts as required."""
    found: dict[str, Import] = {}
    problems: list[Problem] = []
    skip = set(sys.stdlib_module_names) | set(local) | {"__future__"}
    for path, data in sources:
        try:
            tree = ast.parse(data, filename=path)
        except (SyntaxError, ValueError) as exc:
            problems.append(Problem(path, f"is not valid Python ({exc}); lock reads imports from the syntax tree"))
            continue
        for module, line, optional in _imports(tree):
            if module in skip:
                continue
            seen = found.get(module)
            if seen is None or (seen.optional and not optional):
                found[module] = Import(module, f"{path}:{line}", optional)
    return sorted(found.values(), key=lambda i: i.module), problems


def _imports(tree: ast.AST) -> Iterator[tuple[str, int, bool]]:
    """(top-level module, line, optional) for every absolute import in ``tree``."""

    def walk(node: ast.AST, optional: bool) -> Iterator[tuple[str, int, bool]]:
        if isinstance(node, ast.If) and _is_type_checking(node.test):
            for branch in node.orelse:
                yield from walk(branch, optional)
            return
        if isinstance(node, (ast.Try, ast.TryStar)):
            guarded = optional or any(_catches_import_error(h) for h in node.handlers)
            for stmt in node.body:
                yield from walk(stmt, guarded)
            rest: list[ast.AST] = [*node.handlers, *node.orelse, *node.finalbody]
            for other in rest:
                yield from walk(other, optional)
            return
        if isinstance(node, ast.Import):
            for alias in node.names:
                yield alias.name.split(".", 1)[0], node.lineno, optional
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            yield node.module.split(".", 1)[0], node.lineno, optional
        for child in ast.iter_child_nodes(node):
            yield from walk(child, optional)

    yield from walk(tree, False)


def _is_type_checking(test: ast.expr) -> bool:
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _catches_import_error(handler: ast.ExceptHandler) -> bool:
    kinds = handler.type
    names = kinds.elts if isinstance(kinds, ast.Tuple) else [kinds] if kinds is not None else []
    if kinds is None:
        return True
    return any(isinstance(n, ast.Name) and n.id in _IMPORT_ERRORS for n in names)


__all__ = ["Import", "local_modules", "scan_imports"]
