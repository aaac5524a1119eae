"""Every crash the fuzzers ever found, replayed; the seeds; and a short random run per target.

A crash fixture is ``tests/fuzz/crashes/<target>/<name-of-the-attack>``: the exact bytes the
fuzzer produced. Each is replayed through its target, which must now refuse it the documented
way (see tests/fuzz/targets.py). The long, coverage-guided runs are ``make fuzz``.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.fuzz.targets import TARGETS, seeds

CRASHES = Path(__file__).resolve().parent / "crashes"
FIXTURES = sorted(p for p in CRASHES.glob("*/*") if p.is_file() and not p.name.startswith("crash-"))


@pytest.mark.parametrize("fixture", FIXTURES, ids=[f"{p.parent.name}/{p.name}" for p in FIXTURES])
def test_crash_found_by_fuzzing(fixture: Path) -> None:
    TARGETS[fixture.parent.name](fixture.read_bytes())


def test_unnamed_crashes_are_not_committed() -> None:
    """A crash is committed renamed after the attack it shows (with its fix)."""
    assert not [p for p in CRASHES.glob("*/crash-*")], "rename new crash files after the attack they show"


@pytest.mark.parametrize("target", sorted(TARGETS))
def test_seeds(target: str) -> None:
    for seed in seeds()[target]:
        TARGETS[target](seed)


@pytest.mark.parametrize("target", sorted(TARGETS))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_inputs(target: str, data: st.DataObject) -> None:
    """A few random edits of a seed per run: fast, and any input hypothesis shrinks to is kept in
    its example database like a fuzzing corpus."""
    seed = data.draw(st.sampled_from(seeds()[target]))
    edits = data.draw(st.lists(st.tuples(st.integers(0, max(len(seed) - 1, 0)), st.binary(max_size=6)), max_size=4))
    mutated = bytearray(seed)
    for pos, chunk in edits:
        mutated[pos : pos + len(chunk)] = chunk
    TARGETS[target](bytes(mutated))
