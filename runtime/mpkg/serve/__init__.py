"""``mpkg serve``: the Open Inference Protocol (KServe V2) inference server.

Names are imported lazily so ``import mpkg.serve.cli`` (done by the top-level
CLI on every invocation) does not pull in uvicorn, numpy or onnxruntime.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .app import App, ServerState
    from .metrics import Metrics
    from .registry import ModelSet
    from .server import ServeOptions, bind, load_models, run, serve
    from .splits import Split, SplitKey, parse_split, parse_split_key
    from .types import ArrowServable, ServableModel

_EXPORTS = {
    "App": "app",
    "ServerState": "app",
    "Metrics": "metrics",
    "ModelSet": "registry",
    "Split": "splits",
    "SplitKey": "splits",
    "parse_split": "splits",
    "parse_split_key": "splits",
    "ServeOptions": "server",
    "bind": "server",
    "load_models": "server",
    "run": "server",
    "serve": "server",
    "ArrowServable": "types",
    "ServableModel": "types",
}
__all__ = [
    "App",
    "ArrowServable",
    "Metrics",
    "ModelSet",
    "ServableModel",
    "ServeOptions",
    "ServerState",
    "Split",
    "SplitKey",
    "bind",
    "load_models",
    "parse_split",
    "parse_split_key",
    "run",
    "serve",
]


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'mpkg.serve' has no attribute {name!r}")
    return getattr(importlib.import_module(f".{module}", __name__), name)
