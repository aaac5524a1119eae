"""Traffic splits: which version of a model answers an unversioned request.

``--split fraud=2.1.0:90,2.2.0:10`` sends 90 % of the requests to 2.1.0. Without a split key
each request is drawn at random by weight. With ``--split-key header:X-User-Id`` the split is
*sticky*: each key value (a user) is assigned one version for as long as the split's versions and
weights stay as they are, on every worker and across restarts, so a user sees one model for the
whole experiment ("2.2.0 for 10 % of users", not 10 % of requests). A request without the header
is drawn at random, as without a split key.

The sticky assignment is weighted rendezvous hashing (an exponential race): for each version
``v`` of weight ``w``, ``u = hash(model, v, key)`` is a uniform value in (0, 1) and the version
with the smallest ``-ln(u) / w`` wins. Each version wins with probability exactly ``w / sum``.
Why this rather than one uniform value per key compared against cumulative weights:

- Changing weights moves a key only to a version whose weight grew relative to the one it had:
  with two versions, 90/10 to 80/20 moves only keys into the growing version (cumulative
  intervals do that too, but only for two versions in a fixed order).
- Adding a version takes its share from every other version in proportion, and no key moves
  between the others; removing one moves only its keys. Cumulative intervals shift keys between
  unrelated versions whenever a version is added, removed or reordered.
- The hash is BLAKE2b of the key's bytes keyed by model and version, not Python's ``hash``: the
  same in every process, independent of ``PYTHONHASHSEED`` and of ``--split-seed``.
"""

from __future__ import annotations

import hashlib
import math
import random
import re
from bisect import bisect_right
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Generic, TypeVar

from mpkg.errors import UsageError

T = TypeVar("T")
_SPLIT = re.compile(r"^([^=\s]+)=(.+)$")
_TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")  # an HTTP field name (RFC 9110 token)
_TWO64 = float(2**64)


@dataclass(frozen=True)
class Split:
    """Weighted traffic split across versions of one model name."""

    name: str
    weights: tuple[tuple[str, int], ...]  # (version, weight > 0)


@dataclass(frozen=True)
class SplitKey:
    """Where a request's split key is read: the request header ``header`` (lower case)."""

    header: str

    @property
    def asgi_name(self) -> bytes:
        """The header name as ASGI scopes carry it."""
        return self.header.encode("ascii")


def parse_split(text: str) -> Split:
    """Parse ``name=1.0.0:90,1.1.0:10``; raises UsageError naming what is wrong."""
    where = "--split"
    m = _SPLIT.match(text.strip())
    if not m:
        raise UsageError(f"{text!r} is not NAME=VERSION:WEIGHT[,VERSION:WEIGHT...]", where)
    name, rest = m.groups()
    weights: list[tuple[str, int]] = []
    for part in rest.split(","):
        version, sep, weight = part.strip().rpartition(":")
        if not sep or not version:
            raise UsageError(f"{part!r} in {text!r} is not VERSION:WEIGHT", where)
        if not weight.isdigit() or int(weight) <= 0:
            raise UsageError(f"weight {weight!r} for {name} {version} must be a positive integer", where)
        if any(v == version for v, _ in weights):
            raise UsageError(f"version {version} of {name} appears twice in {text!r}", where)
        weights.append((version, int(weight)))
    return Split(name, tuple(weights))


def parse_split_key(text: str) -> SplitKey:
    """Parse ``header:X-User-Id``; raises UsageError naming what is wrong."""
    kind, sep, name = text.strip().partition(":")
    if kind != "header" or not sep:
        raise UsageError(f"{text!r} is not header:NAME (for example header:X-User-Id)", "--split-key")
    if not _TOKEN.match(name):
        raise UsageError(f"{name!r} is not an HTTP header name", "--split-key")
    return SplitKey(name.lower())


class Chooser(Generic[T]):
    """Chooses among ``items`` (one per version) by weight: sticky for a key, else at random."""

    def __init__(
        self, name: str, versions: Sequence[str], weights: Sequence[int], items: Sequence[T], rng: random.Random
    ):
        self.items = tuple(items)
        self.cumulative: list[int] = []
        total = 0
        for w in weights:
            total += w
            self.cumulative.append(total)
        self.total = total
        self.rng = rng
        self._weights = tuple(float(w) for w in weights)
        self._hashers = []
        for version in versions:
            hasher = hashlib.blake2b(digest_size=8)
            hasher.update(f"mpkg-split\0{name}\0{version}\0".encode())
            self._hashers.append(hasher)

    def choose(self, key: bytes | None = None) -> T:
        """The item for ``key`` (the same every time), or a weighted random draw without one."""
        if key is None:
            return self.items[bisect_right(self.cumulative, self.rng.randrange(self.total))]
        return self.items[self.sticky(key)]

    def sticky(self, key: bytes) -> int:
        """The index ``key`` is assigned: weighted rendezvous hashing (see the module docstring)."""
        best, best_score = 0, math.inf
        for i, (hasher, weight) in enumerate(zip(self._hashers, self._weights, strict=True)):
            h = hasher.copy()
            h.update(key)
            u = (int.from_bytes(h.digest(), "big") + 0.5) / _TWO64  # uniform in (0, 1)
            score = -math.log(u) / weight
            if score < best_score:
                best, best_score = i, score
        return best
