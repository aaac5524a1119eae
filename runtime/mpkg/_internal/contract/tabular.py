"""Tabular data: pyarrow Tables/RecordBatches and pandas DataFrames checked column by column.

A column's type must be the contract's or widen to it (the numpy rule of
:mod:`mpkg._internal.contract.convert`, plus Arrow's string, date, timestamp-unit and decimal
widenings); the columns then go through the same checks as a mapping of arrays
(:func:`mpkg._internal.contract.enforce.check_inputs`). pyarrow is imported only when tabular
data arrives (extra ``mpkg[tabular]``).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from mpkg._internal.contract.contract import Contract, Field
from mpkg._internal.contract.convert import Array
from mpkg._internal.contract.dtypes import DTYPE_OF_NUMPY, NUMPY_DTYPE, can_cast, decimal_spec, timestamp_spec
from mpkg._internal.contract.enforce import Dims, check_inputs, field_names, is_masked
from mpkg.errors import ContractError, MpkgError, Problem


def _pyarrow() -> Any:
    """pyarrow, imported on first use: it is an optional extra (``mpkg[tabular]``)."""
    try:
        import pyarrow
    except ImportError:
        raise MpkgError(
            "Arrow data needs pyarrow, which is not installed: pip install 'mpkg[tabular]'", "inputs"
        ) from None
    return pyarrow


def is_tabular_data(data: object) -> bool:
    """A pyarrow Table/RecordBatch or a pandas DataFrame (checked without importing either)."""
    module = type(data).__module__
    name = type(data).__name__
    return (module.startswith("pyarrow") and name in ("Table", "RecordBatch")) or (
        module.startswith("pandas") and name == "DataFrame"
    )


def arrow_type(dtype: str) -> Any:
    """The Arrow type of a contract dtype: columns are cast to it, outputs built in it."""
    pa = _pyarrow()
    simple = {
        "bool": pa.bool_(),
        "int8": pa.int8(),
        "int16": pa.int16(),
        "int32": pa.int32(),
        "int64": pa.int64(),
        "uint8": pa.uint8(),
        "uint16": pa.uint16(),
        "uint32": pa.uint32(),
        "uint64": pa.uint64(),
        "float16": pa.float16(),
        "float32": pa.float32(),
        "float64": pa.float64(),
        "string": pa.string(),
        "date32": pa.date32(),
        "date64": pa.date64(),
    }
    if dtype in simple:
        return simple[dtype]
    stamp = timestamp_spec(dtype)
    if stamp:
        return pa.timestamp(stamp[0], tz=stamp[1])
    spec = decimal_spec(dtype)
    if spec:
        return pa.decimal128(*spec)
    raise MpkgError(f"dtype {dtype} has no Arrow type", "contract")


_UNIT_ORDER = {"s": 0, "ms": 1, "us": 2, "ns": 3}
_INT_DIGITS = {8: 3, 16: 5, 32: 10, 64: 20}


def _arrow_widens(src: Any, dst: Any, field: Field) -> str | None:
    """Why Arrow type ``src`` may not be given for ``field`` (of Arrow type ``dst``), or None."""
    pa = _pyarrow()
    t = pa.types
    if src == dst or t.is_null(src):
        return None
    if field.dtype in NUMPY_DTYPE and field.dtype != "string":
        if t.is_integer(src) or t.is_floating(src) or t.is_boolean(src):
            name = DTYPE_OF_NUMPY.get((np.dtype(src.to_pandas_dtype()).kind, src.bit_width // 8))
            if name and can_cast(name, field.dtype):
                return None
            return f"casting {name} to {field.dtype} may lose values, so it is refused"
        return f"expected {field.dtype}, got {src}"
    if field.dtype == "string":
        return (
            None
            if (t.is_string(src) or t.is_large_string(src) or str(src) == "string_view")
            else f"expected string, got {src}"
        )
    if field.dtype in ("date32", "date64") or field.dtype.startswith("timestamp"):
        if t.is_date(src) and (t.is_timestamp(dst) or t.is_date(dst)):
            if t.is_date32(dst) and t.is_date64(src):
                return "date64 to date32 may lose the time of day, so it is refused"
            return None
        if t.is_timestamp(src) and t.is_timestamp(dst):
            if src.tz != dst.tz:
                return f"time zone {src.tz!r} differs from the contract's {dst.tz!r}"
            if _UNIT_ORDER[src.unit] > _UNIT_ORDER[dst.unit]:
                return f"unit {src.unit} is finer than {dst.unit}; values would be truncated"
            return None
        return f"expected {field.dtype}, got {src}"
    if t.is_decimal(dst):
        if t.is_decimal(src):
            if src.scale <= dst.scale and src.precision - src.scale <= dst.precision - dst.scale:
                return None
            return f"{src} does not fit {dst} without rounding"
        if t.is_integer(src):
            if _INT_DIGITS[src.bit_width] <= dst.precision - dst.scale:
                return None
            return f"{src} values may not fit {dst}"
        return f"expected {field.dtype}, got {src}"
    return f"expected {field.dtype}, got {src}"


def _arrow_to_numpy(col: Any, field: Field) -> Array:
    pa = _pyarrow()
    t = pa.types
    if field.dtype in NUMPY_DTYPE and field.dtype != "string" and col.null_count and not t.is_floating(col.type):
        values = col.fill_null(pa.scalar(False if t.is_boolean(col.type) else 0, col.type)).to_numpy(
            zero_copy_only=False
        )
        mask = col.is_null().to_numpy(zero_copy_only=False)
        return np.ma.MaskedArray(values, mask=mask)
    if t.is_decimal(col.type) or t.is_string(col.type):
        return np.asarray(
            col.to_pylist() if t.is_decimal(col.type) else col.to_numpy(zero_copy_only=False),
            dtype=object,
        )
    arr: Array = col.to_numpy(zero_copy_only=False)
    return arr


def check_arrow_inputs(contract: Contract, data: object) -> tuple[dict[str, Array], Dims]:
    """Validate a pyarrow Table/RecordBatch (or pandas DataFrame) column by column.

    A column's type must be the contract's or widen to it (the numpy rule, plus Arrow's
    string, date, timestamp-unit and decimal widenings); the cast itself runs with Arrow's
    ``safe=True``. Nulls only in nullable columns. Columns are handed to the package code as
    numpy arrays: nulls become NaN (floats), NaT (dates), None (strings, decimals) or a
    masked entry (ints, bools)."""
    pa = _pyarrow()
    if not contract.is_tabular:
        raise ContractError("this model's inputs are not all columns; pass a mapping of arrays", "inputs")
    if type(data).__module__.startswith("pandas"):
        if contract.extra == "ignore":  # drop extra columns before converting what may not convert
            frame: Any = data
            data = frame.loc[:, [c for c in frame.columns if isinstance(c, str) and contract.input(c) is not None]]
        try:
            data = pa.Table.from_pandas(data, preserve_index=False)
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise ContractError(f"the DataFrame cannot be converted to Arrow ({exc})", "inputs") from None
    if not isinstance(data, (pa.Table, pa.RecordBatch)):
        raise ContractError(f"expected a pyarrow Table or RecordBatch, got {type(data).__name__}", "inputs")
    problems: list[Problem] = []
    names = list(data.schema.names)
    if len(set(names)) != len(names):
        problems.append(Problem("inputs", "has duplicate column names"))
    columns: dict[str, Array] = {}
    for name in names:
        field = contract.input(name)
        if field is None and contract.extra == "ignore":
            continue  # an extra column, dropped unread
        if field is None:
            problems.append(
                Problem(
                    f"input {name!r}",
                    f"is not an input of this model; inputs are: {field_names(contract.inputs)}",
                )
            )
            continue
        where = f"input {name!r}"
        col = data.column(name)
        if isinstance(col, pa.ChunkedArray):
            col = col.combine_chunks()
        if pa.types.is_dictionary(col.type):
            col = col.dictionary_decode()
        if str(col.type) == "string_view" or pa.types.is_large_string(col.type):
            col = col.cast(pa.string())
        target = arrow_type(field.dtype)
        reason = _arrow_widens(col.type, target, field)
        if reason:
            problems.append(Problem(where, reason))
            continue
        if col.null_count and not field.nullable:
            problems.append(Problem(where, f"holds {col.null_count} null(s); the column is not nullable"))
            continue
        try:
            col = col.cast(target, safe=True)
        except (pa.ArrowInvalid, pa.ArrowNotImplementedError) as exc:
            problems.append(Problem(where, f"cannot be cast safely to {field.dtype} ({exc})"))
            continue
        columns[name] = _arrow_to_numpy(col, field)
    if problems:
        raise ContractError(problems)
    return check_inputs(contract, columns)


def outputs_to_arrow(contract: Contract, outputs: Mapping[str, Array]) -> Any:
    """Checked outputs as a RecordBatch; N-d outputs become (nested) fixed-size lists."""
    pa = _pyarrow()
    arrays, names = [], []
    for field in contract.outputs:
        if field.name not in outputs:
            continue
        arr = outputs[field.name]
        if arr.ndim == 0:
            raise ContractError(
                "is a scalar; only outputs with a batch dimension fit in a RecordBatch",
                f"output {field.name!r}",
            )
        typ = arrow_type(field.dtype) if field.dtype != "bfloat16" else None
        if typ is None:
            raise ContractError("bfloat16 has no Arrow type", f"output {field.name!r}")
        flat = arr.reshape(-1) if arr.ndim > 1 else arr
        if is_masked(flat):
            values = pa.array(np.ma.getdata(flat), type=typ, mask=np.ma.getmaskarray(flat))
        elif flat.dtype.kind == "O":
            values = pa.array(flat.tolist(), type=typ)
        else:
            values = pa.array(flat, type=typ, from_pandas=field.nullable)
        for size in reversed(arr.shape[1:]):
            values = pa.FixedSizeListArray.from_arrays(values, size)
        arrays.append(values)
        names.append(field.name)
    return pa.RecordBatch.from_arrays(arrays, names=names)


__all__ = ["arrow_type", "check_arrow_inputs", "is_tabular_data", "outputs_to_arrow"]
