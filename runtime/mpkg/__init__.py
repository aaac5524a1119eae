"""mpkg runtime: verify, load and serve immutable model packages.

The runtime carries the format itself (manifest, canonical encoding, archive
reading, verification) and never imports the builder.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

from mpkg._internal.trust.verify import Policy, VerificationResult, verify

from .errors import MpkgError

if TYPE_CHECKING:
    from mpkg._internal.load.model import Model, load


def __getattr__(name: str) -> Any:
    # `load` pulls in numpy/onnxruntime; keep `import mpkg` cheap for verify-only callers.
    if name in ("load", "Model"):
        from mpkg._internal.load import model

        return getattr(model, name)
    raise AttributeError(name)


__all__ = ["Model", "MpkgError", "Policy", "VerificationResult", "__version__", "load", "verify"]
