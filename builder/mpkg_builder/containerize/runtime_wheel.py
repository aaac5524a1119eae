"""The wheel of the mpkg runtime an image installs: the running ``mpkg``, without the builder.

What goes in, and where it comes from:

- the files: the ``mpkg`` package this process imported, i.e. the code that verified the
  package a moment ago (for a regular install, the files pip's RECORD lists; for an editable
  one, the checkout);
- the metadata (version, base dependencies, ``mpkg`` script): the installed distribution's, as
  pip recorded it, read with ``importlib.metadata``. When that install is an editable one
  (PEP 610 ``direct_url.json`` names its folder), the folder's ``pyproject.toml`` must still say
  the same version and dependencies, else the install is stale and containerize says to
  reinstall: the image must never get dependencies other than the code declares.

Why not the project's own build backend (``pip wheel``)? It would ship ``mpkg_builder`` into a
serving image, needs setuptools (and a download, with build isolation) where the image is
meant to build offline, builds in the source tree (a stale ``build/`` can leak deleted files),
and is not byte-for-byte reproducible. This wheel is: sorted entries, fixed times and modes,
and a RECORD of sha256 digests computed while writing.
"""

from __future__ import annotations

import base64
import hashlib
import json
import tomllib
import zipfile
from importlib import metadata
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

import mpkg
from mpkg.errors import MpkgError
from packaging.requirements import Requirement

DISTRIBUTION = "mpkg"
ZIP_EPOCH = (1980, 1, 1, 0, 0, 0)  # the earliest time a zip entry can hold


def build_runtime_wheel(dest: Path) -> Path:
    """A py3-none-any wheel of the running ``mpkg`` runtime alone, written into ``dest``."""
    meta = runtime_metadata()
    src = Path(mpkg.__file__).resolve().parent
    name, version = DISTRIBUTION, meta["version"]
    dist_info = f"{name}-{version}.dist-info"
    files: list[tuple[str, bytes]] = []
    for path in sorted(src.rglob("*")):
        if path.is_file() and "__pycache__" not in path.parts and path.suffix not in (".pyc", ".pyo"):
            files.append((path.relative_to(src.parent).as_posix(), path.read_bytes()))
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {name}",
        f"Version: {version}",
        f"Summary: {meta['summary']}",
        *([f"Requires-Python: {meta['requires_python']}"] if meta["requires_python"] else []),
        *(f"Requires-Dist: {d}" for d in meta["dependencies"]),
    ]
    files.append((f"{dist_info}/METADATA", ("\n".join(lines) + "\n").encode()))
    wheel_meta = "Wheel-Version: 1.0\nGenerator: mpkg-containerize\nRoot-Is-Purelib: true\nTag: py3-none-any\n"
    files.append((f"{dist_info}/WHEEL", wheel_meta.encode()))
    if meta["scripts"]:
        scripts = "".join(f"{k} = {v}\n" for k, v in sorted(meta["scripts"].items()))
        files.append((f"{dist_info}/entry_points.txt", f"[console_scripts]\n{scripts}".encode()))
    record = [f"{p},sha256={record_digest(d)},{len(d)}" for p, d in files]
    record.append(f"{dist_info}/RECORD,,")
    files.append((f"{dist_info}/RECORD", ("\n".join(record) + "\n").encode()))
    dest.mkdir(parents=True, exist_ok=True)
    out = dest / f"{name}-{version}-py3-none-any.whl"
    with zipfile.ZipFile(out, "w") as zf:
        for rel, data in files:
            zi = zipfile.ZipInfo(rel, date_time=ZIP_EPOCH)
            zi.external_attr = 0o100644 << 16
            zi.compress_type = zipfile.ZIP_DEFLATED
            zf.writestr(zi, data)
    return out


def record_digest(data: bytes) -> str:
    """A RECORD digest: urlsafe base64 of sha256, unpadded (the wheel spec's form)."""
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


def runtime_metadata() -> dict[str, Any]:
    """Version, summary, Requires-Python, base dependencies and scripts of the installed mpkg."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise MpkgError(
            f"cannot tell the mpkg runtime's version and dependencies: {mpkg.__file__} is not part of "
            "an installed mpkg distribution; install it with pip (pip install -e . in a checkout)"
        ) from None
    meta = {
        "version": dist.version,
        "summary": dist.metadata["Summary"] or "",
        "requires_python": dist.metadata["Requires-Python"],
        "dependencies": [r for r in dist.requires or [] if not _for_an_extra(r)],
        "scripts": {ep.name: ep.value for ep in dist.entry_points.select(group="console_scripts")},
    }
    _check_not_stale(dist, meta)
    return meta


def extra_requirements(extra: str) -> list[str]:
    """The installed mpkg's requirements for ``extra`` (e.g. ``registry``), markers dropped, so
    an image can carry them beside the runtime wheel (which declares no extras)."""
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise MpkgError(f"cannot read the mpkg[{extra}] requirements: mpkg is not installed with pip") from None
    out = []
    for text in dist.requires or []:
        req = Requirement(text)
        if req.marker is not None and req.marker.evaluate({"extra": extra}) and _for_an_extra(text):
            req.marker = None
            out.append(str(req))
    if not out:
        raise MpkgError(f"the installed mpkg declares no [{extra}] extra; reinstall it: pip install -e .")
    return out


def _for_an_extra(requirement: str) -> bool:
    marker = Requirement(requirement).marker
    return marker is not None and "extra" in str(marker)


def _check_not_stale(dist: metadata.Distribution, meta: dict[str, Any]) -> None:
    """An editable install's metadata is written once; its pyproject.toml may have moved on."""
    text = dist.read_text("direct_url.json")
    if not text:
        return
    try:
        direct = json.loads(text)
    except ValueError:
        return  # not PEP 610: nothing to compare with
    url = direct.get("url", "") if isinstance(direct, dict) else ""
    if not (isinstance(direct.get("dir_info"), dict) and direct["dir_info"].get("editable")):
        return
    pyproject = Path(unquote(urlparse(url).path)) / "pyproject.toml"
    if not url.startswith("file:") or not pyproject.is_file():
        return
    project = tomllib.loads(pyproject.read_text()).get("project", {})
    declared = (project.get("version"), [str(Requirement(r)) for r in project.get("dependencies", [])])
    installed = (meta["version"], [str(Requirement(r)) for r in meta["dependencies"]])
    if declared != installed:
        raise MpkgError(
            f"the installed mpkg {meta['version']} is older than {pyproject} (its version or dependencies "
            f"changed since `pip install -e`); reinstall it: pip install -e {pyproject.parent}"
        )


__all__ = ["DISTRIBUTION", "build_runtime_wheel", "extra_requirements", "record_digest", "runtime_metadata"]
