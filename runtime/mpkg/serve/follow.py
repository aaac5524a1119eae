"""``mpkg serve REF --follow``: serve what a registry tag names now (spec/runtime.md §9).

A follower polls its reference every ``--interval`` with a cheap resolve (one request: the
digest the tag names). When the digest moves (a promote or a rollback), it fetches the new
package into the digest cache and hands it to the one swap path (swap.py), which verifies,
smoke-tests and swaps it in, or refuses it while the old package keeps answering.

- A candidate that cannot be verified (an untrusted signer, a damaged or substituted package)
  is refused like one that fails its smoke test.
- A refused digest is not tried again until the tag names another digest (one ERROR line
  and one ``mpkg_model_swap_failures_total`` per bad candidate, not one per poll); the tag
  moving back to a refused digest later tries it again.
- A poll that cannot resolve or fetch (registry down, network) changes nothing: the package
  answering keeps answering, ``mpkg_follow_errors_total`` counts the poll, and one WARNING
  line is written when the trouble starts and one INFO line when it ends.

The registry is reached through the ``Resolver`` protocol; ``RegistryResolver`` is the one
over ``mpkg._internal.registry.fetch`` (registries and the local store, pull's checks, the
digest cache under ``MPKG_HOME``).
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Any, Protocol

from mpkg.errors import FormatError, MpkgError, SignatureError, VerificationError

from .app import ServerState
from .swap import Swapper

if TYPE_CHECKING:
    from .server import ServeOptions

# A fetched candidate that fails these is a bad package, not a registry out of reach.
_BAD_CANDIDATE = (VerificationError, FormatError, SignatureError)


class Resolver(Protocol):
    """Where a followed reference points: cheap to ask, fetched only when it moved."""

    @property
    def reference(self) -> str:
        """The reference as the user wrote it, for logs."""
        ...

    def resolve(self) -> str:
        """The digest the reference names now; MpkgError or OSError when it cannot be asked."""
        ...

    def fetch(self) -> tuple[str, str]:
        """Pull what the reference names now into the digest cache: (its digest, the local
        ``.mpkg`` path), with the same checks as ``mpkg pull``."""
        ...


class Follower:
    """Polls one reference on a daemon thread and swaps the package at ``position``."""

    def __init__(
        self,
        resolver: Resolver,
        digest: str,
        swapper: Swapper,
        state: ServerState,
        position: int,
        interval: float,
        worker: int = 0,
    ) -> None:
        self.resolver = resolver
        self.digest = digest  # what the reference named when the package answering now was fetched
        self._swapper = swapper
        self._state = state
        self._position = position
        self._interval = interval
        self._worker = worker
        self._refused: set[str] = set()
        self._failing = False
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start polling."""
        self._thread = threading.Thread(target=self._run, name="mpkg-follow", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop polling (a swap in progress still completes)."""
        self._stop.set()

    def _run(self) -> None:
        while not self._stop.wait(self._interval):
            self.poll()

    def poll(self) -> str:
        """One look at the reference; what happened: ``same``, ``refused-before``, ``error``, or the
        outcome of the swap (``swapped``, ``unchanged``, ``refused``)."""
        try:
            digest = self.resolver.resolve()
            if digest in (self.digest, *self._refused):
                self._recovered()
                return "same" if digest == self.digest else "refused-before"
            origin = f"{self.resolver.reference} moved to {digest}"
            try:
                digest, path = self.resolver.fetch()
            except _BAD_CANDIDATE as exc:  # fetched, but not a package this server may serve
                self._recovered()
                self._refused.add(digest)
                self._swapper.refuse(self._position, origin, "; ".join(exc.reasons()))
                return "refused"
        except MpkgError as exc:
            self._error("; ".join(exc.reasons()))
            return "error"
        except Exception as exc:  # OSError, or a resolver's bug: the thread must keep following
            self._error(f"{type(exc).__name__}: {exc}")
            return "error"
        self._recovered()
        if digest == self.digest:  # moved back between resolve and fetch
            return "same"
        result = self._swapper.submit(self._position, path, origin, digest).result()
        if result.outcome == "refused":
            self._refused.add(digest)
        else:
            self.digest = digest
            self._refused.discard(digest)
        return result.outcome

    def _error(self, reason: str) -> None:
        state = self._state
        if state.metrics is not None and state.models is not None:
            state.metrics.count("follow_errors", state.models.entries[self._position].name)
        if not self._failing:
            self._failing = True
            state.log.event(
                "warning",
                f"cannot follow {self.resolver.reference}: {' '.join(reason.split())}; "
                "the package answering keeps answering, retrying every interval",
                worker=self._worker,
            )

    def _recovered(self) -> None:
        if self._failing:
            self._failing = False
            self._state.log.event("info", f"following {self.resolver.reference} again", worker=self._worker)


class RegistryResolver:
    """A registry or local-store reference, through ``mpkg._internal.registry.fetch``."""

    def __init__(self, reference: str, policy: Any) -> None:
        self._reference = reference
        self._policy = policy  # a FetchPolicy
        self._resolved: Any = None

    @property
    def reference(self) -> str:
        """The reference as given."""
        return self._reference

    def resolve(self) -> str:
        """The package digest the reference names now (pull's checks; no package byte moves)."""
        from mpkg._internal.registry.fetch import resolve

        self._resolved = resolve(self._reference, self._policy)
        return str(self._resolved.digest)

    def fetch(self) -> tuple[str, str]:
        """What the last ``resolve`` named, into the digest cache unless already there."""
        from mpkg._internal.registry.fetch import fetch_resolved

        if self._resolved is None:
            self.resolve()
        return str(self._resolved.digest), str(fetch_resolved(self._resolved, self._policy))


def start_followers(options: ServeOptions, swapper: Swapper, state: ServerState, worker: int) -> list[Follower]:
    """One follower per package given as a reference, when ``--follow`` is on."""
    if options.follow_interval is None:
        return []
    from mpkg._internal.registry.fetch import FetchPolicy

    policy = FetchPolicy.from_paths(options.keys, options.allow_unsigned, insecure=options.insecure)
    assert state.models is not None
    followers = []
    for position, reference in enumerate(options.references):
        if reference is None:
            continue
        resolver = RegistryResolver(reference, policy)
        digest = state.models.entries[position].digest
        follower = Follower(resolver, digest, swapper, state, position, options.follow_interval, worker)
        follower.start()
        followers.append(follower)
    return followers
