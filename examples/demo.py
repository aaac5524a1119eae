"""The demo: build the bundled iris example, verify, inspect, serve it, infer once.

Runs the same `mpkg` commands a user would type, printing each one first.
Everything it writes goes under out/demo/ (recreated on every run).
"""

from __future__ import annotations

import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "out" / "demo"
MPKG = str(Path(sys.executable).parent / "mpkg")


def run(*args: str) -> None:
    print(f"\n$ mpkg {' '.join(args)}", flush=True)
    subprocess.run([MPKG, *args], check=True, cwd=OUT)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def wait_ready(port: int, server: subprocess.Popen[bytes], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"mpkg serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/health/ready", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.05)
    raise SystemExit("mpkg serve did not become ready")


def main() -> None:
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir(parents=True)
    run("keygen", "demo")
    run("build", str(ROOT / "examples" / "iris-mlp"), "-o", "iris-mlp.mpkg", "--key", "demo.key")
    run("verify", "iris-mlp.mpkg", "--key", "demo.pub", "--run")
    run("inspect", "iris-mlp.mpkg")

    port = free_port()
    print(f"\n$ mpkg serve iris-mlp.mpkg --key demo.pub --port {port} &", flush=True)
    server = subprocess.Popen([MPKG, "serve", "iris-mlp.mpkg", "--key", "demo.pub", "--port", str(port)], cwd=OUT)
    try:
        wait_ready(port, server)
        import tritonclient.http as httpclient

        client = httpclient.InferenceServerClient(f"127.0.0.1:{port}")
        features = np.array([[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3]], dtype=np.float32)
        infer_input = httpclient.InferInput("features", list(features.shape), "FP32")
        infer_input.set_data_from_numpy(features)
        result = client.infer("iris-mlp", [infer_input])
        response = result.get_response()
        print(f"\ntritonclient -> model {response['model_name']} {response['model_version']}")
        for out in response["outputs"]:
            print(f"  {out['name']}: {result.as_numpy(out['name']).tolist()}")
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(timeout=30)
    print(f"\ndemo ok: package and keys are in {OUT.relative_to(ROOT)}/")


if __name__ == "__main__":
    main()
