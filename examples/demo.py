"""The demo: build the bundled iris example, verify, inspect, serve it, infer once; then
write the HTML reports (inspect for both examples, a diff between two builds, a history).

Runs the same `mpkg` commands a user would type, printing each one first.
Everything it writes goes under out/demo/ (recreated on every run); the reports are in
out/demo/reports/, one self-contained file each, to open in any browser.
"""

from __future__ import annotations

import os
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


def run(*args: str, env: dict[str, str] | None = None) -> None:
    prefix = "".join(f"{k}={v} " for k, v in (env or {}).items())
    print(f"\n$ {prefix}mpkg {' '.join(args)}", flush=True)
    subprocess.run([MPKG, *args], check=True, cwd=OUT, env={**os.environ, **(env or {})})


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
    reports()
    where = OUT.relative_to(ROOT)
    print(f"\ndemo ok: packages and keys are in {where}/, HTML reports in {where}/reports/")


def second_iris_source() -> Path:
    """iris-mlp as its next release: a clarified card and input description, a preprocessing
    note, new metrics; no version in mpkg.toml, so `build --base` infers it."""
    src = OUT / "iris-mlp-next"
    shutil.copytree(ROOT / "examples" / "iris-mlp", src)
    toml = (src / "mpkg.toml").read_text()
    (src / "mpkg.toml").write_text(toml.replace('version = "1.0.0"\n', ""))
    card = (src / "MODEL_CARD.md").read_text()
    (src / "MODEL_CARD.md").write_text(
        card.replace("expect mistakes near the boundary.", "expect about one mistake in\n  thirty near the boundary.")
    )
    contract = (src / "contract.json").read_text()
    (src / "contract.json").write_text(contract.replace("in centimetres", "in centimetres (0-20)"))
    code = (src / "src" / "pipeline.py").read_text()
    (src / "src" / "pipeline.py").write_text(
        code + "\n# Release note: inputs are clipped to 0-20 cm before the graph runs.\n"
    )
    (src / "metrics.json").write_text('{"accuracy": {"test": 0.9667, "train": 0.9917}, "log_loss": {"test": 0.0451}}\n')
    return src


def reports() -> None:
    """The three HTML reports on the bundled examples (needs mpkg[report])."""
    (OUT / "reports").mkdir()
    run("build", str(ROOT / "examples" / "churn-tabular"), "-o", "churn-tabular.mpkg", "--key", "demo.key")
    run("inspect", "iris-mlp.mpkg", "--key", "demo.pub", "--html", "reports/inspect-iris-mlp.html")
    run("inspect", "churn-tabular.mpkg", "--key", "demo.pub", "--html", "reports/inspect-churn-tabular.html")
    src = second_iris_source()
    run("build", str(src), "-o", "iris-mlp-next.mpkg", "--base", "iris-mlp.mpkg", "--key", "demo.key")
    run("diff", "iris-mlp.mpkg", "iris-mlp-next.mpkg", "--html", "reports/diff-iris-mlp.html")
    home = {"MPKG_HOME": str(OUT / "store"), "MPKG_KEYS": "demo.pub"}  # the history is checked on every command
    for package in ("iris-mlp.mpkg", "iris-mlp-next.mpkg"):
        run("push", package, "iris-mlp", "--key", "demo.key", env=home)
    run("promote", "iris-mlp:1.0.0", "--to", "staging", "--key", "demo.key", env=home)
    run("promote", "iris-mlp:1.0.0", "--to", "production", "--key", "demo.key", env=home)
    run("promote", "iris-mlp:1.0.1", "--to", "staging", "--key", "demo.key", env=home)
    run("history", "iris-mlp", "--html", "reports/history-iris-mlp.html", env=home)


if __name__ == "__main__":
    main()
