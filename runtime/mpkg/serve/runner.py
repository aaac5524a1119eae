"""Where one model's calls run: its own threads behind a bounded queue, never the event loop.

Package code is arbitrary Python. Run on the event loop, one slow call freezes health
checks for its whole duration; run in a pool shared by every model, one model's slow
calls make all the others wait. So each model gets its own threads (``max_inflight``
calls at once) and a bounded number of admitted calls waiting for them (``max_queue``);
a call beyond both is refused at once (503 with Retry-After): overload is shed, not
queued, and an accepted call waits behind at most ``max_queue / max_inflight`` others.

The hand-off is kept lean (a C ``SimpleQueue`` and one ``call_soon_threadsafe`` per
result) because it is paid on every inference; bench/ measures it.
"""

from __future__ import annotations

import asyncio
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

_STOP = None


class ModelRunner:
    """One model's threads and admission counter. ``admit``/``release``/``run`` are called on
    the event loop thread only; the worker threads only take jobs and post results."""

    __slots__ = ("_jobs", "_lock", "_name", "_threads", "capacity", "max_inflight", "pending", "quarantined")

    def __init__(self, name: str, max_inflight: int, max_queue: int) -> None:
        if max_inflight < 1 or max_queue < 0:
            raise ValueError("max_inflight must be >= 1 and max_queue >= 0")
        self._name = name
        self.max_inflight = max_inflight
        self.capacity = max_inflight + max_queue
        self.pending = 0  # admitted calls not yet answered: running, queued or still reading their body
        self.quarantined: str | None = None  # why this model no longer answers (see watch.py)
        self._jobs: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()

    def admit(self) -> bool:
        """Reserve a slot for one call; False when the model is full (answer 503 at once)."""
        if self.pending >= self.capacity:
            return False
        self.pending += 1
        return True

    def release(self) -> None:
        """Give back the slot a finished call held."""
        self.pending -= 1

    def run(self, loop: asyncio.AbstractEventLoop, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        """``fn(*args)`` on one of this model's threads; the future gets its result or exception."""
        future = loop.create_future()
        if len(self._threads) < self.max_inflight and len(self._threads) < self.pending:
            self._start_thread()
        self._jobs.put((loop, future, fn, args))
        return future

    def _start_thread(self) -> None:
        with self._lock:
            t = threading.Thread(target=self._work, name=f"mpkg-model-{self._name}-{len(self._threads)}", daemon=True)
            self._threads.append(t)
        t.start()

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is _STOP:
                return
            loop, future, fn, args = job
            job = None  # do not keep the request's body alive while waiting for the next job
            try:
                value, ok = fn(*args), True
            except BaseException as exc:  # handed to the awaiting request as is
                value, ok = exc, False
            args = None
            with contextlib.suppress(RuntimeError):  # a closed loop: the server stopped
                loop.call_soon_threadsafe(_settle, future, ok, value)
            # An exception's traceback refers to this frame: drop it here, or the frame and the
            # exception keep each other (and the request's buffers) alive until a collection.
            value = future = None

    def close(self) -> None:
        """Let the threads end once the jobs already queued are done."""
        for _ in self._threads:
            self._jobs.put(_STOP)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.cancelled():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
