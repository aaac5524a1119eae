"""Artifact hashes from the package index, through pip itself (never a hand-written client).

``pip install --dry-run --no-deps --ignore-installed --report`` resolves each exact pin
against the index pip is configured with (index-url, extra-index-url, find-links, as the
user set them) and reports the artifact it would install here, with its URL and hash. The
hash is therefore for this Python and platform: a lock for another platform is made there.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit

from mpkg.errors import ProblemCollector, SourceError
from packaging.utils import canonicalize_name

_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_REPORT_MAX = 64 * 1024 * 1024
_PIP_TIMEOUT_S = 900


@dataclass(frozen=True)
class Artifact:
    """The file pip would install for one pin."""

    filename: str
    url: str
    sha256: str

    @property
    def is_wheel(self) -> bool:
        """Wheels and sdists are hashed alike; the summary tells them apart."""
        return self.filename.endswith(".whl")


def index_artifacts(pins: Sequence[tuple[str, str]], python: str = sys.executable) -> dict[str, Artifact]:
    """``{canonical name: Artifact}`` for every ``(name, version)``; SourceError naming each pin pip
    could not place, or the pip failure."""
    if not pins:
        return {}
    with tempfile.TemporaryDirectory(prefix="mpkg-lock-") as tmp:
        reqs = Path(tmp, "pins.txt")
        report = Path(tmp, "report.json")
        reqs.write_text("".join(f"{name}=={version}\n" for name, version in pins), encoding="utf-8")
        command = [python, "-m", "pip", "install", "--dry-run", "--ignore-installed", "--no-deps", "--quiet"]
        command += ["--prefer-binary", "--report", str(report), "-r", str(reqs)]
        env = {**os.environ, "PIP_DISABLE_PIP_VERSION_CHECK": "1", "PIP_NO_INPUT": "1"}
        try:
            done = subprocess.run(command, capture_output=True, text=True, env=env, timeout=_PIP_TIMEOUT_S, check=False)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise SourceError(f"pip could not be run for --hashes ({exc})", "mpkg lock --hashes") from None
        if done.returncode != 0:
            raise SourceError(_pip_failure(done.stderr), "mpkg lock --hashes")
        if not report.is_file() or report.stat().st_size > _REPORT_MAX:
            raise SourceError("pip wrote no usable --report", "mpkg lock --hashes")
        doc = json.loads(report.read_bytes())
    return _parse_report(doc, pins)


def _pip_failure(stderr: str) -> str:
    lines = [ln.strip() for ln in stderr.splitlines() if ln.strip() and "is ignored" not in ln]
    if any("No module named pip" in ln for ln in lines):
        return "needs pip in this Python environment (python -m pip)"
    errors = [ln for ln in lines if ln.startswith("ERROR:")]
    return f"pip could not resolve the pins on the index: {(errors or lines or ['no output'])[0]}"


def _parse_report(doc: object, pins: Sequence[tuple[str, str]]) -> dict[str, Artifact]:
    problems = ProblemCollector()
    wanted = {canonicalize_name(n): v for n, v in pins}
    found: dict[str, Artifact] = {}
    items = doc.get("install") if isinstance(doc, dict) else None
    for item in items if isinstance(items, list) else []:
        meta = item.get("metadata", {}) if isinstance(item, dict) else {}
        info = item.get("download_info", {}) if isinstance(item, dict) else {}
        name = canonicalize_name(str(meta.get("name", "")))
        url = info.get("url") if isinstance(info, dict) else None
        hashes = info.get("archive_info", {}).get("hashes", {}) if isinstance(info, dict) else {}
        if name not in wanted or not isinstance(url, str):
            continue
        if str(meta.get("version", "")) != wanted[name]:  # both as pip normalises them
            problems.add(name, f"pip chose version {meta.get('version')}, the lock pins {wanted[name]}")
            continue
        sha = hashes.get("sha256") if isinstance(hashes, dict) else None
        if not isinstance(sha, str) or not _SHA256.match(sha):
            problems.add(f"{name}=={wanted[name]}", f"the index gave no sha256 for {url}; use an index that does")
            continue
        if not url.isprintable() or any(c.isspace() for c in url):
            problems.add(f"{name}=={wanted[name]}", "the index gave an artifact URL with control characters")
            continue
        filename = unquote(urlsplit(url).path.rsplit("/", 1)[-1])
        found[name] = Artifact(filename=filename, url=url, sha256=sha)
    for name, version in sorted(wanted.items()):
        if name not in found and not any(p.where.startswith(name) for p in problems.problems):
            problems.add(f"{name}=={version}", "pip reported no artifact for this pin")
    problems.raise_if_any(SourceError)
    return found


__all__ = ["Artifact", "index_artifacts"]
