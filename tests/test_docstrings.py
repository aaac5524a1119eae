"""Every module and public definition of the library says why it exists in a docstring (the
habit pypa/installer keeps at 98%): a definition added without one fails here, naming it."""

from __future__ import annotations

import ast
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
LIBRARY = (REPO / "runtime" / "mpkg", REPO / "builder" / "mpkg_builder")


def _is_stub(node: ast.AST) -> bool:
    """A Protocol method whose body is only ``...``: its protocol's docstring speaks for it."""
    body = getattr(node, "body", [])
    if len(body) != 1 or not isinstance(body[0], ast.Expr):
        return False
    value = body[0].value
    return isinstance(value, ast.Constant) and value.value is Ellipsis


def _undocumented(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    where = str(path.relative_to(REPO))
    missing = [] if ast.get_docstring(tree) else [f"{where}: module"]

    def walk(node: ast.AST, prefix: str) -> None:
        for child in ast.iter_child_nodes(node):
            if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                if child.name.startswith("_"):
                    continue
                if not ast.get_docstring(child) and not _is_stub(child):
                    missing.append(f"{where}:{child.lineno}: {prefix}{child.name}")
                if isinstance(child, ast.ClassDef):
                    walk(child, f"{prefix}{child.name}.")

    walk(tree, "")
    return missing


def test_public_definitions_have_docstrings() -> None:
    files = [p for root in LIBRARY for p in sorted(root.rglob("*.py"))]
    assert len(files) > 150  # the scan sees the library
    missing = [m for p in files for m in _undocumented(p)]
    assert not missing, "add a one-line docstring that says why:\n" + "\n".join(missing)
