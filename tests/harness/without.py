"""Run `mpkg` in a fresh interpreter where some modules cannot be imported, as on a machine
where an extra is not installed (the runtime-only container, a missing `mpkg[report]`)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

REPORT_EXTRA = ("jinja2", "markdown_it", "markupsafe")

_PROBE = textwrap.dedent(
    """
    import importlib.abc, sys
    BLOCKED = set(sys.argv[1].split(","))

    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in BLOCKED:
                raise ImportError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Block())
    from mpkg.cli import main
    sys.exit(main(sys.argv[2:]))
    """
)


def run_without(modules: tuple[str, ...], *argv: str) -> subprocess.CompletedProcess[str]:
    """``mpkg ARGV`` with ``modules`` unimportable; never a traceback."""
    proc = subprocess.run(
        [sys.executable, "-c", _PROBE, ",".join(modules), *argv], capture_output=True, text=True, timeout=120
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    return proc


__all__ = ["REPORT_EXTRA", "run_without"]
