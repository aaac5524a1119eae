"""The shape of the `mpkg` command line: who imports whom, which commands exist, what they share.

The runtime finds builder commands through the ``mpkg.commands`` entry points, so it names none
of them; commands import their shared options from `mpkg._internal.commandline`, never `mpkg.cli`.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tomllib
from pathlib import Path
from typing import Any

import pytest
from mpkg.cli import build_parser

REPO = Path(__file__).resolve().parents[2]
ENTRY_POINTS: dict[str, str] = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["entry-points"][
    "mpkg.commands"
]


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def test_command_modules_do_not_import_the_cli() -> None:
    """mpkg.cli imports the commands; a command importing mpkg.cli back was an import cycle."""
    probe = "import sys, mpkg.commands, mpkg.serve.cli; print('mpkg.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_runtime_names_no_builder_command() -> None:
    source = (REPO / "runtime" / "mpkg" / "cli.py").read_text()
    named = [name for name in ENTRY_POINTS if re.search(rf"[\"']{name}[\"']", source)]
    assert not named, f"runtime/mpkg/cli.py names builder commands {named}: they come from entry points"


def test_every_entry_point_is_a_command_and_every_command_takes_json() -> None:
    """README: every command takes --json (one JSON object on stdout)."""
    commands = _commands(build_parser())
    assert set(ENTRY_POINTS) <= set(commands), set(ENTRY_POINTS) - set(commands)
    assert {"verify", "inspect", "unpack", "serve"} <= set(commands)
    lacking = [name for name, p in commands.items() if "--json" not in p._option_string_actions]
    assert not lacking, lacking


@pytest.mark.parametrize("command", sorted(ENTRY_POINTS))
def test_a_command_loads_only_its_own_module(command: str) -> None:
    """`mpkg build` reads one entry point: the registry, deploy or diff commands stay unloaded."""
    probe = (
        "import sys; from mpkg.cli import build_parser; build_parser(sys.argv[1]);"
        "print(' '.join(sorted(m for m in sys.modules if m.startswith('mpkg_builder'))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", probe, command], capture_output=True, text=True, timeout=60, check=True
    ).stdout.split()
    own = ENTRY_POINTS[command].split(":")[0]
    others = {v.split(":")[0] for v in ENTRY_POINTS.values()} - {own}
    assert own in out
    assert not others & set(out), others & set(out)


def test_runtime_commands_never_read_entry_points() -> None:
    probe = (
        "import sys; from mpkg.cli import build_parser; build_parser('verify');"
        "print('importlib.metadata' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


def test_unknown_command_lists_every_command(run_mpkg: Any) -> None:
    proc = run_mpkg("frobnicate", expect=2)
    assert proc.stderr.count("\n") == 1, proc.stderr
    assert "invalid choice: 'frobnicate'" in proc.stderr and "'build'" in proc.stderr and "'verify'" in proc.stderr


@pytest.mark.parametrize("command", ["verify", "unpack", "serve", "inspect"])
def test_key_options_read_MPKG_KEYS(command: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """--key is declared once (mpkg._internal.commandline), so every command that takes it reads
    $MPKG_KEYS too: serve's hand-written copy once ignored it, and with it a cluster's keys."""
    from mpkg._internal.commandline import trusted_keys

    monkeypatch.setenv("MPKG_KEYS", "/etc/mpkg/keys/a.pub:/etc/mpkg/keys/b.pub")
    argv = {"unpack": ["x.mpkg", "out"], "inspect": ["x.mpkg", "--html", "x.html"]}.get(command, ["x.mpkg"])
    args = build_parser(command).parse_args([command, *argv, "--key", "c.pub"])
    assert trusted_keys(args) == ["c.pub", "/etc/mpkg/keys/a.pub", "/etc/mpkg/keys/b.pub"]


def test_serve_json_reports_a_refusal_as_one_object(run_mpkg: Any, tmp_path: Path) -> None:
    missing = tmp_path / "missing.mpkg"
    proc = run_mpkg("serve", missing, "--allow-unsigned", "--port", "0", "--json", expect=1)
    import json

    doc = json.loads(proc.stdout)
    assert doc["ok"] is False and str(missing) in doc["errors"][0]
