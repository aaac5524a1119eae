"""mpkg builder: validate sources, write and sign packages, diff them, ship them.

Depends on the runtime (:mod:`mpkg`) for the format; the runtime never imports this.
Importing it on a runtime-only install (no ``mpkg[builder]``) raises ModuleNotFoundError
naming the first missing dependency, before any work starts; `mpkg` turns that into one line
saying which extra to install.
"""

from __future__ import annotations

import importlib.util

from mpkg import __version__

# The `builder` extra of pyproject.toml, as import names (tests/builder/test_builder_extra.py keeps
# the two equal). Looked up, not imported: a safetensors build must not pay for onnx.
REQUIRES = ("onnx", "yaml", "httpx", "docker", "rich")


def _require_extra() -> None:
    """Fail at import, naming the module, rather than halfway through a command."""
    for name in REQUIRES:
        if importlib.util.find_spec(name) is None:
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)


_require_extra()

__all__ = ["REQUIRES", "__version__"]
