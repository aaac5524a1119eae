"""Fuzz targets: each takes arbitrary bytes and may only refuse them the documented way.

A target raises (a crash) when the code under test lets anything escape but its one
refusal type (MpkgError for package input, RequestError 4xx for a request), or breaks a
stated invariant (a mutated signed package that verifies, a parsed manifest that does not
re-encode to its bytes). `tests/fuzz/run.py` runs them under atheris (coverage guided);
`tests/fuzz/test_fuzz_regressions.py` replays every crash ever found and the seeds.

Targets:
- ``archive``: the tar reader (``mpkg._internal.format.archive.scan``) and the manifest it finds;
- ``manifest``: ``Manifest.from_bytes`` and every accessor of what it accepts;
- ``envelope``: the DSSE signature envelope parser and checker;
- ``enforce``: contract enforcement of JSON-decoded inputs against several contracts;
- ``v2_request``: the Open Inference Protocol request decoder (``mpkg.serve.tensors``);
- ``sign_mutate_verify``: a signed package, mutated by the input, must never verify.
"""

from __future__ import annotations

import contextlib
import io
import os
import struct
import tempfile
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any

from mpkg._internal.format import canonical
from mpkg.errors import MpkgError

Target = Callable[[bytes], None]


class InvariantBroken(AssertionError):
    """The code under test accepted something it must refuse, or answered inconsistently."""


# --- archive, manifest, envelope -------------------------------------------------------------


def archive(data: bytes) -> None:
    from mpkg._internal.format.archive import scan
    from mpkg._internal.format.manifest import MANIFEST_NAME

    try:
        members = scan(io.BytesIO(data), len(data), "fuzz.mpkg")
    except MpkgError:
        return
    names = [m.name for m in members]
    for m in members:
        if not (0 <= m.header_offset < m.data_offset <= m.data_offset + m.size <= len(data)):
            raise InvariantBroken(f"member {m.name!r} lies outside the file")
    if MANIFEST_NAME in names:
        m = members[names.index(MANIFEST_NAME)]
        manifest(data[m.data_offset : m.data_offset + m.size])


def manifest(data: bytes) -> None:
    from mpkg._internal.format.manifest import Manifest
    from mpkg.commands import describe_manifest, describe_text

    try:
        parsed = Manifest.from_bytes(data)
    except MpkgError:
        return
    if parsed.to_bytes() != data:
        raise InvariantBroken("an accepted manifest does not re-encode to its bytes")
    _ = (parsed.environment, parsed.lineage, parsed.card, parsed.example, parsed.base, parsed.metrics)
    _ = (parsed.entry_points, parsed.architecture, [f.to_json() for f in parsed.files], parsed.contract.to_json())
    describe_text(describe_manifest(parsed, len(data)))


def envelope(data: bytes) -> None:
    from mpkg._internal.trust.signatures import Envelope, check_envelope, check_statement

    try:
        env = Envelope.from_bytes(data)
    except MpkgError:
        return
    if env.to_bytes() != data:
        raise InvariantBroken("an accepted envelope does not re-encode to its bytes")
    key = _signer()
    ok = check_statement(env.payload, "victim", "1.0.0", _digest(), 1) is None
    for check in check_envelope(env, [key.trusted], ok):
        if check.valid and env.payload != _statement():
            raise InvariantBroken("a signature over another statement was accepted")


# --- contract enforcement and the V2 request decoder ---------------------------------------


def enforce(data: bytes) -> None:
    """First byte picks a contract; the rest is a JSON document of inputs (or outputs)."""
    import orjson
    from mpkg._internal.contract.enforce import check_inputs, check_outputs
    from mpkg._internal.contract.examples import to_jsonable
    from mpkg.errors import ContractError

    if not data:
        return
    contract = _contracts()[data[0] % len(_contracts())]
    try:
        doc = orjson.loads(data[1:])
    except orjson.JSONDecodeError:
        return
    if not isinstance(doc, dict):
        return
    try:
        arrays, dims = check_inputs(contract, doc)
    except ContractError:
        return
    for name, arr in arrays.items():
        to_jsonable(arr)
        if contract.input(name) is None:
            raise InvariantBroken(f"input {name!r} is not in the contract")
    with contextlib.suppress(ContractError):
        check_outputs(contract, {f.name: arrays.get(f.name) for f in contract.outputs}, dims)


def v2_request(data: bytes) -> None:
    """Byte 0: header length mode (% 3) and contract (// 3); bytes 1-4: the header length; the
    rest is the request body."""
    from mpkg.serve.tensors import RequestError, input_specs, parse_infer_request

    if len(data) < 5:
        return
    mode, (length,) = data[0] % 3, struct.unpack("<I", data[1:5])
    body = data[5:]
    header = None if mode == 0 else (length % (len(body) + 2)) if mode == 1 else length
    contract = _contracts()[data[0] // 3 % len(_contracts())]
    try:
        parse_infer_request(body, header, input_specs(contract), [f.name for f in contract.outputs])
    except RequestError as exc:
        if not 400 <= exc.status < 500 or "\n" in exc.message:
            raise InvariantBroken(f"a refused request got {exc.status}: {exc.message!r}") from exc


# --- sign, mutate, verify ---------------------------------------------------------------------


def sign_mutate_verify(data: bytes) -> None:
    """Mutations (from the input) of a valid signed package must never verify, and verify must
    never raise. Each 5-byte chunk is one edit: op, then a 32-bit position."""
    from mpkg._internal.trust.verify import verify

    original = _signed_package()
    mutated = bytearray(original)
    for i in range(0, len(data) - 4, 5):
        op, (pos,) = data[i], struct.unpack("<I", data[i + 1 : i + 5])
        at = pos % (len(mutated) + 1)
        kind = op % 6
        if kind == 0 and at < len(mutated):
            mutated[at] ^= 1 << (op >> 5)  # flip one bit
        elif kind == 1 and at < len(mutated):
            mutated[at] = pos >> 24  # set a byte
        elif kind == 2:
            del mutated[at : at + (pos >> 24) % 64 + 1]  # delete a run
        elif kind == 3:
            mutated[at:at] = bytes([op]) * ((pos >> 24) % 64 + 1)  # insert a run
        elif kind == 4:
            del mutated[at:]  # truncate
        else:
            mutated[at:at] = original[: (pos >> 24) % 1024]  # splice in a copy of the start
    if bytes(mutated) == original:
        return
    path = _scratch()
    path.write_bytes(mutated)
    result = verify(path, [_signer().pub])
    if result.ok:
        raise InvariantBroken("a mutated signed package verified")
    if not result.errors or any("\n" in e for e in result.errors):
        raise InvariantBroken(f"refusal is not one line per problem: {result.errors}")
    if any("report this bug" in e for e in result.errors):  # verify's safety net caught an exception
        raise InvariantBroken(f"verify hit an internal error: {result.errors}")


# --- fixtures built once per process ----------------------------------------------------------


class _Signer:
    def __init__(self) -> None:
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from mpkg._internal.trust.signatures import TrustedKey, key_id

        self.key = ed25519.Ed25519PrivateKey.from_private_bytes(b"\x07" * 32)
        public = self.key.public_key()
        self.trusted = TrustedKey(key_id(public), public, "fuzz.pub")
        self.pub = Path(tempfile.mkdtemp(prefix="mpkg-fuzz-")) / "fuzz.pub"
        self.pub.write_bytes(
            public.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        )


@cache
def _signer() -> _Signer:
    return _Signer()


@cache
def _scratch() -> Path:
    folder = Path("/dev/shm") if os.access("/dev/shm", os.W_OK) else Path(tempfile.gettempdir())
    return Path(tempfile.mkdtemp(prefix="mpkg-fuzz-", dir=folder)) / "mutated.mpkg"


def _files() -> list[tuple[str, bytes, str]]:
    return [
        ("card/MODEL_CARD.md", b"---\nlicense: mit\n---\n# Card\n", "card"),
        ("code/m.py", b"def predict(weights, inputs):\n    return inputs\n", "code"),
        ("environment/requirements.lock", b"numpy==2.1.0\n", "environment"),
        ("model/w.safetensors", b"\x08\x00\x00\x00\x00\x00\x00\x00{}      ", "weights"),
    ]


@cache
def _manifest_bytes() -> bytes:
    from mpkg._internal.format.digests import hash_bytes

    doc = {
        "format_version": 1,
        "name": "victim",
        "version": "1.0.0",
        "model": {"format": "safetensors", "files": ["model/w.safetensors"], "architecture": {}},
        "code": {"root": "code", "module": "m", "entry_points": {"predict": ["weights", "inputs"]}},
        "contract": {
            "inputs": [{"name": "x", "dtype": "float32", "shape": ["batch", 2]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": ["batch", 2]}],
        },
        "environment": {"lockfile": "environment/requirements.lock", "kind": "requirements", "packages": []},
        "card": {"path": "card/MODEL_CARD.md", "metadata": {"license": "mit"}},
        "files": [
            {"path": p, "size": len(d), "digest": str(hash_bytes(d)), "encoding": "identity", "role": r}
            for p, d, r in _files()
        ],
    }
    return canonical.dumps(doc)


def _digest() -> Any:
    from mpkg._internal.format.digests import package_digest

    return package_digest(_manifest_bytes())


def _statement() -> bytes:
    from mpkg._internal.trust.signatures import statement

    return statement("victim", "1.0.0", _digest(), 1)


@cache
def _envelope_bytes() -> bytes:
    from mpkg._internal.trust.signatures import PAYLOAD_TYPE, Envelope, SignatureEntry, key_id, pae

    key = _signer().key
    sig = key.sign(pae(PAYLOAD_TYPE, _statement()))
    return Envelope(_statement(), PAYLOAD_TYPE, (SignatureEntry(key_id(key.public_key()), sig),)).to_bytes()


@cache
def _signed_package() -> bytes:
    from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME

    body = b"".join(_member(p, d) for p, d, _ in _files())
    body += _member(MANIFEST_NAME, _manifest_bytes()) + _member(SIGNATURES_NAME, _envelope_bytes())
    return body + _end(len(body))


def _member(name: str, data: bytes) -> bytes:
    from mpkg._internal.format import layout

    return layout.member_header(name, len(data)) + data + b"\0" * layout.padding(len(data))


def _end(offset: int) -> bytes:
    from mpkg._internal.format import layout

    return layout.end_of_archive(offset)


def _pax_archive() -> bytes:
    """Members whose names need PAX headers (long, non-ASCII), so PAX records get explored."""
    body = _member("lineage/" + "d" * 120 + ".csv", b"a,b\n") + _member("lineage/donn\u00e9es.csv", b"1,2\n")
    return body + _end(len(body))


@cache
def _contracts() -> tuple[Any, ...]:
    from mpkg._internal.contract.contract import Contract

    tensor = {"name": "x", "dtype": "float32", "shape": ["batch", 4]}
    return (
        Contract.from_json({"inputs": [tensor], "outputs": [{"name": "y", "dtype": "int64", "shape": ["batch"]}]}),
        Contract.from_json(
            {
                "inputs": [
                    {"name": "n", "dtype": "int64", "shape": ["batch"], "nullable": True},
                    {"name": "s", "dtype": "string", "shape": ["batch"], "enum": ["a", "b"]},
                    {"name": "f", "dtype": "float16", "shape": ["batch"], "optional": True},
                    {"name": "b", "dtype": "bool", "shape": [-1]},
                    {"name": "u", "dtype": "uint8", "shape": ["batch", 2, 2]},
                ],
                "outputs": [{"name": "n", "dtype": "int64", "shape": ["batch"]}],
            }
        ),
        Contract.from_json(
            {
                "inputs": [
                    {"name": "t", "dtype": "timestamp[ms, tz=UTC]", "shape": ["rows"]},
                    {"name": "d", "dtype": "decimal128(5,2)", "shape": ["rows"], "nullable": True},
                    {"name": "day", "dtype": "date32", "shape": ["rows"]},
                ],
                "outputs": [{"name": "t", "dtype": "timestamp[ms, tz=UTC]", "shape": ["rows"]}],
            }
        ),
    )


# --- seeds: valid inputs the fuzzer starts from ---------------------------------------------


def seeds() -> dict[str, list[bytes]]:
    import orjson

    pkg = _signed_package()
    requests = [
        b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"data":[1,2,3,4]}]}',
        b'{"id":"r","inputs":[{"name":"x","datatype":"FP32","shape":[2,4],"data":[[1,2,3,4],[5,6,7,8]]}],'
        b'"outputs":[{"name":"y","parameters":{"binary_data":true}}]}',
    ]
    binary_header = b'{"inputs":[{"name":"x","datatype":"FP32","shape":[1,4],"parameters":{"binary_data_size":16}}]}'
    mixed = orjson.dumps(
        {
            "inputs": [
                {"name": "s", "datatype": "BYTES", "shape": [1], "parameters": {"binary_data_size": 5}},
                {"name": "n", "datatype": "INT64", "shape": [1], "data": [1]},
            ]
        }
    )
    return {
        "archive": [pkg, _pax_archive()],
        "manifest": [_manifest_bytes()],
        "envelope": [_envelope_bytes()],
        "enforce": [
            b"\x00" + orjson.dumps({"x": [[1.0, 2.0, 3.0, 4.0]]}),
            b"\x01" + orjson.dumps({"n": [1, 2], "s": ["a", "b"], "b": [True, False], "u": [[[1, 2], [3, 4]]] * 2}),
            b"\x02" + orjson.dumps({"t": ["2024-01-01T00:00:00Z"], "d": ["1.25"], "day": ["2024-01-01"]}),
        ],
        "v2_request": [
            b"\x00" + struct.pack("<I", 0) + requests[0],
            b"\x00" + struct.pack("<I", 0) + requests[1],
            b"\x02" + struct.pack("<I", len(binary_header)) + binary_header + struct.pack("<4f", 1, 2, 3, 4),
            b"\x05" + struct.pack("<I", len(mixed)) + mixed + struct.pack("<I", 1) + b"a",
        ],
        "sign_mutate_verify": [b"\x00" + struct.pack("<I", 700), b"\x04" + struct.pack("<I", 1500)],
    }


TARGETS: dict[str, Target] = {
    "archive": archive,
    "manifest": manifest,
    "envelope": envelope,
    "enforce": enforce,
    "v2_request": v2_request,
    "sign_mutate_verify": sign_mutate_verify,
}

__all__ = ["TARGETS", "InvariantBroken", "seeds"]
