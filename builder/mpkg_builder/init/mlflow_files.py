"""The files MLflow saves beside MLmodel: the input example, requirements.txt, python_env.yaml.

Each is capped and parsed strictly; what cannot be used becomes a note, never a failure:
they describe how the model was made, while the package's own environment is locked
from the environment that runs it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mpkg.errors import SourceError
from packaging.requirements import InvalidRequirement, Requirement
from packaging.utils import canonicalize_name

from .mlmodel import MLModel
from .reading import MiB, inside, load_json, load_yaml, read_capped

EXAMPLE_MAX = 16 * MiB
EXAMPLE_ROWS = 20


@dataclass(frozen=True)
class RawExample:
    """MLflow's input example: named 1-D columns, or tensors by name (None: the only input)."""

    columns: Mapping[str, list[Any]] | None = None
    tensors: Mapping[str | None, Any] | None = None


def read_example(mlmodel: MLModel, notes: list[str]) -> RawExample | None:
    """The MLflow input example, if the model has one, or None with a note why not."""
    info = mlmodel.example_info
    if not info:
        return None
    where = mlmodel.where("saved_input_example_info.artifact_path")
    try:
        path = inside(mlmodel.folder, info.get("artifact_path"), where)
        doc = load_json(read_capped(path, f"{mlmodel.folder.name}/{path.name}", EXAMPLE_MAX), path.name)
    except SourceError as exc:
        notes.append(f"MLflow's input example was not used: {exc.problems[0]}")
        return None
    kind = info.get("type")
    if kind == "dataframe":
        columns = _dataframe(doc, info.get("pandas_orient", "split"))
        if columns is None:
            notes.append("MLflow's input example is a DataFrame init cannot read (orient split or records)")
        return RawExample(columns=columns) if columns is not None else None
    if kind == "ndarray":
        if isinstance(doc, dict) and set(doc) == {"inputs"}:
            doc = doc["inputs"]  # the TF-serving form {"inputs": ...}
        if isinstance(doc, dict):
            return RawExample(tensors={str(k): _rows(v) for k, v in doc.items()})
        return RawExample(tensors={None: _rows(doc)})
    notes.append(f"MLflow's input example has type {str(kind)[:32]!r}; init reads dataframe and ndarray examples")
    return None


def _rows(value: Any) -> Any:
    return value[:EXAMPLE_ROWS] if isinstance(value, list) else value


def _dataframe(doc: Any, orient: Any) -> dict[str, list[Any]] | None:
    if orient == "split" and isinstance(doc, dict):
        cols, data = doc.get("columns"), doc.get("data")
        if (
            isinstance(cols, list)
            and isinstance(data, list)
            and all(isinstance(c, str) for c in cols)
            and all(isinstance(r, list) and len(r) == len(cols) for r in data)
        ):
            rows = data[:EXAMPLE_ROWS]
            return {c: [r[i] for r in rows] for i, c in enumerate(cols)}
    if orient == "records" and isinstance(doc, list) and doc and all(isinstance(r, dict) for r in doc):
        rows = doc[:EXAMPLE_ROWS]
        names = list(rows[0])
        if all(isinstance(c, str) for c in names) and all(list(r) == names for r in rows):
            return {c: [r[c] for r in rows] for c in names}
    return None


def read_requirements(mlmodel: MLModel, notes: list[str]) -> list[str]:
    """requirements.txt as normalised requirement strings (what the model was saved with)."""
    path = mlmodel.folder / "requirements.txt"
    if not path.is_file():
        return []
    where = f"{mlmodel.folder.name}/requirements.txt"
    try:
        text = read_capped(path, where, MiB).decode("utf-8")
    except (SourceError, UnicodeDecodeError) as exc:
        notes.append(f"{where} was not read: {exc}")
        return []
    out: list[str] = []
    for no, raw in enumerate(text.splitlines(), start=1):
        line = raw.split(" #", 1)[0].strip()
        if not line or line.startswith("#"):
            continue
        try:
            req = Requirement(line)
        except InvalidRequirement:
            notes.append(f"{where}:{no}: {line[:80]!r} is not a requirement (options, paths and -e are not recorded)")
            continue
        if req.url:
            notes.append(f"{where}:{no}: {req.name} is a URL requirement; not recorded")
            continue
        out.append(str(req))
    return out


def read_python(mlmodel: MLModel, notes: list[str]) -> str | None:
    """The Python version python_env.yaml names."""
    path = mlmodel.folder / "python_env.yaml"
    if not path.is_file():
        return None
    where = f"{mlmodel.folder.name}/python_env.yaml"
    try:
        doc = load_yaml(read_capped(path, where, 64 * 1024), where)
    except SourceError as exc:
        notes.append(f"{where} was not read: {exc.problems[0]}")
        return None
    version = doc.get("python") if isinstance(doc, dict) else None
    if isinstance(version, str) and len(version) <= 16 and all(c.isdigit() or c == "." for c in version):
        return version
    notes.append(f"{where} names no Python version init can read")
    return None


def pinned(requirements: Sequence[str]) -> dict[str, str]:
    """{name: version} for the ``name==version`` requirements."""
    out: dict[str, str] = {}
    for text in requirements:
        req = Requirement(text)
        specs = list(req.specifier)
        if len(specs) == 1 and specs[0].operator == "==" and not req.marker:
            out[canonicalize_name(req.name)] = specs[0].version
    return out


__all__ = ["RawExample", "pinned", "read_example", "read_python", "read_requirements"]
