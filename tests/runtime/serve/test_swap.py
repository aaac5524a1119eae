"""Swapping a served package while serving (spec/runtime.md §9), through the file watch: a new
file renamed over a served path is verified, smoke-tested and swapped in under load without
one failed request; a candidate failing any check is refused and the old package keeps serving."""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import numpy as np
import pytest

from tests.harness.server import ServerProcess, server_env
from tests.harness.serving import ModelSource
from tests.harness.serving import reference_probabilities as expected
from tests.harness.traffic import Answer, Traffic, X
from tests.runtime.serve.servepkgs import OFFSET_ENV

StartServer = Callable[..., ServerProcess]
_WAIT = 60.0  # an upper bound for a busy shared machine, not a performance assertion


def rename_over(source: str, served: Path) -> None:
    """What a careful deploy does: write a temporary beside the target, then rename it over."""
    tmp = served.with_name(served.name + ".tmp")
    shutil.copyfile(source, tmp)
    os.replace(tmp, served)


def answering(url: str) -> tuple[str, str]:
    """(version, digest) that /v2/models/iris reports now."""
    doc = httpx.get(url + "/v2/models/iris", timeout=30).json()
    return doc["version"], doc["digest"]


def wait_answering(url: str, digest: str, server: ServerProcess) -> float:
    """Seconds until the server reports ``digest`` for iris."""
    start = time.monotonic()
    while answering(url)[1] != digest:
        assert time.monotonic() - start < _WAIT, server.log()
        time.sleep(0.02)
    return time.monotonic() - start


def metric(url: str, name: str) -> float:
    """The value of one metric line (the first that starts with ``name``)."""
    text = httpx.get(url + "/metrics", timeout=30).text
    m = re.search(rf"^{re.escape(name)} (\S+)$", text, re.M)
    assert m, text
    return float(m.group(1))


def open_files(server: ServerProcess) -> list[str]:
    """What the server process has open."""
    fd_dir = f"/proc/{server.proc.pid}/fd"
    out = []
    for fd in os.listdir(fd_dir):
        with contextlib.suppress(OSError):
            out.append(os.readlink(f"{fd_dir}/{fd}"))
    return out


def check_answers(answers: list[Answer], model_source: ModelSource) -> None:
    """No failures, and every 200 is the answer of the version it names."""
    assert answers and not [a for a in answers if a.status != 200], [a for a in answers if a.status != 200][:3]
    refs = {"1.0.0": expected(model_source, "iris1", X), "1.1.0": expected(model_source, "iris2", X)}
    for a in answers:
        np.testing.assert_allclose(np.reshape(a.data, (1, 3)), refs[a.version], rtol=1e-5)


def test_replaced_file_is_swapped_in_under_load_without_a_failed_request(
    model_source: ModelSource, start_server: StartServer, tmp_path: Path
) -> None:
    served = tmp_path / "iris.mpkg"
    shutil.copyfile(model_source.path("iris1"), served)
    server = start_server(str(served), "--key", str(model_source.pub))
    url = server.wait_ready()
    assert answering(url) == ("1.0.0", model_source.digests["iris1"])
    with Traffic(url) as traffic:
        while traffic.count() < 50:
            time.sleep(0.01)
        rename_over(model_source.path("iris2"), served)  # promote
        wait_answering(url, model_source.digests["iris2"], server)
        seen = traffic.count()
        while traffic.count() < seen + 50:
            time.sleep(0.01)
        rename_over(model_source.path("iris1"), served)  # and roll back
        wait_answering(url, model_source.digests["iris1"], server)
        seen = traffic.count()
        while traffic.count() < seen + 50:
            time.sleep(0.01)
    answers = traffic.answers
    check_answers(answers, model_source)
    versions = [a.version for a in answers]
    first_new, last_new = versions.index("1.1.0"), len(versions) - 1 - versions[::-1].index("1.1.0")
    assert versions[-1] == "1.0.0" and first_new < last_new  # both swaps reached the answers
    assert httpx.get(url + "/v2/health/ready").status_code == 200
    assert metric(url, 'mpkg_model_swaps_total{model="iris"}') == 2
    assert metric(url, 'mpkg_model_swap_failures_total{model="iris"}') == 0
    labels = f'model="iris",version="1.0.0",digest="{model_source.digests["iris1"]}"'
    assert metric(url, f"mpkg_model_serving{{{labels}}}") == 1
    assert metric(url, "mpkg_models_loaded") == 1
    log = server.log()
    assert log.count("swapped iris 1.0.0 -> 1.1.0") == 1 and log.count("swapped iris 1.1.0 -> 1.0.0") == 1, log
    # the retired packages' files (renamed over, so "(deleted)") are closed, their maps released
    deadline = time.monotonic() + _WAIT
    while any(f.endswith("iris.mpkg (deleted)") for f in open_files(server)):
        assert time.monotonic() < deadline, open_files(server)
        time.sleep(0.05)
    assert any(f == str(served) for f in open_files(server))
    assert server.stop() == 0, server.log()


@pytest.mark.parametrize(
    ("candidate", "why"),
    [
        ("iris_unsigned", "unsigned"),  # keys required: an unsigned package never answers
        ("iris_broken", "smoke test failed"),  # its stored example no longer matches its answers
        ("tab", "not 'iris'"),  # another model under the served path
    ],
)
def test_bad_candidate_is_refused_and_the_old_package_keeps_serving(
    model_source: ModelSource, start_server: StartServer, tmp_path: Path, candidate: str, why: str
) -> None:
    served = tmp_path / "iris.mpkg"
    shutil.copyfile(model_source.path("iris1"), served)
    server = start_server(str(served), "--key", str(model_source.pub), env=server_env(**{OFFSET_ENV: "0.5"}))
    url = server.wait_ready()
    with Traffic(url) as traffic:
        while traffic.count() < 20:
            time.sleep(0.01)
        rename_over(model_source.path(candidate), served)
        deadline = time.monotonic() + _WAIT
        while metric(url, 'mpkg_model_swap_failures_total{model="iris"}') < 1:
            assert time.monotonic() < deadline, server.log()
            time.sleep(0.05)
        seen = traffic.count()
        while traffic.count() < seen + 20:
            time.sleep(0.01)
    check_answers(traffic.answers, model_source)
    assert {a.version for a in traffic.answers} == {"1.0.0"}
    assert answering(url) == ("1.0.0", model_source.digests["iris1"])
    assert metric(url, 'mpkg_model_swaps_total{model="iris"}') == 0
    assert httpx.get(url + "/v2/health/ready").status_code == 200  # the old package is intact
    refused = [ln for ln in server.log().splitlines() if "swap refused" in ln]
    assert len(refused) == 1 and "ERROR" in refused[0] and why in refused[0], server.log()
    assert "still serving iris 1.0.0" in refused[0]
    # a good file renamed over it afterwards is still taken
    rename_over(model_source.path("iris2"), served)
    wait_answering(url, model_source.digests["iris2"], server)
    assert server.stop() == 0, server.log()
