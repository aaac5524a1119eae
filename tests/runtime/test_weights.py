"""Weights mapped zero-copy from real safetensors files and real ONNX external data."""

from __future__ import annotations

import mmap
import struct
from pathlib import Path

import numpy as np
import pytest
from mpkg._internal.load.weights import (
    TensorInfo,
    TensorMap,
    bfloat16_to_float32,
    map_safetensors,
    onnx_external_tensors,
    open_safetensors,
    tensors_from_infos,
)
from mpkg.errors import FormatError, SourceError
from safetensors.numpy import load_file

from tests.runtime.pkgfactory import gemm_onnx, safetensors_bytes

TENSORS = {
    "w": np.arange(12, dtype=np.float32).reshape(3, 4),
    "ids": np.array([1, -2, 3], dtype=np.int64),
    "flag": np.array([True, False]),
    "scalar": np.array(2.5, dtype=np.float64),
}


def _mapped(tmp_path: Path, data: bytes, prefix: bytes = b"") -> tuple[mmap.mmap, int]:
    path = tmp_path / "blob"
    path.write_bytes(prefix + data)
    with open(path, "rb") as f:
        return mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ), len(prefix)


def test_tensors_match_the_safetensors_library_zero_copy(tmp_path: Path) -> None:
    path = tmp_path / "w.safetensors"
    path.write_bytes(safetensors_bytes(TENSORS))
    expected = load_file(str(path))
    # stored at a 512-byte offset inside a bigger file, like a member of an .mpkg
    mm, offset = _mapped(tmp_path, path.read_bytes(), prefix=b"\0" * 512)
    weights = map_safetensors(mm, offset, len(mm) - offset, "w.safetensors")
    assert sorted(weights) == sorted(TENSORS)
    base = np.frombuffer(mm, dtype=np.uint8)
    for name, arr in weights.items():
        np.testing.assert_array_equal(arr, expected[name])
        assert arr.dtype == expected[name].dtype and arr.shape == expected[name].shape
        assert arr.flags.writeable is False
        assert np.shares_memory(arr, base)  # a view of the map, not a copy
    with pytest.raises(ValueError):
        weights["w"][0, 0] = 1.0
    with pytest.raises(TypeError):
        weights["new"] = np.zeros(1)  # type: ignore[index]


def test_bfloat16_is_exposed_as_raw_bits(tmp_path: Path) -> None:
    ml_dtypes = pytest.importorskip("ml_dtypes")
    values = np.array([1.0, -2.5, 3.140625], dtype=np.float32)
    from safetensors.numpy import save

    data = save({"b": values.astype(ml_dtypes.bfloat16)})
    mm, _ = _mapped(tmp_path, data)
    weights = map_safetensors(mm, 0, len(mm), "bf16.safetensors")
    assert weights.dtype("b") == "BF16" and weights["b"].dtype == np.uint16
    np.testing.assert_array_equal(bfloat16_to_float32(weights["b"]), values)


def test_offsets_outside_the_data_section_are_refused(tmp_path: Path) -> None:
    mm, _ = _mapped(tmp_path, b"\0" * 64)
    with pytest.raises(FormatError, match=r"outside the 16-byte data section"):
        tensors_from_infos(mm, 0, 16, [TensorInfo("t", "F32", (8,), 0, 32)], "f")
    with pytest.raises(FormatError, match=r"needs 16 bytes, data_offsets give 12"):
        tensors_from_infos(mm, 0, 64, [TensorInfo("t", "F32", (4,), 0, 12)], "f")


def test_header_length_past_the_member_is_refused(tmp_path: Path) -> None:
    mm, _ = _mapped(tmp_path, struct.pack("<Q", 1 << 20) + b"{}")
    with pytest.raises(FormatError, match=r"header length 1048576 does not fit"):
        map_safetensors(mm, 0, len(mm), "bad.safetensors")


def test_shards_merge_and_duplicates_are_refused(tmp_path: Path) -> None:
    (tmp_path / "a.safetensors").write_bytes(safetensors_bytes({"x": np.zeros(2, np.float32)}))
    (tmp_path / "b.safetensors").write_bytes(safetensors_bytes({"y": np.ones(3, np.int32)}))
    (tmp_path / "c.safetensors").write_bytes(safetensors_bytes({"x": np.ones(1, np.int8)}))
    merged = open_safetensors([tmp_path / "a.safetensors", tmp_path / "b.safetensors"])
    assert isinstance(merged, TensorMap) and sorted(merged) == ["x", "y"]
    with pytest.raises(FormatError, match=r"tensor 'x' appears in more than one weights file"):
        open_safetensors([tmp_path / "a.safetensors", tmp_path / "c.safetensors"])
    (tmp_path / "empty.safetensors").write_bytes(b"")
    with pytest.raises(SourceError, match=r"is empty"):
        open_safetensors([tmp_path / "empty.safetensors"])


def test_onnx_external_tensors_are_found_without_the_onnx_package(tmp_path: Path) -> None:
    w = np.arange(8, dtype=np.float32).reshape(4, 2)
    b = np.ones(2, np.float32)
    model, data = gemm_onnx(w, b, external="weights.bin", folder=tmp_path)
    assert data is not None
    found = {t.name: t for t in onnx_external_tensors(model)}
    assert set(found) == {"W", "B"}
    tw = found["W"]
    assert (tw.elem_type, tw.dims, tw.location) == (1, (4, 2), "weights.bin")
    np.testing.assert_array_equal(np.frombuffer(data, np.float32, 8, tw.offset).reshape(4, 2), w)
    inline, _ = gemm_onnx(w, b)
    assert onnx_external_tensors(inline) == []
    assert onnx_external_tensors(b"\xff\xff\xff") == []  # not a proto: onnxruntime's route instead
