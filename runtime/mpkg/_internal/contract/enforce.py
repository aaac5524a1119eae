"""Contract enforcement: a call's data is checked against the contract before package code sees it.

Inputs are checked BEFORE any package code runs, outputs after. Each field is converted
(:mod:`mpkg._internal.contract.convert`), then its shape, named dims, nulls and enum values
are checked. Every problem is collected and raised together as one
:class:`~mpkg.errors.ContractError` whose problems name the field, what was expected and
what came.

- NaN (floats), NaT (dates), None (strings, decimals) and masked entries are nulls; they
  are allowed only in fields declared ``nullable``, in inputs and in outputs alike.
- Named dims bind across every input and output of one call.

Arrow tables and DataFrames are checked column by column in :mod:`mpkg._internal.contract.tabular`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mpkg._internal.contract.contract import Contract, Field
from mpkg._internal.contract.convert import Array, convert
from mpkg.errors import ContractError, Problem, ProblemCollector

Dims = dict[str, int]

_ENUM_UNROLL = 8  # up to this many enum values, compare one by one (np.isin costs ~20 us)
_ENUM_SMALL = 128  # up to this many integers, a Python set beats numpy calls


def shape_text(field: Field) -> str:
    """A field's declared shape as messages print it, e.g. ``[batch, 4]``."""
    return "[" + ", ".join(str(d) for d in field.shape) + "]"


def field_names(fields: Iterable[Field]) -> str:
    """The names of fields, comma-separated, for messages that list what is accepted."""
    return ", ".join(f.name for f in fields)


def is_masked(arr: object) -> bool:
    """A numpy masked array; a plain ndarray is answered without importing numpy.ma (~30 ms at start)."""
    return type(arr) is not np.ndarray and isinstance(arr, np.ma.MaskedArray)


def _null_mask(arr: Array) -> Array | None:
    """Where ``arr`` holds nulls (NaN, NaT, None, masked), or None for dtypes without nulls."""
    if is_masked(arr):
        return np.ma.getmaskarray(arr)
    kind = arr.dtype.kind
    if kind == "f":
        return np.isnan(arr)
    if kind in "mM":
        return np.isnat(arr)
    if kind == "O":
        return np.array([v is None for v in arr.flat], dtype=bool).reshape(arr.shape)
    return None


def _check_field(field: Field, arr: Array, dims: Dims, origin: dict[str, str], where: str) -> list[Problem]:
    """Shape, named dims, nulls and enum of one converted field: every problem, each naming it."""
    if arr.ndim != len(field.shape):
        return [Problem(where, f"expected {len(field.shape)} dims {shape_text(field)}, got shape {list(arr.shape)}")]
    problems: list[Problem] = []
    for i, (dim, n) in enumerate(zip(field.shape, arr.shape, strict=True)):
        if isinstance(dim, int):
            if dim != -1 and dim != n:
                problems.append(
                    Problem(where, f"dim {i} must be {dim} (shape {shape_text(field)}), got shape {list(arr.shape)}")
                )
        elif dim in dims and dims[dim] != n:
            problems.append(
                Problem(
                    where,
                    f"dim {i} ({dim!r}) is {n}, but {dim!r} is {dims[dim]} in {origin[dim]}; "
                    f"every field sharing {dim!r} must agree",
                )
            )
        else:
            dims.setdefault(dim, n)
            origin.setdefault(dim, where)
    if problems:
        return problems
    mask = _null_mask(arr)
    if mask is not None and not field.nullable and bool(mask.any()):
        first = int(np.flatnonzero(mask.ravel())[0])
        problems.append(
            Problem(
                where,
                f"holds {int(mask.sum())} null/NaN value(s) (first at flat index {first}); the field is not nullable",
            )
        )
    if field.enum is not None and arr.size:
        reason = _enum_reason(field, arr, mask)
        if reason:
            problems.append(Problem(where, reason))
    return problems


def _enum_reason(field: Field, arr: Array, mask: Array | None) -> str | None:
    """Why a value is not one of the field's enum values (the first such value), or None."""
    assert field.enum is not None
    flat = np.asarray(arr).ravel()
    if flat.dtype.kind in "biufmM":
        numeric = [v for v in field.enum if not isinstance(v, str)]
        if numeric and flat.dtype.kind in "biu" and flat.size <= _ENUM_SMALL:
            # integers have no nulls; for a few values Python sets beat numpy's call overhead
            allowed_ints = frozenset(np.array(numeric, dtype=flat.dtype).tolist())
            for i, v in enumerate(flat.tolist()):
                if v not in allowed_ints:
                    return f"value {v!r} at flat index {i} is not one of {list(field.enum)}"
            return None
        if not numeric:
            ok = np.zeros(flat.shape, bool)
        elif len(numeric) <= _ENUM_UNROLL:  # what np.isin does for few values, minus its overhead
            values = np.array(numeric, dtype=flat.dtype)
            ok = flat == values[0]
            for v in values[1:]:
                ok |= flat == v
        else:
            ok = np.isin(flat, np.array(numeric, dtype=flat.dtype))
        if mask is not None:
            ok |= mask.ravel()
        if ok.all():
            return None
        i = int(np.flatnonzero(~ok)[0])
        return f"value {flat[i].item()!r} at flat index {i} is not one of {list(field.enum)}"
    allowed = set(field.enum)
    for i, v in enumerate(flat):
        if v is None or v in allowed:
            continue
        return f"value {v!r} at flat index {i} is not one of {list(field.enum)}"
    return None


def _check_side(
    fields: Sequence[Field],
    data: Mapping[str, object],
    side: str,
    dims: Dims,
    origin: dict[str, str],
) -> dict[str, Array]:
    """Every field of one side converted and checked; all problems raised together."""
    problems = ProblemCollector()
    known = {f.name for f in fields}
    for name in data:
        if name not in known:
            problems.add(
                f"{side} {name!r}",
                f"is not an {side} of this model; {side}s are: {field_names(fields)}"
                if side == "input"
                else f"is not in the contract; declared {side}s are: {field_names(fields)}",
            )
    out: dict[str, Array] = {}
    for field in fields:
        where = f"{side} {field.name!r}"
        if field.name not in data:
            if not field.optional:
                problems.add(where, f"is required ({field.dtype}, shape {shape_text(field)}) but was not given")
            continue
        try:
            arr = convert(field, data[field.name], side)
        except ContractError as exc:
            problems.extend(exc.problems)
            continue
        found = _check_field(field, arr, dims, origin, where)
        problems.extend(found)
        if not found:
            out[field.name] = arr
    problems.raise_if_any(ContractError)
    return out


def check_inputs(contract: Contract, inputs: Mapping[str, object]) -> tuple[dict[str, Array], Dims]:
    """Inputs converted to the contract's dtypes, and the named dims they bind."""
    if not isinstance(inputs, Mapping):
        raise ContractError(
            f"inputs must be a mapping of input name to array, got {type(inputs).__name__}",
            "inputs",
        )
    dims: Dims = {}
    origin: dict[str, str] = {}
    if contract.extra == "ignore":  # [contract] extra = "ignore": drop what the contract does not name
        inputs = {k: v for k, v in inputs.items() if contract.input(k) is not None}
    return _check_side(contract.inputs, inputs, "input", dims, origin), dims


def check_outputs(contract: Contract, outputs: object, dims: Mapping[str, int] | None = None) -> dict[str, Array]:
    """Outputs checked against the contract; named dims must agree with the inputs'."""
    if not isinstance(outputs, Mapping):
        raise ContractError(
            f"the model returned {type(outputs).__name__}, expected a mapping of output name to array",
            "outputs",
        )
    bound = dict(dims or {})
    origin = {d: "the inputs" for d in bound}
    return _check_side(contract.outputs, outputs, "output", bound, origin)


def at_boundary(boundary: str, check: Callable[..., Any], *args: Any) -> Any:
    """Run a contract check, naming the boundary of the package's chain where it failed
    (``example → contract inputs``, ``postprocess → contract outputs``)."""
    try:
        return check(*args)
    except ContractError as exc:
        raise ContractError(
            [Problem(f"{boundary}: {p.where}" if p.where else boundary, p.reason) for p in exc.problems]
        ) from None


__all__ = ["Dims", "at_boundary", "check_inputs", "check_outputs", "field_names", "shape_text"]
