"""The model section: its format and architecture (weight tensors, or the ONNX graph).

Architectures are compared only within one format; a package that records none makes a
weights change unclassifiable, which counts as breaking.
"""

from __future__ import annotations

from .. import rules as R
from ..findings import Findings
from ..views import ManifestView, TensorView
from . import onnx


def diff(d: Findings, old: ManifestView, new: ManifestView) -> None:
    """Format, then the architecture facts of that format, then any fact no rule names."""
    om, nm = old.model, new.model
    if om.format != nm.format:
        d.add(
            R.MODEL_FORMAT_CHANGED,
            "model.format",
            om.format,
            nm.format,
            f"model format changed from {om.format} to {nm.format}",
        )
        return  # architectures of different formats are not comparable
    oa, na = om.architecture, nm.architecture
    if oa is None or na is None:
        if old.weights() != new.weights():
            which = "old" if oa is None else "new"
            d.add(
                R.ARCHITECTURE_UNKNOWN,
                "model.architecture",
                oa is not None,
                na is not None,
                f"the {which} package records no architecture; retrain or new model? unknown",
            )
        return
    if om.format == "onnx":
        split = onnx.split(old, new)
        onnx.diff_graph(d, oa, na, old.contract != new.contract, split)
        if onnx.weights_digests(old, new) and oa.weights_digest != na.weights_digest:
            d.add(
                R.WEIGHTS_CHANGED,
                "model.architecture.weights_digest",
                oa.weights_digest,
                na.weights_digest,
                "learned parameters changed (retrained)" if split else "initializer values changed (retrained)",
            )
        renamed_only = split and oa.structure_digest == na.structure_digest
        if not renamed_only:  # an equal structure digest means the initializers differ by name only
            _diff_tensors(d, oa.initializers, na.initializers, with_file=False)
    else:
        _diff_tensors(d, oa.tensors, na.tensors, with_file=True)
    for key in sorted(set(oa.other) | set(na.other)):
        a, b = oa.other.get(key), na.other.get(key)
        if a != b:
            d.add(R.ARCHITECTURE_CHANGED, f"model.architecture.{key}", a, b, f"architecture field {key!r} changed")


def _diff_tensors(d: Findings, old: tuple[TensorView, ...], new: tuple[TensorView, ...], with_file: bool) -> None:
    by_old = {t.name: t for t in old}
    by_new = {t.name: t for t in new}
    for name in sorted(set(by_old) | set(by_new)):
        a, b = by_old.get(name), by_new.get(name)
        at = f"tensors.{name}"
        if b is None:
            assert a is not None
            d.add(R.TENSOR_REMOVED, at, _brief(a), None, f"weight tensor {name!r} was removed")
        elif a is None:
            d.add(R.TENSOR_ADDED, at, None, _brief(b), f"weight tensor {name!r} was added")
        else:
            if a.dtype != b.dtype:
                message = f"weight tensor {name!r} dtype changed: {a.dtype} -> {b.dtype}"
                d.add(R.TENSOR_DTYPE_CHANGED, f"{at}.dtype", a.dtype, b.dtype, message)
            if a.shape != b.shape:
                message = f"weight tensor {name!r} shape changed: {a.shape_json} -> {b.shape_json}"
                d.add(R.TENSOR_SHAPE_CHANGED, f"{at}.shape", a.shape_json, b.shape_json, message)
            if with_file and a.file != b.file:
                message = f"weight tensor {name!r} moved from {a.file} to {b.file}"
                d.add(R.TENSOR_FILE_CHANGED, f"{at}.file", a.file, b.file, message)


def _brief(t: TensorView) -> str:
    return f"{t.dtype}{t.shape_json}"


__all__ = ["diff"]
