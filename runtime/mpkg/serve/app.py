"""The Open Inference Protocol (KServe V2) REST endpoints as a raw ASGI application.

Raw ASGI rather than Starlette: the routes are a fixed handful, and skipping
Request/Response objects and regex routing keeps server CPU per request low
(see ``bench_asgi`` in the tests for the measurement). Every refusal is a
one-line ``{"error": ...}``; only a bug inside package code yields a 500.
"""

from __future__ import annotations

import asyncio
import importlib
import time
import zlib
from collections.abc import Awaitable, Callable, MutableMapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import orjson

from mpkg.errors import ContractError

from .logs import Log
from .metrics import Metrics
from .registry import ModelEntry, ModelSet
from .tensors import RequestError, encode_infer_response, parse_infer_request

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
# status, headers, body, the model that answered (for metrics and logs), request id
_Result = tuple[int, list[tuple[bytes, bytes]], bytes, ModelEntry | None, str | None]

ARROW_STREAM = "application/vnd.apache.arrow.stream"
# JSON header (optionally followed by binary tensors). Form-urlencoded is what
# `curl -d @request.json` sends, as in the KServe/Triton docs, so it is read as JSON too.
_JSON_TYPES = {"", "application/json", "application/octet-stream", "application/x-www-form-urlencoded"}
_CT_JSON = (b"content-type", b"application/json")
_LIVE = orjson.dumps({"live": True})
_READY = orjson.dumps({"ready": True})
_NOT_READY = orjson.dumps({"ready": False})
_GENERIC_500 = "internal error in the model's code; the server log has the details"

# Adaptive execution: a model whose calls stay fast runs on the event loop (no thread
# hop, no GIL hand-over); anything slow moves to a thread so health checks keep answering.
# In a thread, a call is judged by the CPU time of its thread: its wall time under load is
# mostly waiting for the GIL (up to the 5 ms switch interval), which says nothing about the
# model. A call that blocks without using CPU (I/O, sleep) is kept off the loop by the
# wall-time cap. On the loop, wall time is what health checks wait for, but one preemption
# by the OS must not send a fast model back to threads: it takes _SLOW_STRIKES slow calls
# in a row. Each demotion doubles the fast calls needed before the next promotion, so a
# model that is sometimes slow settles in the thread pool instead of flapping.
_INLINE_AFTER_FAST_CALLS = 8
_INLINE_AFTER_MAX = 4096
_FAST_S = 0.001  # CPU seconds of one call in a thread that count as fast
_FAST_WALL_S = 0.05  # ... provided the call did not block for longer than this
_SLOW_S = 0.002  # wall seconds of one call on the loop that count as slow
_SLOW_STRIKES = 2
_INLINE_MAX_BODY = 256 * 1024


class _Disconnected(Exception):
    pass


@dataclass
class ServerState:
    """Mutable per-process state shared by the app, the loader and the signal handler."""

    max_body_bytes: int
    log: Log
    models: ModelSet | None = None
    metrics: Metrics | None = None
    draining: bool = False
    inflight: int = 0
    starting_message: str = "server is starting: packages are still loading"
    dispatch: dict[int, Dispatch] = field(default_factory=dict)  # by ModelEntry.index

    def install(self, models: ModelSet, metrics: Metrics) -> None:
        self.metrics = metrics
        self.models = models  # set last: a non-None models means ready


class Dispatch:
    """Where one model's calls run: on the event loop once it has proven fast, else a thread."""

    __slots__ = ("fast", "inline", "needed", "strikes")

    def __init__(self) -> None:
        self.inline = False
        self.fast = 0  # consecutive fast calls in the thread pool
        self.needed = _INLINE_AFTER_FAST_CALLS
        self.strikes = 0  # consecutive slow calls on the loop

    def threaded(self, cpu: float, wall: float) -> None:
        """Account for one call run in a thread."""
        if cpu < _FAST_S and wall < _FAST_WALL_S:
            self.fast += 1
            if self.fast >= self.needed:
                self.inline, self.strikes = True, 0
        else:
            self.fast = 0

    def on_loop(self, wall: float) -> None:
        """Account for one call run on the event loop."""
        if wall <= _SLOW_S:
            self.strikes = 0
            return
        self.strikes += 1
        if self.strikes >= _SLOW_STRIKES:
            self.inline, self.fast = False, 0
            self.needed = min(self.needed * 2, _INLINE_AFTER_MAX)


class App:
    """ASGI 3 callable serving the V2 protocol for ``state.models``."""

    def __init__(self, state: ServerState, threads: int = 4) -> None:
        self.state = state
        self._pool = ThreadPoolExecutor(max_workers=threads, thread_name_prefix="mpkg-predict")
        self._pyarrow: Any = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        kind = scope["type"]
        if kind == "http":
            await self._http(scope, receive, send)
        elif kind == "lifespan":
            await self._lifespan(receive, send)

    async def _lifespan(self, receive: Receive, send: Send) -> None:
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                self._pool.shutdown(wait=False)
                await send({"type": "lifespan.shutdown.complete"})
                return

    async def _http(self, scope: Scope, receive: Receive, send: Send) -> None:
        state = self.state
        start = time.perf_counter()
        state.inflight += 1
        entry: ModelEntry | None = None
        request_id: str | None = None
        headers: list[tuple[bytes, bytes]]
        try:
            try:
                status, headers, body, entry, request_id = await self._route(scope, receive)
            except RequestError as exc:
                status, body = exc.status, orjson.dumps({"error": exc.message})
                headers = [_CT_JSON]
                if status == 405:
                    headers.append((b"allow", b"POST" if scope["path"].endswith("/infer") else b"GET"))
                elif status == 413:
                    headers.append((b"connection", b"close"))  # do not drain a huge upload
                entry = entry if entry is not None else getattr(exc, "entry", None)
            except _Disconnected:
                status, headers, body = 499, [], b""
            except Exception as exc:  # a bug, not bad input: log it, answer generically
                entry = getattr(exc, "entry", None)
                state.log.event(
                    "error",
                    "unexpected error while serving a request",
                    exc,
                    path=scope["path"],
                    model=entry.name if entry else "",
                    digest=entry.digest if entry else "",
                )
                status, headers, body = 500, [_CT_JSON], orjson.dumps({"error": _GENERIC_500})
            if status != 499:
                headers.append((b"content-length", str(len(body)).encode()))
                await send({"type": "http.response.start", "status": status, "headers": headers})
                await send({"type": "http.response.body", "body": body})
        finally:
            state.inflight -= 1
        elapsed = time.perf_counter() - start
        metrics = state.metrics
        if metrics is not None:
            metrics.observe_http(status)
            if entry is not None and scope["path"].endswith("/infer"):
                metrics.observe_inference(entry.index, status, elapsed)
        if entry is not None:
            state.log.access(
                scope["method"], scope["path"], status, elapsed, entry.name, entry.version, entry.digest, request_id
            )
        else:
            state.log.access(scope["method"], scope["path"], status, elapsed, request_id=request_id)

    async def _route(self, scope: Scope, receive: Receive) -> _Result:
        path: str = scope["path"]
        method: str = scope["method"]
        state = self.state
        if path.startswith("/v2/models/"):
            parts = path[11:].split("/")
            name = parts[0]
            version: str | None = None
            rest = parts[1:]
            if len(parts) >= 3 and parts[1] == "versions":
                version, rest = parts[2], parts[3:]
            action = rest[0] if len(rest) == 1 else ("metadata" if not rest else "")
            if not name or version == "" or action not in ("metadata", "ready", "infer"):
                raise RequestError(404, f"no route for {method} {path}; see the V2 paths under /v2/models/{{name}}")
            if action == "infer":
                if method != "POST":
                    raise RequestError(405, f"{path} takes POST, not {method}")
                return await self._infer(scope, receive, name, version)
            if method != "GET":
                raise RequestError(405, f"{path} takes GET, not {method}")
            models = state.models
            if models is None:
                raise RequestError(503, state.starting_message)
            if action == "metadata":
                entry = models.metadata_entry(name, version)
                return 200, [_CT_JSON], entry.metadata_body, None, None
            entry = models.metadata_entry(name, version)
            if state.draining:
                return 503, [_CT_JSON], orjson.dumps({"name": name, "ready": False}), None, None
            return 200, [_CT_JSON], entry.ready_body, None, None
        if path in _GET_ROUTES:
            if method != "GET":
                raise RequestError(405, f"{path} takes GET, not {method}")
            if path == "/v2/health/live":
                return 200, [_CT_JSON], _LIVE, None, None
            if path == "/v2/health/ready":
                ready = state.models is not None and not state.draining
                return (200 if ready else 503), [_CT_JSON], (_READY if ready else _NOT_READY), None, None
            if state.models is None or state.metrics is None:
                raise RequestError(503, state.starting_message)
            if path == "/v2":
                return 200, [_CT_JSON], state.models.server_metadata_body, None, None
            return (
                200,
                [(b"content-type", b"text/plain; version=0.0.4; charset=utf-8")],
                state.metrics.render(),
                None,
                None,
            )
        raise RequestError(404, f"no route for {method} {path}; the API lives under /v2")

    async def _infer(self, scope: Scope, receive: Receive, name: str, version: str | None) -> _Result:
        state = self.state
        models = state.models
        if models is None:
            raise RequestError(503, state.starting_message)
        if state.draining:
            raise RequestError(503, "server is draining for shutdown; retry on another replica")
        entry = models.resolve(name, version)
        try:
            return await self._infer_entry(scope, receive, entry)
        except Exception as exc:
            exc.entry = entry  # type: ignore[attr-defined]  # for metrics and the access log
            raise

    async def _infer_entry(self, scope: Scope, receive: Receive, entry: ModelEntry) -> _Result:
        limit = self.state.max_body_bytes
        content_type = b""
        encoding = b""
        header_length: int | None = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value
            elif key == b"content-length":
                if value.isdigit() and int(value) > limit:
                    raise RequestError(413, f"request body of {int(value)} bytes is over the {limit}-byte limit")
            elif key == b"content-encoding":
                encoding = value.strip().lower()
            elif key == b"inference-header-content-length":
                if not value.strip().isdigit():
                    raise RequestError(400, "Inference-Header-Content-Length must be a byte count")
                header_length = int(value)
        ctype = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
        arrow = ctype == ARROW_STREAM
        if not arrow and ctype not in _JSON_TYPES:
            raise RequestError(
                415,
                f"Content-Type {ctype!r} is not supported; send application/json, "
                f"application/octet-stream (binary tensors) or {ARROW_STREAM}",
            )
        if encoding not in (b"", b"identity", b"gzip", b"x-gzip", b"deflate"):
            raise RequestError(
                415, f"Content-Encoding {encoding.decode('latin-1')!r} is not supported; use gzip or deflate"
            )
        pa = None
        if arrow:
            if not entry.arrow:
                raise RequestError(
                    415,
                    f"model {entry.name} {entry.version} is not tabular; Arrow IPC bodies are "
                    "only for packages whose inputs are all columns",
                )
            pa = self._arrow()
        body = await _read_body(receive, limit)
        small = len(body) < _INLINE_MAX_BODY
        dispatch = self.state.dispatch.get(entry.index)
        if dispatch is None:
            dispatch = self.state.dispatch[entry.index] = Dispatch()
        if small and dispatch.inline:
            t0 = time.perf_counter()
            try:
                return _pipeline(pa, entry, body, encoding, header_length, limit)
            finally:
                dispatch.on_loop(time.perf_counter() - t0)
        loop = asyncio.get_running_loop()
        result, cpu, wall = await loop.run_in_executor(
            self._pool, _timed_pipeline, pa, entry, body, encoding, header_length, limit
        )
        if small:
            dispatch.threaded(cpu, wall)
        if isinstance(result, BaseException):
            raise result
        return result

    def _arrow(self) -> Any:
        if self._pyarrow is None:
            try:
                self._pyarrow = importlib.import_module("pyarrow")
                importlib.import_module("pyarrow.ipc")
            except ImportError:
                raise RequestError(
                    415,
                    "this server has no pyarrow installed, so it cannot read Arrow IPC; "
                    "send V2 JSON or install pyarrow",
                ) from None
        return self._pyarrow


def _timed_pipeline(
    pa: Any, entry: ModelEntry, body: bytes, encoding: bytes, header_length: int | None, limit: int
) -> tuple[_Result | BaseException, float, float]:
    """``_pipeline`` in a pool thread: its result (or the exception it raised, so refusals
    count for dispatch too), this thread's CPU seconds and the wall seconds."""
    c0, t0 = time.thread_time(), time.perf_counter()
    result: _Result | BaseException
    try:
        result = _pipeline(pa, entry, body, encoding, header_length, limit)
    except Exception as exc:
        result = exc
    return result, time.thread_time() - c0, time.perf_counter() - t0


def _pipeline(
    pa: Any, entry: ModelEntry, body: bytes, encoding: bytes, header_length: int | None, limit: int
) -> _Result:
    """Decompress, decode, predict, encode.

    Runs on the event loop for small bodies of models that have proven fast, otherwise
    in a thread so a big body or a slow model never stalls health checks.
    """
    if encoding not in (b"", b"identity"):
        body = _decompress(body, encoding, limit)
    if pa is not None:
        return _arrow_pipeline(pa, entry, body)
    request = parse_infer_request(body, header_length, entry.specs, entry.output_names)
    results = _call_model(entry.model.predict, request.inputs)
    try:
        out, json_length = encode_infer_response(entry.name, entry.version, request, results)
    except (TypeError, ValueError) as exc:  # the model broke its own contract
        raise _ModelBug(str(exc)) from exc
    if json_length is None:
        return 200, [_CT_JSON], out, entry, request.id
    return (
        200,
        [
            (b"content-type", b"application/octet-stream"),
            (b"inference-header-content-length", str(json_length).encode()),
        ],
        out,
        entry,
        request.id,
    )


def _arrow_pipeline(pa: Any, entry: ModelEntry, body: bytes) -> _Result:
    try:
        table = pa.ipc.open_stream(pa.py_buffer(body)).read_all()
    except (pa.ArrowException, ValueError, OSError) as exc:
        raise RequestError(400, f"body is not a valid Arrow IPC stream: {exc}") from None
    result = _call_model(entry.model.predict_arrow, table)  # type: ignore[attr-defined]
    try:
        sink = pa.BufferOutputStream()
        with pa.ipc.new_stream(sink, result.schema) as writer:
            writer.write(result)
        out = sink.getvalue().to_pybytes()
    except Exception as exc:
        raise _ModelBug(f"predict_arrow returned something that is not an Arrow batch: {exc}") from exc
    return (
        200,
        [
            (b"content-type", ARROW_STREAM.encode()),
            (b"model-name", entry.name.encode()),
            (b"model-version", entry.version.encode()),
        ],
        out,
        entry,
        None,
    )


def _call_model(fn: Callable[[Any], Any], arg: Any) -> Any:
    """Call package code; a contract refusal is a 400, anything else a logged 500."""
    try:
        return fn(arg)
    except ContractError as exc:
        raise RequestError(400, "; ".join(exc.reasons())) from None
    except RequestError:
        raise
    except Exception as exc:
        raise _ModelBug(f"{type(exc).__name__}: {exc}") from exc


class _ModelBug(Exception):
    """Package code failed on valid input: a 500, logged with its traceback."""


_GET_ROUTES = frozenset({"/v2", "/v2/health/live", "/v2/health/ready", "/metrics"})


async def _read_body(receive: Receive, limit: int) -> bytes:
    """Read the whole body, counting streamed bytes against the limit as they arrive."""
    chunks: list[bytes] = []
    total = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise _Disconnected
        chunk = message.get("body", b"")
        if chunk:
            total += len(chunk)
            if total > limit:
                raise RequestError(413, f"request body is over the {limit}-byte limit")
            chunks.append(chunk)
        if not message.get("more_body", False):
            break
    if len(chunks) == 1:
        return chunks[0]
    return b"".join(chunks)


def _decompress(body: bytes, encoding: bytes, limit: int) -> bytes:
    """Inflate with the size limit applied to the output too (zip bombs)."""
    if encoding == b"deflate":
        try:
            return _inflate(body, 15, encoding, limit)  # zlib-wrapped, per RFC 9110
        except RequestError as exc:
            if exc.status != 400:
                raise
            return _inflate(body, -15, encoding, limit)  # raw deflate, as some clients send it
    return _inflate(body, 31, encoding, limit)


def _inflate(body: bytes, wbits: int, encoding: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(wbits)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error as exc:
        raise RequestError(400, f"body is not valid {encoding.decode()} data ({exc})") from None
    if len(out) > limit or d.unconsumed_tail:
        raise RequestError(413, f"decompressed request body is over the {limit}-byte limit")
    if not d.eof:
        raise RequestError(400, f"{encoding.decode()} body is truncated")
    if d.unused_data:
        raise RequestError(400, f"{encoding.decode()} body has trailing bytes after the stream")
    return out
