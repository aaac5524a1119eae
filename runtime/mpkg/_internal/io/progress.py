"""Progress bars on a terminal, nothing otherwise (and never with --json)."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator


@contextlib.contextmanager
def progress_bar(label: str, total: int, enabled: bool) -> Iterator[Callable[[int], None] | None]:
    """Yield an ``advance(n_bytes)`` callback, or None when no bar should show.

    Uses rich when installed (a builder dependency); the runtime alone shows no bar."""
    if not enabled or not sys.stderr.isatty() or total <= 0:
        yield None
        return
    try:
        from rich.progress import BarColumn, DownloadColumn, Progress, TransferSpeedColumn
    except ImportError:
        yield None
        return
    with Progress(
        "[progress.description]{task.description}",
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        transient=True,
    ) as bar:
        task = bar.add_task(label, total=total)
        yield lambda n: bar.advance(task, n)
