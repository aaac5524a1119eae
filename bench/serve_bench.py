"""Serve benchmark: `mpkg serve` vs in-process onnxruntime, MLflow's scoring server and
KServe's own Python ``ModelServer`` (a custom ``kserve.Model`` around onnxruntime, as a
KServe user writes it: bench/kserve_model.py), on the same model, client and run.

Load comes from ``wrk`` (one thread, 16 keep-alive connections, Lua POST bodies), which
costs little CPU itself. Client and server share the machine's cores, so requests/s alone
misleads: server CPU per request is measured from /proc/<pid>/stat (utime + stime of the
server and all its descendants) over the measured run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
IRIS = ROOT / "examples" / "iris-mlp"
MPKG = str(Path(sys.executable).parent / "mpkg")
MLFLOW_VENV = HERE / ".venv-mlflow"
KSERVE_VENV = HERE / ".venv-kserve"
KSERVE_PIN = "kserve==0.21.0"  # the baseline's own venv: never a runtime dependency of mpkg
CLK_TCK = os.sysconf("SC_CLK_TCK")
CONNECTIONS = 16
BATCHES = (1, 64)
ROW = [5.1, 3.5, 1.4, 0.2]


@dataclass(frozen=True)
class Load:
    rps: float
    p50_ms: float
    p99_ms: float
    cpu_ms_per_req: float
    requests: int


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rows(batch: int) -> list[list[float]]:
    return [[v + 0.01 * (i % 7) for v in ROW] for i in range(batch)]


def v2_body(batch: int) -> bytes:
    flat = [v for r in rows(batch) for v in r]
    doc = {"inputs": [{"name": "features", "shape": [batch, 4], "datatype": "FP32", "data": flat}]}
    return json.dumps(doc).encode()


def mlflow_body(batch: int) -> bytes:
    return json.dumps({"inputs": {"features": rows(batch)}}).encode()


def post(url: str, body: bytes, timeout: float = 2.0) -> bytes:
    req = urllib.request.Request(url, body, {"Content-Type": "application/json"}, method="POST")
    with urllib.request.urlopen(req, timeout=timeout) as resp:
        data: bytes = resp.read()
        return data


def wait_first_answer(proc: subprocess.Popen[bytes], url: str, body: bytes, limit: float = 120.0) -> float:
    """Seconds from now until ``url`` answers ``body`` with 200 (poll every 5 ms)."""
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < limit:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode} before answering")
        try:
            post(url, body, timeout=5.0)
            return time.perf_counter() - t0
        except (urllib.error.URLError, ConnectionError, OSError):
            time.sleep(0.005)
    raise RuntimeError(f"no answer from {url} within {limit:.0f} s")


def tree_cpu_seconds(pid: int) -> float:
    """utime + stime of ``pid`` and every live descendant."""
    parents: dict[int, int] = {}
    stats: dict[int, list[str]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            text = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = text[text.rindex(")") + 2 :].split()
        stats[int(entry)] = fields
        parents[int(entry)] = int(fields[1])
    total = 0.0
    todo = [pid]
    seen = set()
    while todo:
        p = todo.pop()
        if p in seen or p not in stats:
            continue
        seen.add(p)
        f = stats[p]
        total += (int(f[11]) + int(f[12])) / CLK_TCK  # utime, stime (fields 14, 15)
        todo.extend(c for c, pp in parents.items() if pp == p)
    return total


_LAT = re.compile(r"^\s*(50|99)%\s+([\d.]+)(us|ms|s)\s*$", re.M)
_UNIT = {"us": 1e-3, "ms": 1.0, "s": 1e3}


def wrk(url: str, body: bytes, seconds: float, server_pid: int, scratch: Path) -> Load:
    script = scratch / "post.lua"
    script.write_text(
        f'wrk.method = "POST"\nwrk.headers["Content-Type"] = "application/json"\nwrk.body = [==[{body.decode()}]==]\n'
    )
    argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds:g}s", "--latency", "-s", str(script), url]
    subprocess.run([*argv[:4], "-d2s", *argv[5:]], capture_output=True, check=True)  # warm-up
    cpu0 = tree_cpu_seconds(server_pid)
    out = subprocess.run(argv, capture_output=True, check=True, text=True).stdout
    cpu1 = tree_cpu_seconds(server_pid)
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors against {url}:\n{out}")
    requests = int(re.search(r"(\d+) requests in", out).group(1))  # type: ignore[union-attr]
    rps = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))  # type: ignore[union-attr]
    lat = {m.group(1): float(m.group(2)) * _UNIT[m.group(3)] for m in _LAT.finditer(out)}
    return Load(rps, lat["50"], lat["99"], (cpu1 - cpu0) * 1e3 / max(requests, 1), requests)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


def start(argv: Sequence[str], log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    with open(log, "ab") as f:
        return subprocess.Popen(list(argv), stdout=f, stderr=f, start_new_session=True, env=env)


def in_process(onnx_path: Path, seconds: float) -> dict[int, Load]:
    """The ceiling: onnxruntime called directly, no HTTP, no contract checks."""
    import numpy as np
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3
    sess = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
    name = sess.get_inputs()[0].name
    out: dict[int, Load] = {}
    for batch in BATCHES:
        x = np.asarray(rows(batch), dtype=np.float32)
        for _ in range(200):
            sess.run(None, {name: x})
        lat = []
        c0, t0 = time.process_time(), time.perf_counter()
        while time.perf_counter() - t0 < seconds:
            s = time.perf_counter()
            sess.run(None, {name: x})
            lat.append(time.perf_counter() - s)
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        q = statistics.quantiles(lat, n=100)
        out[batch] = Load(len(lat) / wall, q[49] * 1e3, q[98] * 1e3, cpu * 1e3 / len(lat), len(lat))
    return out


# --- MLflow ------------------------------------------------------------------------------------------


def ensure_mlflow() -> Path:
    """bench/.venv-mlflow with mlflow, onnx and onnxruntime (created on first run)."""
    python = MLFLOW_VENV / "bin" / "python"
    stamp = MLFLOW_VENV / ".installed"
    if not stamp.exists():
        print("  creating bench/.venv-mlflow (pip install mlflow onnx onnxruntime; takes minutes) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(MLFLOW_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", "mlflow", "onnx", "onnxruntime"], check=True)
        stamp.touch()
    return python


def mlflow_model(python: Path, scratch: Path) -> Path:
    folder = scratch / "mlflow-iris"
    if not folder.exists():
        code = "import sys, onnx, mlflow.onnx\nmlflow.onnx.save_model(onnx.load(sys.argv[1]), sys.argv[2])\n"
        subprocess.run(
            [str(python), "-c", code, str(IRIS / "model.onnx"), str(folder)], check=True, capture_output=True
        )
    return folder


def mlflow_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"], capture_output=True, text=True, check=True
    )
    return out.stdout.strip()


# --- KServe ------------------------------------------------------------------------------------------


def ensure_kserve() -> Path:
    """bench/.venv-kserve with kserve, onnxruntime and numpy (created on first run)."""
    python = KSERVE_VENV / "bin" / "python"
    stamp = KSERVE_VENV / ".installed"
    if not stamp.exists():
        print(f"  creating bench/.venv-kserve (pip install {KSERVE_PIN} onnxruntime numpy) ...", flush=True)
        subprocess.run([sys.executable, "-m", "venv", str(KSERVE_VENV)], check=True)
        subprocess.run([str(python), "-m", "pip", "install", "--quiet", KSERVE_PIN, "onnxruntime", "numpy"], check=True)
        stamp.touch()
    return python


def bench_kserve(seconds: float, scratch: Path) -> tuple[str, dict[int, Load], float]:
    """KServe's ModelServer on the iris graph: (label, loads by batch, launch to first answer)."""
    python = ensure_kserve()
    version = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version; print(version('kserve'))"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/models/iris-mlp/infer"
    argv = [str(python), str(HERE / "kserve_model.py"), str(IRIS / "model.onnx"), "iris-mlp", str(port)]
    t0 = time.perf_counter()
    proc = start(argv, scratch / "kserve.log")
    try:
        wait_first_answer(proc, url, v2_body(1))
        launch = time.perf_counter() - t0
        return f"KServe {version}", {b: wrk(url, v2_body(b), seconds, proc.pid, scratch) for b in BATCHES}, launch
    finally:
        stop(proc)


# --- the section ---------------------------------------------------------------------------------------


def bench_serve(rep: Any, scratch: Path, key: Path, pub: Path, seconds: float, with_mlflow: bool) -> None:
    pkg = scratch / "iris.mpkg"
    if not pkg.exists():
        subprocess.run([MPKG, "build", str(IRIS), "-o", str(pkg), "--key", str(key)], check=True, capture_output=True)
    results: dict[str, dict[int, Load]] = {}
    launch: dict[str, float] = {}
    log = scratch / "serve.log"

    # mpkg serve
    starts = []
    for _ in range(3):
        port = free_port()
        url = f"http://127.0.0.1:{port}/v2/models/iris-mlp/infer"
        t0 = time.perf_counter()
        proc = start([MPKG, "serve", str(pkg), "--key", str(pub), "--port", str(port)], log)
        try:
            wait_first_answer(proc, url, v2_body(1))
            starts.append(time.perf_counter() - t0)
        finally:
            stop(proc)
    launch["mpkg"] = statistics.median(starts)
    port = free_port()
    url = f"http://127.0.0.1:{port}/v2/models/iris-mlp/infer"
    proc = start([MPKG, "serve", str(pkg), "--key", str(pub), "--port", str(port)], log)
    try:
        wait_first_answer(proc, url, v2_body(1))
        results["mpkg serve"] = {b: wrk(url, v2_body(b), seconds, proc.pid, scratch) for b in BATCHES}
    finally:
        stop(proc)

    results["onnxruntime in-process"] = in_process(IRIS / "model.onnx", min(seconds, 5.0))

    kserve_note = ""
    try:
        label, loads, launch["kserve"] = bench_kserve(seconds, scratch)
        results[label] = loads
    except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
        kserve_note = f"KServe could not be measured: {exc}"
        print(f"  {kserve_note}", flush=True)

    mlflow_note = ""
    if with_mlflow:
        try:
            python = ensure_mlflow()
            model = mlflow_model(python, scratch)
            mlflow = str(MLFLOW_VENV / "bin" / "mlflow")
            env = {**os.environ, "PATH": f"{MLFLOW_VENV / 'bin'}:{os.environ.get('PATH', '')}"}
            env.pop("VIRTUAL_ENV", None)
            mstarts = []
            for i in range(2):
                port = free_port()
                murl = f"http://127.0.0.1:{port}/invocations"
                t0 = time.perf_counter()
                proc = start(
                    [
                        mlflow,
                        "models",
                        "serve",
                        "-m",
                        str(model),
                        "--env-manager",
                        "local",
                        "-h",
                        "127.0.0.1",
                        "-p",
                        str(port),
                    ],
                    scratch / "mlflow.log",
                    env,
                )
                try:
                    wait_first_answer(proc, murl, mlflow_body(1))
                    mstarts.append(time.perf_counter() - t0)
                    if i == 1:
                        results["MLflow " + mlflow_version(python)] = {
                            b: wrk(murl, mlflow_body(b), seconds, proc.pid, scratch) for b in BATCHES
                        }
                finally:
                    stop(proc)
            launch["mlflow"] = statistics.median(mstarts)
        except (subprocess.CalledProcessError, RuntimeError, OSError) as exc:
            mlflow_note = f"MLflow could not be measured: {exc}"
            mlog = scratch / "mlflow.log"
            log_tail = mlog.read_text(errors="replace")[-1500:] if mlog.exists() else ""
            print(f"  {mlflow_note}\n{log_tail}", flush=True)

    lines = ["| server | batch | req/s | p50 ms | p99 ms | server CPU ms/req |", "|---|---|---|---|---|---|"]
    for name, by_batch in results.items():
        for b, r in by_batch.items():
            lines.append(f"| {name} | {b} | {r.rps:,.0f} | {r.p50_ms:.2f} | {r.p99_ms:.2f} | {r.cpu_ms_per_req:.3f} |")
    table = (
        f"Serve (iris-mlp ONNX MLP; wrk -t1 -c{CONNECTIONS} keep-alive, {seconds:g} s per run; "
        "in-process = one thread calling session.run, no HTTP):\n\n" + "\n".join(lines)
    )
    rep.tables.append(table)
    print("  " + table.replace("\n", "\n  "), flush=True)
    ours = results["mpkg serve"]
    peers = {k.split()[0]: v for k, v in results.items() if k.startswith(("MLflow", "KServe"))}
    for b in BATCHES:
        for peer, loads in peers.items():
            ratio = ours[b].rps / loads[b].rps
            rep.add("serve", f"throughput vs {peer}, batch {b}", f"{ratio:.1f}x", ">= 5x", ratio >= 5)
        rep.add(
            "serve",
            f"server CPU per request, batch {b}",
            f"{ours[b].cpu_ms_per_req:.3f} ms",
            "<= 0.3 ms",
            ours[b].cpu_ms_per_req <= 0.3,
        )
        rep.add(
            "serve", f"p99 latency, batch {b}, 16 clients", f"{ours[b].p99_ms:.2f} ms", "< 15 ms", ours[b].p99_ms < 15
        )
    rep.add(
        "serve",
        "launch to first answer (small package, verify + load)",
        f"{launch['mpkg']:.2f} s",
        "<= 0.5 s",
        launch["mpkg"] <= 0.5,
    )
    if "mlflow" in launch:
        rep.add("serve", "MLflow launch to first answer", f"{launch['mlflow']:.2f} s")
    if "kserve" in launch:
        rep.add("serve", "KServe launch to first answer", f"{launch['kserve']:.2f} s")
    for note in (mlflow_note, kserve_note):
        if note:
            rep.notes.append(note)
    shutil.rmtree(scratch / "mlflow-iris", ignore_errors=True)
