"""Import a package's code from its verified bytes, as Python would import it, kept apart.

Modules are made from the package's ``code/`` files (never from disk) under a private
top-level package per loaded package, ``_mpkg_code_<digest12>`` (``_2``, ``_3`` ... when the
same package is loaded twice at once). While the package is loaded these private names are in
``sys.modules``, so code that expects its module to be importable behaves as usual:
``@dataclass`` with ``from __future__ import annotations``, ``typing.get_type_hints``,
``pickle`` of the package's own classes, ``inspect``, ``importlib.import_module`` of its own
private names. Nothing is added to ``sys.path``; the one finder added to ``sys.meta_path``
(while any package code is loaded) answers for these private names only. :meth:`close`
removes them. Another package's ``import helpers`` never sees this package's ``helpers``.

How imports inside the package resolve: every package module gets its own ``__builtins__``
whose ``__import__`` serves, from the package's files,
- relative imports (``from . import helpers``, ``from .util import f``), and
- absolute imports whose first component is one of the package's own top-level modules
  (``import helpers``, ``from helpers.util import f``), as a script run from its folder would;
everything else goes to the normal import system, except that the current directory is never
searched (as with ``python -P``): a ``numpy.py`` or ``helpers.py`` in the folder a server or a
script runs from is not imported into package code.

``__file__`` is ``<package file>/code/<path>`` (zipimport's convention for code inside an
archive); ``importlib.resources.files(__package__)`` and ``pkgutil.get_data`` read the
package's code files from memory; tracebacks show the package's source lines.
"""

from __future__ import annotations

import builtins
import contextlib
import errno
import importlib
import importlib.machinery
import importlib.util
import itertools
import os
import sys
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from mpkg._internal.load.coderesources import CodeResources
from mpkg.errors import FormatError, MpkgError

PREFIX = "_mpkg_code_"
_counter = itertools.count()
_state = threading.RLock()
_live: dict[str, PackageCode] = {}


def private_prefix(digest: str) -> str:
    """The private top-level package name for a package digest ("sha256:<hex>")."""
    hexpart = digest.partition(":")[2] or digest
    if len(hexpart) >= 12 and all(c in "0123456789abcdef" for c in hexpart[:12]):
        return f"{PREFIX}{hexpart[:12]}"
    return f"{PREFIX}src{next(_counter)}"


def _module_table(files: Mapping[str, bytes]) -> dict[str, tuple[str, bool]]:
    """module name -> (file path, is_package) for every importable .py file; folders of
    modules without an __init__.py are namespace packages (path "")."""
    table: dict[str, tuple[str, bool]] = {}
    for path in sorted(files):
        if not path.endswith(".py"):
            continue
        parts = path[:-3].split("/")
        if not all(p.isidentifier() for p in parts):
            continue
        if parts[-1] == "__init__":
            if len(parts) > 1:
                table[".".join(parts[:-1])] = (path, True)
        else:
            table[".".join(parts)] = (path, False)
        for i in range(1, len(parts)):
            table.setdefault(".".join(parts[:i]), ("", True))
    return table


class _PrivateFinder:
    """On sys.meta_path while package code is loaded; finds the live private names only."""

    @staticmethod
    def find_spec(fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        if not fullname.startswith(PREFIX):
            return None
        code = _live.get(fullname.partition(".")[0])
        return code.find_spec(fullname) if code is not None else None


class PackageCode:
    """A package's code modules, importable under a private name while it is open."""

    def __init__(self, files: Mapping[str, bytes], prefix: str, label: str, location: str | None = None) -> None:
        """``files``: path relative to the code root -> bytes; ``prefix``: the private name
        wanted (a suffix is added when it is taken); ``label`` names the package in messages
        (e.g. "iris-mlp@1.0.0"); ``location``: where the files appear to be, for ``__file__``
        and tracebacks (the package file's ``code`` folder; default ``<label>/code``)."""
        self.label = label
        self.location = (location or f"{label}/code").rstrip("/")
        self._files = dict(files)
        self._sources = _module_table(self._files)
        self._tops = {name.split(".")[0] for name in self._sources}
        self._builtins: dict[str, Any] = dict(vars(builtins))
        self._builtins["__import__"] = self._import
        with _state:
            self.prefix = _free_name(prefix)
            root = ModuleType(self.prefix, f"code of {label}")
            root.__spec__ = importlib.machinery.ModuleSpec(self.prefix, self, is_package=True)  # type: ignore[arg-type]
            root.__spec__.submodule_search_locations = []
            root.__path__ = []
            root.__package__ = self.prefix
            root.__loader__ = self  # type: ignore[assignment]
            root.__file__ = f"{self.location}/__init__.py"
            sys.modules[self.prefix] = root
            if not _live:
                sys.meta_path.append(_PrivateFinder)
            _live[self.prefix] = self

    @property
    def modules(self) -> Mapping[str, ModuleType]:
        """Imported modules by their name inside the package (e.g. "pipeline")."""
        start = self.prefix + "."
        return {k[len(start) :]: v for k, v in list(sys.modules.items()) if k.startswith(start) and self._owns(v)}

    def import_module(self, name: str) -> ModuleType:
        """Import ``name`` (as the package names it, e.g. "pipeline"); errors name the package."""
        if name not in self._sources:
            raise FormatError(f"code module {name!r} is not among the package's code files", "code.module")
        if self.prefix not in _live:
            raise MpkgError("the package code was closed", f"{self.label}: code")
        try:
            return importlib.import_module(f"{self.prefix}.{name}")
        except MpkgError:
            raise
        except Exception as exc:
            raise MpkgError(
                f"importing {name!r} from the package code failed: {type(exc).__name__}: {exc}",
                f"{self.label}: code",
            ) from exc

    def close(self) -> None:
        """Remove the package's modules from sys.modules (objects still referenced live on)."""
        with _state:
            if _live.get(self.prefix) is not self:
                return
            for name in [n for n in sys.modules if n == self.prefix or n.startswith(self.prefix + ".")]:
                if self._owns(sys.modules.get(name)):
                    del sys.modules[name]
            del _live[self.prefix]
            if not _live:
                with contextlib.suppress(ValueError):
                    sys.meta_path.remove(_PrivateFinder)

    def _owns(self, module: object) -> bool:
        return getattr(getattr(module, "__spec__", None), "loader", None) is self

    # --- the loader protocol (specs, exec, source, data, resources) ----------------------

    def find_spec(self, fullname: str) -> importlib.machinery.ModuleSpec | None:
        """Find a module of this package's code under its private prefix (importlib finder API)."""
        entry = self._sources.get(fullname[len(self.prefix) + 1 :]) if fullname.startswith(self.prefix + ".") else None
        if entry is None:
            return None
        path, is_pkg = entry
        spec = importlib.machinery.ModuleSpec(
            fullname,
            self,  # type: ignore[arg-type]  # a loader by protocol
            origin=self._filename(path) if path else None,
            is_package=is_pkg,
        )
        spec.has_location = bool(path)
        if is_pkg:
            spec.submodule_search_locations = []
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        """Default module creation (importlib loader API)."""
        return None

    def exec_module(self, module: ModuleType) -> None:
        """Run a module's verified bytes, never a file on disk (importlib loader API)."""
        module.__dict__["__builtins__"] = self._builtins
        path, _ = self._sources[module.__name__[len(self.prefix) + 1 :]]
        if path:
            code = compile(self._files[path], self._filename(path), "exec", dont_inherit=True)
            exec(code, module.__dict__)

    def get_source(self, fullname: str) -> str | None:
        """The module's source, for tracebacks and inspect (importlib loader API)."""
        entry = self._sources.get(fullname[len(self.prefix) + 1 :])
        if entry is None or not entry[0]:
            return None
        return self._files[entry[0]].decode("utf-8", "replace")

    def is_package(self, fullname: str) -> bool:
        """Whether the name is a package of the code (importlib loader API)."""
        if fullname == self.prefix:
            return True
        entry = self._sources.get(fullname[len(self.prefix) + 1 :])
        return bool(entry and entry[1])

    def get_filename(self, fullname: str) -> str:
        """The package-relative file name tracebacks show (importlib loader API)."""
        entry = self._sources.get(fullname[len(self.prefix) + 1 :])
        if entry is None or not entry[0]:
            raise ImportError(f"{fullname} has no file", name=fullname)
        return self._filename(entry[0])

    def get_data(self, path: str) -> bytes:
        """A code file's bytes by its ``__file__``-style path (``pkgutil.get_data``)."""
        rel = str(path)[len(self.location) + 1 :] if str(path).startswith(self.location + "/") else None
        if rel is None or rel not in self._files:
            raise OSError(errno.ENOENT, "not among the package's code files", str(path))
        return self._files[rel]

    def get_resource_reader(self, fullname: str) -> CodeResources | None:
        """``importlib.resources`` over the verified code files, not the disk."""
        if not self.is_package(fullname):
            return None
        folder = fullname[len(self.prefix) + 1 :].replace(".", "/") if fullname != self.prefix else ""
        return CodeResources(self._files, folder)

    def _filename(self, path: str) -> str:
        return f"{self.location}/{path}"

    # --- imports made by package code ------------------------------------------------------

    def _import(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        if level == 0 and name.partition(".")[0] in self._tops:  # the package's own module by its short name
            full = f"{self.prefix}.{name}"
            module = builtins.__import__(full, globals, locals, fromlist or (), 0)
            return module if fromlist else sys.modules[f"{self.prefix}.{name.partition('.')[0]}"]
        if level == 0:
            _avoid_current_directory(name.partition(".")[0])
        return builtins.__import__(name, globals, locals, fromlist or (), level)


def _free_name(wanted: str) -> str:
    name, n = wanted, 1
    while name in sys.modules or name in _live:
        n += 1
        name = f"{wanted}_{n}"
    return name


# --- the current directory is never searched for package code's imports ---------------------

_outside_lock = threading.Lock()


def _current_directory_entries() -> list[str]:
    cwd = os.path.realpath(os.getcwd())
    return [p for p in sys.path if p in ("", ".") or os.path.realpath(p) == cwd]


def _avoid_current_directory(top: str) -> None:
    """Before package code imports top-level module ``top`` for the first time: if the normal
    search would take it from the current directory, import it from the rest of sys.path."""
    if top in sys.modules or top.startswith(PREFIX):
        return
    unsafe = _current_directory_entries()
    if not unsafe:
        return
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError):
        return
    if spec is None or not _in_current_directory(spec):
        return
    safe_path = [p for p in sys.path if p not in unsafe]
    safe = importlib.machinery.PathFinder.find_spec(top, safe_path)
    if safe is None or safe.loader is None:
        raise ModuleNotFoundError(
            f"No module named {top!r} (package code never imports from the current directory)", name=top
        )
    with _outside_lock:
        if top in sys.modules:
            return
        module = importlib.util.module_from_spec(safe)
        sys.modules[top] = module
        try:
            safe.loader.exec_module(module)
        except BaseException:
            sys.modules.pop(top, None)
            raise


def _in_current_directory(spec: importlib.machinery.ModuleSpec) -> bool:
    """Whether a top-level module comes from the current directory: a module file or a
    package folder (or a namespace package portion) directly inside it."""
    if spec.submodule_search_locations:
        places = list(spec.submodule_search_locations)
    elif spec.origin and spec.has_location:
        places = [spec.origin]
    else:
        return False
    cwd = os.path.realpath(os.getcwd())
    return any(os.path.realpath(os.path.dirname(p)) == cwd for p in places)


__all__ = ["PREFIX", "PackageCode", "private_prefix"]
