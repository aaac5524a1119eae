"""What the server needs from a loaded package, as a protocol.

The server is written against this protocol rather than a concrete class so it
can be exercised before (and independently of) ``mpkg._internal.load.model``; any object with
these attributes is servable.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol, runtime_checkable

import numpy as np

from mpkg._internal.contract.contract import Contract


@runtime_checkable
class ServableModel(Protocol):
    """A verified, loaded package the server can answer for."""

    name: str
    version: str
    digest: str  # "sha256:<hex>" of the package manifest
    contract: Contract

    def predict(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the model; raises ContractError naming the field for a contract violation."""
        ...

    def smoke_test(self) -> None:
        """Replay the stored example; raises MpkgError when outputs differ beyond tolerance."""
        ...


@runtime_checkable
class ArrowServable(Protocol):
    """Tabular packages additionally take Arrow tables (pyarrow is optional, so Any)."""

    def predict_arrow(self, batch: Any) -> Any:
        """pyarrow.RecordBatch | pyarrow.Table -> pyarrow.RecordBatch."""
        ...
