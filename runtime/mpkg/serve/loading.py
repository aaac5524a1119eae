"""Loading the served packages: verify, load and smoke-test each, then build the ModelSet.

Runs in each worker, after its socket answers (so liveness is 200 while this runs).
"""

from __future__ import annotations

from collections.abc import Sequence

from mpkg.errors import MpkgError

from .options import ServeOptions
from .registry import ModelSet
from .types import ServableModel


def load_models(options: ServeOptions, worker: int = 0) -> ModelSet:
    """Load every package, smoke-test each, and validate the split settings."""
    models = [load_package(options, path) for path in options.packages]
    seed = None if options.split_seed is None else options.split_seed + worker
    return ModelSet(models, options.splits, seed=seed, server_version=mpkg_version(), split_key=options.split_key)


def load_package(options: ServeOptions, path: str) -> ServableModel:
    """Load one package under the server's policy and smoke-test it; MpkgError says why not."""
    loader = options.loader or _default_loader
    if options.isolate and options.loader is None:
        from .isolate import RemoteModel

        def loader(path: str, keys: Sequence[str], allow_unsigned: bool) -> ServableModel:
            return RemoteModel(path, keys, allow_unsigned, options.limits.max_inflight)

    try:
        model = loader(path, options.keys, options.allow_unsigned)
    except MpkgError as exc:
        raise type(exc)(f"cannot serve: {'; '.join(exc.reasons())}", path) from None
    except Exception as exc:
        raise MpkgError(f"cannot load ({type(exc).__name__}: {one_line(exc)})", path) from None
    try:
        model.smoke_test()
    except Exception as exc:
        close = getattr(model, "close", None)
        if callable(close):
            close()
        if isinstance(exc, MpkgError):
            raise MpkgError(f"smoke test failed, refusing to serve: {'; '.join(exc.reasons())}", path) from None
        raise MpkgError(
            f"smoke test crashed ({type(exc).__name__}: {one_line(exc)}); refusing to serve", path
        ) from None
    return model


def _default_loader(path: str, keys: Sequence[str], allow_unsigned: bool) -> ServableModel:
    from .._internal.load.model import load  # lazily: onnxruntime loads in the worker, after the socket is open
    from .._internal.trust.verify import policy_for

    return load(path, policy_for(keys, allow_unsigned=allow_unsigned))


def mpkg_version() -> str:
    """The running mpkg's version, for ``GET /v2`` (``mpkg.__version__``: no importlib.metadata at start)."""
    import mpkg

    return str(mpkg.__version__)


def one_line(exc: BaseException) -> str:
    """An exception's text on one line, for one-line refusals and log lines."""
    return " ".join(str(exc).split())
