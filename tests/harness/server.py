"""A real ``mpkg serve`` subprocess on 127.0.0.1 with a free port, for the serve and registry tests."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import httpx

_LISTENING = re.compile(r"listening on (http://[0-9a-zA-Z.:\[\]]+)")
_WAIT_S = 120.0  # an upper bound for slow shared CI machines, not a performance assertion
MPKG_SERVE = [sys.executable, "-m", "mpkg", "serve"]


def server_env(extra_pythonpath: Sequence[str] = (), **extra: str) -> dict[str, str]:
    """The environment for a server subprocess; ``extra`` sets variables the package code reads."""
    env = {k: v for k, v in os.environ.items() if k not in ("MPKG_KEYS", "MPKG_KEY_PASSPHRASE")}
    if extra_pythonpath:
        env["PYTHONPATH"] = os.pathsep.join(p for p in [*extra_pythonpath, env.get("PYTHONPATH", "")] if p)
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra)
    return env


class ServerProcess:
    """A real ``mpkg serve`` subprocess on 127.0.0.1 with a free port; stderr goes to a file."""

    def __init__(
        self, command: Sequence[str], args: Sequence[str], log_path: Path, env: dict[str, str] | None = None
    ) -> None:
        self.log_path = log_path
        self._log = open(log_path, "wb")  # noqa: SIM115  # closed in stop()
        self.proc = subprocess.Popen(
            [*command, *args, "--host", "127.0.0.1", "--port", "0"],
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=env or server_env(),
        )
        self.url = ""
        # Each worker process loads on its own; the server is ready for every connection only
        # once each has logged "ready" (a new connection may reach any of them).
        self.workers = int(args[list(args).index("--workers") + 1]) if "--workers" in args else 1

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def wait_listening(self) -> str:
        deadline = time.monotonic() + _WAIT_S
        while time.monotonic() < deadline:
            m = _LISTENING.search(self.log())
            if m:
                self.url = m.group(1)
                return self.url
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode} before listening:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"server did not start listening:\n{self.log()}")

    def wait_ready(self) -> str:
        self.wait_listening()
        deadline = time.monotonic() + _WAIT_S
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"server exited {self.proc.returncode} while loading:\n{self.log()}")
            try:
                ready = httpx.get(self.url + "/v2/health/ready", timeout=10).status_code == 200
            except httpx.TransportError:
                ready = False
            if ready and self.log().count(" ready worker=") + self.log().count('"msg":"ready"') >= self.workers:
                return self.url
            time.sleep(0.02)
        raise AssertionError(f"server never became ready:\n{self.log()}")

    def wait_exit(self) -> int:
        try:
            return self.proc.wait(timeout=_WAIT_S)
        finally:
            self._log.close()

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit()

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.wait_exit()
