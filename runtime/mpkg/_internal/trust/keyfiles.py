"""Reading key files: bounded, regular files only, every PEM block accounted for.

A key path comes from a flag or ``MPKG_KEYS`` and is read before anything is verified, so it
is input like any other: ``--key`` naming a FIFO used to hang, ``/dev/zero`` to end in a
MemoryError, and a PEM file with two keys silently trusted only the first. Here a key file
must be a regular file of at most 64 KiB, opened without waiting, and each PEM block in it
must be of the expected kind: a public key file may hold several public keys (all trusted,
each named in reports), a private key file exactly one private key.
"""

from __future__ import annotations

import os
import re
import stat

from mpkg.errors import SignatureError

MAX_KEY_FILE_BYTES = 64 * 1024
_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]{1,40})-----\r?\n(?:[A-Za-z0-9+/=:, \t\r\n-]*?)-----END \1-----")
PUBLIC = ("PUBLIC KEY",)
PRIVATE = ("PRIVATE KEY", "ENCRYPTED PRIVATE KEY", "EC PRIVATE KEY")
_IGNORED = ("EC PARAMETERS",)  # what `openssl ecparam -genkey` writes before the key


def read_key_file(path: str | os.PathLike[str]) -> bytes:
    """The bytes of a key file: a regular file of at most MAX_KEY_FILE_BYTES."""
    where = str(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)  # a FIFO: no wait for a writer
    except OSError as exc:
        raise SignatureError(f"cannot be read ({exc.strerror})", where) from None
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise SignatureError("is not a regular file; a key is a PEM file such as NAME.pub", where)
        try:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
        except OSError as exc:
            raise SignatureError(f"cannot be read ({exc.strerror})", where) from None
    if len(data) > MAX_KEY_FILE_BYTES:
        raise SignatureError(f"is over {MAX_KEY_FILE_BYTES // 1024} KiB; a key file holds PEM keys only", where)
    return data


def pem_blocks(data: bytes, kinds: tuple[str, ...], where: str) -> list[bytes]:
    """Every PEM block of one of ``kinds`` in ``data``, in order. Refused: no block, a block of
    another kind (a certificate, a private key where public keys belong), or a BEGIN line
    without its END (a block a lenient reader would skip)."""
    found: list[bytes] = []
    for match in _BLOCK.finditer(data):
        kind = match.group(1).decode("ascii")
        if kind in kinds:
            found.append(match.group(0))
        elif kind not in _IGNORED:
            wanted = "public keys (NAME.pub)" if kinds == PUBLIC else "one private key (NAME.key)"
            raise SignatureError(f"holds a PEM '{kind}' block; it must hold {wanted}", where)
    if data.count(b"-----BEGIN ") != len(found) + sum(data.count(f"-----BEGIN {k}-----".encode()) for k in _IGNORED):
        raise SignatureError("has a malformed PEM block (BEGIN without a matching END)", where)
    if not found:
        raise SignatureError("holds no PEM key", where)
    return found


__all__ = ["MAX_KEY_FILE_BYTES", "PRIVATE", "PUBLIC", "pem_blocks", "read_key_file"]
