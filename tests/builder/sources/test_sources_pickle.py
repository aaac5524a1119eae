"""Content sniffing of code-executing formats: real files of each kind, and look-alikes."""

from __future__ import annotations

import bz2
import gzip
import io
import json
import lzma
import pickle
import struct
import sys
import zipfile
import zlib
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest
from mpkg_builder.sources.pickle import sniff_code_executing
from safetensors.numpy import save_file

PAYLOAD = {"weights": [0.5, 2.0], "name": "w"}


def write(tmp_path: Path, name: str, data: bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("protocol", [0, 1, 2, 3, 4, 5])
def test_pickle_every_protocol_detected(tmp_path: Path, protocol: int) -> None:
    path = write(tmp_path, "weights.safetensors", pickle.dumps(PAYLOAD, protocol=protocol))
    reason = sniff_code_executing(path)
    assert reason is not None and "pickle" in reason


def test_pickle_importing_a_global_detected(tmp_path: Path) -> None:
    path = write(tmp_path, "model.bin", pickle.dumps(Path("x"), protocol=2))
    assert "pickle" in (sniff_code_executing(path) or "")


def test_malicious_protocol0_with_trailing_garbage_detected(tmp_path: Path) -> None:
    # pickle.load would call os.system before failing on the garbage: still a pickle.
    data = b"cos\nsystem\n(S'echo pwned'\ntR" + b"\x00garbage" * 10
    reason = sniff_code_executing(write(tmp_path, "weights.bin", data))
    assert reason is not None and "imports and calls" in reason


def test_malicious_inst_opcode_detected(tmp_path: Path) -> None:
    data = b"(S'echo pwned'\nios\nsystem\n\x00junk"
    reason = sniff_code_executing(write(tmp_path, "weights.bin", data))
    assert reason is not None and "imports and calls" in reason


@pytest.mark.parametrize(
    ("label", "compress"),
    [
        ("gzip", gzip.compress),
        ("bzip2", bz2.compress),
        ("xz", lzma.compress),
        ("zlib", zlib.compress),
    ],
)
def test_compressed_pickle_detected(tmp_path: Path, label: str, compress: object) -> None:
    assert callable(compress)
    data = compress(pickle.dumps(PAYLOAD, protocol=4))
    reason = sniff_code_executing(write(tmp_path, "model.joblib", data))
    assert reason is not None and f"{label}-compressed pickle" in reason


def test_gzip_of_text_allowed(tmp_path: Path) -> None:
    assert sniff_code_executing(write(tmp_path, "table.csv.gz", gzip.compress(b"a,b\n1,2\n"))) is None


def test_joblib_legacy_zlib_container_detected(tmp_path: Path) -> None:
    data = b"ZF0x" + b"%x" % 50 + zlib.compress(pickle.dumps(PAYLOAD))
    assert "joblib" in (sniff_code_executing(write(tmp_path, "m.pkl.z", data)) or "")


def _zip(entries: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in entries.items():
            zf.writestr(name, data)
    return buf.getvalue()


@pytest.mark.parametrize(
    ("entries", "kind"),
    [
        (
            {"archive/data.pkl": pickle.dumps(PAYLOAD), "archive/version": b"3"},
            "PyTorch checkpoint",
        ),
        ({"m/constants.pkl": pickle.dumps(()), "m/code/__torch__/m.py": b"x"}, "TorchScript"),
        ({"readme.txt": b"hello"}, "a zip archive"),
        ({"model.pkl": pickle.dumps(PAYLOAD)}, "holding pickles"),
    ],
)
def test_zip_archives_detected(tmp_path: Path, entries: dict[str, bytes], kind: str) -> None:
    reason = sniff_code_executing(write(tmp_path, "model.onnx", _zip(entries)))
    assert reason is not None and kind in reason


def test_npz_detected(tmp_path: Path) -> None:
    path = tmp_path / "w.npz"
    np.savez(path, a=np.arange(3))
    assert "numpy .npz" in (sniff_code_executing(path) or "")


def test_npy_object_dtype_detected(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.array([{"a": 1}, None], dtype=object), allow_pickle=True)
    assert "object dtype" in (sniff_code_executing(path) or "")


def test_npy_numeric_allowed(tmp_path: Path) -> None:
    path = tmp_path / "w.npy"
    np.save(path, np.arange(6, dtype=np.float32))
    assert sniff_code_executing(path) is None


def test_7z_detected(tmp_path: Path) -> None:
    data = b"7z\xbc\xaf\x27\x1c\x00\x04" + bytes(24)
    assert "7z archive" in (sniff_code_executing(write(tmp_path, "w.safetensors", data)) or "")


def test_elf_shared_library_detected(tmp_path: Path) -> None:
    assert "native" in (sniff_code_executing(Path(sys.executable).resolve()) or "")


def test_pyc_detected(tmp_path: Path) -> None:
    import importlib.util

    data = importlib.util.MAGIC_NUMBER + bytes(12) + b"\xe3" + bytes(20)
    assert "bytecode" in (sniff_code_executing(write(tmp_path, "helper.dat", data)) or "")


def test_keras_h5_with_lambda_detected(tmp_path: Path) -> None:
    data = b"\x89HDF\r\n\x1a\n" + bytes(100) + b'{"class_name": "Lambda", "config": {}}'
    assert "Lambda" in (sniff_code_executing(write(tmp_path, "model.h5", data)) or "")


def test_safetensors_with_0x80_0x02_header_length_not_a_pickle(tmp_path: Path) -> None:
    """Header length 640 encodes as 80 02 00.. - the pickle protocol-2 marker. Not a pickle."""
    path = tmp_path / "w.safetensors"
    for pad in range(400, 700):
        save_file({"w": np.zeros(4, np.float32)}, str(path), metadata={"pad": "x" * pad})
        if path.read_bytes()[:2] == b"\x80\x02":
            break
    else:  # pragma: no cover - depends on the library's header layout
        pytest.fail("could not produce a header of length 0x280")
    assert sniff_code_executing(path) is None


def test_real_safetensors_and_onnx_allowed(tmp_path: Path, scenarios: ModuleType) -> None:
    save_file({"a": np.arange(10, dtype=np.float64)}, str(tmp_path / "w.safetensors"))
    assert sniff_code_executing(tmp_path / "w.safetensors") is None
    assert sniff_code_executing(write(tmp_path, "m.onnx", scenarios.tiny_onnx())) is None
    examples = Path(__file__).resolve().parents[3] / "examples"
    assert sniff_code_executing(examples / "iris-mlp" / "model.onnx") is None
    assert sniff_code_executing(examples / "churn-tabular" / "weights.safetensors") is None


@pytest.mark.parametrize(
    "text",
    [
        b"",
        b".",
        b"sepal_length,sepal_width\n5.1,3.5\n",
        json.dumps({"a": [1, 2]}).encode(),
        b"# Title\n\nSome text.\n",
        b"import os\nprint(os.getcwd())\n",
        b"name: value\nlist: [1, 2]\n",
        b"(this is a parenthetical remark).\n",
        b"Lorem ipsum dolor sit amet.\n",
        b"\x80\x02 not really a pickle",
        struct.pack("<4f", 1.0, 2.0, 3.0, 4.0),
    ],
)
def test_ordinary_files_allowed(tmp_path: Path, text: bytes) -> None:
    assert sniff_code_executing(write(tmp_path, "f.dat", text)) is None
