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
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from mpkg.errors import ContractError

from .body import ENCODINGS, Disconnected, decompress, read_body, too_large
from .isolate import ChildGone
from .limits import Limits
from .logs import Log
from .metrics import Metrics
from .registry import ModelEntry, ModelSet
from .runner import ModelRunner
from .tensors import RequestError, encode_infer_response, parse_infer_request, shown

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

_RETRY_AFTER = (b"retry-after", b"1")


@dataclass
class ServerState:
    """Mutable per-process state shared by the app, the loader, the watcher and the signal handler."""

    limits: Limits
    log: Log
    models: ModelSet | None = None
    metrics: Metrics | None = None
    draining: bool = False
    inflight: int = 0
    starting_message: str = "server is starting: packages are still loading"
    runners: dict[int, ModelRunner] = field(default_factory=dict)  # by ModelEntry.index

    def install(self, models: ModelSet, metrics: Metrics) -> None:
        """Install the loaded models and their metrics: the server turns ready."""
        limits = self.limits
        self.runners = {e.index: ModelRunner(e.name, limits.max_inflight, limits.max_queue) for e in models.entries}
        for e in models.entries:
            metrics.set_answering(e.slot, True)
        self.metrics = metrics
        self.models = models  # set last: a non-None models means ready

    @property
    def ready(self) -> bool:
        """Ready to answer every model it serves: loaded, not draining, none quarantined."""
        return self.models is not None and not self.draining and not any(r.quarantined for r in self.runners.values())

    def quarantine(self, index: int, reason: str) -> None:
        """Stop answering for model ``index`` for good: its package file changed under the server."""
        assert self.models is not None
        entry = next((e for e in self.models.entries if e.index == index), None)
        runner = self.runners.get(index)
        if entry is not None and runner is not None and runner.quarantined is None:
            runner.quarantined = reason
            self.log.event(
                "error",
                f"model {entry.name} {entry.version} stopped answering: {reason}",
                digest=entry.digest,
            )


class App:
    """ASGI 3 callable serving the V2 protocol for ``state.models``."""

    def __init__(self, state: ServerState) -> None:
        self.state = state
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
                for runner in self.state.runners.values():
                    runner.close()
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
                headers = [_CT_JSON, *exc.headers]
                if status == 405:
                    headers.append((b"allow", b"POST" if scope["path"].endswith("/infer") else b"GET"))
                elif status in (408, 413):
                    headers.append((b"connection", b"close"))  # do not drain a huge or stalled upload
                entry = entry if entry is not None else getattr(exc, "entry", None)
            except Disconnected:
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
                metrics.observe_inference(entry.slot, status, elapsed)
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
            if state.draining or state.runners[entry.index].quarantined:
                return 503, [_CT_JSON], orjson.dumps({"name": name, "ready": False}), None, None
            return 200, [_CT_JSON], entry.ready_body, None, None
        if path in _GET_ROUTES:
            if method != "GET":
                raise RequestError(405, f"{path} takes GET, not {method}")
            if path == "/v2/health/live":
                return 200, [_CT_JSON], _LIVE, None, None
            if path == "/v2/health/ready":
                ready = state.ready
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
        key = None
        header = models.split_header
        if header is not None and version is None:  # a sticky split (splits.py): its key, if sent
            for k, v in scope["headers"]:
                if k == header:
                    key = v or None
                    break
        entry = models.resolve(name, version, key)
        try:
            return await self._infer_entry(scope, receive, entry)
        except Exception as exc:
            exc.entry = entry  # type: ignore[attr-defined]  # for metrics and the access log
            raise

    async def _infer_entry(self, scope: Scope, receive: Receive, entry: ModelEntry) -> _Result:
        state = self.state
        limit = state.limits.max_body_bytes
        content_type = b""
        encoding = b""
        header_length: int | None = None
        declared: int | None = None
        for key, value in scope["headers"]:
            if key == b"content-type":
                content_type = value
            elif key == b"content-length":
                if value.isdigit():
                    declared = int(value)
                    if declared > limit:
                        raise too_large(limit)
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
                f"Content-Type {shown(ctype)} is not supported; send application/json, "
                f"application/octet-stream (binary tensors) or {ARROW_STREAM}",
            )
        if encoding not in ENCODINGS:
            raise RequestError(415, f"Content-Encoding {shown(encoding)} is not supported; use gzip or deflate")
        pa = None
        if arrow:
            if not entry.arrow:
                raise RequestError(
                    415,
                    f"model {entry.name} {entry.version} is not tabular; Arrow IPC bodies are "
                    "only for packages whose inputs are all columns",
                )
            pa = self._arrow()
        runner = state.runners[entry.index]
        if runner.quarantined:
            raise RequestError(503, f"model {entry.name} {entry.version} stopped answering: {runner.quarantined}")
        if not runner.admit():  # shed before reading the body: refusing costs almost nothing
            raise RequestError(
                503,
                f"model {entry.name} {entry.version} is at capacity ({runner.capacity} calls "
                "running or queued); retry after the Retry-After delay",
                (_RETRY_AFTER,),
            )
        try:
            body = await read_body(receive, limit, declared, state.limits.body_timeout)
            if runner.quarantined:
                raise RequestError(503, f"model {entry.name} {entry.version} stopped answering: {runner.quarantined}")
            loop = asyncio.get_running_loop()
            remote = getattr(entry.model, "call_pipeline", None)
            if remote is None:
                return await runner.run(  # type: ignore[no-any-return]
                    loop, _pipeline, pa, entry, body, encoding, header_length, limit
                )
            # --isolate: the package's own process runs the whole pipeline (isolate.py)
            status, headers, out, request_id = await runner.run(
                loop, remote, arrow, body, encoding, header_length, limit
            )
            return status, headers, out, entry, request_id
        except ChildGone as exc:
            state.quarantine(entry.index, str(exc))
            raise RequestError(503, f"model {entry.name} {entry.version} stopped answering: {exc}") from None
        finally:
            runner.release()

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


def _pipeline(
    pa: Any, entry: ModelEntry, body: bytes | bytearray, encoding: bytes, header_length: int | None, limit: int
) -> _Result:
    """Decompress, decode, predict, encode: on the model's own thread (runner.py), so
    neither a big body nor slow package code ever holds the event loop."""
    body = decompress(body, encoding, limit)
    if pa is not None:
        return _arrow_pipeline(pa, entry, body)
    request = parse_infer_request(
        body, header_length, entry.specs, entry.output_names, entry.model.contract.extra == "ignore"
    )
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


def _arrow_pipeline(pa: Any, entry: ModelEntry, body: bytes | bytearray) -> _Result:
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
