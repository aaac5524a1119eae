"""Contract enforcement: data is checked against the contract before package code sees it.

Inputs are checked BEFORE any package code runs, outputs after. Every violation is
collected and raised together as one :class:`~mpkg.errors.ContractError` whose
problems name the field, what was expected and what came.

Conversion rules (spec/format.md §6):
- numpy arrays and Arrow columns are *typed*: they are accepted in the contract dtype or
  in a dtype that widens to it along :data:`mpkg._internal.contract.dtypes.SAFE_CASTS` (int32 data for an
  int64 input, float32 for float64); anything else, lossy or not, is refused.
- Python lists and scalars have no dtype of their own: they are converted to the contract
  dtype by value. Integers must fit (and be exact in a float), floats are rounded to the
  nearest float of the contract's width, floats are never truncated into integers, bools
  only go to bool and strings only to string, dates, timestamps and decimals.
- NaN (floats), NaT (dates), None (strings, decimals) and masked entries are nulls; they
  are allowed only in fields declared ``nullable``, in inputs and in outputs alike.
- Named dims bind across every input and output of one call.
"""

from __future__ import annotations

import decimal
import math
import re
import warnings
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from mpkg._internal.contract.contract import Contract, Field
from mpkg._internal.contract.dtypes import DTYPE_OF_NUMPY, NUMPY_DTYPE, can_cast
from mpkg.errors import ContractError, MpkgError, Problem

Array = np.ndarray[Any, Any]
Dims = dict[str, int]

_INT_BITS = {
    "int8": 8,
    "int16": 16,
    "int32": 32,
    "int64": 64,
    "uint8": 8,
    "uint16": 16,
    "uint32": 32,
    "uint64": 64,
}
_FLOAT_MANTISSA = {"float16": 11, "float32": 24, "float64": 53}
_DTYPE_STR = {k: np.dtype(v).str for k, v in NUMPY_DTYPE.items()}  # per call otherwise
# Contract dtypes whose numpy arrays need no check beyond their dtype (strings do).
_EXACT_STR = {k: v for k, v in _DTYPE_STR.items() if k != "string"}
_ENUM_UNROLL = 8  # up to this many enum values, compare one by one (np.isin costs ~20 us)
_ENUM_SMALL = 128  # up to this many integers, a Python set beats numpy calls
_TIMESTAMP = re.compile(r"^timestamp\[(s|ms|us|ns)(?:, tz=(.+))?\]$")
_DECIMAL = re.compile(r"^decimal128\((\d+),(\d+)\)$")


def datetime_unit(dtype: str) -> str | None:
    """numpy datetime64 unit for a date/timestamp contract dtype, else None."""
    if dtype == "date32":
        return "D"
    if dtype == "date64":
        return "ms"
    m = _TIMESTAMP.match(dtype)
    return m.group(1) if m else None


def decimal_spec(dtype: str) -> tuple[int, int] | None:
    m = _DECIMAL.match(dtype)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _shape_text(field: Field) -> str:
    return "[" + ", ".join(str(d) for d in field.shape) + "]"


def _names(fields: Iterable[Field]) -> str:
    return ", ".join(f.name for f in fields)


class _Refused(Exception):
    """One field's data is refused; the message is the reason."""


# --- conversion --------------------------------------------------------------------------


def _is_untyped(value: object) -> bool:
    return isinstance(value, (list, tuple, int, float, bool, str, decimal.Decimal)) or value is None


def convert(field: Field, value: object, side: str = "input") -> Array:
    """``value`` as an array of the field's dtype (rules above), or ContractError naming it.
    Only the dtype is checked here; shapes, nulls and enums are checked per call."""
    try:
        return _convert(field, value)
    except _Refused as exc:
        raise ContractError(str(exc), f"{side} {field.name!r}") from None


def _convert(field: Field, value: object) -> Array:
    if type(value) is np.ndarray:  # the common case, first: skips the checks below
        return _from_typed(field, value)
    if _is_untyped(value):
        return _from_python(field, value)
    if isinstance(value, (np.ndarray, np.generic)):
        arr = np.asanyarray(value)
    elif hasattr(value, "__array__"):
        try:
            arr = np.asanyarray(value)
        except (TypeError, ValueError) as exc:
            raise _Refused(f"cannot be read as an array ({exc})") from None
    else:
        raise _Refused(f"expected an array or a (nested) list of {field.dtype}, got {type(value).__name__}")
    return _from_typed(field, arr)


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


def _from_typed(field: Field, arr: Array) -> Array:
    dst = field.dtype
    if arr.dtype.str == _EXACT_STR.get(dst):  # already the contract dtype (not string)
        return arr
    if dst in NUMPY_DTYPE and dst != "string":
        src = _src_dtype(arr)
        if src is None:
            if arr.dtype.kind == "O" and arr.size == 0:
                return arr.astype(NUMPY_DTYPE[dst])
            raise _Refused(f"expected dtype {dst}, got {_describe(arr)}")
        if not can_cast(src, dst):
            raise _Refused(
                f"expected dtype {dst}, got {src}; casting {src} to {dst} may lose values, "
                f"so it is refused (convert explicitly if that is what you mean)"
            )
        if arr.dtype.str == _DTYPE_STR[dst]:
            return arr
        return arr.astype(NUMPY_DTYPE[dst])
    if dst == "bfloat16":
        if arr.dtype.name == "bfloat16":
            return arr
        raise _Refused(f"expected dtype bfloat16 (e.g. an ml_dtypes.bfloat16 array), got {_describe(arr)}")
    if dst == "string":
        if arr.dtype.kind == "U":
            return arr.astype(object)
        if arr.dtype.kind == "O":
            _check_elements(arr, field, (str,), "str")
            return arr
        raise _Refused(f"expected strings, got {_describe(arr)}")
    unit = datetime_unit(dst)
    if unit is not None:
        if arr.dtype.kind == "M":
            src_unit = np.datetime_data(arr.dtype)[0]
            target = np.dtype(f"datetime64[{unit}]")
            if not np.can_cast(arr.dtype, target, "safe"):
                raise _Refused(
                    f"expected {dst}, got datetime64[{src_unit}]; a finer unit than {unit} would be truncated"
                )
            return arr.astype(target)
        if arr.dtype.kind == "O":
            return _datetimes(arr, field, unit)
        raise _Refused(f"expected {dst} (numpy datetime64), got {_describe(arr)}")
    spec = decimal_spec(dst)
    if spec is not None:
        if arr.dtype.kind in "iu" and arr.size:
            return _decimals(arr.astype(object), field, spec)
        if arr.dtype.kind == "O":
            return _decimals(arr, field, spec)
        raise _Refused(f"expected {dst} (decimal.Decimal values), got {_describe(arr)}")
    raise _Refused(f"dtype {dst} is not supported for numpy data")


def _check_elements(arr: Array, field: Field, types: tuple[type, ...], what: str) -> None:
    for i, v in enumerate(arr.flat):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            if field.nullable:
                continue
            raise _Refused(f"element {i} is null; the field is not nullable")
        if not isinstance(v, types) or (isinstance(v, bool) and bool not in types):
            raise _Refused(f"element {i} is {type(v).__name__} {v!r}; expected {what}")


def _nulls_to_none(arr: Array) -> Array:
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        out[idx] = None if v is None or (isinstance(v, float) and math.isnan(v)) else v
    return out


def _datetimes(arr: Array, field: Field, unit: str) -> Array:
    _check_elements(arr, field, (str, np.datetime64, *_datetime_types()), f"{field.dtype} values")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # numpy deprecates parsing time-zone suffixes; values are UTC
            return np.array(_nulls_to_none(arr).tolist(), dtype=f"datetime64[{unit}]")
    except (ValueError, TypeError, OverflowError) as exc:
        raise _Refused(f"cannot be read as {field.dtype} ({exc})") from None


def _datetime_types() -> tuple[type, ...]:
    import datetime as dt

    return (dt.date, dt.datetime)


def _decimals(arr: Array, field: Field, spec: tuple[int, int]) -> Array:
    precision, scale = spec
    quantum = decimal.Decimal(1).scaleb(-scale)
    out = np.empty(arr.shape, dtype=object)
    for idx, v in np.ndenumerate(arr):
        i = int(np.ravel_multi_index(idx, arr.shape)) if arr.ndim else 0
        if v is None:
            if not field.nullable:
                raise _Refused(f"element {i} is null; the field is not nullable")
            out[idx] = None
            continue
        if isinstance(v, (bool, float)):
            raise _Refused(
                f"element {i} is {type(v).__name__} {v!r}; "
                "decimals take decimal.Decimal, int or str (floats are inexact)"
            )
        d: decimal.Decimal | None = None
        if isinstance(v, (int, np.integer, str, decimal.Decimal)):
            try:
                d = decimal.Decimal(int(v) if isinstance(v, np.integer) else v)
            except decimal.InvalidOperation:
                d = None
        if d is None or not d.is_finite():
            raise _Refused(f"element {i} is {_short(v)}; expected a finite {field.dtype} value")
        # More integer digits than fit: refused before quantize, which raises InvalidOperation when
        # the result is wider than its context (a value of 81+ digits from a request crashed here).
        if d != 0 and d.adjusted() >= precision - scale:
            raise _Refused(f"element {i} = {_short(v)} has more than {precision} digits ({field.dtype})")
        try:
            q = d.quantize(quantum, context=decimal.Context(prec=80))
        except decimal.InvalidOperation:
            raise _Refused(f"element {i} = {_short(v)} does not fit {field.dtype}") from None
        if q != d:
            raise _Refused(f"element {i} = {_short(v)} has more than {scale} decimal places ({field.dtype})")
        if len(q.as_tuple().digits) > precision and q != 0:
            raise _Refused(f"element {i} = {_short(v)} has more than {precision} digits ({field.dtype})")
        out[idx] = q
    return out


def _short(value: object) -> str:
    """A value for a message: at most 60 characters of its repr (a request may send megabytes)."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _from_python(field: Field, value: object) -> Array:
    dst = field.dtype
    if value is None:
        raise _Refused(f"is None; expected {dst} data")
    if dst == "string":
        arr = np.array(value, dtype=object)
        _check_elements(arr, field, (str,), "str")
        return arr
    unit = datetime_unit(dst)
    if unit is not None:
        return _datetimes(np.array(value, dtype=object), field, unit)
    spec = decimal_spec(dst)
    if spec is not None:
        return _decimals(np.array(value, dtype=object), field, spec)
    if dst not in NUMPY_DTYPE:
        raise _Refused(f"dtype {dst} cannot be given as a Python list")
    try:
        raw = np.asarray(value)
    except (ValueError, OverflowError) as exc:
        raise _Refused(f"is not a rectangular list of numbers ({str(exc).splitlines()[0]})") from None
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
            raise _Refused("contains null (None); the field is not nullable")
        raise _Refused(f"expected {dst} values, got a mix of types or integers too large for 64 bits")
    if kind == "b":
        if dst != "bool":
            raise _Refused(f"expected {dst}, got booleans")
        return raw
    if kind in "US":
        raise _Refused(f"expected {dst}, got strings")
    if dst == "bool":
        raise _Refused(f"expected booleans, got {'integers' if kind in 'iu' else 'floats'}")
    if kind in "iu":
        if dst in _INT_BITS:
            info = np.iinfo(NUMPY_DTYPE[dst])
            if raw.size and (int(raw.min()) < info.min or int(raw.max()) > info.max):
                raise _Refused(f"holds integers outside the {dst} range [{info.min}, {info.max}]")
            return raw.astype(NUMPY_DTYPE[dst])
        limit = 2 ** _FLOAT_MANTISSA[dst]
        if raw.size and max(abs(int(raw.min())), abs(int(raw.max()))) > limit:
            raise _Refused(f"holds integers beyond ±2^{_FLOAT_MANTISSA[dst]}, which {dst} cannot represent exactly")
        return raw.astype(NUMPY_DTYPE[dst])
    if kind == "f":
        if dst in _INT_BITS:
            raise _Refused(f"expected {dst}, got floats (refused rather than truncated)")
        with np.errstate(over="ignore"):
            out = raw.astype(NUMPY_DTYPE[dst])
        if np.any(np.isinf(out) & np.isfinite(raw)):
            raise _Refused(f"holds values outside the {dst} range")
        return out
    raise _Refused(f"expected {dst}, got {raw.dtype}")


# --- checks after conversion ---------------------------------------------------------------


def _null_mask(arr: Array) -> Array | None:
    if isinstance(arr, np.ma.MaskedArray):
        return np.ma.getmaskarray(arr)
    kind = arr.dtype.kind
    if kind == "f":
        return np.isnan(arr)
    if kind in "mM":
        return np.isnat(arr)
    if kind == "O":
        return np.array([v is None for v in arr.flat], dtype=bool).reshape(arr.shape)
    return None


def _check_field(field: Field, arr: Array, dims: Dims, origin: dict[str, str], where: str) -> list[str]:
    problems: list[str] = []
    if arr.ndim != len(field.shape):
        return [f"expected {len(field.shape)} dims {_shape_text(field)}, got shape {list(arr.shape)}"]
    for i, (dim, n) in enumerate(zip(field.shape, arr.shape, strict=True)):
        if isinstance(dim, int):
            if dim != -1 and dim != n:
                problems.append(f"dim {i} must be {dim} (shape {_shape_text(field)}), got shape {list(arr.shape)}")
        elif dim in dims and dims[dim] != n:
            problems.append(
                f"dim {i} ({dim!r}) is {n}, but {dim!r} is {dims[dim]} in {origin[dim]}; "
                f"every field sharing {dim!r} must agree"
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
            f"holds {int(mask.sum())} null/NaN value(s) (first at flat index {first}); the field is not nullable"
        )
    if field.enum is not None and arr.size:
        problems.extend(_check_enum(field, arr, mask))
    return problems


def _check_enum(field: Field, arr: Array, mask: Array | None) -> list[str]:
    assert field.enum is not None
    flat = np.asarray(arr).ravel()
    if flat.dtype.kind in "biufmM":
        numeric = [v for v in field.enum if not isinstance(v, str)]
        if numeric and flat.dtype.kind in "biu" and flat.size <= _ENUM_SMALL:
            # integers have no nulls; for a few values Python sets beat numpy's call overhead
            allowed_ints = frozenset(np.array(numeric, dtype=flat.dtype).tolist())
            for i, v in enumerate(flat.tolist()):
                if v not in allowed_ints:
                    return [f"value {v!r} at flat index {i} is not one of {list(field.enum)}"]
            return []
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
            return []
        i = int(np.flatnonzero(~ok)[0])
        return [f"value {flat[i].item()!r} at flat index {i} is not one of {list(field.enum)}"]
    allowed = set(field.enum)
    for i, v in enumerate(flat):
        if v is None or v in allowed:
            continue
        return [f"value {v!r} at flat index {i} is not one of {list(field.enum)}"]
    return []


def _check_side(
    fields: Sequence[Field],
    data: Mapping[str, object],
    side: str,
    dims: Dims,
    origin: dict[str, str],
) -> dict[str, Array]:
    problems: list[Problem] = []
    known = {f.name for f in fields}
    for name in data:
        if name not in known:
            problems.append(
                Problem(
                    f"{side} {name!r}",
                    f"is not an {side} of this model; {side}s are: {_names(fields)}"
                    if side == "input"
                    else f"is not in the contract; declared {side}s are: {_names(fields)}",
                )
            )
    out: dict[str, Array] = {}
    for field in fields:
        where = f"{side} {field.name!r}"
        if field.name not in data:
            if not field.optional:
                problems.append(
                    Problem(
                        where,
                        f"is required ({field.dtype}, shape {_shape_text(field)}) but was not given",
                    )
                )
            continue
        try:
            arr = _convert(field, data[field.name])
        except _Refused as exc:
            problems.append(Problem(where, str(exc)))
            continue
        reasons = _check_field(field, arr, dims, origin, where)
        problems.extend(Problem(where, r) for r in reasons)
        if not reasons:
            out[field.name] = arr
    if problems:
        raise ContractError(problems)
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


# --- Arrow (optional) --------------------------------------------------------------------------


def _pyarrow() -> Any:
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
    m = _TIMESTAMP.match(dtype)
    if m:
        return pa.timestamp(m.group(1), tz=m.group(2))
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
                    f"is not an input of this model; inputs are: {_names(contract.inputs)}",
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
        if isinstance(flat, np.ma.MaskedArray):
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


# --- examples ----------------------------------------------------------------------------------


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
    dtype = field.dtype
    if field.enum is not None:
        return _convert(field, [field.enum[0]] * n) if n else _convert(field, [])
    if dtype == "string":
        return np.array(["a"] * n, dtype=object)
    if dtype == "bool":
        flags: Array = np.arange(n) % 2 == 1
        return flags
    if dtype in _INT_BITS:
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
    if isinstance(arr, np.ma.MaskedArray):
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
    if actual.dtype.kind in "fiu" and expected.dtype.kind in "fiu" and not isinstance(actual, np.ma.MaskedArray):
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


__all__ = [
    "Dims",
    "arrow_type",
    "check_arrow_inputs",
    "check_inputs",
    "check_outputs",
    "convert",
    "datetime_unit",
    "decimal_spec",
    "example_inputs",
    "is_tabular_data",
    "max_deviation",
    "outputs_to_arrow",
    "to_jsonable",
]
