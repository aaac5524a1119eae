"""Prometheus metrics that stay correct with several worker processes and across swaps.

Every worker owns one row of float64 counters in a shared memory-mapped file
(one writer per row, so no locks); ``/metrics`` on any worker sums all rows,
so a scrape sees the whole server whichever worker answers it. A row holds
the HTTP status counts, per model name the swap counters, and a fixed number
of *slots*, one per package (label set) served at some point: its request
counts, latency histogram and whether this worker answers with it now. The
hot path stays at three in-place increments.

Which label set a slot counts for is kept in a small table (in memory, or
with several workers a file beside the counters, changed under ``flock``):
a package swapped in (spec/runtime.md §9) gets a slot, the same package
swapped back in gets its old slot back, and once every slot was used the
first one no worker answers with is zeroed and reused.
"""

from __future__ import annotations

import contextlib
import fcntl
import mmap
import os
from bisect import bisect_left
from collections.abc import Iterator, Sequence

import numpy as np

CODES = (200, 400, 404, 405, 408, 413, 415, 499, 500, 503)
_OTHER = len(CODES)
NCODES = len(CODES) + 1
CODE_INDEX = {c: i for i, c in enumerate(CODES)}
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NB = len(BUCKETS) + 1  # + the +Inf bucket
SLOT = NCODES + NB + 2  # counts, histogram, sum of seconds, "answering now" (0/1)
SPARE_SLOTS = 256  # packages a server can swap in before the oldest retired slot is reused
NAMED = ("swaps", "swap_failures", "follow_errors")  # counters per model name


def row_size(n_slots: int, n_names: int = 0) -> int:
    """float64 slots one worker needs."""
    return NCODES + len(NAMED) * n_names + n_slots * SLOT


class Metrics:
    """Counters for one worker; ``render`` aggregates every worker sharing the file."""

    def __init__(
        self,
        labels: Sequence[str],
        path: str | None = None,
        worker: int = 0,
        workers: int = 1,
        names: Sequence[str] = (),
    ) -> None:
        self.names = tuple(dict.fromkeys(names))
        self.capacity = len(labels) + SPARE_SLOTS
        self._row = row_size(self.capacity, len(self.names))
        self._workers = workers if path is not None else 1
        nbytes = self._row * self._workers * 8
        self._table_path = None if path is None else path + ".labels"
        self._table: list[str] = []  # single process only; else the file is the table
        if path is None:
            self._mm = mmap.mmap(-1, max(nbytes, 8))
        else:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                # Every worker computes the same size, so concurrent extension is idempotent.
                if os.fstat(fd).st_size < nbytes:
                    os.ftruncate(fd, nbytes)
                self._mm = mmap.mmap(fd, max(nbytes, 8))
            finally:
                os.close(fd)
        whole = memoryview(self._mm).cast("d")
        start = worker * self._row
        self._mine = whole[start : start + self._row]
        self._named_off = NCODES
        self._slots_off = NCODES + len(NAMED) * len(self.names)
        self.initial = tuple(self.slot(lab) for lab in labels)

    # --- slots ------------------------------------------------------------------------------------

    def slot(self, labels: str) -> int:
        """The slot counting for ``labels``: its own if it had one, else a free or recycled one."""
        with self._locked_table() as table:
            if labels in table:
                return table.index(labels)
            if len(table) < self.capacity:
                table.append(labels)
                return len(table) - 1
            totals = self.totals()
            live = [totals[self._slot_base(s) + NCODES + NB + 1] for s in range(len(table))]
            free = next((s for s in range(len(table)) if not live[s]), None)
            if free is None:  # cannot happen: far fewer packages answer at once than there are slots
                raise RuntimeError("every metrics slot is in use")
            base = self._slot_base(free)
            rows = np.frombuffer(self._mm, dtype=np.float64, count=self._row * self._workers)
            rows.reshape(self._workers, self._row)[:, base : base + SLOT] = 0.0
            table[free] = labels
            return free

    @contextlib.contextmanager
    def _locked_table(self) -> Iterator[list[str]]:
        if self._table_path is None:
            yield self._table
            return
        fd = os.open(self._table_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            with os.fdopen(os.dup(fd), "r+", encoding="utf-8") as f:
                table = f.read().splitlines()
                before = list(table)
                yield table
                if table != before:
                    f.seek(0)
                    f.truncate()
                    f.write("".join(line + "\n" for line in table))
        finally:
            os.close(fd)  # releases the lock

    def _slot_base(self, slot: int) -> int:
        return self._slots_off + slot * SLOT

    def set_answering(self, slot: int, answering: bool) -> None:
        """Whether this worker answers with the package counted in ``slot`` now."""
        self._mine[self._slot_base(slot) + NCODES + NB + 1] = 1.0 if answering else 0.0

    def count(self, what: str, name: str) -> None:
        """Add one to a per-name counter (``NAMED``) of model ``name``."""
        self._mine[self._named_off + len(NAMED) * self.names.index(name) + NAMED.index(what)] += 1

    # --- hot path ---------------------------------------------------------------------------------

    def observe_http(self, status: int) -> None:
        """Count one HTTP answer by route and status."""
        self._mine[CODE_INDEX.get(status, _OTHER)] += 1

    def observe_inference(self, model: int, status: int, seconds: float) -> None:
        """Count one inference of a package's slot and its duration."""
        mine = self._mine
        base = self._slots_off + model * SLOT
        mine[base + CODE_INDEX.get(status, _OTHER)] += 1
        mine[base + NCODES + bisect_left(BUCKETS, seconds)] += 1
        mine[base + NCODES + NB] += seconds

    # --- exposition -------------------------------------------------------------------------------

    def totals(self) -> np.ndarray:
        """Sum over every worker's row."""
        rows = np.frombuffer(self._mm, dtype=np.float64, count=self._row * self._workers)
        total: np.ndarray = rows.reshape(self._workers, self._row).sum(axis=0)
        return total

    def render(self) -> bytes:
        """Prometheus text exposition format 0.0.4."""
        with self._locked_table() as table:
            labels = list(table)
        t = self.totals()
        bases = [self._slot_base(s) for s in range(len(labels))]
        out: list[str] = []
        out.append("# HELP mpkg_inference_requests_total Inference requests by model and HTTP status.")
        out.append("# TYPE mpkg_inference_requests_total counter")
        for lab, base in zip(labels, bases, strict=True):
            for ci in range(NCODES):
                v = t[base + ci]
                if v or ci == 0:
                    out.append(f'mpkg_inference_requests_total{{{lab},code="{_code(ci)}"}} {_num(v)}')
        out.append("# HELP mpkg_inference_errors_total Inference requests answered with status >= 400.")
        out.append("# TYPE mpkg_inference_errors_total counter")
        for lab, base in zip(labels, bases, strict=True):
            out.append(f"mpkg_inference_errors_total{{{lab}}} {_num(t[base + 1 : base + NCODES].sum())}")
        out.append("# HELP mpkg_inference_request_duration_seconds Inference request latency.")
        out.append("# TYPE mpkg_inference_request_duration_seconds histogram")
        for lab, base in zip(labels, bases, strict=True):
            cum = 0.0
            for b in range(NB):
                cum += t[base + NCODES + b]
                le = "+Inf" if b == len(BUCKETS) else repr(BUCKETS[b])
                out.append(f'mpkg_inference_request_duration_seconds_bucket{{{lab},le="{le}"}} {_num(cum)}')
            out.append(f"mpkg_inference_request_duration_seconds_sum{{{lab}}} {float(t[base + NCODES + NB])!r}")
            out.append(f"mpkg_inference_request_duration_seconds_count{{{lab}}} {_num(cum)}")
        out.append("# HELP mpkg_http_requests_total HTTP requests on every route by status.")
        out.append("# TYPE mpkg_http_requests_total counter")
        for ci in range(NCODES):
            v = t[ci]
            if v:
                out.append(f'mpkg_http_requests_total{{code="{_code(ci)}"}} {_num(v)}')
        answering = [(lab, t[base + NCODES + NB + 1]) for lab, base in zip(labels, bases, strict=True)]
        out.append("# HELP mpkg_model_serving Worker processes answering with this package now.")
        out.append("# TYPE mpkg_model_serving gauge")
        out.extend(f"mpkg_model_serving{{{lab}}} {_num(v)}" for lab, v in answering if v)
        for what, help_text in (
            ("swaps", "Packages swapped in while serving (file replaced or followed tag moved), per worker."),
            ("swap_failures", "Candidates refused (load, verify, check or smoke test failed); the old kept serving."),
            ("follow_errors", "Polls of a followed reference that could not resolve or fetch it."),
        ):
            metric = f"mpkg_model_{what}_total" if what != "follow_errors" else "mpkg_follow_errors_total"
            out.append(f"# HELP {metric} {help_text}")
            out.append(f"# TYPE {metric} counter")
            for i, name in enumerate(self.names):
                v = t[self._named_off + len(NAMED) * i + NAMED.index(what)]
                out.append(f'{metric}{{model="{escape_label(name)}"}} {_num(v)}')
        loaded = sum(1 for _, v in answering if v)
        out.append(
            f"# HELP mpkg_models_loaded Packages this server answers for.\n"
            f"# TYPE mpkg_models_loaded gauge\nmpkg_models_loaded {loaded}"
        )
        return ("\n".join(out) + "\n").encode()


def escape_label(value: str) -> str:
    """A Prometheus label value, escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _code(ci: int) -> str:
    return str(CODES[ci]) if ci < len(CODES) else "other"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
