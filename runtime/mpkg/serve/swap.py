"""Replacing a served package while serving: the one swap path (spec/runtime.md §9).

Two things ask for a swap: a new file renamed over a served path (watch.py) and a followed
registry tag that moved (follow.py). Both end here, as ``Swapper.submit(position, path)``:

1. Off the event loop, on the swapper's one thread (swaps happen one at a time): load the
   candidate under the server's trust policy (verification), check it may take the place
   (same model name; its version not served by another package; every ``--split`` still
   finds its versions) and run its smoke test.
2. On the event loop, in one step: give it a runner and put the new model set in place.
   Requests route when they arrive, so from that moment new requests go to the new
   package while calls already admitted finish on the old one with the old runner.
3. The old package is retired once its runner has no call left: its threads end, its
   file is closed and its map released.

A candidate that fails anything is never installed: the old package keeps answering, one
``ERROR`` line says why and ``mpkg_model_swap_failures_total`` counts it. No request is
refused or fails because of a swap.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import gc
import itertools
import threading
from collections.abc import Callable
from dataclasses import dataclass

from mpkg.errors import MpkgError

from .app import ServerState
from .registry import ModelEntry, ModelSet
from .runner import ModelRunner
from .types import ServableModel
from .watch import PackageWatch

RETIRE_POLL = 0.01  # seconds between checks that a swapped-out package has no call left


@dataclass(frozen=True)
class SwapResult:
    """What one swap attempt did: ``swapped``, ``unchanged`` (same digest) or ``refused``."""

    outcome: str
    name: str
    version: str  # the version answering after the attempt
    digest: str  # the digest answering after the attempt
    reason: str = ""


class Swapper:
    """Swaps packages into a running server; ``submit`` may be called from any thread."""

    def __init__(
        self,
        state: ServerState,
        load: Callable[[str], ServableModel],
        loop: asyncio.AbstractEventLoop,
        watch: PackageWatch | None = None,
        worker: int = 0,
    ) -> None:
        self._state = state
        self._load = load  # verifies under the server's policy and smoke-tests (server.load_package)
        self._loop = loop
        self._watch = watch
        self._worker = worker
        models = state.models
        assert models is not None, "swaps start once the first packages are installed"
        self._indexes = itertools.count(max(e.index for e in models.entries) + 1)
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="mpkg-swap")

    def set_watch(self, watch: PackageWatch) -> None:
        """Watch every package swapped in from now on (the server's package watch)."""
        self._watch = watch

    def submit(
        self, position: int, path: str, origin: str, expected_digest: str | None = None
    ) -> concurrent.futures.Future[SwapResult]:
        """Try ``path`` in place of the package at ``position`` (package argument order);
        ``origin`` names what asked, for the log; ``expected_digest`` must match when given."""
        return self._pool.submit(self._attempt, position, path, origin, expected_digest)

    def close(self) -> None:
        """Finish the attempt in progress and take no more."""
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _attempt(self, position: int, path: str, origin: str, expected_digest: str | None) -> SwapResult:
        state = self._state
        assert state.models is not None
        old = state.models.entries[position]
        if expected_digest is not None and expected_digest == old.digest:
            return SwapResult("unchanged", old.name, old.version, old.digest)
        try:
            model = self._load(path)
        except MpkgError as exc:
            return self._refused(old, origin, "; ".join(exc.reasons()))
        except Exception as exc:  # the loader's own bug: still never worth a failed request
            return self._refused(old, origin, f"{type(exc).__name__}: {exc}")
        try:
            new_set = self._check(old, position, model, expected_digest)
        except MpkgError as exc:
            _close(model)
            return self._refused(old, origin, "; ".join(exc.reasons()))
        if new_set is None:
            _close(model)
            return SwapResult("unchanged", old.name, old.version, old.digest)
        done: concurrent.futures.Future[ModelEntry] = concurrent.futures.Future()
        try:
            self._loop.call_soon_threadsafe(self._install, new_set, position, old, path, origin, done)
        except RuntimeError:  # the loop closed: the server is stopping
            _close(model)
            return self._refused(old, origin, "the server is stopping")
        while True:
            try:
                new = done.result(timeout=1.0)
            except concurrent.futures.TimeoutError:
                if self._loop.is_running():
                    continue
                _close(model)  # the loop stopped before installing it: the server is stopping
                return self._refused(old, origin, "the server is stopping")
            return SwapResult("swapped", new.name, new.version, new.digest)

    def _check(
        self, old: ModelEntry, position: int, model: ServableModel, expected_digest: str | None
    ) -> ModelSet | None:
        """The model set with ``model`` in place, None when it is the package already served."""
        if model.digest == old.digest:
            return None
        if expected_digest is not None and model.digest != expected_digest:
            raise MpkgError(f"is {model.digest}, not {expected_digest} that the reference named; not swapped in")
        if model.name != old.name:
            raise MpkgError(f"is model {model.name!r}, not {old.name!r} served here; a swap keeps the model name")
        state = self._state
        assert state.models is not None and state.metrics is not None
        slot = state.metrics.slot(ModelSet([model]).entries[0].labels)
        return state.models.replace(position, model, next(self._indexes), slot)

    def _install(
        self,
        new_set: ModelSet,
        position: int,
        old: ModelEntry,
        path: str,
        origin: str,
        done: concurrent.futures.Future[ModelEntry],
    ) -> None:
        """On the event loop: the new set in one assignment; the old package retires later."""
        state = self._state
        metrics = state.metrics
        assert metrics is not None
        new = new_set.entries[position]
        limits = state.limits
        state.runners[new.index] = ModelRunner(new.name, limits.max_inflight, limits.max_queue)
        state.models = new_set
        metrics.set_answering(new.slot, True)
        metrics.set_answering(old.slot, False)
        metrics.count("swaps", new.name)
        state.log.event(
            "info",
            f"swapped {new.name} {old.version} -> {new.version} ({origin})",
            digest=new.digest,
            previous=old.digest,
            worker=self._worker,
        )
        if self._watch is not None:
            self._watch.remove(old.index)
            package_fd = getattr(new.model, "package_fd", None)
            fd = package_fd() if callable(package_fd) else None
            if fd is not None:
                self._watch.add(new.index, path, fd)
        done.set_result(new)
        self._loop.create_task(self._retire(old))

    async def _retire(self, old: ModelEntry) -> None:
        """Close the swapped-out package once no admitted call can still use it."""
        state = self._state
        runner = state.runners.get(old.index)
        while runner is not None and runner.pending:
            await asyncio.sleep(RETIRE_POLL)
        state.runners.pop(old.index, None)
        if runner is not None:
            runner.close()
        # closing drops an onnxruntime session and unmaps weights: not on the loop
        threading.Thread(target=_release, args=(old.model,), name="mpkg-retire", daemon=True).start()

    def refuse(self, position: int, origin: str, reason: str) -> SwapResult:
        """Record a candidate refused before it reached the swapper (it failed to fetch verified)."""
        models = self._state.models
        assert models is not None
        return self._refused(models.entries[position], origin, reason)

    def _refused(self, old: ModelEntry, origin: str, reason: str) -> SwapResult:
        state = self._state
        state.log.event(
            "error",
            f"swap refused ({origin}): {' '.join(reason.split())}; still serving {old.name} {old.version}",
            digest=old.digest,
            worker=self._worker,
        )
        if state.metrics is not None:
            state.metrics.count("swap_failures", old.name)
        return SwapResult("refused", old.name, old.version, old.digest, reason)


def _release(model: object) -> None:
    """Close a retired package and give its memory and file back.

    The server freezes what it loaded at start out of the cyclic collector's reach (server.py),
    so the first package's reference cycles would never be collected, its map never closed.
    One full collection per swap (tens of ms, on this thread) frees them; freezing again keeps
    the package swapped in out of every later collection, as the first one was.
    """
    _close(model)
    del model
    gc.unfreeze()
    gc.collect()
    gc.freeze()


def _close(model: object) -> None:
    close = getattr(model, "close", None)
    if callable(close):
        with contextlib.suppress(Exception):  # a package's close failing must not stop the server
            close()
