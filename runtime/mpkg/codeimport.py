"""Import a package's code from its verified bytes, in isolation.

Modules are created from the package's ``code/`` files (never from disk) under a private
top-level name per package, ``_mpkg_code_<digest12>``, and kept in a table owned by
:class:`PackageCode` — not in ``sys.modules``, not on ``sys.path``, and with no finder
left on ``sys.meta_path``. So two packages whose modules share a name load side by side,
and loading leaves the interpreter's import state as it was.

How imports inside the package resolve: every package module gets its own
``__builtins__`` whose ``__import__`` serves, from the package's table,
- relative imports (``from . import helpers``, ``from .util import f``), and
- absolute imports whose first component is one of the package's own top-level modules
  (``import helpers``, ``from helpers.util import f``), as a script run from its folder would;
everything else goes to the normal import system (numpy, the standard library, ...).
``importlib.import_module`` of a package module is not served (use an import statement).
Tracebacks show the package's source lines (the loader implements ``get_source``).
"""

from __future__ import annotations

import builtins
import importlib.machinery
import importlib.util
import itertools
import threading
from collections.abc import Mapping, Sequence
from types import ModuleType
from typing import Any

from .errors import FormatError, MpkgError

_counter = itertools.count()


def private_prefix(digest: str) -> str:
    """The private top-level package name for a package digest ("sha256:<hex>")."""
    hexpart = digest.partition(":")[2] or digest
    if len(hexpart) >= 12 and all(c in "0123456789abcdef" for c in hexpart[:12]):
        return f"_mpkg_code_{hexpart[:12]}"
    return f"_mpkg_code_src{next(_counter)}"


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


class PackageCode:
    """A package's code modules, importable only through this object."""

    def __init__(self, files: Mapping[str, bytes], prefix: str, label: str) -> None:
        """``files``: path relative to the code root -> bytes; ``label`` names the package in
        file names shown in tracebacks (e.g. "iris-mlp@1.0.0")."""
        self.prefix = prefix
        self.label = label
        self._files = dict(files)
        self._sources = _module_table(self._files)
        self._tops = {name.split(".")[0] for name in self._sources}
        self._modules: dict[str, ModuleType] = {}
        self._lock = threading.RLock()
        self._builtins: dict[str, Any] = dict(vars(builtins))
        self._builtins["__import__"] = self._import
        root = ModuleType(prefix, f"code of {label}")
        root.__path__ = []
        root.__package__ = prefix
        root.__spec__ = importlib.machinery.ModuleSpec(prefix, self, is_package=True)  # type: ignore[arg-type]
        self._root = root

    @property
    def modules(self) -> Mapping[str, ModuleType]:
        """Imported modules by their name inside the package (e.g. "pipeline")."""
        return {k[len(self.prefix) + 1 :]: v for k, v in self._modules.items()}

    def import_module(self, name: str) -> ModuleType:
        """Import ``name`` (as the package names it, e.g. "pipeline"); errors name the package."""
        if name not in self._sources:
            raise FormatError(f"code module {name!r} is not among the package's code files", "code.module")
        try:
            return self._load(f"{self.prefix}.{name}")
        except MpkgError:
            raise
        except BaseException as exc:
            if not isinstance(exc, Exception):
                raise
            raise MpkgError(
                f"importing {name!r} from the package code failed: {type(exc).__name__}: {exc}",
                f"{self.label}: code",
            ) from exc

    # --- loader protocol (used for module specs, tracebacks and inspect) ------------------

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        return None

    def exec_module(self, module: ModuleType) -> None:
        path, _ = self._sources[module.__name__[len(self.prefix) + 1 :]]
        if path:
            code = compile(self._files[path], self._filename(path), "exec", dont_inherit=True)
            exec(code, module.__dict__)

    def get_source(self, fullname: str) -> str | None:
        entry = self._sources.get(fullname[len(self.prefix) + 1 :])
        if entry is None or not entry[0]:
            return None
        return self._files[entry[0]].decode("utf-8", "replace")

    def is_package(self, fullname: str) -> bool:
        entry = self._sources.get(fullname[len(self.prefix) + 1 :])
        return bool(entry and entry[1])

    def _filename(self, path: str) -> str:
        return f"mpkg:{self.label}/code/{path}"

    # --- the import machinery -------------------------------------------------------------

    def _load(self, fullname: str) -> ModuleType:
        with self._lock:
            if fullname == self.prefix:
                return self._root
            module = self._modules.get(fullname)
            if module is not None:
                return module
            parent_name, _, last = fullname.rpartition(".")
            parent = self._load(parent_name)
            rel = fullname[len(self.prefix) + 1 :]
            entry = self._sources.get(rel)
            if entry is None:
                raise ModuleNotFoundError(f"No module named {rel!r} in the package code", name=rel)
            path, is_pkg = entry
            spec = importlib.machinery.ModuleSpec(
                fullname,
                self,  # type: ignore[arg-type]  # a loader by protocol
                origin=self._filename(path) if path else None,
                is_package=is_pkg,
            )
            if path:
                spec.has_location = True
            if is_pkg:
                spec.submodule_search_locations = []
            module = importlib.util.module_from_spec(spec)
            module.__dict__["__builtins__"] = self._builtins
            self._modules[fullname] = module
            try:
                self.exec_module(module)
            except BaseException:
                del self._modules[fullname]
                raise
            setattr(parent, last, module)
            return module

    def _import(
        self,
        name: str,
        globals: Mapping[str, Any] | None = None,
        locals: Mapping[str, Any] | None = None,
        fromlist: Sequence[str] | None = (),
        level: int = 0,
    ) -> ModuleType:
        if level > 0:
            package = (globals or {}).get("__package__") or ""
            if package != self.prefix and not package.startswith(self.prefix + "."):
                return builtins.__import__(name, globals, locals, fromlist or (), level)
            if package.count(".") - self.prefix.count(".") < level - 1:
                raise ImportError("attempted relative import beyond the package's code root")
            base = importlib.util.resolve_name("." * level + name, package)
            return self._from(self._load(base), fromlist)
        top = name.partition(".")[0]
        if top in self._tops:
            module = self._load(f"{self.prefix}.{name}")
            if fromlist:
                return self._from(module, fromlist)
            return self._load(f"{self.prefix}.{top}")
        return builtins.__import__(name, globals, locals, fromlist or (), level)

    def _from(self, module: ModuleType, fromlist: Sequence[str] | None) -> ModuleType:
        """``from module import a, b``: load submodules a, b when they are not attributes."""
        names = list(fromlist or ())
        if "*" in names:
            names = [n for n in getattr(module, "__all__", ()) if isinstance(n, str)]
        for item in names:
            sub = f"{module.__name__}.{item}"
            if not hasattr(module, item) and sub[len(self.prefix) + 1 :] in self._sources:
                self._load(sub)
        return module


__all__ = ["PackageCode", "private_prefix"]
