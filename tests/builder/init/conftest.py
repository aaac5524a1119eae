"""Fixtures for `mpkg init`: sources made by the real libraries (models.py), once per session."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.builder.init.initsources import MODELS, Made


@pytest.fixture(scope="session")
def made(tmp_path_factory: pytest.TempPathFactory) -> Made:
    root = tmp_path_factory.mktemp("init-sources")
    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_")}
    env["MLFLOW_ALLOW_FILE_STORE"] = "true"
    done = subprocess.run(
        [sys.executable, str(MODELS), str(root)], capture_output=True, text=True, env=env, timeout=900, check=False
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return Made(root)
