"""Every bound on what a client can make the server hold, in one place (spec/runtime.md §6).

Defaults follow what production HTTP servers ship (nginx, gunicorn, Node): small enough
that a thousand hostile connections cost little, large enough for real clients
(tritonclient, the KServe SDK, curl) with V2 bodies.
"""

from __future__ import annotations

from dataclasses import dataclass

from mpkg.errors import UsageError

DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


@dataclass(frozen=True)
class Limits:
    """Per-server limits; per-model ones apply to each model separately."""

    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES  # a request body, also after decompression
    max_inflight: int = 2  # calls of one model running at once (its own threads)
    max_queue: int = 16  # admitted calls of one model waiting for a thread; beyond: 503
    max_connections: int = 4096  # open connections; beyond: idle ones are closed, else 503
    max_header_bytes: int = 32 * 1024  # request line plus all header lines
    max_headers: int = 100  # header fields in one request
    max_request_line: int = 8 * 1024  # the request target (URL)
    header_timeout: float = 10.0  # seconds from a request's first byte (or the connection) to its last header
    body_timeout: float = 60.0  # seconds from a body's first part to its last
    keepalive_timeout: float = 5.0  # an idle keep-alive connection is closed after this

    def check(self) -> None:
        """Refuse impossible settings, naming the flag."""
        positive = {
            "--max-body-bytes": self.max_body_bytes,
            "--max-inflight": self.max_inflight,
            "--max-connections": self.max_connections,
            "--max-header-bytes": self.max_header_bytes,
            "--max-headers": self.max_headers,
            "--max-request-line": self.max_request_line,
            "--header-timeout": self.header_timeout,
            "--body-timeout": self.body_timeout,
            "--keepalive-timeout": self.keepalive_timeout,
        }
        for flag, value in positive.items():
            if not value > 0:
                raise UsageError("must be positive", flag)
        if self.max_queue < 0:
            raise UsageError("must be >= 0", "--max-queue")


def raise_open_files(wanted: int) -> int:
    """Raise the soft RLIMIT_NOFILE towards the hard limit so ``wanted`` connections fit;
    returns how many connections fit (file descriptors minus a reserve for the packages,
    logs and the interpreter)."""
    reserve = 256
    try:
        import resource
    except ImportError:  # not on Linux/macOS
        return wanted
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = wanted + reserve
    if soft != resource.RLIM_INFINITY and soft < need:
        target = need if hard == resource.RLIM_INFINITY else min(need, hard)
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
            soft = target
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - reserve))
