"""The build source description, ``mpkg.toml``: parsed strictly, every problem at once.

Unknown keys are refused rather than ignored, because a misspelt key silently ignored
is a package built without what its author asked for.
"""

from __future__ import annotations

import math
import os
import stat
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from mpkg._internal.format.manifest import MODEL_FORMATS, NAME_RE, SEMVER_RE
from mpkg._internal.format.manifest import MODULE_RE as _MODULE_RE
from mpkg.errors import ProblemCollector, SourceError

from .diff.rules import DEFAULT_RULES, RuleSet, parse_overrides
from .sources.paths import lexical_problem, regular_file_problem, resolve_inside

CONFIG_NAME = "mpkg.toml"

_SKIP_DIRS = frozenset({"__pycache__"})
_SKIP_SUFFIXES = (".pyc", ".pyo")


@dataclass(frozen=True)
class PackageSection:
    name: str
    version: str | None
    description: str


@dataclass(frozen=True)
class ModelSection:
    format: Literal["onnx", "safetensors"]
    files: tuple[str, ...]


@dataclass(frozen=True)
class CodeSection:
    root: str
    module: str


@dataclass(frozen=True)
class DataRef:
    """A dataset that lives elsewhere, named by URI and pinned by digest."""

    uri: str
    digest: str  # "sha256:<hex>", "sha512:<hex>" or "md5:<hex>"


@dataclass(frozen=True)
class LineageSection:
    metrics: str | None = None
    params: str | None = None
    data: tuple[str, ...] = ()  # DVC files (.dvc, dvc.lock) or plain data files in the source
    refs: tuple[DataRef, ...] = ()  # data = [{uri = "s3://...", digest = "sha256:..."}]
    origin: str | None = None  # JSON object: where the weights came from (written by `mpkg init`)


@dataclass(frozen=True)
class ExampleSection:
    file: str
    rtol: float | None = None
    atol: float | None = None


@dataclass(frozen=True)
class SourceConfig:
    """A validated mpkg.toml. Paths are relative POSIX strings, checked to stay inside ``src``."""

    src: Path
    package: PackageSection
    model: ModelSection
    code: CodeSection | None
    lockfile: str
    contract: str | None
    card: str
    lineage: LineageSection
    example: ExampleSection | None
    diff_rules: RuleSet = DEFAULT_RULES  # [diff.rules]: re-levelled rules for `build --base`
    contract_extra: str = "refuse"  # [contract].extra: what requests' inputs the contract lacks get

    def path(self, rel: str) -> Path:
        """Absolute path of a source-relative path named in this config."""
        return self.src / rel


# --- the schema ------------------------------------------------------------------------

_TABLES: dict[str, tuple[set[str], set[str]]] = {
    # table: (required keys, optional keys)
    "package": ({"name"}, {"version", "description"}),
    "model": ({"format", "files"}, set()),
    "code": ({"root", "module"}, set()),
    "environment": ({"lockfile"}, set()),
    "contract": (set(), {"file", "extra"}),
    "card": ({"file"}, set()),
    "lineage": (set(), {"metrics", "params", "data", "origin"}),
    "example": ({"file"}, {"rtol", "atol"}),
    "diff": (set(), {"rules"}),  # rule overrides for `mpkg diff` / `build --base` (spec/semver.md)
}
_REQUIRED_TABLES = ("package", "model", "environment", "card")


class _Reader:
    """Typed access to one table that records a problem instead of raising."""

    def __init__(self, table: str, raw: Mapping[str, Any], problems: ProblemCollector) -> None:
        self.table, self.raw, self.problems = table, raw, problems

    def key(self, k: str) -> str:
        return f"{CONFIG_NAME}: [{self.table}].{k}"

    def str_(self, k: str, check: Callable[[str], str | None] | None = None) -> str | None:
        if k not in self.raw:
            return None
        v = self.raw[k]
        if not isinstance(v, str):
            self.problems.add(self.key(k), f"must be a string, not {_tname(v)}")
            return None
        if check is not None:
            why = check(v)
            if why:
                self.problems.add(self.key(k), why)
                return None
        return v

    def str_list(self, k: str) -> tuple[str, ...] | None:
        if k not in self.raw:
            return None
        v = self.raw[k]
        if not isinstance(v, list) or not all(isinstance(x, str) for x in v):
            self.problems.add(self.key(k), f"must be a list of strings, not {_tname(v)}")
            return None
        dupes = sorted({x for x in v if v.count(x) > 1})
        if dupes:
            self.problems.add(self.key(k), f"lists {dupes} more than once; name each file once")
            return None
        return tuple(v)

    def tolerance(self, k: str) -> float | None:
        if k not in self.raw:
            return None
        v = self.raw[k]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
            self.problems.add(self.key(k), f"must be a finite number >= 0, not {v!r}")
            return None
        return float(v)


def _tname(v: object) -> str:
    return {
        str: "a string",
        int: "an integer",
        float: "a float",
        bool: "a boolean",
        list: "a list",
        dict: "a table",
    }.get(type(v), type(v).__name__)


def _check_name(v: str) -> str | None:
    if NAME_RE.match(v):
        return None
    return f"{v!r} is not a package name: use 1-64 lowercase letters, digits and '-', starting with a letter"


def _check_description(v: str) -> str | None:
    return None if v.isprintable() else "must be one line of printable text (no newlines or control characters)"


def _check_version(v: str) -> str | None:
    if SEMVER_RE.match(v):
        return None
    return f"{v!r} is not a SemVer 2.0.0 version (MAJOR.MINOR.PATCH[-pre][+build], no leading zeros)"


def _check_extra(v: str) -> str | None:
    if v in ("refuse", "ignore"):
        return None
    return f"{v!r} is not 'refuse' (the default: inputs the contract does not name are refused) or 'ignore' (dropped)"


def _check_module(v: str) -> str | None:
    if _MODULE_RE.match(v):
        return None
    return f"{v!r} is not a dotted Python module name (e.g. 'pipeline' or 'pkg.predict')"


def load_config(src: Path) -> SourceConfig:
    """Parse and check ``src/mpkg.toml`` and the existence and placement of every file it names.

    Raises :class:`SourceError` with every problem found.
    """
    problems = ProblemCollector()
    cfg_path = src / CONFIG_NAME
    if not src.is_dir():
        raise SourceError(f"source folder {str(src)!r} does not exist or is not a folder")
    if not cfg_path.is_file():
        raise SourceError(f"no {CONFIG_NAME} in {str(src)!r}; create one describing the package", CONFIG_NAME)
    try:
        doc = tomllib.loads(cfg_path.read_bytes().decode("utf-8"))
    except UnicodeDecodeError:
        raise SourceError("is not UTF-8 text; save it as UTF-8", CONFIG_NAME) from None
    except tomllib.TOMLDecodeError as exc:
        raise SourceError(f"is not valid TOML: {exc}", CONFIG_NAME) from None

    readers: dict[str, _Reader] = {}
    for table, value in doc.items():
        if table not in _TABLES:
            problems.add(
                f"{CONFIG_NAME}: [{table}]",
                f"unknown key or table {table!r}; allowed tables: {', '.join(sorted(_TABLES))}",
            )
            continue
        if not isinstance(value, dict):
            problems.add(f"{CONFIG_NAME}: {table}", f"must be a table ([{table}]), not {_tname(value)}")
            continue
        required, optional = _TABLES[table]
        for k in sorted(set(value) - required - optional):
            allowed = ", ".join(sorted(required | optional))
            problems.add(
                f"{CONFIG_NAME}: [{table}].{k}",
                f"unknown key {k!r}; allowed keys in [{table}]: {allowed}",
            )
        for k in sorted(required - set(value)):
            problems.add(f"{CONFIG_NAME}: [{table}].{k}", "missing required key")
        readers[table] = _Reader(table, value, problems)
    for table in _REQUIRED_TABLES:
        if table not in doc:
            problems.add(f"{CONFIG_NAME}: [{table}]", f"missing required table [{table}]")

    empty = _Reader("", {}, problems)
    pkg = readers.get("package", empty)
    name = pkg.str_("name", _check_name)
    version = pkg.str_("version", _check_version)
    description = pkg.str_("description", _check_description) or ""

    model = readers.get("model", empty)
    fmt = model.str_("format")
    if fmt is not None and fmt not in MODEL_FORMATS:
        problems.add(model.key("format"), f"{fmt!r} is not supported; use one of {', '.join(MODEL_FORMATS)}")
        fmt = None
    files = model.str_list("files")
    if files is not None:
        if not files:
            problems.add(model.key("files"), "is empty; name the weight file(s)")
        elif fmt == "onnx" and len(files) != 1:
            problems.add(
                model.key("files"),
                f"an ONNX package has exactly one model file, got {len(files)}; external-data "
                "files are found from the model",
            )

    code_section: CodeSection | None = None
    if "code" in readers:
        code = readers["code"]
        root = code.str_("root", lexical_problem)
        module = code.str_("module", _check_module)
        if root is not None and module is not None:
            code_section = CodeSection(root=root, module=module)

    lockfile = readers.get("environment", empty).str_("lockfile")
    contract = readers["contract"].str_("file") if "contract" in readers else None
    extra = readers["contract"].str_("extra", _check_extra) if "contract" in readers else None
    if fmt == "safetensors" and "file" not in (readers["contract"].raw if "contract" in readers else {}):
        problems.add(
            f"{CONFIG_NAME}: [contract].file",
            "is required for safetensors models (no graph to derive it from); add a contract.json",
        )
    card = readers.get("card", empty).str_("file")

    lin = readers.get("lineage", empty)
    data_paths, data_refs = _data_items(lin, problems)
    lineage = LineageSection(
        metrics=lin.str_("metrics"),
        params=lin.str_("params"),
        data=data_paths,
        refs=data_refs,
        origin=lin.str_("origin"),
    )

    example: ExampleSection | None = None
    if "example" in readers:
        ex = readers["example"]
        ex_file = ex.str_("file")
        rtol, atol = ex.tolerance("rtol"), ex.tolerance("atol")
        if ex_file is not None:
            example = ExampleSection(file=ex_file, rtol=rtol, atol=atol)

    diff_rules = DEFAULT_RULES
    if "diff" in readers and "rules" in readers["diff"].raw:
        try:  # the one validation `mpkg diff --rules` uses too
            diff_rules = parse_overrides(readers["diff"].raw["rules"], f"{CONFIG_NAME}: [diff.rules]")
        except SourceError as exc:
            problems.extend(exc.problems)

    # Every named file must exist inside src, after symlinks.
    named: list[tuple[str, str]] = [(model.key("files"), f) for f in files or ()]
    for key, value in (
        (f"{CONFIG_NAME}: [environment].lockfile", lockfile),
        (f"{CONFIG_NAME}: [contract].file", contract),
        (f"{CONFIG_NAME}: [card].file", card),
        (f"{CONFIG_NAME}: [lineage].metrics", lineage.metrics),
        (f"{CONFIG_NAME}: [lineage].params", lineage.params),
        (f"{CONFIG_NAME}: [lineage].origin", lineage.origin),
        (f"{CONFIG_NAME}: [example].file", example.file if example else None),
    ):
        if value is not None:
            named.append((key, value))
    named.extend((f"{CONFIG_NAME}: [lineage].data", d) for d in lineage.data)
    for key, rel in named:
        resolved, why = resolve_inside(src, rel)
        if why is None and resolved is not None:
            why = regular_file_problem(resolved, rel)
        if why:
            problems.add(key, why)
    if code_section is not None:
        _check_code_root(src, code_section, problems)

    if problems:
        raise SourceError(problems.problems)
    assert name is not None and fmt is not None and files is not None
    assert lockfile is not None and card is not None
    return SourceConfig(
        src=src,
        package=PackageSection(name=name, version=version, description=description),
        model=ModelSection(format=fmt, files=files),  # type: ignore[arg-type]
        code=code_section,
        lockfile=lockfile,
        contract=contract,
        card=card,
        lineage=lineage,
        example=example,
        diff_rules=diff_rules,
        contract_extra=extra if extra in ("refuse", "ignore") else "refuse",
    )


def _data_items(lin: _Reader, problems: ProblemCollector) -> tuple[tuple[str, ...], tuple[DataRef, ...]]:
    """``[lineage].data``: paths in the source, or ``{uri, digest}`` tables for data elsewhere."""
    from .sources.lineage import data_ref_problem

    raw = lin.raw.get("data")
    if raw is None:
        return (), ()
    if not isinstance(raw, list):
        problems.add(lin.key("data"), f"must be a list of paths or {{uri, digest}} tables, not {_tname(raw)}")
        return (), ()
    paths: list[str] = []
    refs: list[DataRef] = []
    for i, item in enumerate(raw):
        where = f"{lin.key('data')}[{i}]"
        if isinstance(item, str):
            if item in paths:
                problems.add(where, f"lists {item!r} more than once; name each file once")
            paths.append(item)
        elif isinstance(item, dict):
            why = data_ref_problem(item)
            if why:
                problems.add(where, why)
            else:
                refs.append(DataRef(uri=item["uri"], digest=item["digest"]))
        else:
            problems.add(where, f"must be a path or a {{uri, digest}} table, not {_tname(item)}")
    return tuple(paths), tuple(refs)


def _check_code_root(src: Path, code: CodeSection, problems: ProblemCollector) -> None:
    key = f"{CONFIG_NAME}: [code].root"
    resolved, why = resolve_inside(src, code.root)
    if why or resolved is None:
        problems.add(key, why or "cannot be resolved")
        return
    if not resolved.is_dir():
        problems.add(key, f"{code.root!r} is not a folder; name the folder holding the code")
        return
    parts = code.module.split(".")
    base = resolved.joinpath(*parts)
    if not (base.with_suffix(".py").is_file() or (base / "__init__.py").is_file()):
        rel = "/".join(parts)
        problems.add(
            f"{CONFIG_NAME}: [code].module",
            f"module {code.module!r} not found: expected {code.root}/{rel}.py or {code.root}/{rel}/__init__.py",
        )


def list_code_files(src: Path, root: str) -> tuple[str, ...]:
    """Every regular file under ``src/root``, sorted, as src-relative POSIX paths.

    Skips ``__pycache__`` and compiled bytecode (rebuilt on import, and machine-specific).
    Refuses symlinked folders, symlinks leaving ``src`` and special files, all at once.
    """
    problems = ProblemCollector()
    resolved, why = resolve_inside(src, root)
    if why or resolved is None:
        raise SourceError(why or "cannot be resolved", f"{CONFIG_NAME}: [code].root")
    if not resolved.is_dir():
        raise SourceError(f"{root!r} is not a folder", f"{CONFIG_NAME}: [code].root")
    base = src.resolve()
    found: list[str] = []
    for dirpath, dirnames, filenames in os.walk(resolved, followlinks=False):
        here = Path(dirpath)
        keep = []
        for d in sorted(dirnames):
            rel = (here / d).relative_to(base).as_posix()
            if d in _SKIP_DIRS:
                continue
            if (here / d).is_symlink():
                problems.add(rel, "is a symlinked folder; replace it with a real folder")
                continue
            keep.append(d)
        dirnames[:] = keep
        for f in filenames:
            path = here / f
            rel = path.relative_to(base).as_posix()
            if f.endswith(_SKIP_SUFFIXES):
                continue
            try:
                mode = path.lstat().st_mode
            except OSError as exc:
                problems.add(rel, f"cannot be read: {exc.strerror}")
                continue
            if stat.S_ISLNK(mode):
                _, why = resolve_inside(src, rel)
                if why:
                    problems.add(rel, why)
                    continue
                target = path.resolve()
                if not target.is_file():
                    problems.add(
                        rel,
                        "is a symlink to something that is not a regular file; replace it with the file",
                    )
                    continue
            elif not stat.S_ISREG(mode):
                problems.add(
                    rel,
                    "is a special file (device, FIFO or socket); remove it from the code folder",
                )
                continue
            found.append(rel)
    if problems:
        raise SourceError(problems.problems)
    return tuple(sorted(found))
