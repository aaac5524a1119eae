"""``ServeOptions``: every setting of one ``mpkg serve``, checked once, picklable for workers."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from mpkg.errors import UsageError

from .limits import Limits
from .splits import Split, SplitKey
from .types import ServableModel

Loader = Callable[[str, Sequence[str], bool], ServableModel]


@dataclass(frozen=True)
class ServeOptions:
    """Everything ``serve`` needs; picklable so worker processes receive it whole."""

    packages: tuple[str, ...]
    keys: tuple[str, ...] = ()
    allow_unsigned: bool = False
    host: str = "127.0.0.1"
    port: int = 8080
    workers: int = 1
    splits: tuple[Split, ...] = ()
    split_seed: int | None = None
    split_key: SplitKey | None = None  # --split-key: sticky splits (splits.py)
    limits: Limits = field(default_factory=Limits)
    log_format: str = "text"
    drain_timeout: float = 30.0
    loader: Loader | None = None  # None: mpkg.load; must be a module-level function
    isolate: bool = False  # each package in its own process (isolate.py)
    references: tuple[str | None, ...] = ()  # the reference each package came from, if any
    follow_interval: float | None = None  # --follow: poll each reference this often (follow.py)
    insecure: bool = False  # plain HTTP to the registries the references name

    def check(self) -> None:
        """Refuse impossible settings before binding anything."""
        if not self.packages:
            raise UsageError("name at least one package to serve", "PKG")
        if self.workers < 1:
            raise UsageError("must be at least 1", "--workers")
        if not 0 <= self.port <= 65535:
            raise UsageError(f"{self.port} is not a TCP port (0-65535)", "--port")
        self.limits.check()
        if self.split_key is not None and not self.splits:
            raise UsageError("makes a --split sticky; give a --split too", "--split-key")
        if self.log_format not in ("text", "json"):
            raise UsageError("must be text or json", "--log-format")
        if self.drain_timeout < 0:
            raise UsageError("must be >= 0 seconds", "--drain-timeout")
        if self.follow_interval is not None and not any(self.references):
            raise UsageError(
                "follows a registry or local-store reference (HOST/REPO:TAG or REPO:TAG); "
                "a served file is watched without it (spec/runtime.md §7)",
                "--follow",
            )
