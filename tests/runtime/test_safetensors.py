"""The strict safetensors header parser, against files written by the real library."""

from __future__ import annotations

import json
import struct
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from mpkg._internal.format.safetensors import parse_safetensors
from mpkg.errors import FormatError
from safetensors import safe_open
from safetensors.numpy import save_file


def raw(tmp_path: Path, header: str | Mapping[str, object], data: bytes, *, pad: bytes = b"") -> Path:
    text = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    encoded = text.encode() + pad
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", len(encoded)) + encoded + data)
    return path


def refused(path: Path) -> str:
    with pytest.raises(FormatError) as exc:
        parse_safetensors(path)
    return exc.value.diagnostics()


def entry(dtype: str, shape: list[int], begin: int, end: int) -> dict[str, object]:
    return {"dtype": dtype, "shape": shape, "data_offsets": [begin, end]}


def test_library_file_parses_like_the_library(tmp_path: Path) -> None:
    tensors: dict[str, np.ndarray] = {
        "b": np.arange(6, dtype=np.float32).reshape(2, 3),
        "a": np.array([1, 2], dtype=np.int64),
        "flag": np.array([True, False]),
        "empty": np.zeros((0, 4), dtype=np.float16),
    }
    path = tmp_path / "w.safetensors"
    save_file(tensors, str(path), metadata={"format": "np", "author": "me"})
    info = parse_safetensors(path)
    with safe_open(str(path), "np") as f:
        assert sorted(t.name for t in info.tensors) == sorted(f.keys())
        assert info.metadata == f.metadata()
        for t in info.tensors:
            assert t.shape == f.get_tensor(t.name).shape
    blob = path.read_bytes()
    for t in info.tensors:
        got = np.frombuffer(blob[info.data_start + t.begin : info.data_start + t.end], dtype=tensors[t.name].dtype)
        assert np.array_equal(got, tensors[t.name].reshape(-1))
    assert {t.name: t.dtype for t in info.tensors} == {
        "a": "I64",
        "b": "F32",
        "flag": "BOOL",
        "empty": "F16",
    }


def test_space_padding_allowed_and_zero_size_tensors(tmp_path: Path) -> None:
    header = {"z": entry("F32", [0], 0, 0), "a": entry("U8", [2], 0, 2)}
    info = parse_safetensors(raw(tmp_path, header, b"\x01\x02", pad=b"    "))
    assert [t.name for t in info.tensors] == ["z", "a"]


def test_sub_byte_dtype_sizes(tmp_path: Path) -> None:
    info = parse_safetensors(raw(tmp_path, {"q": entry("F4", [8], 0, 4)}, bytes(4)))
    assert info.tensors[0].nbytes == 4


def test_duplicate_tensor_name_refused_though_the_library_accepts_it(tmp_path: Path) -> None:
    e = json.dumps(entry("U8", [1], 0, 1))
    path = raw(tmp_path, '{"w":' + e + ',"w":' + e + "}", b"\x07")
    with safe_open(str(path), "np") as f:  # the parser differential this check closes
        assert list(f.keys()) == ["w"]
    assert "duplicate tensor name 'w'" in refused(path)


def test_duplicate_key_inside_an_entry_refused(tmp_path: Path) -> None:
    path = raw(tmp_path, '{"w":{"dtype":"U8","dtype":"I8","shape":[1],"data_offsets":[0,1]}}', b"\x00")
    assert "duplicate" in refused(path)


def test_short_file_refused(tmp_path: Path) -> None:
    (tmp_path / "w.safetensors").write_bytes(b"\x01\x02")
    assert "shorter than the 8-byte" in refused(tmp_path / "w.safetensors")


def test_header_past_end_refused(tmp_path: Path) -> None:
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", 1000) + b"{}")
    assert "runs past the end" in refused(tmp_path / "w.safetensors")


def test_huge_header_length_refused(tmp_path: Path) -> None:
    (tmp_path / "w.safetensors").write_bytes(struct.pack("<Q", 2**63) + b"{}")
    assert "exceeds the" in refused(tmp_path / "w.safetensors")


def test_leading_whitespace_refused(tmp_path: Path) -> None:
    assert "must start with '{'" in refused(raw(tmp_path, ' {"a":' + json.dumps(entry("U8", [1], 0, 1)) + "}", b"\x00"))


def test_non_utf8_header_refused(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(struct.pack("<Q", 4) + b'{"\xff}')
    assert "not UTF-8" in refused(path)


def test_invalid_json_refused(tmp_path: Path) -> None:
    assert "not valid JSON" in refused(raw(tmp_path, '{"a":', b""))


def test_non_finite_constant_refused(tmp_path: Path) -> None:
    assert "not valid JSON" in refused(
        raw(tmp_path, '{"a":{"dtype":"U8","shape":[NaN],"data_offsets":[0,1]}}', b"\x00")
    )


def test_header_not_object_refused(tmp_path: Path) -> None:
    assert "must start with '{'" in refused(raw(tmp_path, "[1]", b""))


@pytest.mark.parametrize(
    ("tensor", "reason"),
    [
        ({"dtype": "F128", "shape": [1], "data_offsets": [0, 1]}, "is not a safetensors dtype"),
        ({"dtype": "U8", "shape": [-1], "data_offsets": [0, 1]}, "non-negative integers"),
        ({"dtype": "U8", "shape": [True], "data_offsets": [0, 1]}, "non-negative integers"),
        ({"dtype": "U8", "shape": [1.0], "data_offsets": [0, 1]}, "non-negative integers"),
        ({"dtype": "U8", "shape": [1], "data_offsets": [0]}, "must be [begin, end]"),
        ({"dtype": "U8", "shape": [1], "data_offsets": [1, 0]}, "end before they begin"),
        ({"dtype": "U8", "shape": [2], "data_offsets": [0, 1]}, "needs 2"),
        (
            {"dtype": "U8", "shape": [1], "data_offsets": [0, 1], "extra": 1},
            "unknown keys ['extra']",
        ),
        ({"dtype": "U8", "shape": [1]}, "missing data_offsets"),
        ({"dtype": "F4", "shape": [3], "data_offsets": [0, 1]}, "do not fill whole bytes"),
        ("not an object", "must be an object"),
    ],
)
def test_bad_entries_refused(tmp_path: Path, tensor: object, reason: str) -> None:
    assert reason in refused(raw(tmp_path, {"t": tensor}, b"\x00"))


def test_empty_tensor_name_refused(tmp_path: Path) -> None:
    assert "tensor name is empty" in refused(raw(tmp_path, {"": entry("U8", [1], 0, 1)}, b"\x00"))


def test_overlapping_tensors_refused(tmp_path: Path) -> None:
    header = {"a": entry("U8", [2], 0, 2), "b": entry("U8", [2], 1, 3)}
    assert "overlap the previous tensor" in refused(raw(tmp_path, header, bytes(3)))


def test_aliased_tensors_refused(tmp_path: Path) -> None:
    header = {"a": entry("U8", [2], 0, 2), "b": entry("U8", [2], 0, 2)}
    assert "overlap" in refused(raw(tmp_path, header, bytes(2)))


def test_gap_refused(tmp_path: Path) -> None:
    header = {"a": entry("U8", [1], 0, 1), "b": entry("U8", [1], 3, 4)}
    assert "gap of 2 bytes" in refused(raw(tmp_path, header, bytes(4)))


def test_trailing_bytes_refused(tmp_path: Path) -> None:
    assert "trailing or missing bytes" in refused(raw(tmp_path, {"a": entry("U8", [1], 0, 1)}, bytes(5)))


def test_truncated_data_refused(tmp_path: Path) -> None:
    assert "run past the 2-byte data section" in refused(raw(tmp_path, {"a": entry("U8", [4], 0, 4)}, bytes(2)))


def test_metadata_must_be_strings(tmp_path: Path) -> None:
    header = {"__metadata__": {"epochs": 3}, "a": entry("U8", [1], 0, 1)}
    assert "__metadata__: must be an object of string values" in refused(raw(tmp_path, header, b"\x00"))


def test_all_entry_problems_at_once(tmp_path: Path) -> None:
    header = {"a": entry("X1", [1], 0, 1), "b": entry("U8", [-1], 1, 2)}
    with pytest.raises(FormatError) as exc:
        parse_safetensors(raw(tmp_path, header, bytes(2)))
    assert len(exc.value.problems) >= 2


def test_error_class_is_selectable_for_runtime_use(tmp_path: Path) -> None:
    with pytest.raises(FormatError):
        parse_safetensors(raw(tmp_path, "[1]", b""), error=FormatError)
