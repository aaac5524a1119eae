"""The MLflow run a model came from, read from its files (``mlruns/`` or ``--run-dir``).

A file store keeps each run as ``<experiment>/<run_id>/`` with ``meta.yaml``, ``params/``
(one file per parameter, its value as text) and ``metrics/`` (one file per metric, lines of
``timestamp value step``). MLflow 2 keeps the model inside the run
(``<run_id>/artifacts/<path>/``), MLflow 3 beside it (``<experiment>/models/<id>/artifacts/``);
both are found by walking up from the model folder. Every file is capped and every value
checked: these become the package's lineage.
"""

from __future__ import annotations

import math
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from mpkg.errors import SourceError

from .reading import MiB, load_yaml, read_capped

_SEARCH_LEVELS = 6
_MAX_ENTRIES = 10_000
_PARAM_MAX = 64 * 1024
_METRIC_MAX = 64 * MiB


@dataclass(frozen=True)
class Run:
    """What lineage needs from an MLflow run's files."""

    folder: Path
    run_id: str
    params: dict[str, str]
    metrics: dict[str, float]  # the last value of each metric (highest step, then latest time)
    run_name: str | None
    experiment_id: str | None
    notes: tuple[str, ...]


def find_run(model_folder: Path, run_id: str | None, run_dir: Path | None) -> Path | None:
    """The run folder: ``run_dir`` when given (it must be the run MLmodel names), else found
    by walking up from the model folder; None when there is no run to find."""
    if run_dir is not None:
        if not (run_dir / "meta.yaml").is_file() and not (run_dir / "params").is_dir():
            raise SourceError("is not an MLflow run folder (no meta.yaml, no params/)", f"--run-dir {run_dir}")
        return run_dir
    if run_id is None:
        return None
    here = model_folder.absolute()
    for folder in [here, *here.parents][:_SEARCH_LEVELS]:
        if folder.name == run_id and (folder / "meta.yaml").is_file():
            return folder
        candidate = folder / run_id
        if (candidate / "meta.yaml").is_file():
            return candidate
    return None


def read_run(folder: Path, run_id: str | None) -> Run:
    """Read an MLflow run folder (meta.yaml, params/, metrics/) without MLflow."""
    notes: list[str] = []
    meta = {}
    if (folder / "meta.yaml").is_file():
        doc = load_yaml(read_capped(folder / "meta.yaml", f"{folder.name}/meta.yaml", MiB), "meta.yaml")
        meta = doc if isinstance(doc, dict) else {}
    found_id = meta.get("run_id", meta.get("run_uuid"))
    if run_id is not None and found_id is not None and found_id != run_id:
        raise SourceError(f"is run {str(found_id)[:40]!r}, but MLmodel names run {run_id!r}", f"{folder}/meta.yaml")
    params = {key: _param(path, key) for key, path in _entries(folder / "params", notes)}
    metrics: dict[str, float] = {}
    for key, path in _entries(folder / "metrics", notes):
        value = _last_value(path, f"{folder.name}/metrics/{key}")
        if value is None:
            notes.append(f"metric {key!r} has no finite value; not recorded")
        else:
            metrics[key] = value
    name = meta.get("run_name")
    experiment = meta.get("experiment_id")
    return Run(
        folder=folder,
        run_id=run_id or str(found_id or folder.name),
        params=params,
        metrics=metrics,
        run_name=name if isinstance(name, str) and name.isprintable() and len(name) <= 256 else None,
        experiment_id=str(experiment) if isinstance(experiment, (str, int)) and len(str(experiment)) <= 64 else None,
        notes=tuple(notes),
    )


def _entries(base: Path, notes: list[str]) -> list[tuple[str, Path]]:
    """(key, file) under ``base``; keys may hold '/', as MLflow stores them in folders.
    Symlinks and special files are skipped, never followed."""
    if not base.is_dir():
        return []
    out: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(base, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(dirpath, name)
            key = path.relative_to(base).as_posix()
            if not stat.S_ISREG(path.lstat().st_mode):
                notes.append(f"{base.name}/{key} is not a regular file; skipped")
                continue
            if len(out) >= _MAX_ENTRIES:
                raise SourceError(f"holds more than {_MAX_ENTRIES} entries", str(base))
            if not key.isprintable() or len(key) > 250:
                notes.append(f"{base.name}: a key that is not one printable line was skipped")
                continue
            out.append((key, path))
    return out


def _param(path: Path, key: str) -> str:
    data = read_capped(path, f"params/{key}", _PARAM_MAX)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError("is not UTF-8 text", f"params/{key}") from None


def _last_value(path: Path, where: str) -> float | None:
    """The value of the line with the highest (step, timestamp), read line by line."""
    if path.stat().st_size > _METRIC_MAX:
        raise SourceError(f"is larger than {_METRIC_MAX} bytes", where)
    best: tuple[int, int] | None = None
    value: float | None = None
    with open(path, "rb") as f:
        for raw in f:
            parts = raw.split()
            if len(parts) < 2:
                continue
            try:
                ts, v = int(parts[0]), float(parts[1])
                step = int(parts[2]) if len(parts) > 2 else 0
            except ValueError:
                raise SourceError(f"line {raw[:60]!r} is not 'timestamp value step'", where) from None
            if not math.isfinite(v):
                continue
            if best is None or (step, ts) >= best:
                best, value = (step, ts), v
    return value


__all__ = ["Run", "find_run", "read_run"]
