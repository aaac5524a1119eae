"""Package code's data files, for ``importlib.resources`` and ``pkgutil.get_data``.

A package's ``code/`` files are served from the verified bytes held in memory, as zipimport
serves files from inside a zip: ``importlib.resources.files(__package__) / "vocab.txt"``
reads them, ``as_file`` gives a temporary real file when a path is needed.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator, Mapping
from importlib.resources.abc import Traversable, TraversableResources
from typing import Any


class CodeFiles(Traversable):
    """A file or folder among a package's code files (``files``: relative path -> bytes)."""

    def __init__(self, files: Mapping[str, bytes], path: str = "") -> None:
        self._files = files
        self._path = path

    @property
    def name(self) -> str:
        """The last path component (Traversable API)."""
        return self._path.rpartition("/")[2]

    def read_bytes(self) -> bytes:
        """The file's verified bytes (Traversable API)."""
        with self.open("rb") as f:
            data: bytes = f.read()
        return data

    def read_text(self, encoding: str | None = None) -> str:
        """The file's verified text, UTF-8 unless told (Traversable API)."""
        return self.read_bytes().decode(encoding or "utf-8")

    def is_file(self) -> bool:
        """Whether this is one of the code files (Traversable API)."""
        return self._path in self._files

    def is_dir(self) -> bool:
        """Whether code files lie below this path (Traversable API)."""
        prefix = f"{self._path}/" if self._path else ""
        return any(p.startswith(prefix) for p in self._files) and not self.is_file()

    def iterdir(self) -> Iterator[CodeFiles]:
        """The entries directly below this path, sorted (Traversable API)."""
        prefix = f"{self._path}/" if self._path else ""
        children = sorted({p[len(prefix) :].split("/")[0] for p in self._files if p.startswith(prefix)})
        for child in children:
            yield CodeFiles(self._files, prefix + child)

    def joinpath(self, *descendants: str | os.PathLike[str]) -> CodeFiles:
        """A path below this one; never escapes the code files (Traversable API)."""
        parts = [p for d in descendants for p in os.fspath(d).split("/") if p not in ("", ".")]
        path = "/".join([self._path, *parts] if self._path else parts)
        return CodeFiles(self._files, path)

    def __truediv__(self, child: str) -> CodeFiles:  # type: ignore[override]
        return self.joinpath(child)

    def open(self, mode: str = "r", *args: Any, **kwargs: Any) -> Any:
        """Read-only access to the file's bytes; writing is refused (Traversable API)."""
        if mode not in ("r", "rb"):
            raise PermissionError(f"package code files are read-only: {self._path}")
        if not self.is_file():
            raise FileNotFoundError(f"no file {self._path!r} among the package's code files")
        data = io.BytesIO(self._files[self._path])
        return data if mode == "rb" else io.TextIOWrapper(data, *args, **kwargs)

    def __repr__(self) -> str:
        return f"<package code file {self._path or '.'}>"


class CodeResources(TraversableResources):
    """``importlib.resources`` reader over a package's code files held in memory."""

    def __init__(self, files: Mapping[str, bytes], folder: str) -> None:
        self._root = CodeFiles(files, folder)

    def files(self) -> CodeFiles:
        """The root of this package's files (TraversableResources API)."""
        return self._root


__all__ = ["CodeFiles", "CodeResources"]
