"""The model card init writes: every required section, and plain words for what it cannot know.

A section init cannot fill says ``Not stated: ...``; the build lists such sections as a
warning (``build --strict-card`` refuses them), so a team can require a person to write
them before release. Facts init does know (a run id, counts of logged metrics) are
written beside that sentence, never in place of it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import yaml

from ..sources.card import REQUIRED_SECTIONS, headings, normalise_heading

UNSTATED: Mapping[str, str] = {
    "Intended use": "what this model is for, who should use it, and what it must not be used for",
    "Limitations": "where the model is known to fail or was never tested (inputs, populations, conditions)",
    "Training data": "the data the model was trained on, where it came from, and how it was split",
    "Evaluation": "how the model was evaluated: on which data, with which metrics, and the results",
    "Ethical considerations": "risks, groups affected, and sensitive uses (write 'None known' if that is the finding)",
}
MADE_HEADING = "How this package was made"
_MAX_TENSOR_ROWS = 200


def not_stated(section: str) -> str:
    """The card line for a section init cannot know, so `build` can warn about it."""
    return f"Not stated: {UNSTATED[section]}. `mpkg init` cannot know this; a person has to write it."


def template(
    title: str,
    intro: str,
    facts: Mapping[str, Sequence[str]] | None = None,
    front_matter: Mapping[str, Any] | None = None,
    extra: Sequence[str] = (),
) -> str:
    """A card with the five required sections; ``facts`` adds known lines to a section."""
    facts = facts or {}
    out: list[str] = []
    if front_matter:
        out += ["---", yaml.safe_dump(dict(front_matter), sort_keys=True).rstrip("\n"), "---", ""]
    out += [f"# {title}", "", intro, ""]
    for section in UNSTATED:
        out += [f"## {section}", ""]
        for line in facts.get(section, ()):
            out += [line, ""]
        out += [not_stated(section), ""]
    out += list(extra)
    return "\n".join(out).rstrip("\n") + "\n"


def complete(author_text: str, facts: Mapping[str, Sequence[str]] | None = None) -> str:
    """An existing card (a Hugging Face README) kept byte for byte, with every required
    section it lacks appended as ``Not stated``."""
    facts = facts or {}
    body = _body(author_text)
    present = [normalise_heading(h) for h in headings(body)]
    missing = [s for s, pattern in REQUIRED_SECTIONS.items() if not any(pattern.match(h) for h in present)]
    if not missing:
        return author_text
    out = [author_text.rstrip("\n"), ""]
    for section in missing:
        out += [f"## {section}", ""]
        for line in facts.get(section, ()):
            out += [line, ""]
        out += [not_stated(section), ""]
    return "\n".join(out).rstrip("\n") + "\n"


def made_section(lines: Sequence[str]) -> str:
    """The card's "how this package was made" section, from init's notes."""
    return "\n".join([f"## {MADE_HEADING}", "", *(f"- {line}" for line in lines)]) + "\n"


def tensor_table(tensors: Sequence[tuple[str, str, Sequence[int], str]]) -> list[str]:
    """Markdown rows for (name, dtype, shape, file); long tables end with a count."""
    out = ["| Tensor | dtype | Shape | File |", "|---|---|---|---|"]
    for name, dtype, shape, file in tensors[:_MAX_TENSOR_ROWS]:
        out.append(f"| {code(name)} | {dtype} | {list(shape)} | {code(file)} |")
    if len(tensors) > _MAX_TENSOR_ROWS:
        out.append(f"| … and {len(tensors) - _MAX_TENSOR_ROWS} more | | | |")
    return out


def code(text: str) -> str:
    """``text`` as an inline code span that cannot break out of its table cell or line."""
    safe = "".join(c if c.isprintable() else "?" for c in text).replace("`", "'").replace("|", "\\|")
    return f"`{safe.replace('<!--', '<!- -')}`"


def _body(text: str) -> str:
    lines = text.splitlines(keepends=True)
    if lines and lines[0].rstrip("\r\n") == "---":
        end = next((i for i in range(1, len(lines)) if lines[i].rstrip("\r\n") in ("---", "...")), None)
        if end is not None:
            return "".join(lines[end + 1 :])
    return text


__all__ = ["MADE_HEADING", "code", "complete", "made_section", "not_stated", "template", "tensor_table"]
