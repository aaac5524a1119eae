"""Reference and gate grammars: what is accepted, and one-line reasons for what is not."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from mpkg._internal.registry.history import Event, now_text
from mpkg._internal.registry.refs import Reference, check_tag, is_digest, is_tag, parse_ref, version_tag
from mpkg.errors import UsageError
from mpkg_builder.registry.cli import parse_duration
from mpkg_builder.registry.gates import evaluate, parse_gate
from mpkg_builder.registry.local import LocalBackend

D = "sha256:" + "ab" * 32


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("iris-mlp", Reference(None, "iris-mlp")),
        ("iris-mlp:1.0.0", Reference(None, "iris-mlp", "1.0.0")),
        (f"iris-mlp@{D}", Reference(None, "iris-mlp", None, D)),
        ("team/iris-mlp:latest", Reference(None, "team/iris-mlp", "latest")),
        ("127.0.0.1:5000/iris-mlp", Reference("127.0.0.1:5000", "iris-mlp")),
        ("localhost/a/b:v_1", Reference("localhost", "a/b", "v_1")),
        ("reg.example.com/a__b/c-d.e:1", Reference("reg.example.com", "a__b/c-d.e", "1")),
        (f"127.0.0.1:5000/x:1@{D}", Reference("127.0.0.1:5000", "x", None, D)),
    ],
)
def test_parse_ref(text: str, expected: Reference) -> None:
    assert parse_ref(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        "",
        " x",
        "Iris",
        "a//b",
        "a/-b",
        "x:",
        "x:.bad",
        "x@sha256:12",
        "x@md5:" + "a" * 32,
        "host:port/x",
        "x:" + "a" * 129,
        "a b",
    ],
)
def test_bad_refs(text: str) -> None:
    with pytest.raises(UsageError) as err:
        parse_ref(text)
    assert len(err.value.diagnostics().splitlines()) == 1


def test_tag_with_a_trailing_newline_is_refused(tmp_path: Path) -> None:
    """Attack: Python's ``$`` also matches before a final newline, so "1.0.0\\n" passed for a tag
    and "sha256:<hex>\\n" for a digest: a hostile registry's history event could carry one (and
    print a forged line), and the local store would write a tag file of another name."""
    for bad in ("1.0.0\n", "production\n"):
        assert not is_tag(bad)
        with pytest.raises(UsageError, match="is not a valid tag"):
            check_tag(bad)
    assert not is_digest(D + "\n") and is_digest(D)
    with pytest.raises(UsageError, match="is not a valid tag"):
        version_tag("1.0.0\n")
    event = Event("team/iris", 0, (), "push", now_text(), "mallory", tag="1.0.0\n").to_json()
    with pytest.raises(ValueError, match="tag"):
        Event.from_json(event)
    backend = LocalBackend(tmp_path / "home")
    for reference in ("1.0.0\n", D + "\n"):
        with pytest.raises(UsageError):
            backend.put_manifest("team/iris", reference, b"{}")
    assert backend.list_tags("team/iris") == []


def test_ref_str_and_version_tag() -> None:
    assert str(parse_ref("127.0.0.1:5000/a:1")) == "127.0.0.1:5000/a:1"
    assert parse_ref("127.0.0.1:5000/a:1").name == "127.0.0.1:5000/a"
    assert version_tag("1.0.0+cpu") == "1.0.0_cpu"


@pytest.mark.parametrize(
    ("text", "metric", "op", "stage", "value"),
    [
        ("f1>=production+0.005", "f1", ">=", "production", "0.005"),
        ("loss <= staging", "loss", "<=", "staging", "0"),
        ("accuracy>=0.9", "accuracy", ">=", None, "0.9"),
        ("val/auc > staging - 1e-3", "val/auc", ">", "staging", "-0.001"),
        ("delta==-2", "delta", "==", None, "-2"),
    ],
)
def test_parse_gate(text: str, metric: str, op: str, stage: str | None, value: str) -> None:
    g = parse_gate(text)
    assert (g.metric, g.op, g.stage) == (metric, op, stage)
    assert float(g.value) == float(value)


@pytest.mark.parametrize(
    "text",
    [
        "f1",
        "f1>=",
        "f1=>0.1",
        "f1>=Prod",
        "f1>=v2",
        "f1>=production+",
        "f1>=production*2",
        "f1>=nan",
        "f1>=inf",
        "f1>=1;import os",
        "__import__('os')>=1",
        "f1>=staging+-1",
    ],
)
def test_bad_gates(text: str) -> None:
    with pytest.raises(UsageError):
        parse_gate(text)


def test_evaluate_exact_decimals() -> None:
    holders = {"production": {"f1": 0.9}, "staging": None}
    assert evaluate(parse_gate("f1>=production+0.005"), {"f1": 0.905}, holders).passed
    assert not evaluate(parse_gate("f1>=production+0.005"), {"f1": 0.9049}, holders).passed
    assert evaluate(parse_gate("f1>=staging"), {"f1": 0.1}, holders).passed  # no holder yet
    missing = evaluate(parse_gate("auc>=production"), {"auc": 0.5}, holders)
    assert not missing.passed and "holder has no finite metric" in missing.detail
    assert not evaluate(parse_gate("f1>=0.1"), {"f1": float("nan")}, holders).passed
    assert not evaluate(parse_gate("f1>=0.1"), {}, holders).passed


def test_durations() -> None:
    assert parse_duration("90d") == dt.timedelta(days=90)
    assert parse_duration("2w") == dt.timedelta(weeks=2)
    with pytest.raises(UsageError):
        parse_duration("90")
