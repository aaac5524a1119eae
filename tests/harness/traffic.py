"""A client load for swap and follow tests: threads sending inferences throughout, recording every answer
(a 1x4 float32 ``features`` input, what the iris test packages and examples/iris-mlp take)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field

import httpx
import orjson

X = [[0.1, 0.2, 0.3, 0.4]]
BODY = orjson.dumps({"inputs": [{"name": "features", "datatype": "FP32", "shape": [1, 4], "data": X}]})


@dataclass
class Answer:
    """One inference answer: the status and, when 200, which version answered and what."""

    status: int
    version: str = ""
    data: list[float] = field(default_factory=list)
    error: str = ""


class Traffic:
    """``clients`` threads, each on its own keep-alive connection, posting to ``path`` until stopped."""

    def __init__(self, url: str, path: str = "/v2/models/iris/infer", clients: int = 2) -> None:
        self.url = url
        self.path = path
        self.answers: list[Answer] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]

    def __enter__(self) -> Traffic:
        for t in self._threads:
            t.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> list[Answer]:
        """Stop sending; every answer so far."""
        self._stop.set()
        for t in self._threads:
            t.join()
        return self.answers

    def _run(self) -> None:
        with httpx.Client(base_url=self.url, timeout=30) as c:
            while not self._stop.is_set():
                try:
                    r = c.post(self.path, content=BODY)
                except httpx.TransportError as exc:  # a refused or dropped connection is a failure too
                    self.answers.append(Answer(0, error=f"{type(exc).__name__}: {exc}"))
                    continue
                if r.status_code != 200:
                    self.answers.append(Answer(r.status_code, error=r.text))
                    continue
                doc = r.json()
                self.answers.append(Answer(200, doc["model_version"], doc["outputs"][0]["data"]))

    def count(self) -> int:
        """Answers so far."""
        return len(self.answers)

    def failures(self) -> list[Answer]:
        """Every answer that is not a 200."""
        return [a for a in self.answers if a.status != 200]
