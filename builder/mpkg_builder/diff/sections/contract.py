"""The contract section: inputs and outputs, field by field, dim by dim.

Inputs are contravariant (the package must keep accepting what callers send) and outputs
covariant (consumers must keep reading what comes back), so the same edit matches an
``input-*`` rule on one side and an ``output-*`` rule, often of another level, on the other.
"""

from __future__ import annotations

from mpkg._internal.contract.contract import Contract, Field
from mpkg._internal.contract.dtypes import is_safe_cast

from .. import rules as R
from ..findings import Findings
from ..views import ManifestView


def diff(d: Findings, old: ManifestView, new: ManifestView) -> None:
    """Fields removed, added, changed or reordered between the two contracts."""
    _diff_side(d, "inputs", old.contract, new.contract)
    _diff_side(d, "outputs", old.contract, new.contract)
    _diff_extra(d, old.contract, new.contract)


def _diff_side(d: Findings, side: str, old: Contract, new: Contract) -> None:
    olds: tuple[Field, ...] = getattr(old, side)
    news: tuple[Field, ...] = getattr(new, side)
    by_old = {f.name: f for f in olds}
    by_new = {f.name: f for f in news}
    is_in = side == "inputs"
    kind = "input" if is_in else "output"
    for name, f in by_old.items():
        if name not in by_new:
            d.add(
                R.INPUT_REMOVED if is_in else R.OUTPUT_REMOVED,
                f"{side}.{name}",
                brief(f),
                None,
                f"{kind} {name!r} was removed (a rename counts as removed + added)",
            )
    for name, f in by_new.items():
        if name in by_old:
            _diff_field(d, side, by_old[name], f)
        elif not is_in:
            d.add(R.OUTPUT_ADDED, f"{side}.{name}", None, brief(f), f"output {name!r} was added")
        elif f.optional:
            d.add(R.INPUT_ADDED_OPTIONAL, f"{side}.{name}", None, brief(f), f"optional input {name!r} was added")
        else:
            d.add(
                R.INPUT_ADDED_REQUIRED,
                f"{side}.{name}",
                None,
                brief(f),
                f"required input {name!r} was added; existing callers do not send it",
            )
    common_old = [f.name for f in olds if f.name in by_new]
    common_new = [f.name for f in news if f.name in by_old]
    if common_old != common_new:
        d.add(R.CONTRACT_ORDER_CHANGED, side, common_old, common_new, f"{side} were reordered")


def _diff_extra(d: Findings, old: Contract, new: Contract) -> None:
    """``[contract] extra``: dropping inputs the contract lacks accepts more calls; refusing them, fewer."""
    if old.extra != new.extra:
        rule = R.INPUT_EXTRA_IGNORED if new.extra == "ignore" else R.INPUT_EXTRA_REFUSED
        d.add(rule, "contract.extra", old.extra, new.extra, f"inputs the contract does not name: {new.extra}d")


def brief(f: Field) -> str:
    """A field in a few words (``float32[-1, 30] optional``), for findings' old and new values."""
    text = f"{f.dtype}{list(f.shape)}"
    if f.optional:
        text += " optional"
    if f.nullable:
        text += " nullable"
    return text


def _diff_field(d: Findings, side: str, old: Field, new: Field) -> None:
    at = f"{side}.{old.name}"
    is_in = side == "inputs"
    kind = "input" if is_in else "output"
    if old.optional != new.optional:
        if is_in:
            rule = R.INPUT_BECAME_REQUIRED if old.optional else R.INPUT_BECAME_OPTIONAL
        else:
            rule = R.OUTPUT_BECAME_REQUIRED if old.optional else R.OUTPUT_BECAME_OPTIONAL
        d.add(
            rule,
            f"{at}.optional",
            old.optional,
            new.optional,
            f"{kind} {old.name!r} is now {'optional' if new.optional else 'required'}",
        )
    if old.dtype != new.dtype:
        widened = is_safe_cast(old.dtype, new.dtype)
        narrowed = is_safe_cast(new.dtype, old.dtype)
        if is_in:
            rule = R.INPUT_DTYPE_WIDENED if widened else R.INPUT_DTYPE_NARROWED
        else:
            rule = (
                R.OUTPUT_DTYPE_WIDENED if widened else R.OUTPUT_DTYPE_NARROWED if narrowed else R.OUTPUT_DTYPE_CHANGED
            )
        how = "widened" if widened else "narrowed" if narrowed else "changed incompatibly"
        d.add(rule, f"{at}.dtype", old.dtype, new.dtype, f"{kind} {old.name!r} dtype {how}: {old.dtype} -> {new.dtype}")
    if len(old.shape) != len(new.shape):
        d.add(
            R.INPUT_RANK_CHANGED if is_in else R.OUTPUT_RANK_CHANGED,
            f"{at}.shape",
            list(old.shape),
            list(new.shape),
            f"{kind} {old.name!r} rank changed from {len(old.shape)} to {len(new.shape)}",
        )
    else:
        for i, (a, b) in enumerate(zip(old.shape, new.shape, strict=True)):
            _diff_dim(d, is_in, old.name, f"{at}.shape[{i}]", i, a, b)
    if old.nullable != new.nullable:
        if is_in:
            rule = R.INPUT_NULLABLE_ADDED if new.nullable else R.INPUT_NULLABLE_REMOVED
            what = "now accepts nulls" if new.nullable else "no longer accepts nulls"
        else:
            rule = R.OUTPUT_NULLABLE_ADDED if new.nullable else R.OUTPUT_NULLABLE_REMOVED
            what = "may now be null" if new.nullable else "is no longer null"
        d.add(rule, f"{at}.nullable", old.nullable, new.nullable, f"{kind} {old.name!r} {what}")
    _diff_enum(d, is_in, old, new, at)
    if old.description != new.description:
        d.add(
            R.INPUT_DESCRIPTION_CHANGED if is_in else R.OUTPUT_DESCRIPTION_CHANGED,
            f"{at}.description",
            old.description,
            new.description,
            f"{kind} {old.name!r} description changed",
        )


def _is_fixed(dim: int | str) -> bool:
    return isinstance(dim, int) and dim >= 0


def _diff_dim(d: Findings, is_in: bool, name: str, at: str, i: int, a: int | str, b: int | str) -> None:
    if a == b:
        return
    where = f"{'input' if is_in else 'output'} {name!r} dim {i}"
    if _is_fixed(a) and _is_fixed(b):
        d.add(R.INPUT_DIM_CHANGED if is_in else R.OUTPUT_DIM_CHANGED, at, a, b, f"{where} changed from {a} to {b}")
    elif _is_fixed(a):
        message = f"{where} changed from fixed {a} to dynamic {b!r}"
        d.add(R.INPUT_DIM_DYNAMIC if is_in else R.OUTPUT_DIM_DYNAMIC, at, a, b, message)
    elif _is_fixed(b):
        message = f"{where} changed from dynamic {a!r} to fixed {b}"
        d.add(R.INPUT_DIM_FIXED if is_in else R.OUTPUT_DIM_FIXED, at, a, b, message)
    else:
        message = f"{where} renamed from {a!r} to {b!r} (still dynamic)"
        d.add(R.INPUT_DIM_RENAMED if is_in else R.OUTPUT_DIM_RENAMED, at, a, b, message)


def _diff_enum(d: Findings, is_in: bool, old: Field, new: Field, at: str) -> None:
    """``None`` means any value: adding an enum restricts, dropping it frees."""
    if old.enum == new.enum:
        return
    olds = None if old.enum is None else {repr(v) for v in old.enum}
    news = None if new.enum is None else {repr(v) for v in new.enum}
    if olds == news:
        return  # reordered only
    if olds is None:
        lost, gained = "every value outside " + ", ".join(sorted(news or ())), ""
    elif news is None:
        lost, gained = "", "every value (the restriction was removed)"
    else:
        lost, gained = ", ".join(sorted(olds - news)), ", ".join(sorted(news - olds))
    old_v = None if old.enum is None else list(old.enum)
    new_v = None if new.enum is None else list(new.enum)
    kind = "input" if is_in else "output"
    if lost:
        d.add(
            R.INPUT_ENUM_NARROWED if is_in else R.OUTPUT_ENUM_NARROWED,
            f"{at}.enum",
            old_v,
            new_v,
            f"{kind} {old.name!r} enum lost {lost}",
        )
    if gained:
        d.add(
            R.INPUT_ENUM_WIDENED if is_in else R.OUTPUT_ENUM_WIDENED,
            f"{at}.enum",
            old_v,
            new_v,
            f"{kind} {old.name!r} enum gained {gained}",
        )


__all__ = ["brief", "diff"]
