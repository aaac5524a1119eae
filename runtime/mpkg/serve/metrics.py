"""Prometheus metrics that stay correct with several worker processes.

Every worker owns one row of float64 counters in a shared memory-mapped file
(one writer per row, so no locks); ``/metrics`` on any worker sums all rows,
so a scrape sees the whole server whichever worker answers it. The layout is
fixed at start (models x status codes x histogram buckets), which keeps the
hot path at three in-place increments.
"""

from __future__ import annotations

import mmap
import os
from bisect import bisect_left
from collections.abc import Sequence

import numpy as np

CODES = (200, 400, 404, 405, 408, 413, 415, 499, 500, 503)
_OTHER = len(CODES)
NCODES = len(CODES) + 1
CODE_INDEX = {c: i for i, c in enumerate(CODES)}
BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)
NB = len(BUCKETS) + 1  # + the +Inf bucket


def row_size(n_models: int) -> int:
    """float64 slots one worker needs."""
    return n_models * NCODES + n_models * NB + n_models + NCODES


class Metrics:
    """Counters for one worker; ``render`` aggregates every worker sharing the file."""

    def __init__(
        self,
        labels: Sequence[str],
        path: str | None = None,
        worker: int = 0,
        workers: int = 1,
    ) -> None:
        self.labels = tuple(labels)
        m = len(labels)
        self._row = row_size(m)
        self._workers = workers if path is not None else 1
        nbytes = self._row * self._workers * 8
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
        self._count_off = 0
        self._hist_off = m * NCODES
        self._sum_off = self._hist_off + m * NB
        self._http_off = self._sum_off + m

    def observe_http(self, status: int) -> None:
        self._mine[self._http_off + CODE_INDEX.get(status, _OTHER)] += 1

    def observe_inference(self, model: int, status: int, seconds: float) -> None:
        mine = self._mine
        mine[model * NCODES + CODE_INDEX.get(status, _OTHER)] += 1
        mine[self._hist_off + model * NB + bisect_left(BUCKETS, seconds)] += 1
        mine[self._sum_off + model] += seconds

    def totals(self) -> np.ndarray:
        """Sum over every worker's row."""
        rows = np.frombuffer(self._mm, dtype=np.float64, count=self._row * self._workers)
        total: np.ndarray = rows.reshape(self._workers, self._row).sum(axis=0)
        return total

    def render(self) -> bytes:
        """Prometheus text exposition format 0.0.4."""
        t = self.totals()
        m = len(self.labels)
        out: list[str] = []
        out.append("# HELP mpkg_inference_requests_total Inference requests by model and HTTP status.")
        out.append("# TYPE mpkg_inference_requests_total counter")
        for i, lab in enumerate(self.labels):
            for ci in range(NCODES):
                v = t[i * NCODES + ci]
                if v or ci == 0:
                    out.append(f'mpkg_inference_requests_total{{{lab},code="{_code(ci)}"}} {_num(v)}')
        out.append("# HELP mpkg_inference_errors_total Inference requests answered with status >= 400.")
        out.append("# TYPE mpkg_inference_errors_total counter")
        for i, lab in enumerate(self.labels):
            errors = t[i * NCODES + 1 : (i + 1) * NCODES].sum()
            out.append(f"mpkg_inference_errors_total{{{lab}}} {_num(errors)}")
        out.append("# HELP mpkg_inference_request_duration_seconds Inference request latency.")
        out.append("# TYPE mpkg_inference_request_duration_seconds histogram")
        for i, lab in enumerate(self.labels):
            base = self._hist_off + i * NB
            cum = 0.0
            for b in range(NB):
                cum += t[base + b]
                le = "+Inf" if b == len(BUCKETS) else repr(BUCKETS[b])
                out.append(f'mpkg_inference_request_duration_seconds_bucket{{{lab},le="{le}"}} {_num(cum)}')
            out.append(f"mpkg_inference_request_duration_seconds_sum{{{lab}}} {float(t[self._sum_off + i])!r}")
            out.append(f"mpkg_inference_request_duration_seconds_count{{{lab}}} {_num(cum)}")
        out.append("# HELP mpkg_http_requests_total HTTP requests on every route by status.")
        out.append("# TYPE mpkg_http_requests_total counter")
        for ci in range(NCODES):
            v = t[self._http_off + ci]
            if v:
                out.append(f'mpkg_http_requests_total{{code="{_code(ci)}"}} {_num(v)}')
        out.append(
            f"# HELP mpkg_models_loaded Packages this server answers for.\n"
            f"# TYPE mpkg_models_loaded gauge\nmpkg_models_loaded {m}"
        )
        return ("\n".join(out) + "\n").encode()


def _code(ci: int) -> str:
    return str(CODES[ci]) if ci < len(CODES) else "other"


def _num(v: float) -> str:
    return str(int(v)) if float(v).is_integer() else repr(float(v))
