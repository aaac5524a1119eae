"""Run the fuzz targets (tests/fuzz/targets.py) for a fixed budget: ``make fuzz``.

    python tests/fuzz/run.py [--seconds 60] [TARGET ...]

Each target runs in its own process under atheris (libFuzzer, coverage guided, mpkg's
modules instrumented), starting from the seeds in targets.py plus a working corpus kept in
``tests/fuzz/corpus/<target>/`` (not committed). A crash is written to
``tests/fuzz/crashes/<target>/crash-<sha1>`` and ends that target's run (libFuzzer stops at
the first crash): rename it after the attack it shows, fix the code, and commit both;
``tests/fuzz/test_fuzz_regressions.py`` replays every file there. Exit status 1 when any
target found a new crash.

Without atheris (it ships wheels for CPython 3.8-3.11 on Linux and macOS), each target runs
for the same budget on random inputs and mutations of the seeds, drawn by hypothesis:
not coverage guided, and said so.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parents[1]
sys.path[:0] = [str(ROOT)]


def _worker(target: str, seconds: int) -> None:
    """Runs in a child process: atheris over one target, until the budget is spent."""
    import atheris

    with atheris.instrument_imports(include=["mpkg"]):
        from tests.fuzz.targets import TARGETS, seeds

        fn = TARGETS[target]
        for seed in seeds()[target]:  # imports, instrumented, every module the target reaches lazily
            fn(seed)
    corpus = HERE / "corpus" / target
    crashes = HERE / "crashes" / target
    corpus.mkdir(parents=True, exist_ok=True)
    crashes.mkdir(parents=True, exist_ok=True)
    for seed in seeds()[target]:
        (corpus / f"seed-{hashlib.sha1(seed).hexdigest()[:12]}").write_bytes(seed)
    for old in crashes.iterdir():  # known crashes guide the search too
        (corpus / f"known-{old.name}").write_bytes(old.read_bytes())
    dictionary = corpus.parent / f"{target}.dict"
    dictionary.write_text(_dictionary(seeds()[target]))
    args = [
        sys.argv[0],
        str(corpus),
        f"-dict={dictionary}",
        f"-max_total_time={seconds}",
        f"-artifact_prefix={crashes}/",
        "-timeout=20",
        "-rss_limit_mb=3072",
        "-max_len=65536",
        "-print_final_stats=1",
    ]
    atheris.Setup(args, fn)
    atheris.Fuzz()


def _dictionary(samples: list[bytes]) -> str:
    """libFuzzer tokens: every JSON string and number in the seeds, JSON punctuation, tar words."""
    import re

    tokens = {t for s in samples for t in re.findall(rb'"[^"\\]{0,60}"|-?[0-9][0-9.eE+-]{0,20}', s)}
    tokens |= {b"{", b"}", b"[", b"]", b":", b",", b"null", b"true", b"false", b"\\u0000", b"\\n"}
    tokens |= {b" path=", b" size=", b"././@PaxHeader", b"ustar\x0000"}  # tar headers and PAX records
    return "".join('"' + "".join(f"\\x{b:02x}" for b in t) + '"\n' for t in sorted(tokens))


def _hypothesis(target: str, seconds: int) -> list[Path]:
    """The fallback: random and seed-mutated inputs for ``seconds`` (not coverage guided)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import strategies as st

    from tests.fuzz.targets import TARGETS, seeds

    fn = TARGETS[target]
    found: list[Path] = []
    deadline = time.monotonic() + seconds
    crashes = HERE / "crashes" / target
    mutated = st.sampled_from(seeds()[target]).flatmap(
        lambda s: st.lists(st.tuples(st.integers(0, max(len(s) - 1, 0)), st.binary(max_size=8)), max_size=6).map(
            lambda edits, s=s: _apply(s, edits)
        )
    )

    @settings(max_examples=10**9, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(st.binary(max_size=4096), mutated))
    def run(data: bytes) -> None:
        if time.monotonic() > deadline:
            raise _Done
        try:
            fn(data)
        except Exception:
            crashes.mkdir(parents=True, exist_ok=True)
            path = crashes / f"crash-{hashlib.sha1(data).hexdigest()}"
            path.write_bytes(data)
            found.append(path)

    with contextlib.suppress(_Done):
        run()
    return found


class _Done(Exception):
    pass


def _apply(seed: bytes, edits: list[tuple[int, bytes]]) -> bytes:
    data = bytearray(seed)
    for pos, chunk in edits:
        data[pos : pos + len(chunk)] = chunk
    return bytes(data)


def main() -> int:
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":  # before anything imports mpkg uninstrumented
        _worker(sys.argv[2], int(sys.argv[4]))
        return 0
    from tests.fuzz.targets import TARGETS

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", choices=[[], *TARGETS], metavar="TARGET")
    parser.add_argument("--seconds", type=int, default=int(os.environ.get("FUZZ_SECONDS", "60")))
    args = parser.parse_args()
    try:
        import atheris  # noqa: F401

        engine = "atheris (coverage guided)"
    except ImportError:
        engine = "hypothesis (random; install atheris for coverage-guided runs)"
    print(f"fuzzing {', '.join(args.targets or TARGETS)} for {args.seconds} s each with {engine}")
    new: list[Path] = []
    for target in args.targets or list(TARGETS):
        crashes = HERE / "crashes" / target
        before = set(crashes.iterdir()) if crashes.is_dir() else set()
        t0 = time.monotonic()
        if engine.startswith("atheris"):
            cmd = [sys.executable, __file__, "--worker", target, "--seconds", str(args.seconds)]
            proc = subprocess.run(cmd, capture_output=True, text=True, cwd=ROOT)
            done = [ln for ln in proc.stderr.splitlines() if "DONE" in ln or "NEW" in ln]
            runs = done[-1].strip() if done else " ".join(proc.stderr.strip().splitlines()[-1:])
        else:
            _hypothesis(target, args.seconds)
            runs = ""
        found = sorted((set(crashes.iterdir()) if crashes.is_dir() else set()) - before)
        new += found
        print(f"  {target}: {time.monotonic() - t0:.0f} s, {len(found)} new crash(es) {runs}")
        for path in found:
            print(f"    {path.relative_to(ROOT)}")
    if new:
        print(f"{len(new)} new crash(es): replay with `pytest tests/fuzz`, fix, rename after the attack, commit")
    return 1 if new else 0


if __name__ == "__main__":
    sys.exit(main())
