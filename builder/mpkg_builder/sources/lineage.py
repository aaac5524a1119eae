"""Lineage: where a model came from (commit, datasets, parameters) and how well it did.

The result is JSON-able and canonical-friendly: floats appear only as metric values;
float parameters are recorded as their decimal text so canonical encoding stays exact.
Git is optional: no git, or a source outside a work tree, simply records nothing.
"""

from __future__ import annotations

import hashlib
import math
import os
import re
import shutil
import subprocess
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any

import yaml
from mpkg.errors import ProblemCollector, SourceError

from .jsonfile import load_json_strict

if TYPE_CHECKING:
    from ..config import SourceConfig

_MD5 = re.compile(r"^[0-9a-f]{32}(\.dir)?\Z", re.ASCII)
_URI = re.compile(r"^[a-z][a-z0-9+.-]*://[\x21-\x7e]+\Z", re.ASCII)
_URI_MAX = 2048
_DATA_DIGEST = re.compile(r"^(sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}|md5:[0-9a-f]{32})\Z", re.ASCII)
_ORIGIN_MAX = 1024 * 1024
_CHUNK = 8 * 1024 * 1024
_GIT_TIMEOUT = 30


def collect_lineage(src: Path, cfg: SourceConfig) -> dict[str, Any]:
    """Git state, dataset digests, params and metrics of ``[lineage]``; all problems at once."""
    problems = ProblemCollector()
    out: dict[str, Any] = {}
    git = git_state(src)
    if git is not None:
        out["git"] = git
    data: list[dict[str, Any]] = []
    for rel in cfg.lineage.data:
        try:
            data.extend(parse_dvc_file(src / rel, rel) if is_dvc_file(rel) else [data_file(src / rel, rel)])
        except SourceError as exc:
            problems.extend(exc.problems)
    data.extend({"uri": ref.uri, "digest": ref.digest} for ref in cfg.lineage.refs)
    if data:
        out["data"] = data
    if cfg.lineage.origin is not None:
        try:
            out["origin"] = parse_origin(src / cfg.lineage.origin, cfg.lineage.origin)
        except SourceError as exc:
            problems.extend(exc.problems)
    if cfg.lineage.params is not None:
        try:
            out["params"] = parse_params(src / cfg.lineage.params, cfg.lineage.params)
        except SourceError as exc:
            problems.extend(exc.problems)
    if cfg.lineage.metrics is not None:
        try:
            out["metrics"] = parse_metrics(src / cfg.lineage.metrics, cfg.lineage.metrics)
        except SourceError as exc:
            problems.extend(exc.problems)
    problems.raise_if_any(SourceError)
    return out


def is_dvc_file(rel: str) -> bool:
    """DVC pointer files and dvc.lock carry dataset digests; any other data file is hashed."""
    name = PurePosixPath(rel).name
    return name.endswith(".dvc") or name == "dvc.lock"


def data_file(path: Path, rel: str) -> dict[str, Any]:
    """A plain data file named in [lineage].data: its sha256 and size (it is not packed)."""
    digest = hashlib.sha256()
    size = 0
    try:
        with open(path, "rb") as f:
            while chunk := f.read(_CHUNK):
                digest.update(chunk)
                size += len(chunk)
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", rel) from None
    return {"path": rel, "digest": f"sha256:{digest.hexdigest()}", "size": size}


def data_ref_problem(item: dict[str, Any]) -> str | None:
    """Why ``{uri, digest}`` does not name data elsewhere safely, or None."""
    if set(item) != {"uri", "digest"}:
        return f"a data reference has exactly the keys uri and digest, not {sorted(item)}"
    uri, digest = item["uri"], item["digest"]
    if not isinstance(uri, str) or len(uri) > _URI_MAX or not _URI.match(uri):
        return f"uri {uri!r} must be scheme://location, printable, without spaces, at most {_URI_MAX} characters"
    if "@" in uri.split("://", 1)[1].split("/", 1)[0]:
        return f"uri {uri!r} carries credentials (user@ or user:password@); remove them, they would be published"
    if not isinstance(digest, str) or not _DATA_DIGEST.match(digest):
        return f"digest {digest!r} must be sha256:<64 hex>, sha512:<128 hex> or md5:<32 hex>, lowercase"
    return None


def parse_origin(path: Path, rel: str) -> dict[str, Any]:
    """origin.json: a JSON object saying where the weights came from, recorded verbatim."""
    try:
        if path.stat().st_size > _ORIGIN_MAX:
            raise SourceError(f"is larger than {_ORIGIN_MAX} bytes; it is recorded in the manifest", rel)
    except OSError as exc:
        raise SourceError(f"cannot be read ({exc.strerror})", rel) from None
    doc = load_json_strict(path, rel)
    if not isinstance(doc, dict):
        raise SourceError("must be a JSON object", rel)
    return doc


def git_state(src: Path) -> dict[str, Any] | None:
    """{"commit", "dirty", "subdir"} when ``src`` is in a git work tree with a commit, else None.

    ``dirty`` covers the source folder only (``git status --porcelain -- .``): edits elsewhere
    in the repository do not change what gets packed.
    """
    git = shutil.which("git")
    if git is None:
        return None
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env["GIT_OPTIONAL_LOCKS"] = "0"

    def run(*args: str) -> str | None:
        try:
            done = subprocess.run(
                [git, "-C", str(src), *args],
                capture_output=True,
                text=True,
                env=env,
                timeout=_GIT_TIMEOUT,
                check=False,
            )
        except (OSError, subprocess.SubprocessError):
            return None
        return done.stdout if done.returncode == 0 else None

    commit = run("rev-parse", "--verify", "--quiet", "HEAD^{commit}")
    if commit is None or not re.fullmatch(r"[0-9a-f]{40}([0-9a-f]{24})?", commit.strip()):
        return None
    status = run("status", "--porcelain", "--untracked-files=normal", "--", ".")
    prefix = run("rev-parse", "--show-prefix")
    state: dict[str, Any] = {"commit": commit.strip()}
    if status is not None:
        state["dirty"] = bool(status.strip())
    if prefix is not None:
        state["subdir"] = prefix.strip().rstrip("/")
    return state


def _load_yaml(path: Path, where: str) -> Any:
    try:
        return yaml.safe_load(path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise SourceError("is not UTF-8 text", where) from None
    except yaml.YAMLError as exc:
        raise SourceError(f"is not valid YAML: {str(exc).splitlines()[0]}", where) from None


def _data_path(pointer_rel: str, path: object, where: str, problems: ProblemCollector) -> str | None:
    if not isinstance(path, str) or not path:
        problems.add(where, "path must be a non-empty string")
        return None
    joined = PurePosixPath(pointer_rel).parent / path
    parts: list[str] = []
    for part in joined.parts:
        if part == "..":
            if not parts:
                problems.add(where, f"path {path!r} leaves the source folder")
                return None
            parts.pop()
        elif part != ".":
            parts.append(part)
    if path.startswith("/") or "\\" in path:
        problems.add(where, f"path {path!r} must be relative with '/' separators")
        return None
    return "/".join(parts)


def _out_entry(pointer_rel: str, item: object, where: str, problems: ProblemCollector) -> dict[str, Any] | None:
    if not isinstance(item, dict):
        problems.add(where, "must be a mapping with path and md5")
        return None
    path = _data_path(pointer_rel, item.get("path"), where, problems)
    digest = item.get("md5")
    algo = item.get("hash", "md5")
    if digest is None and isinstance(item.get("etag"), str):
        digest, algo = item["etag"], "etag"
    if not isinstance(digest, str) or (algo == "md5" and not _MD5.match(digest)):
        problems.add(
            where,
            f"has no valid md5 (got {digest!r}); run 'dvc add' / 'dvc commit' so the data is digested",
        )
        return None
    if path is None:
        return None
    entry: dict[str, Any] = {"path": path, "md5" if algo == "md5" else "hash": digest}
    if algo != "md5":
        entry["hash_algorithm"] = str(algo)
    for key in ("size", "nfiles"):
        value = item.get(key)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                problems.add(where, f"{key} {value!r} must be a non-negative integer")
                return None
            entry[key] = value
    return entry


def parse_dvc_file(path: Path, rel: str) -> list[dict[str, Any]]:
    """Dataset digests from a ``.dvc`` pointer file or a ``dvc.lock`` file."""
    doc = _load_yaml(path, rel)
    problems = ProblemCollector()
    out: list[dict[str, Any]] = []
    if not isinstance(doc, dict):
        raise SourceError("must be a YAML mapping (a DVC pointer file or dvc.lock)", rel)
    if PurePosixPath(rel).name == "dvc.lock":
        stages = doc.get("stages")
        if not isinstance(stages, dict) or not stages:
            raise SourceError("has no 'stages' mapping; is this a dvc.lock (schema 2.0)?", rel)
        for stage, body in sorted(stages.items()):
            if not isinstance(body, dict):
                problems.add(f"{rel}: stages.{stage}", "must be a mapping")
                continue
            for role in ("deps", "outs"):
                items = body.get(role, [])
                if not isinstance(items, list):
                    problems.add(f"{rel}: stages.{stage}.{role}", "must be a list")
                    continue
                for i, item in enumerate(items):
                    entry = _out_entry(rel, item, f"{rel}: stages.{stage}.{role}[{i}]", problems)
                    if entry is not None:
                        out.append({"source": rel, "stage": str(stage), "role": role[:-1], **entry})
    else:
        outs = doc.get("outs")
        if not isinstance(outs, list) or not outs:
            raise SourceError("has no 'outs' list; is this a DVC pointer file (.dvc)?", rel)
        for i, item in enumerate(outs):
            entry = _out_entry(rel, item, f"{rel}: outs[{i}]", problems)
            if entry is not None:
                out.append({"source": rel, **entry})
    problems.raise_if_any(SourceError)
    return out


def _float_text(value: Any) -> Any:
    """Params as canonical-friendly JSON: floats become their shortest decimal text."""
    if isinstance(value, dict):
        return {str(k): _float_text(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_float_text(v) for v in value]
    if isinstance(value, float):
        return repr(value)
    if value is None or isinstance(value, (str, int, bool)):
        return value
    return str(value)  # dates and the like: their YAML text form


def parse_params(path: Path, rel: str) -> dict[str, Any]:
    """A YAML mapping of training parameters, as JSON with floats written as text."""
    doc = _load_yaml(path, rel)
    if not isinstance(doc, dict):
        raise SourceError("must be a YAML mapping of parameter names to values", rel)
    bad = [k for k in doc if not isinstance(k, str)]
    if bad:
        raise SourceError(f"parameter names must be strings, got {bad!r}", rel)
    result: dict[str, Any] = _float_text(doc)
    return result


def parse_metrics(path: Path, rel: str) -> dict[str, float | int]:
    """A JSON object of metrics, flattened to dotted names; values must be finite numbers."""

    doc = load_json_strict(path, rel)
    if not isinstance(doc, dict):
        raise SourceError("must be a JSON object of metric names to numbers", rel)
    problems = ProblemCollector()
    flat: dict[str, float | int] = {}

    def walk(prefix: str, value: Any) -> None:
        if isinstance(value, dict):
            if not value:
                problems.add(f"{rel}: {prefix}", "is an empty object; remove it or give it metrics")
            for k, v in value.items():
                walk(f"{prefix}.{k}" if prefix else k, v)
            return
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            problems.add(f"{rel}: {prefix}", f"{value!r} is not a finite number")
            return
        if prefix in flat:
            problems.add(f"{rel}: {prefix}", "the dotted name collides with another metric; rename one")
            return
        flat[prefix] = value

    if not doc:
        raise SourceError("has no metrics; give at least one name: number", rel)
    walk("", doc)
    problems.raise_if_any(SourceError)
    return dict(sorted(flat.items()))
