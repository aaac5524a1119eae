"""What `mpkg lock` needs to know about a package source, read from its mpkg.toml.

Only the model format, the code folder, the contract (is it tabular?) and where the
lockfile goes: `lock` runs before the lockfile exists, so it cannot use the full
validation `build` does (which requires every named file, the lockfile included).
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mpkg._internal.format.manifest import MODEL_FORMATS
from mpkg.errors import SourceError

from ..config import CONFIG_NAME, list_code_files
from ..sources.paths import resolve_inside
from .imports import local_modules


@dataclass(frozen=True)
class LockInputs:
    """What lock reads from a source: model format, tabular or not, the code."""

    model_format: str
    tabular: bool  # every contract input is a column: lock pyarrow too
    code: tuple[tuple[str, bytes], ...] = ()  # (source-relative path, bytes) of each .py file
    local: frozenset[str] = frozenset()  # top-level modules the code folder provides


def code_inputs(src: Path, root: str) -> tuple[tuple[tuple[str, bytes], ...], frozenset[str]]:
    """The Python files under ``src/root`` and the module names they provide."""
    files = list_code_files(src, root)
    code = tuple((rel, (src / rel).read_bytes()) for rel in files if rel.endswith(".py"))
    return code, local_modules(files, root)


def read_source(src: Path) -> tuple[LockInputs, str | None]:
    """(what to lock for, the lockfile path mpkg.toml names or None)."""
    path = src / CONFIG_NAME
    if not path.is_file():
        raise SourceError(f"no {CONFIG_NAME} in {str(src)!r}; lock reads the package's format and code from it")
    try:
        doc = tomllib.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise SourceError(f"is not valid UTF-8 TOML ({exc})", CONFIG_NAME) from None
    fmt = _get(doc, "model", "format")
    if fmt not in MODEL_FORMATS:
        raise SourceError(f"must be one of {', '.join(MODEL_FORMATS)}", f"{CONFIG_NAME}: [model].format")
    code: tuple[tuple[str, bytes], ...] = ()
    local: frozenset[str] = frozenset()
    root = _get(doc, "code", "root")
    if root is not None:
        if not isinstance(root, str):
            raise SourceError("must be a string", f"{CONFIG_NAME}: [code].root")
        code, local = code_inputs(src, root)
    lockfile = _get(doc, "environment", "lockfile")
    if lockfile is not None and not isinstance(lockfile, str):
        raise SourceError("must be a string", f"{CONFIG_NAME}: [environment].lockfile")
    return LockInputs(fmt, _is_tabular(src, doc, fmt), code, local), lockfile


def _get(doc: dict[str, Any], table: str, key: str) -> Any:
    section = doc.get(table)
    return section.get(key) if isinstance(section, dict) else None


def _is_tabular(src: Path, doc: dict[str, Any], fmt: str) -> bool:
    from ..sources.validate import load_contract

    contract_rel = _get(doc, "contract", "file")
    if isinstance(contract_rel, str):
        return load_contract(_inside(src, contract_rel, "[contract].file"), contract_rel).is_tabular
    files = _get(doc, "model", "files")
    if fmt == "onnx" and isinstance(files, list) and len(files) == 1 and isinstance(files[0], str):
        import onnx

        from ..sources.onnx_model import derive_contract

        model_path = _inside(src, files[0], "[model].files")
        try:
            model = onnx.load(str(model_path), load_external_data=False)
        except Exception as exc:  # protobuf's DecodeError and friends
            raise SourceError(f"is not a valid ONNX model ({type(exc).__name__})", files[0]) from None
        return derive_contract(model, files[0]).is_tabular
    return False


def _inside(src: Path, rel: str, key: str) -> Path:
    resolved, why = resolve_inside(src, rel)
    if why or resolved is None:
        raise SourceError(why or "cannot be resolved", f"{CONFIG_NAME}: {key}")
    return resolved


__all__ = ["LockInputs", "code_inputs", "read_source"]
