"""Registry benchmarks: what reading a repository's history costs with N events, and (``--pieces``)
the bytes a 2 GiB model's versions send, store and download now that each file is stored once.

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
from typing import BinaryIO

from mpkg._internal.registry.cache import DiskCache
from mpkg._internal.registry.history import Event, now_text, read_events
from mpkg._internal.registry.oci import OciClient
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
    parser.add_argument("--pieces", action="store_true", help="bytes sent/stored/downloaded per version instead")
    parser.add_argument("--size-mib", type=int, default=2048, help="weights of the --pieces model")
    args = parser.parse_args(argv)
    if args.pieces:
        return pieces(args.size_mib)
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
    write_section(lines)
    return 0


def write_section(lines: list[str]) -> None:
    """Replace this section of RESULTS-registry.md (its first line is the title), keep the others."""
    path = HERE / "RESULTS-registry.md"
    sections = [s for s in path.read_text().split("\n\n# ") if s] if path.exists() else []
    sections = [s if s.startswith("# ") else "# " + s for s in sections]
    sections = [s.rstrip("\n") for s in sections if s.splitlines()[0] != lines[0]]
    path.write_text("\n\n".join([*sections, "\n".join(lines)]) + "\n")


class CountingClient(OciClient):
    """A registry client that counts the blob bytes it downloads."""

    downloaded = 0

    def fetch_blob(self, repo: str, digest: str, size: int, out: BinaryIO) -> None:
        """Fetch and count."""
        super().fetch_blob(repo, digest, size, out)
        self.downloaded += size


def _bytes_under(root: Path) -> int:
    return sum(p.stat().st_size for p in root.rglob("*") if p.is_file())


def _mib(n: int) -> str:
    return f"{n / 2**20:,.2f} MiB"


def pieces(size_mib: int) -> int:
    """Bytes sent, stored and downloaded for a model of ``size_mib``: push v1.0.0, a card-only
    v1.0.1 and a retrain v1.1.0; pull each with the previous version in the package cache.
    Baseline (same run): the one-blob layout, which sends, stores and downloads the whole file."""
    sys.path.insert(0, str(HERE.parent))
    from mpkg._internal.registry.fetch import FetchPolicy, fetch
    from mpkg_builder.build import build_package
    from mpkg_builder.registry import lifecycle

    from bench.gen import make_source

    lines = [
        "# Each file stored once: bytes for a card-only PATCH and a retrain",
        "",
        f"{size_mib} MiB of safetensors weights; load average at start {os.getloadavg()[0]:.1f} on "
        f"{os.cpu_count()} cores (shared machine: the seconds are noisy, the bytes are exact)",
        "",
        "| version | what changed | file | sent (pieces) | stored (registry growth) | sent / one-blob | "
        "push s | downloaded by pull, previous version cached | downloaded / one-blob | pull s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    with tempfile.TemporaryDirectory(prefix="mpkg-bench-pieces-") as tmpdir:
        tmp = Path(tmpdir)
        src = make_source(tmp / "src", size_mib * 2**20, files=1, name="big-model", seed=0)
        packages = [("1.0.0", "first push"), ("1.0.1", "model card only"), ("1.1.0", "retrained weights")]
        built: dict[str, Path] = {}
        for version, what in packages:
            if version == "1.0.1":
                (src / "MODEL_CARD.md").write_text((src / "MODEL_CARD.md").read_text() + "\nRe-evaluated.\n")
            if version == "1.1.0":
                shutil.rmtree(src)
                src = make_source(tmp / "src", size_mib * 2**20, files=1, name="big-model", seed=1)
            toml = src / "mpkg.toml"
            toml.write_text(toml.read_text().replace('version = "1.0.0"', f'version = "{version}"'))
            built[version] = tmp / f"big-model-{version}.mpkg"
            build_package(src, built[version])
            print(f"built {version} ({what})", flush=True)
        shutil.rmtree(src)
        home = tmp / "client"
        with registry(tmp) as host:
            storage = tmp / "storage"
            backend = OciBackend(host, insecure=True)
            client = CountingClient(host, insecure=True)
            policy = FetchPolicy.from_paths(allow_unsigned=True, insecure=True, home=home)
            for version, what in packages:
                size = built[version].stat().st_size
                before, start = _bytes_under(storage), time.perf_counter()
                result = lifecycle.push(backend, parse_ref(f"{host}/big-model"), built[version])
                push_s = time.perf_counter() - start
                stored = _bytes_under(storage) - before
                start, got = time.perf_counter(), client.downloaded
                out = tmp / "pulled.mpkg"
                lifecycle.pull(client, parse_ref(f"{host}/big-model:{version}"), out, allow_unsigned=True, home=home)
                pull_s, downloaded = time.perf_counter() - start, client.downloaded - got
                out.unlink()
                fetch(f"{host}/big-model:{version}", policy)  # now cached: the next version's previous one
                row = (
                    f"| {version} | {what} | {_mib(size)} | {_mib(result.sent)} | {_mib(stored)} | "
                    f"{result.sent / size:.5f} | {push_s:.1f} | {_mib(downloaded)} | {downloaded / size:.5f} | "
                    f"{pull_s:.1f} |"
                )
                print(row, flush=True)
                lines.append(row)
            backend.close()
            client.close()
    lines += [
        "",
        "sent: blob bytes uploaded (pieces the registry lacked, HEAD first); stored: growth of the registry's",
        "storage directory (blobs and manifests); the one-blob layout mpkg used before sends, stores and",
        "downloads the whole file for every version (ratio 1). pull: `lifecycle.pull` with the previous",
        "version in MPKG_HOME's package cache (pieces copied locally after re-hashing); the first pull has",
        "nothing cached. Run: `python bench/registry_bench.py --pieces [--size-mib 2048]`.",
    ]
    write_section(lines)
    return 0


if __name__ == "__main__":
    sys.exit(main())
