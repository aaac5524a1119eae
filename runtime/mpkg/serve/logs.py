"""Request and event logs on stderr: one line per request, text or JSON lines.

Access lines written on an event loop are gathered and written together once the loop
has finished its current batch of callbacks (one write per loop turn, not per request),
so every line still reaches stderr within a loop iteration of its request.
"""

from __future__ import annotations

import asyncio
import os
import re
import sys
import threading
import time
import traceback
from typing import Any, TextIO

import orjson

# Anything a client chose that goes into a text line is escaped: control characters (a
# decoded %0A would start a forged line), spaces (a forged field) and backslashes; and cut
# to a bounded length.
_UNSAFE = re.compile(r"[\x00-\x20\x7f-\x9f\\\"]")
MAX_LOGGED = 512


def _escape_char(m: re.Match[str]) -> str:
    return f"\\x{ord(m.group()):02x}"


def safe(text: str) -> str:
    """``text`` as one field of a text log line: no line breaks, no spaces, bounded length."""
    cut = f"...[+{len(text) - MAX_LOGGED}]" if len(text) > MAX_LOGGED else ""
    if cut:
        text = text[:MAX_LOGGED]
    return (_UNSAFE.sub(_escape_char, text) if _UNSAFE.search(text) else text) + cut


class Log:
    """Writes one line per event; JSON mode gives one object per line for log shippers."""

    def __init__(self, fmt: str = "text", stream: TextIO | None = None) -> None:
        if fmt not in ("text", "json"):
            raise ValueError(f"log format {fmt!r} is not text or json")
        self.json = fmt == "json"
        self.stream = stream if stream is not None else sys.stderr
        self.pid = os.getpid()  # tells workers apart in JSON logs
        self._pending: list[str] = []  # access lines waiting for the end of the loop turn
        self._lock = threading.Lock()  # events may be written from other threads
        self._second = -1  # the whole second _stamp was formatted for
        self._stamp = ""

    def _write(self, line: str) -> None:
        self.flush()  # keep lines in the order they happened
        self._emit(line + "\n")

    def _emit(self, text: str) -> None:
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed or broken stderr must not take requests down

    def _queue(self, line: str) -> None:
        """Write ``line`` at the end of this loop turn, or now when not on an event loop."""
        with self._lock:
            if self._pending:
                self._pending.append(line + "\n")
                return
            try:
                asyncio.get_running_loop().call_soon(self.flush)
            except RuntimeError:  # no loop in this thread: write it now
                pass
            else:
                self._pending.append(line + "\n")
                return
        self._write(line)

    def flush(self) -> None:
        """Write every queued access line now."""
        with self._lock:
            if not self._pending:
                return
            text = "".join(self._pending)
            self._pending.clear()
        self._emit(text)

    def access(
        self,
        method: str,
        path: str,
        status: int,
        seconds: float,
        model: str = "",
        version: str = "",
        digest: str = "",
        request_id: str | None = None,
    ) -> None:
        """One line per request (text or JSON), every field escaped."""
        now = time.time()
        if self.json:
            doc: dict[str, Any] = {
                "ts": round(now, 6),
                "kind": "request",
                "pid": self.pid,
                "method": method,
                "path": path if len(path) <= MAX_LOGGED else path[:MAX_LOGGED] + "...",
                "status": status,
                "latency_ms": round(seconds * 1000, 3),
            }
            if model:
                doc.update(model=model, version=version, digest=digest)
            if request_id is not None:
                doc["id"] = request_id if len(request_id) <= MAX_LOGGED else request_id[:MAX_LOGGED] + "..."
            self._queue(orjson.dumps(doc).decode())
        else:
            second = int(now)
            if second != self._second:
                self._second = second
                self._stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(second))
            line = f"{self._stamp}.{int(now % 1 * 1000):03d}Z {method} {safe(path)} {status} {seconds * 1000:.3f}ms"
            if model:
                line += f" model={model} version={version} digest={digest}"
            if request_id is not None:
                line += f" id={safe(request_id)}"
            self._queue(line)

    def event(self, level: str, message: str, exc: BaseException | None = None, **fields: Any) -> None:
        """One line per server event (text or JSON), with the traceback when there is one."""
        now = time.time()
        tb = "".join(traceback.format_exception(exc)) if exc is not None else ""
        if self.json:
            doc: dict[str, Any] = {
                "ts": round(now, 6),
                "kind": "event",
                "pid": self.pid,
                "level": level,
                "msg": message,
            }
            doc.update(fields)
            if tb:
                doc["traceback"] = tb
            self._write(orjson.dumps(doc, default=str).decode())
        else:
            stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(now))
            extra = "".join(f" {k}={v}" for k, v in fields.items())
            self._write(f"{stamp}Z {level.upper()} {message}{extra}" + (f"\n{tb.rstrip()}" if tb else ""))
