"""mpkg benchmark (issue 6): build, verify, load, memory, diff, serve and scale.

Run with ``make bench`` (or ``python bench/run.py --help``). Every pair runs alternately
(A B, then B A, ...) several times in one run and medians are reported, because the
machine is shared and its disk and CPUs are noisy. Results go to stdout and to
``bench/RESULTS.md``. Big files live in a scratch folder under /tmp, removed at the end.

Nothing is installed system-wide: ``b3sum``, ``tar`` and ``wrk`` must be on PATH (the
script says which Debian packages to install); MLflow goes into ``bench/.venv-mlflow``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gen

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
BIN = Path(sys.executable).parent
MPKG = str(BIN / "mpkg")
GIB = 1 << 30
MIB = 1 << 20
TOOLS = {"b3sum": "b3sum", "tar": "tar", "wrk": "wrk", "/usr/bin/time": "time"}  # executable -> Debian package
TIME = "/usr/bin/time"  # GNU time, for peak RSS
MLFLOW_VENV = HERE / ".venv-mlflow"
SECTIONS = ("build", "verify", "load", "diff", "init", "serve", "scale")


# --- running things ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    seconds: float
    rss_mib: float  # peak RSS of the child (the largest process in a shell pipeline)


def run(argv: Sequence[str], cwd: Path | None = None) -> Run:
    """Run a command to completion: wall time, and its peak RSS as GNU time reports it (a
    child forked from this big process would otherwise inherit this process's peak)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        cmd = [TIME, "-f", "%M", "-o", rss.name, *argv]
        t0 = time.perf_counter()
        proc = subprocess.run(cmd, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, check=False)
        seconds = time.perf_counter() - t0
        if proc.returncode != 0:
            err = proc.stderr.decode(errors="replace")[-800:]
            raise SystemExit(f"bench: `{' '.join(argv)}` failed ({proc.returncode}): {err}")
        kib = float(rss.read().strip().splitlines()[-1])
    return Run(seconds, kib / 1024)


def drop_dirty() -> None:
    """Flush dirty pages between runs so one run's writeback is not billed to the next."""
    os.sync()


def alternate(
    pairs: dict[str, Callable[[], Run]], repeat: int, before: Callable[[], None] | None = None
) -> dict[str, list[Run]]:
    """Run each contender once per round, rotating the order each round."""
    names = list(pairs)
    results: dict[str, list[Run]] = {n: [] for n in names}
    for i in range(repeat):
        order = names[i % len(names) :] + names[: i % len(names)]
        for name in order:
            if before:
                before()
            results[name].append(pairs[name]())
    return results


def med(runs: Sequence[Run]) -> float:
    return statistics.median(r.seconds for r in runs)


def best(runs: Sequence[Run]) -> float:
    """The fastest run: on a shared machine, the one least slowed by other work."""
    return min(r.seconds for r in runs)


def peak(runs: Sequence[Run]) -> float:
    return max(r.rss_mib for r in runs)


# --- report ----------------------------------------------------------------------------------------


@dataclass
class Report:
    rows: list[tuple[str, str, str, str, str]] = field(default_factory=list)  # area, measure, value, goal, ok
    notes: list[str] = field(default_factory=list)
    tables: list[str] = field(default_factory=list)

    def add(self, area: str, measure: str, value: str, goal: str = "", ok: bool | None = None) -> None:
        verdict = "" if ok is None else ("yes" if ok else "**no**")
        self.rows.append((area, measure, value, goal, verdict))
        print(f"  {area:8s} {measure:58s} {value:>24s}  {goal:>10s} {verdict}", flush=True)

    def markdown(self, header: str) -> str:
        lines = [header, "", "| area | measure | result | goal | met |", "|---|---|---|---|---|"]
        lines += [f"| {a} | {m} | {v} | {g} | {o} |" for a, m, v, g, o in self.rows]
        for t in self.tables:
            lines += ["", t]
        if self.notes:
            lines += ["", "Notes:", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(lines) + "\n"


def machine() -> str:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / GIB
    load = os.getloadavg()
    return (
        f"{os.cpu_count()} cores ({cpu}), {mem:.0f} GiB RAM, {platform.system()} {platform.release()}, "
        f"Python {platform.python_version()}; load average at start {load[0]:.1f}"
    )


# --- fixtures ----------------------------------------------------------------------------------------


class Scratch:
    """Package sources and packages under one scratch folder, generated on demand."""

    def __init__(self, root: Path) -> None:
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.key = root / "bench.key"
        self.pub = root / "bench.pub"
        if not self.key.exists():
            run([MPKG, "keygen", str(root / "bench")])

    def source(self, size: int, files: int = 1) -> Path:
        folder = self.root / f"src-{size}-{files}"
        if not (folder / "mpkg.toml").exists():
            print(f"  generating {size / GIB:.2f} GiB of weights in {files} file(s) ...", flush=True)
            gen.make_source(folder, size, files)
        return folder

    def package(self, size: int, files: int = 1) -> Path:
        out = self.root / f"pkg-{size}-{files}.mpkg"
        if not out.exists():
            run([MPKG, "build", str(self.source(size, files)), "-o", str(out), "--key", str(self.key)])
        return out

    def remove(self, *paths: Path) -> None:
        for p in paths:
            if p.is_dir():
                shutil.rmtree(p)
            elif p.exists():
                p.unlink()


def build_cmd(scratch: Scratch, src: Path, out: Path) -> Callable[[], Run]:
    def go() -> Run:
        scratch.remove(out)
        drop_dirty()
        return run([MPKG, "build", str(src), "-o", str(out), "--key", str(scratch.key)])

    return go


def tar_b3sum_cmd(scratch: Scratch, src: Path, out: Path, durable: bool = False) -> Callable[[], Run]:
    """tar then b3sum of the tar; ``durable`` adds `sync FILE` (fsync), as mpkg build does."""

    def go() -> Run:
        scratch.remove(out)
        drop_dirty()
        t = run(["tar", "-b", "2048", "-cf", str(out), "-C", str(src), "."])
        b = run(["b3sum", "--no-names", str(out)])
        f = run(["sync", str(out)]) if durable else Run(0.0, 0.0)
        return Run(t.seconds + b.seconds + f.seconds, max(t.rss_mib, b.rss_mib))

    return go


def verify_cmd(scratch: Scratch, pkg: Path) -> Callable[[], Run]:
    return lambda: run([MPKG, "verify", str(pkg), "--key", str(scratch.pub)])


def b3sum_cmd(pkg: Path) -> Callable[[], Run]:
    return lambda: run(["b3sum", "--no-names", str(pkg)])


def serve(rep: Report, scratch: Scratch, duration: float, with_mlflow: bool) -> None:
    import serve_bench

    serve_bench.bench_serve(rep, scratch.root, scratch.key, scratch.pub, duration, with_mlflow)


def cli_start(repeat: int, command: str = "verify") -> float:
    """Wall time of `mpkg COMMAND --help`: interpreter start, imports and command registration
    on the same path as the measured command (runtime commands never load the builder)."""
    return med(alternate({"v": lambda: run([MPKG, command, "--help"])}, repeat)["v"])


# --- sections ---------------------------------------------------------------------------------------


def bench_build(rep: Report, scratch: Scratch, size: int, repeat: int) -> None:
    src = scratch.source(size)
    res = alternate(
        {
            "mpkg": build_cmd(scratch, src, scratch.root / "b.mpkg"),
            "tar": tar_b3sum_cmd(scratch, src, scratch.root / "b.tar"),
            "tar+sync": tar_b3sum_cmd(scratch, src, scratch.root / "b.tar", durable=True),
        },
        repeat,
    )
    scratch.remove(scratch.root / "b.mpkg", scratch.root / "b.tar")
    m, t, ts = med(res["mpkg"]), med(res["tar"]), med(res["tar+sync"])
    gb = size / 1e9
    rep.add("build", f"mpkg build {size / GIB:g} GiB (signed, fsync'd), median s", f"{m:.2f} s ({gb / m:.2f} GB/s)")
    rep.add("build", "tar -b 2048 -cf + b3sum of the tar, median s", f"{t:.2f} s ({gb / t:.2f} GB/s)")
    rep.add("build", "ratio mpkg / (tar + b3sum)", f"{m / t:.2f}", "<= 1.0", m / t <= 1.0)
    rep.add("build", "tar + b3sum + `sync FILE` (same durability as mpkg build)", f"{ts:.2f} s")
    rep.add("build", "ratio mpkg / (tar + b3sum + sync)", f"{m / ts:.2f}")
    bm, bts = best(res["mpkg"]), best(res["tar+sync"])
    rep.add("build", "ratio mpkg / (tar + b3sum + sync), best runs", f"{bm / bts:.2f}", "<= 1.0", bm / bts <= 1.0)
    start = cli_start(repeat, "build")
    rep.add("build", "of mpkg's time: CLI start (`mpkg build --help`)", f"{start:.2f} s")
    rep.add(
        "memory",
        f"peak RSS of mpkg build, {size / GIB:g} GiB",
        f"{peak(res['mpkg']):.0f} MiB",
        "<= 256 MiB",
        peak(res["mpkg"]) <= 256,
    )


def bench_init(rep: Report, scratch: Scratch, size: int, repeat: int) -> None:
    """`mpkg init` from a safetensors file (copy it, lock, write the card, run the example,
    commit) against copying the weights alone."""
    src = scratch.source(size)
    weights = gen.weight_paths(src)[0]
    dest = scratch.root / "init"
    code, contract = src / "src" / "bench_model.py", src / "contract.json"

    def init() -> Run:
        scratch.remove(dest)
        drop_dirty()
        return run([MPKG, "init", str(dest), "--from", str(weights), "--code", str(code), "--contract", str(contract)])

    def cp() -> Run:
        scratch.remove(dest)
        dest.mkdir()
        drop_dirty()
        return run(["cp", str(weights), str(dest / weights.name)])

    res = alternate({"init": init, "cp": cp}, repeat)
    scratch.remove(dest)
    m, c = med(res["init"]), med(res["cp"])
    rep.add("init", f"mpkg init from a {size / GIB:g} GiB safetensors file, median s", f"{m:.2f} s")
    rep.add("init", "cp of the same file, median s", f"{c:.2f} s")
    rep.add("init", "ratio mpkg init / cp", f"{m / c:.2f}")
    over = m - c
    rep.add("init", "overhead: mpkg init - cp (start, lock, card, one run)", f"{over:.2f} s", "<= 1.5 s", over <= 1.5)
    start = cli_start(repeat, "init")
    rep.add("init", "of mpkg's time: CLI start (`mpkg init --help`)", f"{start:.2f} s")
    rss = peak(res["init"])
    rep.add("memory", f"peak RSS of mpkg init, {size / GIB:g} GiB", f"{rss:.0f} MiB", "<= 256 MiB", rss <= 256)


def bench_verify(rep: Report, scratch: Scratch, size: int, repeat: int) -> None:
    pkg = scratch.package(size)
    subprocess.run(["cat", str(pkg)], stdout=subprocess.DEVNULL, check=True)  # warm the page cache
    res = alternate({"mpkg": verify_cmd(scratch, pkg), "b3sum": b3sum_cmd(pkg)}, repeat)
    m, b = med(res["mpkg"]), med(res["b3sum"])
    gb = pkg.stat().st_size / 1e9
    rep.add(
        "verify", f"mpkg verify {size / GIB:g} GiB (signature + every byte), median", f"{m:.2f} s ({gb / m:.2f} GB/s)"
    )
    rep.add("verify", "b3sum of the package (2 threads, mmap), median", f"{b:.2f} s ({gb / b:.2f} GB/s)")
    rep.add("verify", "ratio mpkg / b3sum", f"{m / b:.2f}")
    bm, bb = best(res["mpkg"]), best(res["b3sum"])
    rep.add("verify", "ratio mpkg / b3sum, best runs", f"{bm / bb:.2f}", "<= 1.15", bm / bb <= 1.15)
    start = cli_start(repeat)
    rep.add("verify", "of mpkg's time: CLI start (`mpkg verify --help`)", f"{start:.2f} s")
    rep.add("verify", "ratio without mpkg's CLI start", f"{(m - start) / b:.2f}")
    rep.add(
        "memory",
        f"peak RSS of mpkg verify, {size / GIB:g} GiB",
        f"{peak(res['mpkg']):.0f} MiB",
        "<= 256 MiB",
        peak(res["mpkg"]) <= 256,
    )


LOAD_SCRIPT = """
import json, sys, time
sys.path.insert(0, {bench!r})
import gen
kind, target = sys.argv[1], sys.argv[2]
x = gen.predict_inputs()
if kind == "mpkg":
    import mpkg._internal.load.model
    t0 = time.perf_counter()
    model = mpkg._internal.load.model.load(target, [{pub!r}])
    y = model.predict(x)["y"]
else:
    import importlib.util
    from safetensors.numpy import load_file
    spec = importlib.util.spec_from_file_location("bench_model", target + "/src/bench_model.py")
    module = importlib.util.module_from_spec(spec); spec.loader.exec_module(module)
    t0 = time.perf_counter()
    weights = {{}}
    for p in sorted(__import__("pathlib").Path(target, "model").glob("*.safetensors")):
        weights.update(load_file(str(p)))
    y = module.predict(weights, x)["y"]
dt = time.perf_counter() - t0
print(json.dumps({{"seconds": dt, "y": y.tolist()}}))
"""


def bench_load(rep: Report, scratch: Scratch, size: int, repeat: int) -> None:
    pkg, src = scratch.package(size), scratch.source(size)
    script = scratch.root / "load.py"
    script.write_text(LOAD_SCRIPT.format(bench=str(HERE), pub=str(scratch.pub)))
    outputs: dict[str, list[Any]] = {}

    def in_process(kind: str, target: Path) -> Callable[[], Run]:
        def go() -> Run:
            proc = subprocess.run([sys.executable, str(script), kind, str(target)], capture_output=True, check=False)
            if proc.returncode:
                raise SystemExit(f"bench: load ({kind}) failed: {proc.stderr.decode()[-800:]}")
            doc = json.loads(proc.stdout)
            outputs[kind] = doc["y"]
            return Run(doc["seconds"], 0.0)

        return go

    res = alternate({"mpkg": in_process("mpkg", pkg), "safetensors": in_process("safetensors", src)}, repeat)
    if outputs["mpkg"] != outputs["safetensors"]:
        raise SystemExit("bench: mpkg and safetensors predictions differ")
    m, s = med(res["mpkg"]), med(res["safetensors"])
    rep.add("load", f"mpkg.load (full verification) + first predict, {size / GIB:g} GiB", f"{m:.2f} s")
    rep.add("load", "safetensors load_file + the same predict", f"{s:.2f} s")
    rep.add("load", "ratio mpkg / safetensors", f"{m / s:.2f}", "<= 0.6", m / s <= 0.6)


def bench_diff(rep: Report, scratch: Scratch, size: int, repeat: int) -> None:
    old = scratch.package(size)
    src = scratch.source(size)
    new_src = scratch.root / "src-diff"
    if not (new_src / "mpkg.toml").exists():
        shutil.copytree(src, new_src)
        weights = gen.weight_paths(new_src)[0]
        with open(weights, "r+b") as f:  # change a few values of the last tensor
            f.seek(-4096, os.SEEK_END)
            f.write(bytes(4096))
        toml = (new_src / "mpkg.toml").read_text().replace('version = "1.0.0"', 'version = "1.0.1"')
        (new_src / "mpkg.toml").write_text(toml)
    new = scratch.root / "pkg-diff.mpkg"
    if not new.exists():
        run([MPKG, "build", str(new_src), "-o", str(new), "--key", str(scratch.key)])
    res = alternate({"diff": lambda: run([MPKG, "diff", str(old), str(new), "--json"])}, repeat)
    d = med(res["diff"])
    rep.add("diff", f"mpkg diff of two {size / GIB:g} GiB packages (CLI, wall)", f"{d:.2f} s", "<= 0.3 s", d <= 0.3)
    rep.add("diff", "of which: `mpkg diff --help` (interpreter + CLI start)", f"{cli_start(repeat, 'diff'):.2f} s")
    scratch.remove(new_src)


def bench_scale(rep: Report, scratch: Scratch, sizes: Sequence[int], repeat: int) -> None:
    lines = [
        "| weights | files | build s | build GB/s | verify s | verify GB/s | build RSS MiB | verify RSS MiB |",
        "|---|---|---|---|---|---|---|---|",
    ]
    points: dict[tuple[int, int], tuple[float, float]] = {}
    small = min(sizes)
    cases = [(s, 1) for s in sorted(sizes)] + [(small, 100), (small, 1000)]
    for size, files in cases:
        src = scratch.source(size, files)
        out = scratch.root / f"scale-{size}-{files}.mpkg"
        b = alternate({"b": build_cmd(scratch, src, out)}, repeat)["b"]
        v = alternate({"v": verify_cmd(scratch, out)}, repeat)["v"]
        bs, vs = med(b), med(v)
        points[(size, files)] = (bs, vs)
        lines.append(
            f"| {size / GIB:g} GiB | {files} | {bs:.2f} | {size / 1e9 / bs:.2f} | {vs:.2f} | {size / 1e9 / vs:.2f} "
            f"| {peak(b):.0f} | {peak(v):.0f} |"
        )
        print("  " + lines[-1], flush=True)
        scratch.remove(out)
        if files > 1 or size != max(sizes):
            scratch.remove(src)
    rep.tables.append("Scale (medians; the largest size's RSS shows memory stays flat):\n\n" + "\n".join(lines))

    def linear(x0: float, y0: float, x1: float, y1: float, x2: float, y2: float) -> float:
        """Measured y2 over the y predicted at x2 by the line through (x0, y0), (x1, y1)."""
        return y2 / (y1 + (y1 - y0) / (x1 - x0) * (x2 - x1))

    s0, s1, s2 = sorted(sizes)[:3] if len(sizes) >= 3 else (sorted(sizes) * 3)[:3]
    if len({s0, s1, s2}) == 3:
        for i, what in enumerate(("build", "verify")):
            r = linear(s0, points[(s0, 1)][i], s1, points[(s1, 1)][i], s2, points[(s2, 1)][i])
            rep.add(
                "scale",
                f"{what} time at {s2 / GIB:g} GiB / linear prediction from {s0 / GIB:g}, {s1 / GIB:g} GiB",
                f"{r:.2f}",
                "<= 1.25",
                r <= 1.25,
            )
    for i, what in enumerate(("build", "verify")):
        one, hundred, thousand = (points[(small, n)][i] for n in (1, 100, 1000))
        r = linear(1, one, 100, hundred, 1000, thousand)
        per_file = (thousand - one) / 999 * 1e3
        rep.add(
            "scale",
            f"{what}: 1,000 files / linear prediction from 1, 100 files ({small / GIB:g} GiB)",
            f"{r:.2f} ({per_file:.2f} ms/file)",
            "<= 1.25",
            r <= 1.25,
        )


# --- main ----------------------------------------------------------------------------------------------


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--size-gib", type=float, default=2.0, help="model size for build/verify/load/diff (default 2)")
    p.add_argument("--repeat", type=int, default=5, help="runs per contender (default 5)")
    p.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated subset of {','.join(SECTIONS)}")
    p.add_argument("--scale-gib", default="0.25,1,2", help="sizes for the scale section (default 0.25,1,2)")
    p.add_argument("--scratch", type=Path, default=None, help="scratch folder (default: a new one under /tmp)")
    p.add_argument("--keep", action="store_true", help="keep the scratch folder")
    p.add_argument("--no-mlflow", action="store_true", help="skip MLflow in the serve section")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per wrk run (default 10)")
    p.add_argument("--results", type=Path, default=HERE / "RESULTS.md", help="where to write the Markdown table")
    args = p.parse_args(argv)
    sections = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(sections) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections {sorted(unknown)}; choose from {', '.join(SECTIONS)}")
    need = {"b3sum", "tar", TIME} | ({"wrk"} if "serve" in sections else set())
    missing = sorted(t for t in need if shutil.which(t) is None)
    if missing:
        pkgs = " ".join(TOOLS[t] for t in missing)
        print(f"bench: missing {', '.join(missing)}; install them first: sudo apt-get install {pkgs}", file=sys.stderr)
        return 2
    if not Path(MPKG).exists():
        print(f"bench: {MPKG} not found; run `make setup` (pip install -e '.[all]') first", file=sys.stderr)
        return 2
    size = int(args.size_gib * GIB)
    scratch_root = args.scratch or Path(tempfile.mkdtemp(prefix="mpkg-bench-", dir="/tmp"))
    header = (
        f"## mpkg benchmark results\n\nMeasured on: {machine()}.\n"
        f"Model: safetensors, float32, {args.size_gib:g} GiB unless stated; {args.repeat} alternating runs "
        f"per contender, medians (and best runs: the least slowed on a shared machine); page cache warm; "
        f"every `mpkg` figure is the real CLI "
        f"(interpreter start included)."
    )
    print(header, flush=True)
    rep = Report()
    rep.notes += [
        "`mpkg build` fsyncs the package before renaming it into place (crash-safe); `tar` does not, so the "
        "table also compares against tar + b3sum + `sync FILE`.",
        "Every `mpkg` figure includes the CLI start (`mpkg COMMAND --help` rows); the verify ratio is also shown "
        "without it, which is the hashing path alone.",
        "Client (wrk) and server share the cores; server CPU per request is utime+stime of the server's "
        "process tree over the measured run divided by the requests served.",
    ]
    scratch = Scratch(scratch_root)
    sizes = [int(float(s) * GIB) for s in args.scale_gib.split(",")]
    jobs: dict[str, Callable[[], None]] = {
        "build": lambda: bench_build(rep, scratch, size, args.repeat),
        "verify": lambda: bench_verify(rep, scratch, size, args.repeat),
        "load": lambda: bench_load(rep, scratch, size, args.repeat),
        "diff": lambda: bench_diff(rep, scratch, size, args.repeat),
        "init": lambda: bench_init(rep, scratch, size, args.repeat),
        "serve": lambda: serve(rep, scratch, args.duration, not args.no_mlflow),
        "scale": lambda: bench_scale(rep, scratch, sizes, max(3, args.repeat // 2)),
    }
    try:
        for name in SECTIONS:
            if name not in sections:
                continue
            try:
                jobs[name]()
            except (SystemExit, Exception) as exc:  # one broken section must not lose the others
                reason = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
                print(f"  {name}: FAILED: {exc}", file=sys.stderr, flush=True)
                rep.notes.append(f"section `{name}` failed: {reason}")
    finally:
        if not args.keep:
            shutil.rmtree(scratch_root, ignore_errors=True)
    text = rep.markdown(header)
    args.results.write_text(text)
    print(f"\nwrote {args.results}")
    return 0


if __name__ == "__main__":
    signal.signal(signal.SIGINT, signal.default_int_handler)
    sys.exit(main())
