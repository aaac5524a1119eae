"""Contract enforcement on real numpy, Arrow and pandas data; every violation names its field."""

from __future__ import annotations

import datetime as dt
import decimal

import numpy as np
import pyarrow as pa
import pytest
from mpkg._internal.contract.contract import Contract
from mpkg._internal.contract.convert import convert
from mpkg._internal.contract.enforce import check_inputs, check_outputs
from mpkg._internal.contract.examples import example_inputs, max_deviation, to_jsonable
from mpkg._internal.contract.tabular import check_arrow_inputs, outputs_to_arrow
from mpkg.errors import ContractError

TENSOR = Contract.from_json(
    {
        "inputs": [
            {"name": "x", "dtype": "float64", "shape": ["batch", 3]},
            {"name": "ids", "dtype": "int64", "shape": ["batch"]},
            {
                "name": "mode",
                "dtype": "string",
                "shape": [],
                "enum": ["fast", "exact"],
                "optional": True,
            },
        ],
        "outputs": [
            {"name": "y", "dtype": "float32", "shape": ["batch", 2]},
            {"name": "label", "dtype": "int64", "shape": ["batch"], "enum": [0, 1]},
        ],
    }
)

TABLE = Contract.from_json(
    {
        "inputs": [
            {"name": "tenure", "dtype": "float64", "shape": ["batch"]},
            {"name": "calls", "dtype": "int64", "shape": ["batch"]},
            {"name": "plan", "dtype": "string", "shape": ["batch"], "enum": ["basic", "premium"]},
            {"name": "charges", "dtype": "float64", "shape": ["batch"], "nullable": True},
            {
                "name": "seen",
                "dtype": "timestamp[us, tz=UTC]",
                "shape": ["batch"],
                "optional": True,
            },
            {"name": "price", "dtype": "decimal128(10,2)", "shape": ["batch"], "optional": True},
        ],
        "outputs": [{"name": "p", "dtype": "float64", "shape": ["batch"]}],
    }
)


def reasons(exc: pytest.ExceptionInfo[ContractError]) -> str:
    return exc.value.diagnostics()


def test_valid_inputs_pass_and_bind_dims() -> None:
    arrays, dims = check_inputs(TENSOR, {"x": np.zeros((4, 3)), "ids": np.arange(4)})
    assert dims == {"batch": 4}
    assert arrays["x"].dtype == np.float64 and arrays["ids"].dtype == np.int64


def test_safe_widening_casts_are_applied() -> None:
    arrays, _ = check_inputs(TENSOR, {"x": np.ones((2, 3), np.float32), "ids": np.array([1, 2], np.int32)})
    assert arrays["x"].dtype == np.float64
    assert arrays["ids"].dtype == np.int64
    assert arrays["ids"].tolist() == [1, 2]


@pytest.mark.parametrize(
    ("value", "fragment"),
    [
        (np.array([1, 2], np.uint64), "casting uint64 to int64 may lose values"),
        (np.array([1.0, 2.0]), "expected dtype int64, got float64"),
        (np.array(["a", "b"]), "expected dtype int64, got str"),
        (np.array([True, False]), "casting bool to int64"),
    ],
)
def test_lossy_or_wrong_kind_is_refused(value: np.ndarray, fragment: str) -> None:
    with pytest.raises(ContractError) as exc:
        check_inputs(TENSOR, {"x": np.zeros((2, 3)), "ids": value})
    assert "input 'ids'" in reasons(exc) and fragment in reasons(exc)


def test_float64_for_float32_output_is_refused() -> None:
    with pytest.raises(ContractError) as exc:
        check_outputs(TENSOR, {"y": np.zeros((2, 2)), "label": np.zeros(2, np.int64)}, {"batch": 2})
    assert "output 'y'" in reasons(exc) and "got float64" in reasons(exc)


def test_unknown_and_missing_names() -> None:
    with pytest.raises(ContractError) as exc:
        check_inputs(TENSOR, {"x": np.zeros((2, 3)), "extra": [1]})
    text = reasons(exc)
    assert "input 'extra': is not an input of this model" in text
    assert "input 'ids': is required" in text
    assert "input 'mode'" not in text  # optional inputs may be absent
    assert len(exc.value.problems) == 2


def test_named_dims_must_agree_across_inputs() -> None:
    with pytest.raises(ContractError) as exc:
        check_inputs(TENSOR, {"x": np.zeros((3, 3)), "ids": np.arange(2)})
    assert "input 'ids': dim 0 ('batch') is 2, but 'batch' is 3 in input 'x'" in reasons(exc)


def test_fixed_dims_and_rank() -> None:
    with pytest.raises(ContractError) as exc:
        check_inputs(TENSOR, {"x": np.zeros((2, 4)), "ids": np.zeros((2, 1), np.int64)})
    text = reasons(exc)
    assert "input 'x': dim 1 must be 3" in text
    assert "input 'ids': expected 1 dims [batch], got shape [2, 1]" in text


def test_output_dims_must_agree_with_inputs() -> None:
    with pytest.raises(ContractError) as exc:
        check_outputs(
            TENSOR,
            {"y": np.zeros((5, 2), np.float32), "label": np.zeros(5, np.int64)},
            {"batch": 2},
        )
    assert "output 'y': dim 0 ('batch') is 5, but 'batch' is 2 in the inputs" in reasons(exc)


def test_enums_are_checked_for_strings_and_numbers() -> None:
    with pytest.raises(ContractError) as exc:
        check_inputs(TENSOR, {"x": np.zeros((1, 3)), "ids": [1], "mode": "slow"})
    assert "input 'mode': value 'slow'" in reasons(exc) and "['fast', 'exact']" in reasons(exc)
    with pytest.raises(ContractError) as exc2:
        check_outputs(TENSOR, {"y": np.zeros((2, 2), np.float32), "label": np.array([0, 7])}, {"batch": 2})
    assert "output 'label': value 7 at flat index 1 is not one of [0, 1]" in reasons(exc2)


def test_nan_refused_in_non_nullable_outputs_and_inputs() -> None:
    y = np.zeros((2, 2), np.float32)
    y[1, 0] = np.nan
    with pytest.raises(ContractError) as exc:
        check_outputs(TENSOR, {"y": y, "label": np.zeros(2, np.int64)}, {})
    assert "output 'y': holds 1 null/NaN value(s) (first at flat index 2)" in reasons(exc)
    with pytest.raises(ContractError):
        check_inputs(TENSOR, {"x": [[np.nan, 0, 0]], "ids": [1]})


def test_unknown_outputs_and_non_mapping_results() -> None:
    with pytest.raises(ContractError) as exc:
        check_outputs(TENSOR, {"y": np.zeros((1, 2), np.float32), "label": [0], "debug": [1]}, {})
    assert "output 'debug': is not in the contract; declared outputs are: y, label" in reasons(exc)
    with pytest.raises(ContractError) as exc2:
        check_outputs(TENSOR, [np.zeros(1)], {})
    assert "expected a mapping" in reasons(exc2)


def test_python_lists_convert_by_value() -> None:
    arrays, _ = check_inputs(TENSOR, {"x": [[1, 2, 3]], "ids": [7]})
    assert arrays["x"].dtype == np.float64 and arrays["ids"].dtype == np.int64
    field = TENSOR.output("y")
    assert field is not None
    assert convert(field, [[0.1, 0.2]], "output").dtype == np.float32  # decimal literals round
    with pytest.raises(ContractError, match=r"input 'ids': expected int64, got floats"):
        check_inputs(TENSOR, {"x": [[1, 2, 3]], "ids": [1.5]})
    with pytest.raises(ContractError, match=r"outside the int8 range"):
        convert(
            Contract.from_json(
                {
                    "inputs": [{"name": "a", "dtype": "int8", "shape": [1]}],
                    "outputs": [{"name": "b", "dtype": "int8", "shape": [1]}],
                }
            ).inputs[0],
            [300],
        )
    with pytest.raises(ContractError, match=r"not a rectangular list"):
        check_inputs(TENSOR, {"x": [[1, 2, 3], [1, 2]], "ids": [1, 2]})
    with pytest.raises(ContractError, match=r"expected booleans|expected int64, got booleans"):
        check_inputs(TENSOR, {"x": [[1, 2, 3]], "ids": [True]})


def test_strings_must_be_str() -> None:
    field = TABLE.input("plan")
    assert field is not None
    assert convert(field, np.array(["basic"])).dtype == object
    with pytest.raises(ContractError, match=r"input 'plan': element 1 is int"):
        convert(field, ["basic", 3])
    with pytest.raises(ContractError, match=r"element 0 is null; the field is not nullable"):
        convert(field, [None])


def test_dates_and_decimals() -> None:
    seen = TABLE.input("seen")
    price = TABLE.input("price")
    assert seen is not None and price is not None
    arr = convert(seen, ["2024-01-02T03:04:05", dt.datetime(2024, 1, 1)])
    assert arr.dtype == np.dtype("datetime64[us]")
    assert convert(seen, np.array(["2024-01-01"], "datetime64[s]")).dtype == np.dtype("datetime64[us]")
    with pytest.raises(ContractError, match=r"finer unit"):
        convert(seen, np.array([1], "datetime64[ns]"))
    assert convert(price, ["1.25", 3])[0] == decimal.Decimal("1.25")
    with pytest.raises(ContractError, match=r"more than 2 decimal places"):
        convert(price, ["1.255"])
    with pytest.raises(ContractError, match=r"floats are inexact"):
        convert(price, [1.25])


def _churn_batch(**override: object) -> pa.RecordBatch:
    cols: dict[str, object] = {
        "tenure": pa.array([1.0, 24.0, 60.0]),
        "calls": pa.array([0, 3, 1], pa.int32()),
        "plan": pa.array(["basic", "premium", "basic"]).dictionary_encode(),
        "charges": pa.array([10.0, None, 30.5]),
    }
    cols.update(override)
    return pa.RecordBatch.from_pydict(cols)


def test_arrow_batch_validated_and_widened() -> None:
    arrays, dims = check_arrow_inputs(TABLE, _churn_batch())
    assert dims == {"batch": 3}
    assert arrays["calls"].dtype == np.int64  # int32 -> int64 is a safe widening
    assert arrays["plan"].tolist() == ["basic", "premium", "basic"]  # dictionary decoded
    assert np.isnan(arrays["charges"][1])  # nulls of a nullable float column arrive as NaN
    table = pa.Table.from_batches([_churn_batch(), _churn_batch()])
    arrays, dims = check_arrow_inputs(TABLE, table)
    assert dims == {"batch": 6}


@pytest.mark.parametrize(
    ("override", "fragment"),
    [
        (
            {"calls": pa.array([0.0, 1.5, 2.0])},
            "input 'calls': casting float64 to int64 may lose values",
        ),
        (
            {"tenure": pa.array([1.0, None, 2.0])},
            "input 'tenure': holds 1 null(s); the column is not nullable",
        ),
        ({"plan": pa.array([1, 2, 3])}, "input 'plan': expected string, got int64"),
        ({"plan": pa.array(["basic", "gold", "basic"])}, "input 'plan': value 'gold'"),
        ({"extra": pa.array([1, 2, 3])}, "input 'extra': is not an input of this model"),
        ({"seen": pa.array([1, 2, 3], pa.timestamp("us"))}, "input 'seen': time zone None differs"),
        (
            {"price": pa.array([decimal.Decimal("1.234")] * 3, pa.decimal128(6, 3))},
            "does not fit decimal128(10, 2)",
        ),
    ],
)
def test_arrow_violations_name_the_column(override: dict[str, object], fragment: str) -> None:
    with pytest.raises(ContractError) as exc:
        check_arrow_inputs(TABLE, _churn_batch(**override))
    assert fragment in reasons(exc)


def test_arrow_missing_required_column() -> None:
    batch = _churn_batch().drop_columns(["calls"])
    with pytest.raises(ContractError, match=r"input 'calls': is required"):
        check_arrow_inputs(TABLE, batch)


def test_arrow_timestamps_and_decimals_convert() -> None:
    batch = _churn_batch(
        seen=pa.array([0, 1, 2], pa.timestamp("ms", tz="UTC")),
        price=pa.array([decimal.Decimal("1.5")] * 3, pa.decimal128(5, 1)),
    )
    arrays, _ = check_arrow_inputs(TABLE, batch)
    assert arrays["seen"].dtype == np.dtype("datetime64[us]")
    assert arrays["price"][0] == decimal.Decimal("1.50")


def test_pandas_dataframe_is_accepted() -> None:
    pd = pytest.importorskip("pandas")
    frame = pd.DataFrame({"tenure": [1.0, 2.0], "calls": [1, 2], "plan": ["basic", "basic"], "charges": [None, 5.0]})
    arrays, _ = check_arrow_inputs(TABLE, frame)
    assert arrays["calls"].dtype == np.int64 and np.isnan(arrays["charges"][0])


def test_outputs_to_arrow_nested_shapes() -> None:
    batch = outputs_to_arrow(TENSOR, {"y": np.arange(4, dtype=np.float32).reshape(2, 2), "label": np.array([0, 1])})
    assert batch.schema.names == ["y", "label"]
    assert batch.column(0).to_pylist() == [[0.0, 1.0], [2.0, 3.0]]


def test_example_inputs_are_valid_and_deterministic() -> None:
    for contract in (TENSOR, TABLE):
        first = example_inputs(contract)
        arrays, dims = check_inputs(contract, first)
        assert dims == {"batch": 2}
        assert to_jsonable(arrays[next(iter(arrays))]) == to_jsonable(example_inputs(contract)[next(iter(arrays))])
    assert example_inputs(TABLE)["plan"].tolist() == ["basic", "basic"]
    assert "mode" not in example_inputs(TENSOR)  # optional inputs are left out


def test_to_jsonable_round_trips_through_convert() -> None:
    field = TABLE.input("charges")
    assert field is not None
    data = np.array([1.5, np.nan])
    assert to_jsonable(data) == [1.5, None]
    back = convert(field, to_jsonable(data))
    assert np.isnan(back[1]) and back[0] == 1.5


def test_max_deviation_reports_largest_difference() -> None:
    field = TENSOR.outputs[0]
    a = np.array([[1.0, 2.0]], np.float32)
    assert max_deviation(field, a, a.copy(), 1e-5, 1e-6) is None
    reason = max_deviation(field, a, np.array([[1.0, 2.5]], np.float32), 1e-5, 1e-6)
    assert reason is not None and "by up to 0.5" in reason and "1 of 2 values" in reason


@pytest.mark.parametrize(
    "name", ["mean radius", "petal.length", "sepal length (cm)", "température", "年齢", "a|b`c", "🙂", "x" * 256]
)
def test_any_name_real_data_uses_is_a_contract_name(name: str) -> None:
    contract = Contract.from_json(
        {
            "inputs": [{"name": name, "dtype": "float64", "shape": [-1]}],
            "outputs": [{"name": "y", "dtype": "float64", "shape": [-1]}],
        }
    )
    arrays, _ = check_inputs(contract, {name: [1.0, 2.0]})
    assert list(arrays) == [name]
    with pytest.raises(ContractError) as exc:
        check_inputs(contract, {})
    assert f"input {name!r}: is required" in exc.value.diagnostics()  # quoted in every message


@pytest.mark.parametrize(
    ("name", "shown"),
    [
        ("", "1-256 characters"),
        ("x" * 257, "1-256 characters"),
        ("a\nb", "'\\n'"),
        ("a\x85", "'\\x85'"),
        ("admin\u202egnp.exe", "'\\u202e'"),
        ("a\u2028", "'\\u2028'"),
        ("\ufeffid", "'\\ufeff'"),
        ("a\ud800", "'\\ud800'"),
    ],
)
def test_names_that_rewrite_their_line_are_refused(name: str, shown: str) -> None:
    doc = {
        "inputs": [{"name": name, "dtype": "float64", "shape": [-1]}],
        "outputs": [{"name": "y", "dtype": "float64", "shape": [-1]}],
    }
    with pytest.raises(ContractError) as exc:
        Contract.from_json(doc)
    assert "contract.inputs[0].name:" in exc.value.diagnostics() and shown in exc.value.diagnostics()


def _columns(extra: str | None) -> Contract:
    doc: dict[str, object] = {
        "inputs": [{"name": "mean radius", "dtype": "float64", "shape": ["batch"]}],
        "outputs": [{"name": "y", "dtype": "float64", "shape": ["batch"]}],
    }
    if extra is not None:
        doc["extra"] = extra
    return Contract.from_json(doc)


def test_extra_inputs_are_refused_by_default_and_dropped_when_ignored() -> None:
    table = pa.table({"mean radius": [1.0, 2.0], "patient id": ["a", "b"]})
    refusing, ignoring = _columns(None), _columns("ignore")
    assert refusing.extra == "refuse" and "extra" not in refusing.to_json()
    assert ignoring.to_json()["extra"] == "ignore"
    for check in (lambda c: check_arrow_inputs(c, table), lambda c: check_inputs(c, table.to_pydict())):
        with pytest.raises(ContractError) as exc:
            check(refusing)
        assert "input 'patient id': is not an input of this model" in exc.value.diagnostics()
        arrays, _ = check(ignoring)
        assert list(arrays) == ["mean radius"]
    arrays, _ = check_arrow_inputs(ignoring, table.to_pandas())
    assert list(arrays) == ["mean radius"]


@pytest.mark.parametrize("value", ["refuse", "IGNORE", True, 0])
def test_extra_other_than_ignore_is_refused(value: object) -> None:
    with pytest.raises(ContractError) as exc:
        _columns(value)  # type: ignore[arg-type]
    assert "contract.extra:" in exc.value.diagnostics()


def test_ignored_dataframe_columns_are_dropped_before_conversion() -> None:
    """An extra column Arrow cannot convert (Python objects) never reaches the conversion."""
    import pandas as pd

    frame = pd.DataFrame({"mean radius": [1.0, 2.0], "raw": [{"a": 1}, object()]})
    arrays, _ = check_arrow_inputs(_columns("ignore"), frame)
    assert list(arrays) == ["mean radius"]


def test_example_of_an_enum_the_dtype_cannot_hold_is_a_contract_error() -> None:
    """The parser takes an enum of strings on an int64 field; the example generator used to let a
    private exception escape (``mpkg build`` then blamed the package code). Now it names the input."""
    contract = Contract.from_json(
        {
            "inputs": [{"name": "x", "dtype": "int64", "shape": [-1], "enum": ["a", "b"]}],
            "outputs": [{"name": "y", "dtype": "float32", "shape": [-1]}],
        }
    )
    with pytest.raises(ContractError) as exc:
        example_inputs(contract)
    assert str(exc.value.problems[0]) == "input 'x': expected int64, got strings"


def test_refusals_of_several_fields_are_raised_together() -> None:
    """One error path: conversion, shape and enum problems of different fields come back in one ContractError."""
    with pytest.raises(ContractError) as exc:
        check_inputs(TABLE, {"tenure": ["x"], "plan": ["gold"], "charges": [[1.0]], "extra": [1]})
    wheres = [p.where for p in exc.value.problems]
    assert wheres == ["input 'extra'", "input 'tenure'", "input 'calls'", "input 'plan'", "input 'charges'"]
