"""Examples: the deterministic inputs a package is built with, their JSON form, and the
comparison that replays them (``mpkg verify --run``, the server's start-up smoke test)."""

from __future__ import annotations

import decimal
import math
from typing import Any

import numpy as np

from mpkg._internal.contract.contract import Contract, Field
from mpkg._internal.contract.convert import Array, convert
from mpkg._internal.contract.dtypes import INT_BITS, NUMPY_DTYPE, datetime_unit, decimal_spec
from mpkg.errors import MpkgError

from .enforce import is_masked


def example_inputs(contract: Contract, size: int = 2) -> dict[str, Array]:
    """A deterministic example for every required input: named and -1 dims are ``size``,
    enums give their first value, strings "a", numbers small values that fit every dtype."""
    out: dict[str, Array] = {}
    for field in contract.inputs:
        if field.optional:
            continue
        shape = tuple(d if isinstance(d, int) and d >= 0 else size for d in field.shape)
        n = math.prod(shape)
        out[field.name] = _example_values(field, n).reshape(shape)
    return out


def _example_values(field: Field, n: int) -> Array:
    """``n`` values of the field's dtype, flat."""
    dtype = field.dtype
    if field.enum is not None:
        return convert(field, [field.enum[0]] * n) if n else convert(field, [])
    if dtype == "string":
        return np.array(["a"] * n, dtype=object)
    if dtype == "bool":
        flags: Array = np.arange(n) % 2 == 1
        return flags
    if dtype in INT_BITS:
        return (np.arange(n) % 3).astype(NUMPY_DTYPE[dtype])
    if dtype in NUMPY_DTYPE:
        return ((np.arange(n) % 5) * 0.5).astype(NUMPY_DTYPE[dtype])
    unit = datetime_unit(dtype)
    if unit is not None:
        return (np.datetime64("2024-01-01", "D") + np.arange(n)).astype(f"datetime64[{unit}]")
    spec = decimal_spec(dtype)
    if spec is not None:
        return np.array([decimal.Decimal(i % 3) for i in range(n)], dtype=object)
    raise MpkgError(f"cannot make example data for dtype {dtype}", f"input {field.name!r}")


def to_jsonable(arr: Array) -> Any:
    """Nested lists for example.json: nulls -> None, dates ISO strings, decimals strings."""
    if is_masked(arr):
        data = np.ma.getdata(arr).astype(object)
        data[np.ma.getmaskarray(arr)] = None
        arr = data
    if arr.dtype.kind in "mM":
        text = np.datetime_as_string(arr).astype(object)
        text[np.isnat(arr)] = None
        return text.tolist()
    if arr.dtype.kind == "f":
        obj = arr.astype(object)
        obj[np.isnan(arr)] = None
        return obj.tolist()
    if arr.dtype.kind == "O":
        return (
            np.frompyfunc(lambda v: str(v) if isinstance(v, decimal.Decimal) else v, 1, 1)(arr).tolist()
            if arr.ndim
            else arr.item()
        )
    return arr.tolist()


def max_deviation(field: Field, actual: Array, expected: Array, rtol: float, atol: float) -> str | None:
    """Why ``actual`` differs from ``expected`` beyond tolerance, or None."""
    if actual.shape != expected.shape:
        return f"has shape {list(actual.shape)}, the recorded example has {list(expected.shape)}"
    if actual.dtype.kind in "fiu" and expected.dtype.kind in "fiu" and not is_masked(actual):
        a = actual.astype(np.float64)
        e = expected.astype(np.float64)
        both_nan = np.isnan(a) & np.isnan(e)
        diff = np.where(both_nan, 0.0, np.abs(a - e))
        bad = ~(diff <= atol + rtol * np.abs(np.where(both_nan, 0.0, e)))
        if not bad.any():
            return None
        worst = float(np.max(np.where(np.isnan(diff), np.inf, diff)))
        return (
            f"differs from the recorded example by up to {worst:.6g} "
            f"at {int(bad.sum())} of {bad.size} values (rtol={rtol}, atol={atol})"
        )
    same = [
        x == y or (x is None and y is None)
        for x, y in zip(
            np.asarray(actual, dtype=object).ravel().tolist(),
            np.asarray(expected, dtype=object).ravel().tolist(),
            strict=True,
        )
    ]
    if all(same):
        return None
    first = same.index(False)
    return (
        f"differs from the recorded example at {same.count(False)} of {len(same)} values (first at flat index {first})"
    )


__all__ = ["example_inputs", "max_deviation", "to_jsonable"]
