"""Registry history benchmark: what reading a repository's history costs with N events.

Every registry command reads the history first (push, promote, rollback, gc, history, pull of
a stage). Each event is an OCI artifact: read naively that is one tag listing plus three GETs
per signed event (manifest, event, envelope), which is what every command paid before events
were cached. Events are immutable and named by digest, so a client now keeps them in
MPKG_HOME/cache and a history read is one tag listing plus the new events.

Measured against the real registry (Debian ``docker-registry``) on 127.0.0.1, each as a ratio
to the floor in the same run: one paginated tag listing of the same repository by the same
client. The local store is shown beside it. Run: ``python bench/registry_bench.py [N ...]``.
The machine is shared; the numbers are medians of alternating runs and still noisy.
"""

from __future__ import annotations

import argparse
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from mpkg._internal.registry.cache import DiskCache
from mpkg._internal.registry.history import Event, now_text, read_events
from mpkg._internal.registry.refs import parse_ref
from mpkg._internal.registry.seen import SeenHeads
from mpkg._internal.registry.trust import HistoryPolicy, load_history
from mpkg._internal.trust.signatures import load_public_keys
from mpkg_builder.registry.local import LocalBackend
from mpkg_builder.registry.oci import OciBackend
from mpkg_builder.registry.record import Signer, write_event
from mpkg_builder.registry.report import history
from mpkg_builder.signing import keygen

HERE = Path(__file__).resolve().parent
REPO = "bench/history"  # plus the number of events: one repository per size


@contextmanager
def registry(tmp: Path) -> Iterator[str]:
    exe = shutil.which("docker-registry")
    if exe is None:
        raise SystemExit("bench: docker-registry is not installed (apt-get install docker-registry)")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = tmp / "config.yml"
    config.write_text(
        f"version: 0.1\nlog:\n  level: error\n  accesslog:\n    disabled: true\nstorage:\n  filesystem:\n"
        f"    rootdirectory: {tmp / 'storage'}\nhttp:\n  addr: 127.0.0.1:{port}\n"
    )
    proc = subprocess.Popen([exe, "serve", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        for _ in range(300):
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1)
                break
            except OSError:
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def fill(backend: OciBackend | LocalBackend, repo: str, n: int, signer: Signer) -> None:
    parents: tuple[str, ...] = ()
    for i in range(n):
        event = Event(repo, i, parents, "void", now_text(), "bench", signer.keyid, "staging")
        parents = (write_event(backend, repo, event, signer),)


def median_seconds(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure(
    backend: OciBackend | LocalBackend, ref: str, n: int, signer: Signer, state: Path, repeat: int
) -> tuple[float, float, float, float, float]:
    """Fill a repository with ``n`` signed events, then time: the floor (one tag listing), the
    uncached read (before), the read as commands do it now (after), and the `mpkg history`
    report. Returns those four and the time to write one event."""
    repo = parse_ref(ref).repository
    trusted = load_public_keys([state.parent / "bench.pub"])
    t0 = time.perf_counter()
    fill(backend, repo, n, signer)
    write = (time.perf_counter() - t0) / n
    cache = DiskCache(state)
    events, problems = read_events(backend, repo, trusted, cache)  # warm the cache
    assert len(events) == n and not problems, (len(events), problems)
    policy = HistoryPolicy(trusted, SeenHeads(state), cache)
    floor = median_seconds(lambda: backend.list_tags(repo), repeat)
    before = median_seconds(lambda: read_events(backend, repo, trusted), repeat)
    after = median_seconds(lambda: load_history(backend, repo, policy), repeat)
    report = median_seconds(lambda: history(backend, parse_ref(ref), policy=policy), repeat)
    return floor, before, after, report, write


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("events", nargs="*", type=int, default=[100, 500])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args(argv)
    lines = [
        "# Registry history read cost",
        "",
        f"load average at start {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores (shared machine: noisy)",
        "",
        "| events | store | floor: tag listing | uncached read (before) | read now (after) | "
        "`mpkg history` report (after) | before / floor | after / floor | writing one event |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="mpkg-bench-registry-") as tmpdir:
        tmp = Path(tmpdir)
        signer = Signer.load(keygen(tmp / "bench").private_path)
        with registry(tmp) as host:
            for n in args.events:
                repo = f"{REPO}-{n}"
                for name, backend, ref in (
                    ("registry", OciBackend(host, insecure=True), f"{host}/{repo}"),
                    ("local store", LocalBackend(tmp / f"store-{n}"), repo),
                ):
                    state = tmp / f"client-{name.replace(' ', '-')}-{n}"
                    floor, before, after, report, write = measure(backend, ref, n, signer, state, args.repeat)
                    backend.close()
                    ms = [f"{t * 1000:.1f} ms" for t in (floor, before, after, report, write)]
                    ratios = f"{before / floor:.0f}x | {after / floor:.0f}x"
                    row = f"| {n} | {name} | {' | '.join(ms[:4])} | {ratios} | {ms[4]} |"
                    print(row, flush=True)
                    lines.append(row)
    lines += [
        "",
        "before: every event fetched from the store (one manifest, one event and one envelope GET each),",
        "as every command did before the client cache; after: the history as commands read it now",
        "(signatures, links and the high-water mark checked; registry events from MPKG_HOME/cache by digest;",
        "the local store is read directly, so there before and after do the same work).",
        "The report adds the stage tags and one manifest GET per pushed tag (the tag re-check).",
    ]
    (HERE / "RESULTS-registry.md").write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
