"""The lineage section: git, data, params, metrics, builder and any other provenance record."""

from __future__ import annotations

from .. import rules as R
from ..findings import Findings
from ..report import MetricDelta
from ..views import BUILD_RECORDS, ManifestView
from .tree import diff_tree, leaves


def diff(d: Findings, old: ManifestView, new: ManifestView) -> None:
    """Each record leaf by leaf; which rule depends on what the record says."""
    for key in sorted(old.lineage.names() | new.lineage.names()):
        a, b = old.lineage.record(key), new.lineage.record(key)
        if a == b:
            continue
        if key == "metrics":
            diff_tree(d, R.METRICS_CHANGED, a or {}, b or {}, "lineage.metrics", "metric")
        elif key == "params":
            diff_tree(d, R.PARAMS_CHANGED, a or {}, b or {}, "lineage.params", "parameter")
        elif key in BUILD_RECORDS:
            diff_tree(d, R.BUILD_LINEAGE_CHANGED, a, b, f"lineage.{key}", "build")
        else:
            diff_tree(d, R.LINEAGE_CHANGED, a, b, f"lineage.{key}", "lineage")


def metric_deltas(old: ManifestView, new: ManifestView) -> tuple[MetricDelta, ...]:
    """Numeric metrics both packages record, old -> new, for the report's metrics table."""

    def numeric(view: ManifestView) -> dict[str, float]:
        metrics = view.lineage.record("metrics") or {}
        return {k: v for k, v in leaves(metrics, "").items() if isinstance(v, (int, float)) and not isinstance(v, bool)}

    a, b = numeric(old), numeric(new)
    return tuple(MetricDelta(k.lstrip("."), a[k], b[k]) for k in sorted(set(a) & set(b)))


__all__ = ["diff", "metric_deltas"]
