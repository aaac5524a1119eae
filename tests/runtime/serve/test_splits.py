"""Sticky traffic splits (issue 12; spec/runtime.md §5): each key value gets one version by
weighted rendezvous hashing, shares match the weights, changing weights moves keys only into the
growing version, and a real server (two workers) answers each user with one version."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable

import httpx
import pytest
from mpkg.errors import UsageError
from mpkg.serve.splits import Chooser, parse_split_key

from tests.harness.server import ServerProcess
from tests.harness.serving import ModelSource
from tests.harness.traffic import BODY

StartServer = Callable[..., ServerProcess]
KEYS = [f"user-{i}".encode() for i in range(100_000)]


def assign(
    weights: dict[str, int], keys: list[bytes] = KEYS, rng: random.Random | None = None, name: str = "fraud"
) -> list[str]:
    """The version each key gets under a split of model ``name`` with these weights."""
    versions = list(weights)
    chooser = Chooser(name, versions, list(weights.values()), versions, rng or random.Random(0))
    return [chooser.choose(k) for k in keys]


def test_shares_are_within_one_point_of_the_weights_over_100000_keys() -> None:
    for weights in ({"2.1.0": 90, "2.2.0": 10}, {"a": 50, "b": 30, "c": 20}, {"a": 1, "b": 1}):
        counts = Counter(assign(weights))
        total = sum(weights.values())
        for version, weight in weights.items():
            assert abs(counts[version] / len(KEYS) - weight / total) < 0.01, (weights, counts)


def test_a_key_keeps_its_version_in_every_process_and_draw() -> None:
    weights = {"2.1.0": 90, "2.2.0": 10}
    first = assign(weights, KEYS[:2000], random.Random(1))
    assert first == assign(weights, KEYS[:2000], random.Random(2))  # not from the random draw
    assert first == assign(dict(reversed(weights.items())), KEYS[:2000])  # nor the order given


def test_90_10_to_80_20_moves_only_keys_into_the_growing_version() -> None:
    before = assign({"2.1.0": 90, "2.2.0": 10})
    after = assign({"2.1.0": 80, "2.2.0": 20})
    moved = [(b, a) for b, a in zip(before, after, strict=True) if b != a]
    assert moved and set(moved) == {("2.1.0", "2.2.0")}
    assert abs(len(moved) / len(KEYS) - 0.10) < 0.01  # about the 10 % that had to move, no more


def test_adding_a_version_takes_keys_from_the_others_and_moves_none_between_them() -> None:
    before = assign({"a": 60, "b": 40})
    after = assign({"a": 60, "b": 40, "c": 25})
    moved = {(b, a) for b, a in zip(before, after, strict=True) if b != a}
    assert moved == {("a", "c"), ("b", "c")}


def test_without_a_key_requests_are_drawn_at_random_by_weight() -> None:
    chooser = Chooser("fraud", ["2.1.0", "2.2.0"], [90, 10], ["2.1.0", "2.2.0"], random.Random(7))
    draws = Counter(chooser.choose(None) for _ in range(20_000))
    assert abs(draws["2.2.0"] / 20_000 - 0.10) < 0.01


@pytest.mark.parametrize("bad", ["X-User-Id", "cookie:uid", "header:", "header:X User", "header:a\nb"])
def test_split_key_syntax(bad: str) -> None:
    with pytest.raises(UsageError):
        parse_split_key(bad)
    assert parse_split_key("header:X-User-Id").header == "x-user-id"


def test_server_answers_each_user_with_one_version(model_source: ModelSource, start_server: StartServer) -> None:
    p = model_source.path
    server = start_server(
        p("iris1"),
        p("iris2"),
        "--key",
        str(model_source.pub),
        "--split",
        "iris=1.0.0:50,1.1.0:50",
        "--split-key",
        "header:X-User-Id",
        "--workers",
        "2",
    )
    url = server.wait_ready()
    seen: dict[str, set[str]] = {}
    for _ in range(4):
        for user in range(60):
            # a new connection each time, so both workers answer users
            r = httpx.post(url + "/v2/models/iris/infer", content=BODY, headers={"X-User-Id": f"u{user}"}, timeout=30)
            assert r.status_code == 200, r.text
            seen.setdefault(f"u{user}", set()).add(r.json()["model_version"])
    assert all(len(v) == 1 for v in seen.values()), seen  # one model per user, across workers
    assert {next(iter(v)) for v in seen.values()} == {"1.0.0", "1.1.0"}  # and both are in use
    expected = assign({"1.0.0": 50, "1.1.0": 50}, [f"u{u}".encode() for u in range(60)], name="iris")
    assert [next(iter(seen[f"u{u}"])) for u in range(60)] == expected
    without = {
        httpx.post(url + "/v2/models/iris/infer", content=BODY, timeout=30).json()["model_version"] for _ in range(60)
    }
    assert without == {"1.0.0", "1.1.0"}  # no header: drawn at random, as without --split-key
    pinned = httpx.post(
        url + "/v2/models/iris/versions/1.0.0/infer", content=BODY, headers={"X-User-Id": "u1"}, timeout=30
    )
    assert pinned.json()["model_version"] == "1.0.0"  # an explicit version wins over the split
    assert server.stop() == 0, server.log()
