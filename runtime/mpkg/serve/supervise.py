"""``--workers N``: N spawned serving processes on one shared socket, stopped together."""

from __future__ import annotations

import contextlib
import gc
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import socket
import tempfile
from types import FrameType
from typing import Any

from mpkg.errors import MpkgError, UsageError

from .logs import Log
from .options import ServeOptions
from .worker import worker_process


def supervise(options: ServeOptions, sock: socket.socket, log: Log) -> None:
    """Run ``options.workers`` spawned processes on the shared socket; stop them all together.

    Metrics are aggregated across workers through a memory-mapped file (see metrics.py).
    A worker that fails to start or dies stops the whole server with exit 1, so the
    orchestrator restarts it whole rather than serving with silently fewer workers.
    """
    gc.enable()  # only the workers load packages; see WorkerServer._load (worker.py)
    ctx = multiprocessing.get_context("spawn")
    tmpdir = tempfile.mkdtemp(prefix="mpkg-serve-")
    metrics_path = os.path.join(tmpdir, "metrics")
    errors = ctx.SimpleQueue()
    procs = [
        ctx.Process(
            target=worker_process,
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
