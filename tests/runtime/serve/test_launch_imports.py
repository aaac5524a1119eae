"""Launch is part of speed: serving one package imports only what serving needs.

Each module below cost tens to hundreds of milliseconds before the first answer (measured in
bench/RESULTS.md) without being used by a server: ``numpy.ma`` (first touched by a masked-array
check on plain arrays), ``packaging`` and ``importlib.metadata`` (the environment check, used only
with ``strict_env``, and the server version) and the ``--workers N`` supervisor. Checked in a fresh
interpreter that loads, smoke-tests and answers one request as a worker does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

from tests.conftest import Built

NOT_FOR_SERVING = ("numpy.ma", "packaging", "importlib.metadata", "mpkg.serve.supervise")

PROBE = textwrap.dedent(
    """
    import json, sys
    import mpkg.serve.server, mpkg.serve.worker  # what `mpkg serve` imports
    from mpkg.serve.app import _pipeline
    from mpkg.serve.loading import load_models
    from mpkg.serve.options import ServeOptions

    models = load_models(ServeOptions(packages=(sys.argv[1],), keys=(sys.argv[2],)))  # + smoke test
    body = json.dumps({"inputs": [{"name": "features", "shape": [2, 4], "datatype": "FP32",
                                   "data": [5.1, 3.5, 1.4, 0.2, 6.7, 3.0, 5.2, 2.3]}]}).encode()
    status = _pipeline(None, models.entries[0], body, b"", None, 1 << 20)[0]
    print(json.dumps({"status": status, "loaded": sorted(m for m in sys.argv[3].split(",") if m in sys.modules)}))
    """
)


def test_serving_a_package_imports_nothing_it_does_not_use(built: Built) -> None:
    package, key = built.signed["iris-mlp"], built.pub
    argv = [sys.executable, "-c", PROBE, str(package), str(key), ",".join(NOT_FOR_SERVING)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"status": 200, "loaded": []}
