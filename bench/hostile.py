"""What the hostile-input defences of issue 9 cost: before (a git revision) and after (this tree).

    python bench/hostile.py [--before main] [--size-gib 2] [--files 20000] [--repeat 5]

The revision's runtime and builder are exported to a scratch folder and run through the same
interpreter (``PYTHONPATH`` puts them first); both run alternately in the same run, next to
the baselines of bench/run.py (``b3sum`` for verify, ``tar`` + ``b3sum`` for build, ``cp -r``
for unpack), and every figure is also given as a ratio to its baseline. Measured: verify,
build and unpack of one large file (hashing-bound: the new manifest and archive checks are a
constant), and of many small files (the manifest checks scale with the file count).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import gen
from run import GIB, HERE, ROOT, Report, Run, alternate, drop_dirty, machine, med, run

PY = sys.executable


def mpkg(tree: Path | None, *args: str | Path) -> Callable[[], Run]:
    """The `mpkg` CLI of ``tree`` (an exported revision) or of this checkout (None)."""
    prefix = ["env", f"PYTHONPATH={tree / 'runtime'}:{tree / 'builder'}"] if tree else []
    return lambda: run([*prefix, PY, "-m", "mpkg", *map(str, args)])


def export(revision: str, dest: Path) -> Path:
    dest.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(ROOT), "archive", revision, "runtime", "builder"], capture_output=True)
    if archive.returncode != 0:
        raise SystemExit(f"bench: cannot export {revision}: {archive.stderr.decode().strip()}")
    subprocess.run(["tar", "-x", "-C", str(dest)], input=archive.stdout, check=True)
    return dest


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--before", default="main", help="git revision to compare with (default main)")
    p.add_argument("--size-gib", type=float, default=2.0)
    p.add_argument("--files", type=int, default=10_000, help="small files in the many-files package")
    p.add_argument("--repeat", type=int, default=5)
    p.add_argument("--results", type=Path, default=HERE / "RESULTS-hostile.md")
    args = p.parse_args()
    for tool in ("b3sum", "tar", "cp", "/usr/bin/time"):
        if not shutil.which(tool):
            raise SystemExit(f"bench: {tool} is not on PATH")
    rep = Report()
    with tempfile.TemporaryDirectory(prefix="mpkg-bench-hostile-") as tmp:
        root = Path(tmp)
        old = export(args.before, root / "before")
        size = int(args.size_gib * GIB)
        cases = {
            f"{args.size_gib:g} GiB, 1 file": gen.make_source(root / "big", size),
            f"{args.files:,} files of {gen.ROW * 4 // 1024} KiB": gen.make_source(
                root / "many", args.files * gen.ROW * 4, files=args.files
            ),
        }
        for label, src in cases.items():
            bench_case(rep, root, old, label, src, args.repeat)
    rep.notes.append(
        f"before = `{args.before}` exported and run with PYTHONPATH; after = this tree; both through "
        "`python -m mpkg`, alternating, medians of "
        f"{args.repeat}; the machine is shared with other sessions, so the ratios, not the seconds, are what compare."
    )
    header = f"## Cost of the issue 9 defences\n\nMeasured on: {machine()}."
    args.results.write_text(rep.markdown(header))
    print(f"wrote {args.results}")
    return 0


def bench_case(rep: Report, root: Path, old: Path, label: str, src: Path, repeat: int) -> None:
    """build, verify and unpack of one source: before, after and the baseline, alternating."""
    print(f"{label}:", flush=True)
    pkgs = {}
    for who, tree in (("before", old), ("after", None)):
        pkgs[who] = root / f"{who}-{src.name}.mpkg"
        mpkg(tree, "build", src, "-o", pkgs[who])()

    def build(tree: Path | None, out: Path) -> Callable[[], Run]:
        def go() -> Run:
            out.unlink(missing_ok=True)
            drop_dirty()
            return mpkg(tree, "build", src, "-o", out)()

        return go

    def tar_b3sum(out: Path = root / "b.tar") -> Run:
        out.unlink(missing_ok=True)
        drop_dirty()
        t = run(["tar", "-b", "2048", "-cf", str(out), "-C", str(src), "."])
        b = run(["b3sum", "--no-names", str(out)])
        return Run(t.seconds + b.seconds, max(t.rss_mib, b.rss_mib))

    def unpack(tree: Path | None, pkg: Path, out: Path) -> Callable[[], Run]:
        def go() -> Run:
            shutil.rmtree(out, ignore_errors=True)
            drop_dirty()
            return mpkg(tree, "unpack", pkg, out, "--allow-unsigned")()

        return go

    def copy(out: Path = root / "copied") -> Run:
        shutil.rmtree(out, ignore_errors=True)
        drop_dirty()
        return run(["cp", "-r", str(src), str(out)])

    res = alternate(
        {"before": build(old, root / "b0.mpkg"), "after": build(None, root / "b1.mpkg"), "base": tar_b3sum}, repeat
    )
    _rows(rep, "build", label, res, "tar + b3sum")
    res = alternate(
        {
            "before": mpkg(old, "verify", pkgs["before"], "--allow-unsigned"),
            "after": mpkg(None, "verify", pkgs["after"], "--allow-unsigned"),
            "base": lambda: run(["b3sum", "--no-names", str(pkgs["after"])]),
        },
        repeat,
    )
    _rows(rep, "verify", label, res, "b3sum")
    res = alternate(
        {
            "before": unpack(old, pkgs["before"], root / "u0"),
            "after": unpack(None, pkgs["after"], root / "u1"),
            "base": copy,
        },
        repeat,
    )
    _rows(rep, "unpack", label, res, "cp -r of the source")
    for d in ("u0", "u1", "copied"):
        shutil.rmtree(root / d, ignore_errors=True)
    for f in (*pkgs.values(), root / "b0.mpkg", root / "b1.mpkg", root / "b.tar"):
        f.unlink(missing_ok=True)


def _rows(rep: Report, area: str, label: str, res: dict[str, list[Run]], base_name: str) -> None:
    b, a, base = med(res["before"]), med(res["after"]), med(res["base"])
    rep.add(area, f"{label}: before / after, median s", f"{b:.2f} / {a:.2f}")
    rep.add(area, f"{label}: ratio to {base_name} ({base:.2f} s), before / after", f"{b / base:.2f} / {a / base:.2f}")
    rep.add(area, f"{label}: after / before", f"{a / b:.3f}")


if __name__ == "__main__":
    os.chdir(ROOT)
    sys.exit(main())
