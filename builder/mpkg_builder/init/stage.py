"""Write a draft as a source folder: staged, proven by the build's own checks, then committed.

Every file is first written into a hidden staging folder inside the destination; the
build's planning step (every check `mpkg build` makes, and a real run of the model on
the example) runs on it; only then is each file linked into place, refusing any file that
already exists. Any failure or signal removes what was staged, so init leaves either a
complete source folder or nothing.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from mpkg._internal.io.atomic import Temporary, Terminated, temporary
from mpkg.errors import MpkgError, ProblemCollector, SourceError

from ..build import EXAMPLE_PATH, BuildPlan, plan
from ..config import CONFIG_NAME
from ..lock.source import LockInputs
from ..lock.write import lockfile_text, plan_lock
from ..sources.lockfile import Lockfile, parse_requirements
from . import card as cards
from .draft import CODE_ROOT, EXAMPLE_NAME, LOCK_NAME, Draft, DraftExample, render_config, written_files
from .examples import GENERATED, generated_inputs


@dataclass(frozen=True)
class InitResult:
    """What init wrote, for the summary and --json."""

    directory: Path
    files: tuple[str, ...]
    name: str
    model_format: str
    lockfile: Lockfile
    example_origin: str
    notes: tuple[str, ...]
    warnings: tuple[str, ...]  # what `mpkg build` will warn about (sections a person must write)

    def to_json(self) -> dict[str, Any]:
        """The --json document of `mpkg init`."""
        return {
            "directory": str(self.directory),
            "files": list(self.files),
            "name": self.name,
            "format": self.model_format,
            "packages": [{"name": p.name, "version": p.version} for p in self.lockfile.packages],
            "example": self.example_origin,
            "notes": list(self.notes),
            "warnings": list(self.warnings),
        }


def write_source(dest: Path, draft: Draft) -> InitResult:
    """Write ``draft`` into ``dest`` (created if needed); never overwrites a file."""
    dest = dest.absolute()
    targets = written_files(draft)
    in_place = _refuse_existing(dest, targets, draft)
    code = tuple(
        (f.rel, f.data if f.data is not None else f.source.read_bytes())  # type: ignore[union-attr]
        for f in draft.files
        if f.rel.startswith(f"{CODE_ROOT}/") and f.rel.endswith(".py")
    )
    local = frozenset(Path(rel).stem for rel, _ in code)
    resolution = plan_lock(LockInputs(draft.model_format, draft.contract.is_tabular, code, local))
    lock_text = lockfile_text(resolution, "requirements", hashes=False)
    made = [p for p in [dest, *dest.parents] if not p.exists()]  # removed again if init fails
    staging: Temporary | None = None
    committed = False
    try:
        dest.mkdir(parents=True, exist_ok=True)
        staging = temporary(dest / "mpkg-init", is_dir=True)  # locked; removed on signals, swept if orphaned
        stage = staging.path
        for f in draft.files:
            _put(stage / f.rel, f.data, f.source)
        _put(stage / LOCK_NAME, lock_text.encode("utf-8"))
        _put(stage / CONFIG_NAME, render_config(draft).encode("utf-8"))
        example, plan_, notes = _prove(stage, draft)
        with _signals_deferred():  # all files or none: a signal waits until the last link is made
            _commit(stage, dest, [t for t in targets if t not in in_place])
            committed = True
        staging.release()
    except BaseException as exc:
        if staging is not None:
            staging.release()
        if committed and isinstance(exc, (KeyboardInterrupt, Terminated)):
            raise SourceError("interrupted once every file was written: the folder is complete", str(dest)) from None
        if not committed:
            for folder in made:
                with contextlib.suppress(OSError):
                    folder.rmdir()
        raise
    return InitResult(
        directory=dest,
        files=tuple(targets),
        name=draft.name,
        model_format=draft.model_format,
        lockfile=parse_requirements(lock_text, LOCK_NAME),
        example_origin=example.origin,
        notes=(*draft.notes, *notes, *(f"lockfile: {n}" for n in resolution.notes)),
        warnings=plan_.warnings,
    )


def _refuse_existing(dest: Path, targets: list[str], draft: Draft) -> set[str]:
    """Refuse every target that exists, except a source file already in place (init run in
    the model's own folder); returns those."""
    if dest.exists() and not dest.is_dir():
        raise SourceError("exists and is not a folder; name a new or existing folder", str(dest))
    sources = {f.rel: f.source for f in draft.files if f.source is not None}
    problems = ProblemCollector()
    in_place = set()
    for rel in targets:
        if not os.path.lexists(dest / rel):
            continue
        source = sources.get(rel)
        if source is not None and not (dest / rel).is_symlink() and os.path.samefile(dest / rel, source):
            in_place.add(rel)
            continue
        problems.add(str(dest / rel), "already exists; init never overwrites a file: move it or pick a new folder")
    problems.raise_if_any(SourceError)
    return in_place


def _prove(staging: Path, draft: Draft) -> tuple[DraftExample, BuildPlan, list[str]]:
    """Write the example and card, then run the build's checks and the model on the example.

    An example from the source (MLflow's input_example) that the package cannot run is
    replaced by generated inputs, with a note saying why."""
    notes: list[str] = []
    example = draft.example or DraftExample(generated_inputs(draft.contract), GENERATED)
    try:
        result = _plan_with(staging, draft, example)
    except SourceError as exc:
        if draft.example is None or not any(p.where.startswith(EXAMPLE_NAME) for p in exc.problems):
            raise
        notes.append(f"the source's example cannot run in the package ({exc.problems[0]}); generated inputs instead")
        example = DraftExample(generated_inputs(draft.contract), GENERATED)
        result = _plan_with(staging, draft, example)
    recorded = json.loads(next(f.data for f in result.files if f.path == EXAMPLE_PATH) or b"{}")
    doc = {"inputs": dict(example.inputs), "outputs": recorded.get("outputs", {})}
    _put(staging / EXAMPLE_NAME, _pretty(doc), replace_existing=True)
    return example, result, notes


def _plan_with(staging: Path, draft: Draft, example: DraftExample) -> BuildPlan:
    made = [
        *draft.made,
        f"Example ({EXAMPLE_NAME}): inputs {example.origin}; `mpkg init` ran the model on them "
        "(a real run, through onnxruntime for ONNX) and recorded its outputs; `mpkg build` runs it again "
        "and `mpkg verify --run` replays it.",
        f"Environment ({LOCK_NAME}): written by the rules of `mpkg lock` from the environment `mpkg init` ran in.",
    ]
    card_text = draft.card_body.rstrip("\n") + "\n\n" + cards.made_section(made)
    _put(staging / draft.card_name, card_text.encode("utf-8"), replace_existing=True)
    _put(staging / EXAMPLE_NAME, _pretty({"inputs": dict(example.inputs)}), replace_existing=True)
    try:
        return plan(staging)
    except MpkgError as exc:
        raise SourceError([replace(p, where=_relative(p.where, staging)) for p in exc.problems]) from None


def _relative(where: str, staging: Path) -> str:
    return where.replace(str(staging) + os.sep, "").replace(str(staging), ".")


def _pretty(doc: Any) -> bytes:
    return (json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False) + "\n").encode("utf-8")


def _put(path: Path, data: bytes | None, source: Path | None = None, replace_existing: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if replace_existing:
        path.unlink(missing_ok=True)
    if source is not None:
        shutil.copyfile(source, path)  # kernel copy (sendfile / copy_file_range) where possible
    else:
        assert data is not None
        with open(path, "xb") as f:
            f.write(data)


def _commit(staging: Path, dest: Path, targets: list[str]) -> None:
    """Link each staged file into ``dest`` (mpkg.toml last); a file that appeared meanwhile
    undoes every link made so far."""
    linked: list[Path] = []
    made_dirs: list[Path] = []
    try:
        for rel in targets:
            target = dest / rel
            for parent in reversed(target.relative_to(dest).parents):
                folder = dest / parent
                if not folder.exists():
                    folder.mkdir()
                    made_dirs.append(folder)
            try:
                _link_new(staging / rel, target)
            except FileExistsError:
                raise SourceError("appeared while init ran; nothing was written", str(target)) from None
            linked.append(target)
    except BaseException:
        for path in reversed(linked):
            with contextlib.suppress(OSError):
                path.unlink()
        for folder in reversed(made_dirs):
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise


@contextlib.contextmanager
def _signals_deferred() -> Iterator[None]:
    """SIGINT, SIGTERM and SIGHUP are held (delivered when the block ends), in the main thread."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM, signal.SIGHUP})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


def _link_new(staged: Path, target: Path) -> None:
    """Create ``target`` with the staged bytes; FileExistsError if it exists (never replaced)."""
    try:
        os.link(staged, target)
    except FileExistsError:
        raise
    except OSError:  # a file system without hard links: an exclusive create, then a copy
        with open(staged, "rb") as src, open(target, "xb") as out:
            shutil.copyfileobj(src, out, 8 * 1024 * 1024)


__all__ = ["InitResult", "write_source"]
