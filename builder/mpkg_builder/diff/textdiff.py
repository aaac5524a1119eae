"""What changed in the text of a card, code or lockfile finding: a bounded unified diff.

A reviewer should see the preprocessing fix or the new limitation without unpacking two
packages. Only small text members are read (never weights), each checked against its
manifest digest before it is shown; the diff is cut to :data:`MAX_DIFF_LINES` lines and
:data:`MAX_DIFF_BYTES` bytes, and control and bidirectional-override characters are shown
as escapes, so a hostile card cannot rewrite the reviewer's terminal.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import unicodedata

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.manifest import FileEntry, Manifest

from . import rules as R
from .report import DiffReport

MAX_TEXT_BYTES = 1024 * 1024  # larger members are not diffed
MAX_DIFF_LINES = 80
MAX_DIFF_BYTES = 8 * 1024
CONTEXT_LINES = 3
TEXT_RULES = frozenset({R.CARD_CHANGED, R.CODE_CHANGED, R.LOCKFILE_CHANGED})
# Reorder or hide text on a terminal (Trojan Source, CVE-2021-42574); shown escaped like controls.
_BIDI = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def escape_text(text: str) -> str:
    """Control characters (but newline and tab) and bidi overrides as ``\\xNN``/``\\uNNNN`` escapes."""
    if text.isprintable() and not (_BIDI & set(text)):
        return text
    out = []
    for ch in text:
        if ch in "\n\t" or (ch not in _BIDI and unicodedata.category(ch) not in ("Cc", "Cf", "Zl", "Zp")):
            out.append(ch)
        elif ord(ch) < 0x100:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(f"\\u{ord(ch):04x}")
    return "".join(out)


def unified(path: str, old: str | None, new: str | None) -> str:
    """A bounded unified diff of two texts (None: the file is absent on that side)."""
    lines = list(
        difflib.unified_diff(
            (old or "").splitlines(),
            (new or "").splitlines(),
            fromfile=f"old/{path}" if old is not None else "/dev/null",
            tofile=f"new/{path}" if new is not None else "/dev/null",
            lineterm="",
            n=CONTEXT_LINES,
        )
    )
    kept: list[str] = []
    size = 0
    for line in lines:
        line = escape_text(line)
        if len(kept) == MAX_DIFF_LINES or size + len(line.encode("utf-8")) + 1 > MAX_DIFF_BYTES:
            kept.append(f"... diff cut: {len(lines) - len(kept)} more lines")
            break
        kept.append(line)
        size += len(line.encode("utf-8")) + 1
    return "\n".join(kept)


def _text(pkg: PackageFile, entry: FileEntry | None, card: bool) -> tuple[str | None, str | None]:
    """(text, why not shown) of one member; None text for an absent file."""
    if entry is None:
        return None, None
    if entry.size > MAX_TEXT_BYTES:
        return None, f"{entry.path} is {entry.size} bytes, over the {MAX_TEXT_BYTES} byte limit for a text diff"
    member = pkg.by_name.get(entry.path)
    if member is None or member.size != entry.size:
        return None, f"{entry.path} is missing from the archive; run mpkg verify"
    data = pkg.read(member)
    if hash_bytes(data) != entry.digest:
        return None, f"{entry.path} does not match its manifest digest; run mpkg verify"
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return None, f"{entry.path} is not UTF-8 text"
    if card:
        from ..sources.card import split_packaged_card

        text = split_packaged_card(text)[0]  # the author's words; the generated facts have findings of their own
    return text, None


def with_text_diffs(
    report: DiffReport, old: str | os.PathLike[str], new: str | os.PathLike[str], manifests: tuple[Manifest, Manifest]
) -> DiffReport:
    """``report`` with a ``diff`` on each card, code and lockfile file finding."""
    wanted = [c for c in report.changes if c.rule in TEXT_RULES and c.subject.startswith("files.")]
    if not wanted:
        return report
    diffs: dict[int, str] = {}
    with PackageFile(old) as old_pkg, PackageFile(new) as new_pkg:
        for change in wanted:
            path = change.subject.removeprefix("files.")
            card = change.rule == R.CARD_CHANGED
            a, why_a = _text(old_pkg, manifests[0].file(path), card)
            b, why_b = _text(new_pkg, manifests[1].file(path), card)
            why = why_a or why_b
            if why is None and a == b:
                why = "the author's text is the same" if card else "the texts are the same"
            diffs[id(change)] = f"(no text diff: {why})" if why else unified(path, a, b)
    changes = tuple(dataclasses.replace(c, diff=diffs[id(c)]) if id(c) in diffs else c for c in report.changes)
    return dataclasses.replace(report, changes=changes)


__all__ = ["MAX_DIFF_BYTES", "MAX_DIFF_LINES", "TEXT_RULES", "escape_text", "unified", "with_text_diffs"]
