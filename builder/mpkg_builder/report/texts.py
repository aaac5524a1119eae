"""Bounded unified diffs of the text files a reviewer reads: card, code and lockfile.

A finding may already carry its text diff (the diff engine's JSON form, ``text_diff``); for
the others the two packages' files are read here. Only small files are read, each checked
against its manifest digest first, and the diff is cut at a fixed number of lines, so two
hostile packages cannot make the report large or slow.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.manifest import ROLE_ROOT, Manifest

TEXT_ROLES = ("card", "code", "environment")
MAX_TEXT_BYTES = 256 * 1024  # per side; larger files are named, not diffed
MAX_DIFF_LINES = 600
MAX_LINE_CHARS = 400
ROLE_TITLES = {"card": "Model card", "code": "Code", "environment": "Lockfile"}


@dataclass(frozen=True)
class TextDiff:
    """A unified diff of one text member, or why there is none."""

    path: str
    role: str
    lines: tuple[tuple[str, str], ...]  # (kind, text); kind: file, hunk, add, del, ctx
    truncated: bool = False
    note: str = ""  # why there are no lines (binary, too large, digest mismatch)

    @property
    def title(self) -> str:
        """The heading for this member, from its role."""
        return ROLE_TITLES.get(self.role, self.role)


def classify(lines: Iterable[str]) -> tuple[tuple[tuple[str, str], ...], bool]:
    """Unified-diff lines with their kinds, cut at :data:`MAX_DIFF_LINES`."""
    out: list[tuple[str, str]] = []
    for line in lines:
        if len(out) >= MAX_DIFF_LINES:
            return tuple(out), True
        text = line.rstrip("\n")
        if len(text) > MAX_LINE_CHARS:
            text = text[:MAX_LINE_CHARS] + " …"
        if text.startswith(("+++", "---")):
            kind = "file"
        elif text.startswith("@@"):
            kind = "hunk"
        elif text.startswith("+"):
            kind = "add"
        elif text.startswith("-"):
            kind = "del"
        else:
            kind = "ctx"
        out.append((kind, text))
    return tuple(out), False


def _read_text(pkg: PackageFile, manifest: Manifest, path: str) -> tuple[list[str] | None, str]:
    entry = manifest.file(path)
    if entry is None:
        return [], ""
    member = pkg.by_name.get(entry.member_name)
    if member is None or member.size != entry.size:
        return None, f"{path} is missing from {pkg.where}"
    if entry.size > MAX_TEXT_BYTES:
        return None, f"{path} is {entry.size} bytes, over the {MAX_TEXT_BYTES} byte limit for a text diff"
    data = pkg.read(member)
    if hash_bytes(data) != entry.digest:
        return None, f"{path} in {pkg.where} does not match its digest (modified or corrupted)"
    try:
        return data.decode("utf-8").splitlines(), ""
    except UnicodeDecodeError:
        return None, f"{path} is not UTF-8 text; its digest changed"


def file_diffs(old: str | os.PathLike[str], new: str | os.PathLike[str], skip: Iterable[str] = ()) -> list[TextDiff]:
    """Diffs of every card, code and lockfile whose digest differs between two packages."""
    skipped = set(skip)
    out: list[TextDiff] = []
    with PackageFile(old) as a, PackageFile(new) as b:
        ma, mb = Manifest.from_bytes(a.manifest_bytes), Manifest.from_bytes(b.manifest_bytes)
        fa = {f.path: f for f in ma.files if f.role in TEXT_ROLES}
        fb = {f.path: f for f in mb.files if f.role in TEXT_ROLES}
        for path in sorted(set(fa) | set(fb)):
            ea, eb = fa.get(path), fb.get(path)
            if path in skipped or (ea and eb and ea.digest == eb.digest):
                continue
            role = (eb or ea).role  # type: ignore[union-attr]
            left, why_a = _read_text(a, ma, path)
            right, why_b = _read_text(b, mb, path)
            if left is None or right is None:
                out.append(TextDiff(path, role, (), note=why_a or why_b))
                continue
            lines = difflib.unified_diff(left, right, f"{ma.version}/{path}", f"{mb.version}/{path}", n=3, lineterm="")
            classified, truncated = classify(lines)
            out.append(TextDiff(path, role, classified, truncated))
    return out


def from_findings(changes: Sequence[Mapping[str, object]]) -> list[TextDiff]:
    """Text diffs the diff engine attached to its findings (``text_diff`` in their JSON form)."""
    out = []
    for change in changes:
        text = change.get("text_diff")
        subject = str(change.get("subject", ""))
        if isinstance(text, list):
            text = "\n".join(str(t) for t in text)
        if not isinstance(text, str) or not text or not subject.startswith("files."):
            continue
        path = subject.removeprefix("files.")
        role = next((r for r in TEXT_ROLES if path.startswith(ROLE_ROOT[r] + "/")), "code")
        classified, truncated = classify(text.splitlines())
        out.append(TextDiff(path, role, classified, truncated))
    return out


__all__ = ["MAX_DIFF_LINES", "MAX_TEXT_BYTES", "TextDiff", "classify", "file_diffs", "from_findings"]
