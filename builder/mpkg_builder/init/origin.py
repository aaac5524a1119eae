"""origin.json: where the weights came from (an MLflow run and model, a Hugging Face config),
recorded by the build as ``lineage.origin``."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from .draft import DraftFile

ORIGIN_NAME = "origin.json"


def origin_file(doc: Mapping[str, Any]) -> DraftFile:
    """The lineage origin record (MLflow ids and paths) as a source file."""
    text = json.dumps(dict(doc), indent=2, sort_keys=True, ensure_ascii=False, allow_nan=False) + "\n"
    return DraftFile(ORIGIN_NAME, data=text.encode("utf-8"))


__all__ = ["ORIGIN_NAME", "origin_file"]
