"""Model cards: the author's Markdown, checked for the sections a reviewer needs.

The packaged card keeps the author's text byte for byte and appends a clearly delimited
machine-written part, so facts (contract, metrics, lineage, environment) cannot drift
from the package they describe, and the author's words are never rewritten.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from mpkg.errors import ProblemCollector, SourceError

GENERATED_BEGIN = "<!-- mpkg:generated:begin -->"
GENERATED_END = "<!-- mpkg:generated:end -->"
_MARKER = "<!-- mpkg:generated"

# Required section -> pattern on the normalised heading text.
REQUIRED_SECTIONS: dict[str, re.Pattern[str]] = {
    "Intended use": re.compile(r"^intended uses?\b"),
    "Limitations": re.compile(r"^limitations?\b"),
    "Training data": re.compile(r"^training data\b"),
    "Evaluation": re.compile(r"^evaluation\b"),
    "Ethical considerations": re.compile(r"^ethical considerations?\b"),
}
_ATX = re.compile(r"^ {0,3}(#{1,6})(?:[ \t]+(.*?))?(?:[ \t]+#+)?[ \t]*$")
_SETEXT = re.compile(r"^ {0,3}(=+|-+)[ \t]*$")
_FENCE = re.compile(r"^ {0,3}(`{3,}|~{3,})")
_NOT_STATED = re.compile(r"^ {0,3}(?:[>*_-]\s*)*[*_]*not stated:", re.IGNORECASE)


@dataclass(frozen=True)
class Card:
    """A model card as the build reads it: front matter, body, section headings."""

    metadata: Mapping[str, Any]  # YAML front matter, JSON-able ({} when absent)
    body: str  # the Markdown after the front matter
    sections: tuple[str, ...]  # heading texts in order
    unstated: tuple[str, ...] = ()  # headings of sections that still say "Not stated:"


def parse_card(path: Path, where: str | None = None) -> Card:
    """Parse a model card and check its required sections; all problems at once."""
    where = where if where is not None else path.name
    try:
        text = path.read_bytes().decode("utf-8")
    except UnicodeDecodeError:
        raise SourceError("is not UTF-8 text; save the card as UTF-8", where) from None
    return parse_card_text(text, where)


def parse_card_text(text: str, where: str = "MODEL_CARD.md") -> Card:
    """Parse a card, collecting every problem (front matter, required sections) to raise once."""
    problems = ProblemCollector()
    metadata: dict[str, Any] = {}
    front, body = split_front_matter(text, where)
    if front is not None:
        try:
            raw = yaml.safe_load(front)
        except yaml.YAMLError as exc:
            raise SourceError(
                f"front matter is not valid YAML: {str(exc).splitlines()[0]}",
                f"{where}: front matter",
            ) from None
        if raw is None:
            raw = {}
        if not isinstance(raw, dict):
            problems.add(
                f"{where}: front matter",
                f"must be a YAML mapping (key: value), not {type(raw).__name__}",
            )
        else:
            metadata = _jsonable(raw, f"{where}: front matter", problems)
    if _MARKER in text:
        problems.add(
            where,
            f"contains the reserved marker {_MARKER!r}; remove it (mpkg writes that part itself)",
        )
    sections = headings(body)
    normal = [normalise_heading(s) for s in sections]
    for name, pattern in REQUIRED_SECTIONS.items():
        if not any(pattern.match(n) for n in normal):
            problems.add(where, f"missing section '{name}'; add a '## {name}' heading with its text")
    problems.raise_if_any(SourceError)
    return Card(metadata=metadata, body=body, sections=tuple(sections), unstated=unstated_sections(body))


def split_front_matter(text: str, where: str = "MODEL_CARD.md") -> tuple[str | None, str]:
    """(YAML front matter text or None, Markdown body)."""
    lines = text.splitlines(keepends=True)
    if not lines or lines[0].rstrip("\r\n") != "---":
        return None, text
    end = next((i for i in range(1, len(lines)) if lines[i].rstrip("\r\n") in ("---", "...")), None)
    if end is None:
        raise SourceError("front matter opened with '---' is never closed; end it with a '---' line", where)
    return "".join(lines[1:end]), "".join(lines[end + 1 :])


def _jsonable(value: Any, where: str, problems: ProblemCollector) -> Any:
    """YAML values as JSON: dates become ISO strings; other non-JSON types are refused."""
    if isinstance(value, dict):
        out = {}
        for k, v in value.items():
            if not isinstance(k, str):
                problems.add(where, f"key {k!r} must be a string")
                continue
            out[k] = _jsonable(v, f"{where}.{k}", problems)
        return out
    if isinstance(value, list):
        return [_jsonable(v, f"{where}[{i}]", problems) for i, v in enumerate(value)]
    if isinstance(value, (dt.date, dt.datetime)):
        return value.isoformat()
    if isinstance(value, float) and not math.isfinite(value):
        problems.add(where, f"{value!r} is not a finite number")
        return None
    if value is None or isinstance(value, (str, int, float, bool)):
        return value
    problems.add(
        where,
        f"a {type(value).__name__} value cannot be recorded; use a string, number, list or mapping",
    )
    return None


def _scan(markdown: str) -> Iterator[tuple[bool, str]]:
    """(is_heading, text) for every line outside fenced code blocks; a setext heading's
    underline is folded into its heading."""
    fence: str | None = None
    prev: str | None = None
    for line in markdown.splitlines():
        m = _FENCE.match(line)
        if fence is not None:
            if m and m.group(1)[0] == fence[0] and len(m.group(1)) >= len(fence):
                fence = None
            continue
        if prev is not None and _SETEXT.match(line):
            yield True, prev.strip()
            prev = None
            continue
        if prev is not None:
            yield False, prev
            prev = None
        if m:
            fence = m.group(1)
            continue
        a = _ATX.match(line)
        if a:
            yield True, (a.group(2) or "").strip()
        elif line.strip() and not line.startswith(("    ", "\t")):
            prev = line
        else:
            yield False, line
    if prev is not None:
        yield False, prev


def headings(markdown: str) -> list[str]:
    """ATX and setext heading texts outside fenced code blocks, in order."""
    return [text for is_heading, text in _scan(markdown) if is_heading]


def unstated_sections(markdown: str) -> tuple[str, ...]:
    """Headings of the sections that still say "Not stated: ..." (what `mpkg init` could not
    know), in order: `build` warns about them and `build --strict-card` refuses them."""
    found: list[str] = []
    current: str | None = None
    for is_heading, text in _scan(markdown):
        if is_heading:
            current = text
        elif current is not None and current not in found and _NOT_STATED.match(text):
            found.append(current)
    return tuple(found)


def normalise_heading(heading: str) -> str:
    """A heading as compared with the required ones: no emphasis, case or trailing colon."""
    text = re.sub(r"[*_`]", "", heading).lower()
    text = re.sub(r"\s+", " ", text).strip()
    return text.rstrip(":").strip()


# --- the packaged card -----------------------------------------------------------------


def render_packaged_card(author_text: str, facts: Mapping[str, Any]) -> str:
    """The author's text unchanged, then a delimited machine-written facts section.

    ``facts`` keys (all optional): name, version, description, contract (a Contract or its
    JSON), metrics (flat name -> number), lineage (from collect_lineage), environment
    ({"kind", "requires_python", "packages": [{"name", "version"}...]} or a Lockfile-like
    mapping). Other keys are shown as JSON. The package digest is not included: the card is
    itself hashed into it.
    """
    out: list[str] = [GENERATED_BEGIN, "", "## Package facts (generated by mpkg)", ""]
    known = {"name", "version", "description", "contract", "metrics", "lineage", "environment"}
    if facts.get("name") is not None:
        out.append(f"- **Name:** {_cell(str(facts['name']))}")
    if facts.get("version") is not None:
        out.append(f"- **Version:** {_cell(str(facts['version']))}")
    if facts.get("description"):
        out.append(f"- **Description:** {_cell(str(facts['description']))}")
    contract = facts.get("contract")
    rows: list[str] = []
    if contract is not None:
        doc = contract.to_json() if hasattr(contract, "to_json") else contract
        for side in ("inputs", "outputs"):
            for f in doc.get(side, []):
                flags = [k for k in ("optional", "nullable") if f.get(k)]
                if f.get("enum") is not None:
                    flags.append("enum: " + ", ".join(json.dumps(v) for v in f["enum"]))
                shape = "[" + ", ".join(str(d) for d in f.get("shape", [])) + "]"
                rows.append(
                    f"| {side[:-1]} | {_code_cell(f['name'])} | {f['dtype']} | {shape} | "
                    f"{_cell('; '.join(flags))} | {_cell(f.get('description', ''))} |"
                )
    if rows:
        rows[:0] = ["| Side | Name | dtype | Shape | Flags | Description |", "|---|---|---|---|---|---|"]
    out += _section("Contract", rows)
    metrics = facts.get("metrics") or {}
    rows = [f"| {_cell(str(k))} | {v!r} |" for k, v in sorted(metrics.items())]
    out += _section("Metrics", ["| Metric | Value |", "|---|---|", *rows] if rows else [])
    out += _section("Lineage", _lineage_lines(facts.get("lineage") or {}))
    out += _section("Environment", _environment_lines(facts.get("environment") or {}))
    other = {k: v for k, v in facts.items() if k not in known}
    if other:
        out += [
            "",
            "### Other facts",
            "",
            "```json",
            json.dumps(other, indent=2, sort_keys=True, default=str),
            "```",
        ]
    out += ["", GENERATED_END, ""]
    # Exactly one newline joins the parts, so split_packaged_card can undo it unambiguously.
    return author_text + "\n" + "\n".join(out)


def _section(title: str, lines: list[str]) -> list[str]:
    """A heading with its lines, or nothing at all: never an empty heading."""
    return ["", f"### {title}", "", *lines] if lines else []


def _lineage_lines(lineage: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    git = lineage.get("git")
    if git:
        dirty = " (uncommitted changes)" if git.get("dirty") else ""
        out.append(f"- **Git commit:** `{git.get('commit')}`{dirty}")
    for d in lineage.get("data", []):
        digest = f"md5 `{d['md5']}`" if "md5" in d else f"`{d.get('hash') or d.get('digest') or '?'}`"
        size = f", {d['size']} bytes" if "size" in d else ""
        out.append(f"- **Data:** `{_cell(str(d.get('path') or d.get('uri')))}` {_cell(digest)}{size}")
    origin = lineage.get("origin") or {}
    scalars = [f"{k}={v}" for k, v in sorted(origin.items()) if isinstance(v, (str, int, float, bool))]
    if scalars:
        out.append(f"- **Origin:** {_cell(', '.join(scalars))}")
    builder = lineage.get("builder")
    if builder:
        out.append(
            f"- **Built with:** mpkg {_cell(str(builder.get('mpkg')))}, Python {_cell(str(builder.get('python')))}, "
            f"{_cell(str(builder.get('platform')))}"
        )
    if lineage.get("params"):
        out += ["", "Parameters:", "", "```json", json.dumps(lineage["params"], indent=2, sort_keys=True), "```"]
    return out


def _environment_lines(env: Mapping[str, Any]) -> list[str]:
    out: list[str] = []
    if env.get("kind"):
        out.append(f"- **Lockfile format:** {env['kind']}")
    if env.get("requires_python"):
        out.append(f"- **Requires Python:** {_cell(str(env['requires_python']))}")
    pkgs = env.get("packages", [])
    if pkgs:
        out += ["", "| Package | Version |", "|---|---|"] if out else ["| Package | Version |", "|---|---|"]
        for p in pkgs:
            name, version = (p["name"], p["version"]) if isinstance(p, Mapping) else (p.name, p.version)
            out.append(f"| {_cell(name)} | {_cell(version)} |")
    return out


def split_packaged_card(text: str) -> tuple[str, str | None]:
    """Undo :func:`render_packaged_card`: (author text, generated block or None)."""
    idx = text.rfind("\n" + GENERATED_BEGIN)
    if idx < 0 or not text.rstrip().endswith(GENERATED_END):
        return text, None
    return text[:idx], text[idx + 1 :]


def _cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def _code_cell(text: str) -> str:
    """A name as a code span in a table cell: any backticks, pipes or spaces in it stay as they are."""
    fence = "`" * (max((len(run) for run in re.findall("`+", text)), default=0) + 1)
    pad = " " if text.startswith("`") or text.endswith("`") else ""
    body = text.replace("|", "\\|")
    return f"{fence}{pad}{body}{pad}{fence}"
