"""mpkg runtime: verify, load and serve immutable model packages.

The runtime carries the format itself (manifest, canonical encoding, archive
reading, verification) and never imports the builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from .errors import MpkgError
from .verify import Policy, VerificationResult, verify

if TYPE_CHECKING:
    from .model import Model, load


def __getattr__(name: str) -> Any:
    # `load` pulls in numpy/onnxruntime; keep `import mpkg` cheap for verify-only callers.
    if name in ("load", "Model"):
        from . import model

        return getattr(model, name)
    raise AttributeError(name)


__all__ = ["Model", "MpkgError", "Policy", "VerificationResult", "__version__", "load", "verify"]
