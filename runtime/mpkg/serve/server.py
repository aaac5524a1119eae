"""``mpkg serve``: bind the socket once, then run one worker here or supervise N.

Design:
- The listening socket is bound once, by the process that ``serve`` runs in,
  so ``--port 0`` works and every worker shares one accept queue.
- One worker runs in this process (worker.py); ``--workers N`` spawns N
  processes on the same socket (supervise.py).
- TCP_NODELAY is set explicitly on every accepted connection: asyncio only
  sets it when the socket's ``proto`` is TCP, which a socket shared with a
  worker process no longer reports (uvicorn issue 3149: 40 ms stalls).
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from mpkg.errors import MpkgError, UsageError

from .limits import DEFAULT_MAX_BODY_BYTES, Limits
from .loading import load_models
from .logs import Log
from .options import Loader, ServeOptions
from .splits import Split
from .worker import run_worker

__all__ = ["Loader", "ServeOptions", "bind", "load_models", "run", "serve"]


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
            failure = run_worker(options, sock, 0, None, log)
            if failure is not None:
                raise failure
        else:
            from .supervise import supervise  # multiprocessing only for --workers N

            supervise(options, sock, log)
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
