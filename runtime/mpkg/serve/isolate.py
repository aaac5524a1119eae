"""``mpkg serve --isolate``: each package in its own process, behind the one port.

Package code runs in the process that imports it, where Python offers no boundary: it
can reach every other object there (``gc.get_objects()``), other models included. With
``--isolate`` the serving process never imports package code: it parses HTTP, routes,
admits, and forwards each request's bytes to the package's own process, which verifies
and loads the package, runs the smoke test and then the whole pipeline (decompress,
decode, contract, predict, encode). The serving process reads only the package's
manifest itself (name, version, digest, contract), and checks that the digest the child
verified is the one it read.

The wire between them is length-delimited bytes (multiprocessing pipes, one per call in
flight): a JSON header then the body. Nothing from a child is unpickled, so a package
cannot run code in the serving process through its answers; a child's answer can only
be a status, a few known headers and bytes for its own model.
"""

from __future__ import annotations

import contextlib
import multiprocessing
import os
import queue
import signal
import sys
import threading
import traceback
from collections.abc import Sequence
from typing import Any

import orjson

from mpkg._internal.contract.contract import Contract
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.manifest import Manifest
from mpkg.errors import MpkgError, VerificationError

from .tensors import RequestError

# Headers a child may set on an answer; anything else it sends is dropped.
_HEADERS = {"content-type", "inference-header-content-length", "model-name", "model-version"}


class ChildGone(Exception):
    """The package's process is gone (it crashed or was killed)."""


class RemoteModel:
    """A package served from its own process; satisfies ServableModel for the metadata."""

    platform = "mpkg"

    def __init__(self, path: str, keys: Sequence[str], allow_unsigned: bool, slots: int) -> None:
        with PackageFile(path) as pkg:
            manifest = Manifest.from_bytes(pkg.manifest_bytes)
        self.name: str = manifest.name
        self.version: str = manifest.version
        self.digest: str = str(manifest.digest)
        self.contract: Contract = manifest.contract
        # Watched by the server (watch.py): opened before the child opens and verifies it.
        self._fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK)
        ctx = multiprocessing.get_context("spawn")
        pairs = [ctx.Pipe() for _ in range(slots)]
        self.process = ctx.Process(
            target=_child,
            args=(path, list(keys), allow_unsigned, [child for _, child in pairs]),
            name=f"mpkg-isolate-{self.name}-{self.version}",
            daemon=True,
        )
        self.process.start()
        for _, child in pairs:
            child.close()
        conns = [parent for parent, _ in pairs]
        try:
            hello = orjson.loads(conns[0].recv_bytes(64 * 1024))
        except (EOFError, OSError, orjson.JSONDecodeError):
            self.process.join(5)
            raise MpkgError(f"its isolated process exited ({self.process.exitcode}) while loading", path) from None
        if not isinstance(hello, dict) or hello.get("ok") is not True:
            error = hello.get("error") if isinstance(hello, dict) else None
            raise MpkgError(str(error or "its isolated process failed to load it"), path)
        if hello.get("digest") != self.digest:
            raise VerificationError("changed while its isolated process loaded it; serve a file nobody writes", path)
        self._free: queue.SimpleQueue[Any] = queue.SimpleQueue()
        for conn in conns:
            self._free.put(conn)

    def package_fd(self) -> int:
        """The package file the worker process serves, for the package watch."""
        return self._fd

    def smoke_test(self) -> None:
        """Run by the child before it reported ready."""

    def predict(self, inputs: Any) -> dict[str, Any]:
        """Not used: an isolated model is called through ``call_pipeline``."""
        raise TypeError("an isolated model is called through call_pipeline")

    def predict_arrow(self, batch: Any) -> Any:
        """Not used: an isolated model is called through ``call_pipeline``."""
        raise TypeError("an isolated model is called through call_pipeline")

    def call_pipeline(
        self, arrow: bool, body: bytes | bytearray, encoding: bytes, header_length: int | None, limit: int
    ) -> tuple[int, list[tuple[bytes, bytes]], bytes, str | None]:
        """One request through the child (on a runner thread): status, headers, body, request id."""
        conn = self._free.get()
        try:
            request = {"arrow": arrow, "encoding": encoding.decode("latin-1"), "hl": header_length, "limit": limit}
            conn.send_bytes(orjson.dumps(request))
            conn.send_bytes(body)
            head = orjson.loads(conn.recv_bytes())
            out = conn.recv_bytes()
        except (EOFError, OSError, orjson.JSONDecodeError) as exc:
            raise ChildGone(f"its process exited ({self.process.exitcode}): {type(exc).__name__}") from None
        finally:
            self._free.put(conn)
        status = head.get("status") if isinstance(head, dict) else None
        if not isinstance(status, int) or not 200 <= status <= 599:
            raise ChildGone("its process answered something that is not a status")
        if status != 200:
            raise RequestError(status, str(head.get("error", "refused")))
        headers = [
            (str(k).encode("latin-1"), str(v).encode("latin-1"))
            for k, v in head.get("headers", [])
            if str(k) in _HEADERS and "\n" not in str(v) and "\r" not in str(v)
        ]
        request_id = head.get("id")
        return 200, headers, out, request_id if isinstance(request_id, str) else None

    def close(self) -> None:
        """Close the package file and stop the worker process."""
        with contextlib.suppress(OSError):
            os.close(self._fd)
        if self.process.is_alive():
            self.process.terminate()


def _child(path: str, keys: list[str], allow_unsigned: bool, conns: list[Any]) -> None:
    """The package's own process: load, smoke-test, then answer calls until the pipes close."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the serving process decides when to stop
    from mpkg._internal.load.model import load
    from mpkg._internal.trust.verify import policy_for

    from .app import _ModelBug, _pipeline
    from .registry import ModelSet

    try:
        model = load(path, policy_for(keys, allow_unsigned=allow_unsigned))
        model.smoke_test()
        entry = ModelSet([model]).entries[0]
    except MpkgError as exc:
        conns[0].send_bytes(orjson.dumps({"ok": False, "error": "; ".join(exc.reasons())}))
        return
    except Exception as exc:
        conns[0].send_bytes(orjson.dumps({"ok": False, "error": f"cannot load ({type(exc).__name__}: {exc})"}))
        return
    pa: Any = None
    if entry.arrow:
        with contextlib.suppress(ImportError):
            import pyarrow.ipc

            pa = pyarrow
    conns[0].send_bytes(orjson.dumps({"ok": True, "digest": model.digest}))

    def serve(conn: Any) -> None:
        while True:
            try:
                request = orjson.loads(conn.recv_bytes())
                body = conn.recv_bytes()
            except (EOFError, OSError):
                os._exit(0)  # the serving process is gone
            out = b""
            try:
                status, headers, out, _, request_id = _pipeline(
                    pa if request["arrow"] else None,
                    entry,
                    body,
                    request["encoding"].encode("latin-1"),
                    request["hl"],
                    request["limit"],
                )
                reply: dict[str, Any] = {
                    "status": status,
                    "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in headers],
                    "id": request_id,
                }
            except RequestError as exc:
                reply = {"status": exc.status, "error": exc.message}
            except _ModelBug as exc:
                print(f"mpkg: {entry.name} {entry.version}: package code failed", file=sys.stderr)
                traceback.print_exception(exc, file=sys.stderr)
                reply = {"status": 500, "error": "internal error in the model's code; the server log has the details"}
            body = b""
            try:
                conn.send_bytes(orjson.dumps(reply))
                conn.send_bytes(out)
            except (OSError, ValueError):
                os._exit(0)

    threads = [threading.Thread(target=serve, args=(c,), daemon=True) for c in conns]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
