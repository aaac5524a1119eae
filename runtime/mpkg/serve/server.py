"""Running the app: uvicorn (uvloop + httptools), workers, startup loading and draining.

Design:
- The listening socket is bound once, by the process that ``serve`` runs in,
  so ``--port 0`` works and every worker shares one accept queue.
- Each worker loads and smoke-tests the packages itself *after* it starts
  answering, so ``/v2/health/live`` is 200 and ``/v2/health/ready`` is 503
  while loading; a failed load or smoke test stops the whole server (exit 1).
- SIGTERM turns readiness false and refuses new inferences with 503, waits
  for in-flight requests (at most ``drain_timeout``), then exits 0.
- TCP_NODELAY is set explicitly on every accepted connection: asyncio only
  sets it when the socket's ``proto`` is TCP, which a socket shared with a
  worker process no longer reports (uvicorn issue 3149: 40 ms stalls).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import gc
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

import uvicorn

from mpkg.errors import MpkgError, UsageError

from .app import App, ServerState
from .http import protocol_for
from .limits import DEFAULT_MAX_BODY_BYTES, Limits, raise_open_files
from .logs import Log
from .metrics import Metrics
from .registry import ModelSet, Split
from .types import ServableModel
from .watch import PackageWatch, ignore_lease_signals

Loader = Callable[[str, Sequence[str], bool], ServableModel]
SWITCH_INTERVAL = 0.001  # seconds; CPython's default is 0.005


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``serve`` needs; picklable so worker processes receive it whole."""

    packages: tuple[str, ...]
    keys: tuple[str, ...] = ()
    allow_unsigned: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    splits: tuple[Split, ...] = ()
    split_seed: int | None = None
    limits: Limits = field(default_factory=Limits)
    log_format: str = "text"
    drain_timeout: float = 30.0
    loader: Loader | None = None  # None: mpkg.load; must be a module-level function
    isolate: bool = False  # each package in its own process (isolate.py)

    def check(self) -> None:
        """Refuse impossible settings before binding anything."""
        if not self.packages:
            raise UsageError("name at least one package to serve", "PKG")
        if self.workers < 1:
            raise UsageError("must be at least 1", "--workers")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"{self.port} is not a TCP port (0-65535)", "--port")
        self.limits.check()
        if self.log_format not in ("text", "json"):
            raise UsageError("must be text or json", "--log-format")
        if self.drain_timeout < 0:
            raise UsageError("must be >= 0 seconds", "--drain-timeout")


def serve(
    packages: Sequence[str],
    *,
    keys: Sequence[str] = (),
    allow_unsigned: bool = False,
    host: str = "127.0.0.1",
    port: int = 8080,
    workers: int = 1,
    splits: Sequence[Split] = (),
    split_seed: int | None = None,
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    log_format: str = "text",
    drain_timeout: float = 30.0,
    loader: Loader | None = None,
    limits: Limits | None = None,
    isolate: bool = False,
) -> None:
    """Serve packages until SIGTERM/SIGINT; returns after a clean drain.

    Raises MpkgError (exit 1) when a package fails to load or its smoke test,
    UsageError (exit 2) for bad settings such as a split naming unloaded versions.
    """
    run(
        ServeOptions(
            packages=tuple(packages),
            keys=tuple(keys),
            allow_unsigned=allow_unsigned,
            host=host,
            port=port,
            workers=workers,
            splits=tuple(splits),
            split_seed=split_seed,
            limits=limits if limits is not None else Limits(max_body_bytes=max_body_bytes),
            log_format=log_format,
            drain_timeout=drain_timeout,
            loader=loader,
            isolate=isolate,
        )
    )


def run(options: ServeOptions) -> None:
    """``serve`` taking a ServeOptions."""
    options.check()
    log = Log(options.log_format)
    sock = bind(options.host, options.port)
    try:
        host, port = sock.getsockname()[:2]
        log.event(
            "info",
            f"listening on http://{_url_host(host)}:{port}",
            workers=options.workers,
            packages=len(options.packages),
        )
        if options.workers == 1:
            failure = _run_worker(options, sock, 0, None, log)
            if failure is not None:
                raise failure
        else:
            _supervise(options, sock, log)
    finally:
        sock.close()
    log.event("info", "server stopped")


def bind(host: str, port: int) -> socket.socket:
    """The shared listening socket; a refusal names the flag to change."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"cannot resolve {host!r}: {exc.strerror}", "--host") from None
    family, _, _, _, address = infos[0]
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(address)
        sock.listen(2048)
    except OSError as exc:
        sock.close()
        raise MpkgError(f"cannot listen on {host}:{port}: {exc.strerror}; pick another --port", "--port") from None
    sock.set_inheritable(True)
    return sock


def _url_host(host: str) -> str:
    return f"[{host}]" if ":" in host else host


def load_models(options: ServeOptions, worker: int = 0) -> ModelSet:
    """Load every package, smoke-test each, and validate the split settings."""
    loader = options.loader or _default_loader
    if options.isolate and options.loader is None:
        from .isolate import RemoteModel

        def loader(path: str, keys: Sequence[str], allow_unsigned: bool) -> ServableModel:
            return RemoteModel(path, keys, allow_unsigned, options.limits.max_inflight)

    models: list[ServableModel] = []
    for path in options.packages:
        try:
            model = loader(path, options.keys, options.allow_unsigned)
        except MpkgError as exc:
            raise type(exc)(f"cannot serve: {'; '.join(exc.reasons())}", path) from None
        except Exception as exc:
            raise MpkgError(f"cannot load ({type(exc).__name__}: {_one_line(exc)})", path) from None
        try:
            model.smoke_test()
        except MpkgError as exc:
            raise MpkgError(f"smoke test failed, refusing to serve: {'; '.join(exc.reasons())}", path) from None
        except Exception as exc:
            raise MpkgError(
                f"smoke test crashed ({type(exc).__name__}: {_one_line(exc)}); refusing to serve", path
            ) from None
        models.append(model)
    seed = None if options.split_seed is None else options.split_seed + worker
    return ModelSet(models, options.splits, seed=seed, server_version=mpkg_version())


def _default_loader(path: str, keys: Sequence[str], allow_unsigned: bool) -> ServableModel:
    from .._internal.load.model import load  # lazily: onnxruntime loads in the worker, after the socket is open
    from .._internal.trust.verify import policy_for

    return load(path, policy_for(keys, allow_unsigned=allow_unsigned))


def mpkg_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("mpkg")
    except PackageNotFoundError:
        import mpkg

        return str(getattr(mpkg, "__version__", "0+unknown"))


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split())


class _Server(uvicorn.Server):
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
        self._drain_deadline = 0.0

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        await super().startup(sockets=sockets)
        loop = asyncio.get_running_loop()
        threading.Thread(target=self._load, args=(loop,), name="mpkg-load", daemon=True).start()

    def _load(self, loop: asyncio.AbstractEventLoop) -> None:
        try:
            models = load_models(self.options, self.worker)
            metrics = Metrics([e.labels for e in models.entries], self.metrics_path, self.worker, self.options.workers)
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
            self._call(loop, self._fail, MpkgError(f"cannot start: {type(exc).__name__}: {_one_line(exc)}"))
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
        self.watch = self._watch(models)
        state.log.event(
            "info",
            "ready",
            worker=self.worker,
            models=" ".join(f"{e.name}:{e.version}" for e in models.entries),
        )

    def _watch(self, models: ModelSet) -> PackageWatch:
        """Quarantine a model whose package file changes (watch.py); runs on the loop thread."""
        state = self.state
        watch = PackageWatch(asyncio.get_running_loop(), state.quarantine, lambda i: state.runners[i].pending)
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

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
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
        state = self.state
        if state.draining and not self.should_exit and (state.inflight == 0 or time.monotonic() > self._drain_deadline):
            self.should_exit = True
        return await super().on_tick(counter)


def _run_worker(
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
    server = _Server(config, state, options, worker, metrics_path)
    try:
        server.run(sockets=[sock])
    finally:
        log.flush()
    return server.failure


def _worker_process(options: ServeOptions, sock: socket.socket, worker: int, metrics_path: str, errors: Any) -> None:
    log = Log(options.log_format)
    try:
        failure = _run_worker(options, sock, worker, metrics_path, log)
    except MpkgError as exc:
        failure = exc
    except Exception as exc:
        failure = MpkgError(f"worker {worker} crashed: {type(exc).__name__}: {_one_line(exc)}")
    if failure is not None:
        errors.put((failure.exit_code, "; ".join(failure.reasons())))
        sys.exit(failure.exit_code)


def _supervise(options: ServeOptions, sock: socket.socket, log: Log) -> None:
    """Run ``options.workers`` spawned processes on the shared socket; stop them all together.

    Metrics are aggregated across workers through a memory-mapped file (see metrics.py).
    A worker that fails to start or dies stops the whole server with exit 1, so the
    orchestrator restarts it whole rather than serving with silently fewer workers.
    """
    gc.enable()  # only the workers load packages; see _Server._load
    ctx = multiprocessing.get_context("spawn")
    tmpdir = tempfile.mkdtemp(prefix="mpkg-serve-")
    metrics_path = os.path.join(tmpdir, "metrics")
    errors = ctx.SimpleQueue()
    procs = [
        ctx.Process(
            target=_worker_process,
            args=(options, sock, i, metrics_path, errors),
            name=f"mpkg-serve-worker-{i}",
        )
        for i in range(options.workers)
    ]
    stopping = False

    def stop_all(sig: int = signal.SIGTERM) -> None:
        for p in procs:
            if p.pid is not None and p.exitcode is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(p.pid, sig)

    def on_signal(sig: int, frame: FrameType | None) -> None:
        nonlocal stopping
        stopping = True
        stop_all(signal.SIGTERM if sig == signal.SIGTERM else signal.SIGINT)

    previous = {s: signal.signal(s, on_signal) for s in (signal.SIGTERM, signal.SIGINT)}
    failure: MpkgError | None = None
    try:
        for p in procs:
            p.start()
        alive = list(procs)
        while alive:
            multiprocessing.connection.wait([p.sentinel for p in alive], timeout=1.0)
            for p in [p for p in alive if p.exitcode is not None]:
                alive.remove(p)
                if p.exitcode != 0 and failure is None:
                    failure = _worker_failure(p, errors)
                    if not stopping:
                        stopping = True
                        stop_all()
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        stop_all(signal.SIGKILL)
        for p in procs:
            p.join(timeout=5)
        shutil.rmtree(tmpdir, ignore_errors=True)
    if failure is not None:
        raise failure


def _worker_failure(p: Any, errors: Any) -> MpkgError:
    if not errors.empty():
        code, message = errors.get()
        return UsageError(message) if code == UsageError.exit_code else MpkgError(message)
    return MpkgError(f"{p.name} exited with status {p.exitcode}; see the log above")
