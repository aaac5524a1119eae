"""One error root for everything mpkg refuses.

Every refusal carries a one-line reason that names the file or field and says
what to do; the CLI catches :class:`MpkgError` once and prints ``diagnostics()``.
Anything else escaping is a bug in mpkg, not bad input.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

# Documented exit codes (spec/README.md).
EXIT_OK = 0
EXIT_FAILED = 1  # a check failed or input was refused
EXIT_USAGE = 2


@dataclass(frozen=True)
class Problem:
    """One refused thing: where (file or field) and why, phrased as a fix."""

    where: str
    reason: str

    def __str__(self) -> str:
        return printable(f"{self.where}: {self.reason}" if self.where else self.reason)


def printable(text: str) -> str:
    """``text`` with control characters escaped. Names and descriptions come from untrusted
    packages: a newline or terminal escape in them must not forge or hide output lines."""
    return text if text.isprintable() else "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


class MpkgError(Exception):
    """Root of every error mpkg raises on purpose. Carries one or more problems."""

    exit_code = EXIT_FAILED

    def __init__(self, problems: str | Problem | Iterable[Problem], where: str = "") -> None:
        if isinstance(problems, str):
            self.problems: tuple[Problem, ...] = (Problem(where, problems),)
        elif isinstance(problems, Problem):
            self.problems = (problems,)
        else:
            self.problems = tuple(problems)
        if not self.problems:
            raise ValueError("an MpkgError needs at least one problem")
        super().__init__("; ".join(str(p) for p in self.problems))

    def diagnostics(self) -> str:
        """Human text: one line per problem."""
        return "\n".join(str(p) for p in self.problems)

    def reasons(self) -> list[str]:
        """Each problem as one line, ``where: reason``."""
        return [str(p) for p in self.problems]


class UsageError(MpkgError):
    """The command line itself is wrong (exit 2)."""

    exit_code = EXIT_USAGE


class FormatError(MpkgError):
    """A package's bytes are not a valid .mpkg (layout, manifest, members)."""


class VerificationError(MpkgError):
    """A package failed verification: digests, signatures or policy."""


class SignatureError(MpkgError):
    """A key or signature envelope is malformed or of a refused type."""


class SourceError(MpkgError):
    """A build source (mpkg.toml and the files it names) is refused."""


class ContractError(MpkgError):
    """Data does not satisfy a package's input/output contract."""


class EnvironmentMismatch(MpkgError):
    """The running Python environment differs from the package's lockfile."""


class RegistryError(MpkgError):
    """A registry or local store refused or failed an operation."""


class ProblemCollector:
    """Collects problems so a caller can report them all at once (like pypa/installer)."""

    def __init__(self) -> None:
        self._problems: list[Problem] = []

    def add(self, where: str, reason: str) -> None:
        """Record one problem; nothing is raised until the end."""
        self._problems.append(Problem(where, reason))

    def extend(self, problems: Iterable[Problem]) -> None:
        """Record several problems."""
        self._problems.extend(problems)

    def __bool__(self) -> bool:
        return bool(self._problems)

    @property
    def problems(self) -> tuple[Problem, ...]:
        """The problems recorded so far."""
        return tuple(self._problems)

    def raise_if_any(self, error: type[MpkgError] = MpkgError) -> None:
        """Raise ``error`` with every problem at once, if there are any."""
        if self._problems:
            raise error(self._problems)
