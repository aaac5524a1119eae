"""Rebuild the golden packages of format v1 from examples/ (deliberately; see README.md).

    .venv/bin/python tests/golden/regenerate.py            # shows what would change
    .venv/bin/python tests/golden/regenerate.py --write    # rewrites tests/golden/rebuild/

Each example is copied to a temporary folder outside git first, so ``lineage.git`` is
absent and the digest depends only on the example and the builder (mpkg version, Python
feature version, platform: recorded in DIGESTS.json). The TEST-ONLY key pairs in v1/
are created once and reused, so regenerating does not change who signed. ``v1/``'s packages,
as format v1 first wrote them, are never rewritten.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
V1 = HERE / "v1"  # keys, and the first-written packages (never rewritten)
REBUILD = HERE / "rebuild"
EXAMPLES = HERE.parents[1] / "examples"

# file name -> (example, key pair name or None, algorithm)
PACKAGES: dict[str, tuple[str, str | None, str]] = {
    "iris-mlp-1.0.0.mpkg": ("iris-mlp", "golden-test", "ed25519"),
    "churn-tabular-0.3.0.mpkg": ("churn-tabular", None, ""),
    "churn-tabular-0.3.0-ecdsa.mpkg": ("churn-tabular", "golden-test-ecdsa", "ecdsa-p256"),
}


def _key(name: str, algorithm: str) -> Path:
    from mpkg_builder.signing import keygen

    private = V1 / f"{name}.key"
    if not private.exists():
        keygen(V1 / name, algorithm)
    return private


def build_all(out: Path) -> dict[str, object]:
    """Build every golden package into ``out``; return the DIGESTS.json document."""
    from mpkg._internal.format.package import read_manifest
    from mpkg._internal.trust.signatures import load_public_key
    from mpkg_builder.build import build_package

    records: dict[str, object] = {}
    builder: object = None
    with tempfile.TemporaryDirectory(prefix="mpkg-golden-") as tmp:
        for filename, (example, key_name, algorithm) in PACKAGES.items():
            src = Path(tmp) / filename / example
            shutil.copytree(EXAMPLES / example, src)
            key = _key(key_name, algorithm) if key_name else None
            result = build_package(src, out / filename, key=key)
            manifest = read_manifest(out / filename)
            assert "git" not in manifest.lineage, "the golden source must be built outside git"
            builder = manifest.lineage["builder"]
            records[filename] = {
                "name": result.name,
                "version": result.version,
                "example": example,
                "digest": result.digest,
                "file_sha256": hashlib.sha256((out / filename).read_bytes()).hexdigest(),
                "public_key": f"{key_name}.pub" if key_name else None,
                "keyid": load_public_key(V1 / f"{key_name}.pub").keyid if key_name else None,
            }
    return {"format_version": 1, "builder": builder, "packages": records}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--write", action="store_true", help="replace the golden packages and DIGESTS.json")
    args = parser.parse_args(argv)
    V1.mkdir(exist_ok=True)
    REBUILD.mkdir(exist_ok=True)
    old_path = REBUILD / "DIGESTS.json"
    old = json.loads(old_path.read_text()) if old_path.exists() else {"packages": {}}
    with tempfile.TemporaryDirectory(prefix="mpkg-golden-out-") as tmp:
        doc = build_all(Path(tmp))
        for name, rec in doc["packages"].items():  # type: ignore[attr-defined]
            before = old["packages"].get(name, {}).get("digest")
            status = "unchanged" if before == rec["digest"] else f"CHANGED (was {before})"
            print(f"{name}: {rec['digest']} {status}", file=sys.stderr)
        if not args.write:
            print("dry run; pass --write to replace tests/golden/rebuild", file=sys.stderr)
            return 0
        for name in doc["packages"]:  # type: ignore[attr-defined]
            shutil.copyfile(Path(tmp) / name, REBUILD / name)
    old_path.write_text(json.dumps(doc, indent=2, sort_keys=True) + "\n")
    print(f"wrote {REBUILD}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
