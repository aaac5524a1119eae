"""Hostile copies of real packages, for the attacks a test is named after."""

from __future__ import annotations

from pathlib import Path


def flip_weight_byte(package: Path, weights: Path, dest: Path) -> Path:
    """A copy of ``package`` at ``dest`` with one byte in the middle of ``weights`` (the source
    file it was built from) flipped: headers, manifest and signatures intact."""
    data = bytearray(package.read_bytes())
    original = weights.read_bytes()
    at = bytes(data).find(original)
    assert at > 0, f"{weights.name} is not stored as is in {package}"
    data[at + len(original) // 2] ^= 0xFF
    dest.write_bytes(bytes(data))
    return dest
