"""Loading ``mpkg.toml``: every table read, every named file checked to stay inside the source."""

from __future__ import annotations

import tomllib
from pathlib import Path

from mpkg._internal.format.manifest import MODEL_FORMATS
from mpkg.errors import ProblemCollector, SourceError

from ..diff.overrides import parse_overrides
from ..diff.rules import DEFAULT_RULES
from ..sources.paths import lexical_problem, regular_file_problem, resolve_inside
from .schema import (
    CONFIG_NAME,
    REQUIRED_TABLES,
    TABLES,
    CodeSection,
    DataRef,
    ExampleSection,
    LineageSection,
    ModelSection,
    PackageSection,
    SourceConfig,
)
from .tables import TableReader, check_description, check_extra, check_module, check_name, check_version, type_name


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

    readers: dict[str, TableReader] = {}
    for table, value in doc.items():
        if table not in TABLES:
            problems.add(
                f"{CONFIG_NAME}: [{table}]",
                f"unknown key or table {table!r}; allowed tables: {', '.join(sorted(TABLES))}",
            )
            continue
        if not isinstance(value, dict):
            problems.add(f"{CONFIG_NAME}: {table}", f"must be a table ([{table}]), not {type_name(value)}")
            continue
        required, optional = TABLES[table]
        for k in sorted(set(value) - required - optional):
            allowed = ", ".join(sorted(required | optional))
            problems.add(
                f"{CONFIG_NAME}: [{table}].{k}",
                f"unknown key {k!r}; allowed keys in [{table}]: {allowed}",
            )
        for k in sorted(required - set(value)):
            problems.add(f"{CONFIG_NAME}: [{table}].{k}", "missing required key")
        readers[table] = TableReader(table, value, problems)
    for table in REQUIRED_TABLES:
        if table not in doc:
            problems.add(f"{CONFIG_NAME}: [{table}]", f"missing required table [{table}]")

    empty = TableReader("", {}, problems)
    pkg = readers.get("package", empty)
    name = pkg.str_("name", check_name)
    version = pkg.str_("version", check_version)
    description = pkg.str_("description", check_description) or ""

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
        module = code.str_("module", check_module)
        if root is not None and module is not None:
            code_section = CodeSection(root=root, module=module)

    lockfile = readers.get("environment", empty).str_("lockfile")
    contract_table = readers.get("contract", empty)
    contract = contract_table.str_("file")
    extra = contract_table.str_("extra", check_extra)
    if fmt == "safetensors" and "file" not in contract_table.raw:
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
        contract_extra=extra or "refuse",
    )


def _data_items(lin: TableReader, problems: ProblemCollector) -> tuple[tuple[str, ...], tuple[DataRef, ...]]:
    """``[lineage].data``: paths in the source, or ``{uri, digest}`` tables for data elsewhere."""
    from ..sources.lineage import data_ref_problem

    raw = lin.raw.get("data")
    if raw is None:
        return (), ()
    if not isinstance(raw, list):
        problems.add(lin.key("data"), f"must be a list of paths or {{uri, digest}} tables, not {type_name(raw)}")
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
            problems.add(where, f"must be a path or a {{uri, digest}} table, not {type_name(item)}")
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


__all__ = ["load_config"]
