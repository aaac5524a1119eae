"""Conversion of one field's data to the contract dtype, before any check of shape or value.

Rules (spec/format.md §6):
- numpy arrays and Arrow columns are *typed*: they are accepted in the contract dtype or
  in a dtype that widens to it along :data:`mpkg._internal.contract.dtypes.SAFE_CASTS` (int32 data for an
  int64 input, float32 for float64); anything else, lossy or not, is refused.
- Python lists and scalars have no dtype of their own: they are converted to the contract
  dtype by value. Integers must fit (and be exact in a float), floats are rounded to the
  nearest float of the contract's width, floats are never truncated into integers, bools
  only go to bool and strings only to string, dates, timestamps and decimals.
- None and NaN elements of strings, dates and decimals are allowed only in ``nullable`` fields.

A refusal is a :class:`~mpkg.errors.ContractError` with one problem naming the field;
:mod:`mpkg._internal.contract.enforce` collects them across fields and raises once.
"""

from __future__ import annotations

import decimal
import math
import warnings
from typing import Any

import numpy as np

from mpkg._internal.contract.contract import Field
from mpkg._internal.contract.dtypes import (
    DTYPE_OF_NUMPY,
    FLOAT_MANTISSA,
    INT_BITS,
    NUMPY_DTYPE,
    can_cast,
    datetime_unit,
    decimal_spec,
)
from mpkg.errors import ContractError

Array = np.ndarray[Any, Any]

_DTYPE_STR = {k: np.dtype(v).str for k, v in NUMPY_DTYPE.items()}  # per call otherwise
# Contract dtypes whose numpy arrays need no check beyond their dtype (strings do).
_EXACT_STR = {k: v for k, v in _DTYPE_STR.items() if k != "string"}


def _is_untyped(value: object) -> bool:
    return isinstance(value, (list, tuple, int, float, bool, str, decimal.Decimal)) or value is None


def convert(field: Field, value: object, side: str = "input") -> Array:
    """``value`` as an array of the field's dtype (rules above), or ContractError naming it.
    Only the dtype is checked here; shapes, nulls and enums are checked per call."""
    return _convert(field, value, f"{side} {field.name!r}")


def _convert(field: Field, value: object, where: str) -> Array:
    if type(value) is np.ndarray:  # the common case, first: skips the checks below
        return _from_typed(field, value, where)
    if _is_untyped(value):
        return _from_python(field, value, where)
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asanyarray(value)
    elif hasattr(value, "__array__"):
        try:
            arr = np.asanyarray(value)
        except (TypeError, ValueError) as exc:
            raise ContractError(f"cannot be read as an array ({exc})", where) from None
    else:
        raise ContractError(f"expected an array or a (nested) list of {field.dtype}, got {type(value).__name__}", where)
    return _from_typed(field, arr, where)


def _src_dtype(arr: Array) -> str | None:
    return DTYPE_OF_NUMPY.get((arr.dtype.kind, arr.dtype.itemsize))


def _describe(arr: Array) -> str:
    src = _src_dtype(arr)
    if src:
        return src
    return {
        "U": "str (numpy unicode)",
        "S": "bytes",
        "O": "Python objects",
        "M": f"{arr.dtype}",
        "V": "raw bytes",
    }.get(arr.dtype.kind, str(arr.dtype))


def _from_typed(field: Field, arr: Array, where: str) -> Array:
    dst = field.dtype
    if arr.dtype.str == _EXACT_STR.get(dst):  # already the contract dtype (not string)
        return arr
    if dst in NUMPY_DTYPE and dst != "string":
        src = _src_dtype(arr)
        if src is None:
            if arr.dtype.kind == "O" and arr.size == 0:
                return arr.astype(NUMPY_DTYPE[dst])
            raise ContractError(f"expected dtype {dst}, got {_describe(arr)}", where)
        if not can_cast(src, dst):
            raise ContractError(
                f"expected dtype {dst}, got {src}; casting {src} to {dst} may lose values, "
                f"so it is refused (convert explicitly if that is what you mean)",
                where,
            )
        if arr.dtype.str == _DTYPE_STR[dst]:
            return arr
        return arr.astype(NUMPY_DTYPE[dst])
    if dst == "bfloat16":
        if arr.dtype.name == "bfloat16":
            return arr
        raise ContractError(f"expected dtype bfloat16 (e.g. an ml_dtypes.bfloat16 array), got {_describe(arr)}", where)
    if dst == "string":
        if arr.dtype.kind == "U":
            return arr.astype(object)
        if arr.dtype.kind == "O":
            _check_elements(arr, field, (str,), "str", where)
            return arr
        raise ContractError(f"expected strings, got {_describe(arr)}", where)
    unit = datetime_unit(dst)
    if unit is not None:
        if arr.dtype.kind == "M":
            src_unit = np.datetime_data(arr.dtype)[0]
            target = np.dtype(f"datetime64[{unit}]")
            if not np.can_cast(arr.dtype, target, "safe"):
                raise ContractError(
                    f"expected {dst}, got datetime64[{src_unit}]; a finer unit than {unit} would be truncated", where
                )
            return arr.astype(target)
        if arr.dtype.kind == "O":
            return _datetimes(arr, field, unit, where)
        raise ContractError(f"expected {dst} (numpy datetime64), got {_describe(arr)}", where)
    spec = decimal_spec(dst)
    if spec is not None:
        if arr.dtype.kind in "iu" and arr.size:
            return _decimals(arr.astype(object), field, spec, where)
        if arr.dtype.kind == "O":
            return _decimals(arr, field, spec, where)
        raise ContractError(f"expected {dst} (decimal.Decimal values), got {_describe(arr)}", where)
    raise ContractError(f"dtype {dst} is not supported for numpy data", where)


def _check_elements(arr: Array, field: Field, types: tuple[type, ...], what: str, where: str) -> None:
    for i, v in enumerate(arr.flat):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if field.nullable:
                continue
            raise ContractError(f"element {i} is null; the field is not nullable", where)
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise ContractError(f"element {i} is {type(v).__name__} {v!r}; expected {what}", where)


def _nulls_to_none(arr: Array) -> Array:
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        out[idx] = None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    return out


def _datetimes(arr: Array, field: Field, unit: str, where: str) -> Array:
    _check_elements(arr, field, (str, np.datetime64, *_datetime_types()), f"{field.dtype} values", where)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy deprecates parsing time-zone suffixes; values are UTC
            return np.array(_nulls_to_none(arr).tolist(), dtype=f"datetime64[{unit}]")
    except (ValueError, TypeError, OverflowError) as exc:
        raise ContractError(f"cannot be read as {field.dtype} ({exc})", where) from None


def _datetime_types() -> tuple[type, ...]:
    import datetime as dt

    return (dt.date, dt.datetime)


def _decimals(arr: Array, field: Field, spec: tuple[int, int], where: str) -> Array:
    precision, scale = spec
    quantum = decimal.Decimal(1).scaleb(-scale)
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        i = int(np.ravel_multi_index(idx, arr.shape)) if arr.ndim else 0
        if v is None:
            if not field.nullable:
                raise ContractError(f"element {i} is null; the field is not nullable", where)
            out[idx] = None
            continue
        if isinstance(v, (bool, float)):
            raise ContractError(
                f"element {i} is {type(v).__name__} {v!r}; "
                "decimals take decimal.Decimal, int or str (floats are inexact)",
                where,
            )
        d: decimal.Decimal | None = None
        if isinstance(v, (int, np.integer, str, decimal.Decimal)):
            try:
                d = decimal.Decimal(int(v) if isinstance(v, np.integer) else v)
            except decimal.InvalidOperation:
                d = None
        if d is None or not d.is_finite():
            raise ContractError(f"element {i} is {_short(v)}; expected a finite {field.dtype} value", where)
        # More integer digits than fit: refused before quantize, which raises InvalidOperation when
        # the result is wider than its context (a value of 81+ digits from a request crashed here).
        if d != 0 and d.adjusted() >= precision - scale:
            raise ContractError(f"element {i} = {_short(v)} has more than {precision} digits ({field.dtype})", where)
        try:
            q = d.quantize(quantum, context=decimal.Context(prec=80))
        except decimal.InvalidOperation:
            raise ContractError(f"element {i} = {_short(v)} does not fit {field.dtype}", where) from None
        if q != d:
            raise ContractError(
                f"element {i} = {_short(v)} has more than {scale} decimal places ({field.dtype})", where
            )
        if len(q.as_tuple().digits) > precision and q != 0:
            raise ContractError(f"element {i} = {_short(v)} has more than {precision} digits ({field.dtype})", where)
        out[idx] = q
    return out


def _short(value: object) -> str:
    """A value for a message: at most 60 characters of its repr (a request may send megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _from_python(field: Field, value: object, where: str) -> Array:
    dst = field.dtype
    if value is None:
        raise ContractError(f"is None; expected {dst} data", where)
    if dst == "string":
        arr = np.array(value, dtype=object)
        _check_elements(arr, field, (str,), "str", where)
        return arr
    unit = datetime_unit(dst)
    if unit is not None:
        return _datetimes(np.array(value, dtype=object), field, unit, where)
    spec = decimal_spec(dst)
    if spec is not None:
        return _decimals(np.array(value, dtype=object), field, spec, where)
    if dst not in NUMPY_DTYPE:
        raise ContractError(f"dtype {dst} cannot be given as a Python list", where)
    try:
        raw = np.asarray(value)
    except (ValueError, OverflowError) as exc:
        raise ContractError(f"is not a rectangular list of numbers ({str(exc).splitlines()[0]})", where) from None
    kind = raw.dtype.kind
    if raw.size == 0 and kind in "fO":
        return np.zeros(raw.shape, dtype=NUMPY_DTYPE[dst])
    if kind == "O":
        if dst.startswith("float") and field.nullable:
            try:
                return np.array(value, dtype=NUMPY_DTYPE[dst])
            except (TypeError, ValueError):
                pass
        if any(v is None for v in np.asarray(value, dtype=object).flat):
            raise ContractError("contains null (None); the field is not nullable", where)
        raise ContractError(f"expected {dst} values, got a mix of types or integers too large for 64 bits", where)
    if kind == "b":
        if dst != "bool":
            raise ContractError(f"expected {dst}, got booleans", where)
        return raw
    if kind in "US":
        raise ContractError(f"expected {dst}, got strings", where)
    if dst == "bool":
        raise ContractError(f"expected booleans, got {'integers' if kind in 'iu' else 'floats'}", where)
    if kind in "iu":
        if dst in INT_BITS:
            info = np.iinfo(NUMPY_DTYPE[dst])
            if raw.size and (int(raw.min()) < info.min or int(raw.max()) > info.max):
                raise ContractError(f"holds integers outside the {dst} range [{info.min}, {info.max}]", where)
            return raw.astype(NUMPY_DTYPE[dst])
        limit = 2 ** FLOAT_MANTISSA[dst]
        if raw.size and max(abs(int(raw.min())), abs(int(raw.max()))) > limit:
            raise ContractError(
                f"holds integers beyond ±2^{FLOAT_MANTISSA[dst]}, which {dst} cannot represent exactly", where
            )
        return raw.astype(NUMPY_DTYPE[dst])
    if kind == "f":
        if dst in INT_BITS:
            raise ContractError(f"expected {dst}, got floats (refused rather than truncated)", where)
        with np.errstate(over="ignore"):
            out = raw.astype(NUMPY_DTYPE[dst])
        if np.any(np.isinf(out) & np.isfinite(raw)):
            raise ContractError(f"holds values outside the {dst} range", where)
        return out
    raise ContractError(f"expected {dst}, got {raw.dtype}", where)


__all__ = ["Array", "convert"]
