"""One serving process: uvicorn (uvloop + httptools) on the shared socket, background
loading, the package watch, and a readiness-first drain on SIGTERM.

- Each worker loads and smoke-tests the packages itself *after* it starts
  answering, so ``/v2/health/live`` is 200 and ``/v2/health/ready`` is 503
  while loading; a failed load or smoke test stops the whole server (exit 1).
- SIGTERM turns readiness false and refuses new inferences with 503, waits
  for in-flight requests (at most ``drain_timeout``), then exits 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import functools
import gc
import signal
import socket
import sys
import threading
import time
from collections.abc import Callable
from types import FrameType
from typing import Any

import uvicorn

from mpkg.errors import MpkgError

from .app import App, ServerState
from .follow import start_followers
from .http import protocol_for
from .limits import raise_open_files
from .loading import load_models, load_package, one_line
from .logs import Log
from .metrics import Metrics
from .options import ServeOptions
from .registry import ModelSet
from .swap import Swapper
from .watch import PackageWatch, ignore_lease_signals

SWITCH_INTERVAL = 0.001  # seconds; CPython's default is 0.005


class WorkerServer(uvicorn.Server):
    """uvicorn.Server with background loading and a readiness-first drain on SIGTERM."""

    def __init__(
        self,
        config: uvicorn.Config,
        state: ServerState,
        options: ServeOptions,
        worker: int,
        metrics_path: str | None,
    ) -> None:
        super().__init__(config)
        self.state = state
        self.options = options
        self.worker = worker
        self.metrics_path = metrics_path
        self.failure: MpkgError | None = None
        self.watch: PackageWatch | None = None
        self.swapper: Swapper | None = None
        self._drain_deadline = 0.0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        """Start answering, then load the packages on a thread (liveness before readiness)."""
        await super().startup(sockets=sockets)
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._load, args=(loop,), name="mpkg-load", daemon=True).start()

    def _load(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            models = load_models(self.options, self.worker)
            entries = models.entries
            metrics = Metrics(
                [e.labels for e in entries],
                self.metrics_path,
                self.worker,
                self.options.workers,
                [e.name for e in entries],
            )
            if metrics.initial != tuple(e.slot for e in entries):
                raise MpkgError(f"metrics slots {metrics.initial} disagree with the packages; restart the server")
            if any(e.arrow for e in models.entries):
                with contextlib.suppress(ImportError):
                    import pyarrow.ipc  # noqa: F401  # warm the import off the request path
            # Everything loaded so far lives as long as the server: move it out of the cyclic
            # collector's reach, or each full collection walks it all (~30 ms, a p99 spike).
            # (The CLI turns the collector off for startup; it is back on from here.)
            gc.freeze()
            gc.enable()
        except MpkgError as exc:
            gc.enable()
            self._call(loop, self._fail, exc)
            return
        except Exception as exc:
            gc.enable()
            self._call(loop, self._fail, MpkgError(f"cannot start: {type(exc).__name__}: {one_line(exc)}"))
            return
        self._call(loop, self._ready, models, metrics)

    @staticmethod
    def _call(loop: asyncio.AbstractEventLoop, fn: Callable[..., None], *args: Any) -> None:
        with contextlib.suppress(RuntimeError):  # the loop closed: we were stopped while loading
            loop.call_soon_threadsafe(fn, *args)

    def _fail(self, exc: MpkgError) -> None:
        self.failure = exc
        self.should_exit = True

    def _ready(self, models: ModelSet, metrics: Metrics) -> None:
        state = self.state
        state.install(models, metrics)
        self.swapper = Swapper(
            state, functools.partial(load_package, self.options), asyncio.get_running_loop(), None, self.worker
        )
        self.watch = self._watch(models)
        self.swapper.set_watch(self.watch)
        start_followers(self.options, self.swapper, state, self.worker)
        state.log.event(
            "info",
            "ready",
            worker=self.worker,
            models=" ".join(f"{e.name}:{e.version}" for e in models.entries),
        )

    def _watch(self, models: ModelSet) -> PackageWatch:
        """Quarantine a model whose package file changes (watch.py); runs on the loop thread."""
        state = self.state
        watch = PackageWatch(asyncio.get_running_loop(), state.quarantine, self._busy, self._replaced)
        ignore_lease_signals()
        for entry, path in zip(models.entries, self.options.packages, strict=True):
            package_fd = getattr(entry.model, "package_fd", None)
            fd = package_fd() if callable(package_fd) else None
            if fd is None:
                continue
            no_lease = watch.add(entry.index, path, fd)
            if no_lease is not None:
                state.log.event(
                    "warning",
                    f"{path}: no lease on the package file ({no_lease}); changes are detected by polling "
                    "only, after they happen (run as the file's owner for notice before any write)",
                    worker=self.worker,
                )
        watch.start()
        return watch

    def _busy(self, index: int) -> int:
        runner = self.state.runners.get(index)
        return runner.pending if runner is not None else 0

    def _replaced(self, index: int, path: str) -> None:
        """A new file at a served path: try it in place of the package served from it (swap.py)."""
        models = self.state.models
        position = next((i for i, e in enumerate(models.entries) if e.index == index), None) if models else None
        if position is not None and self.swapper is not None:
            self.swapper.submit(position, path, f"{path} was replaced")

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        """First signal: drain (readiness false, finish in-flight); a second Ctrl+C: stop now."""
        # Unlike uvicorn, do not re-raise the signal after shutdown: a drained stop exits 0.
        state = self.state
        if state.models is None:  # still loading: nothing to drain
            self.force_exit = self.should_exit and sig == signal.SIGINT
            self.should_exit = True
        elif not state.draining:
            state.draining = True
            self._drain_deadline = time.monotonic() + self.options.drain_timeout
            state.log.event(
                "info",
                "draining: readiness is false, finishing in-flight requests",
                worker=self.worker,
                inflight=state.inflight,
            )
        elif sig == signal.SIGINT:  # a second Ctrl+C: stop waiting
            self.force_exit = self.should_exit
            self.should_exit = True

    async def on_tick(self, counter: int) -> bool:
        """Once a drain has no requests left (or ran out of time), stop."""
        state = self.state
        if state.draining and not self.should_exit and (state.inflight == 0 or time.monotonic() > self._drain_deadline):
            self.should_exit = True
        return await super().on_tick(counter)


def run_worker(
    options: ServeOptions, sock: socket.socket, worker: int, metrics_path: str | None, log: Log
) -> MpkgError | None:
    """Serve on ``sock`` in this process until stopped; returns why it could not start, if so."""
    limits = options.limits
    fit = raise_open_files(limits.max_connections)
    if fit < limits.max_connections:
        log.event("warning", f"only {fit} connections fit the open-file limit; --max-connections lowered to {fit}")
        limits = dataclasses.replace(limits, max_connections=fit)
    # Package code that holds the GIL (pure-Python loops) delays the event loop by up to the
    # switch interval at every step of a request; 1 ms instead of 5 keeps health checks fast.
    sys.setswitchinterval(SWITCH_INTERVAL)
    state = ServerState(limits=limits, log=log)
    app = App(state)
    config = uvicorn.Config(
        app,
        http=protocol_for(limits),
        loop="uvloop",
        lifespan="on",
        ws="none",
        access_log=False,
        log_config=None,
        server_header=False,
        proxy_headers=False,  # client addresses are not used; saves a middleware per request
        timeout_graceful_shutdown=max(int(options.drain_timeout), 1),
        timeout_keep_alive=limits.keepalive_timeout,  # type: ignore[arg-type]  # a float works
        backlog=2048,
    )
    server = WorkerServer(config, state, options, worker, metrics_path)
    try:
        server.run(sockets=[sock])
    finally:
        log.flush()
    return server.failure


def worker_process(options: ServeOptions, sock: socket.socket, worker: int, metrics_path: str, errors: Any) -> None:
    """A spawned worker's entry point: serve, and report why it could not to the supervisor."""
    log = Log(options.log_format)
    try:
        failure = run_worker(options, sock, worker, metrics_path, log)
    except MpkgError as exc:
        failure = exc
    except Exception as exc:
        failure = MpkgError(f"worker {worker} crashed: {type(exc).__name__}: {one_line(exc)}")
    if failure is not None:
        errors.put((failure.exit_code, "; ".join(failure.reasons())))
        sys.exit(failure.exit_code)
