"""The input/output contract: what a package accepts and what it promises to return.

This module holds the data model and its strict parser; enforcement against
data lives in :mod:`mpkg._internal.contract.enforce`, the dtype grammar in
:mod:`mpkg._internal.contract.dtypes`. Names follow spec/format.md §6.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from mpkg._internal.contract.dtypes import TENSOR_DTYPES, is_valid_dtype
from mpkg.errors import ContractError, Problem

Dim = int | str
Scalar = bool | int | float | str


@dataclass(frozen=True)
class Field:
    """One named input or output."""

    name: str
    dtype: str
    shape: tuple[Dim, ...]
    optional: bool = False
    nullable: bool = False
    enum: tuple[Scalar, ...] | None = None
    description: str = ""

    @property
    def is_column(self) -> bool:
        """A tabular column: one dynamic (batch) dimension."""
        return (len(self.shape) == 1 and not isinstance(self.shape[0], int)) or self.shape == (-1,)

    def to_json(self) -> dict[str, Any]:
        """The contract.json form of this field."""
        out: dict[str, Any] = {"name": self.name, "dtype": self.dtype, "shape": list(self.shape)}
        if self.optional:
            out["optional"] = True
        if self.nullable:
            out["nullable"] = True
        if self.enum is not None:
            out["enum"] = list(self.enum)
        if self.description:
            out["description"] = self.description
        return out


EXTRA_POLICIES = ("refuse", "ignore")  # what a request's inputs that the contract lacks get


@dataclass(frozen=True)
class Contract:
    """A package's interface: what clients send (``inputs``) and receive (``outputs``).

    ``extra`` says what happens to inputs a request gives that the contract does not name:
    ``refuse`` (the default) or ``ignore`` (dropped before any package code runs).
    """

    inputs: tuple[Field, ...]
    outputs: tuple[Field, ...]
    extra: str = "refuse"

    @property
    def is_tabular(self) -> bool:
        """All inputs are columns: predict also takes Arrow tables / DataFrames."""
        return bool(self.inputs) and all(f.is_column for f in self.inputs)

    def input(self, name: str) -> Field | None:
        """The input field named ``name``, or None."""
        return next((f for f in self.inputs if f.name == name), None)

    def output(self, name: str) -> Field | None:
        """The output field named ``name``, or None."""
        return next((f for f in self.outputs if f.name == name), None)

    def to_json(self) -> dict[str, Any]:
        """The contract's JSON form; ``extra`` appears only when it is not the default."""
        out: dict[str, Any] = {
            "inputs": [f.to_json() for f in self.inputs],
            "outputs": [f.to_json() for f in self.outputs],
        }
        if self.extra != "refuse":
            out["extra"] = self.extra
        return out

    @classmethod
    def from_json(cls, doc: object, where: str = "contract") -> Contract:
        """Parse strictly; every problem is reported at once, each naming its field path."""
        problems: list[Problem] = []
        if not isinstance(doc, Mapping):
            raise ContractError("must be a JSON object with 'inputs' and 'outputs'", where)
        unknown = set(doc) - {"inputs", "outputs", "extra"}
        if unknown:
            problems.append(
                Problem(where, f"unknown keys {sorted(unknown)}; only 'inputs', 'outputs' and 'extra' are allowed")
            )
        # Only the non-default value is written, so one meaning has one JSON form.
        extra = "ignore" if doc.get("extra") == "ignore" else "refuse"
        if "extra" in doc and extra != "ignore":
            problems.append(Problem(f"{where}.extra", f"{doc['extra']!r} is not 'ignore' (leave it out to refuse)"))
        sides: dict[str, tuple[Field, ...]] = {}
        for side in ("inputs", "outputs"):
            raw = doc.get(side)
            if not isinstance(raw, list) or not raw:
                problems.append(Problem(f"{where}.{side}", "must be a non-empty list of fields"))
                sides[side] = ()
                continue
            fields = []
            seen: set[str] = set()
            for i, item in enumerate(raw):
                field = _parse_field(item, f"{where}.{side}[{i}]", problems)
                if field is None:
                    continue
                if field.name in seen:
                    problems.append(Problem(f"{where}.{side}[{i}].name", f"duplicate field name {field.name!r}"))
                seen.add(field.name)
                fields.append(field)
            sides[side] = tuple(fields)
        if problems:
            raise ContractError(problems)
        return cls(inputs=sides["inputs"], outputs=sides["outputs"], extra=extra)


# A field name is any name real data uses ("mean radius", "petal.length", "température"): 1 to
# 256 characters without control characters, line or paragraph separators, bidirectional
# controls or a byte-order mark, which would let a name rewrite the line it is shown on.
# Messages quote names (repr). The same class is schemas/contract.schema.json's pattern.
MAX_NAME = 256
_NOT_IN_NAME = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u2028-\u202e\u2066-\u2069\ufeff\ud800-\udfff]")
_DIM_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}\Z", re.ASCII)
_FIELD_KEYS = {"name", "dtype", "shape", "optional", "nullable", "enum", "description"}


def _parse_field(item: object, where: str, problems: list[Problem]) -> Field | None:
    if not isinstance(item, Mapping):
        problems.append(Problem(where, "must be an object with name, dtype and shape"))
        return None
    before = len(problems)
    extra = set(item) - _FIELD_KEYS
    if extra:
        problems.append(Problem(where, f"unknown keys {sorted(extra)}; allowed: {sorted(_FIELD_KEYS)}"))
    name = item.get("name")
    reason = name_problem(name)
    if reason:
        problems.append(Problem(f"{where}.name", reason))
    dtype = item.get("dtype")
    if not isinstance(dtype, str) or not is_valid_dtype(dtype):
        problems.append(
            Problem(
                f"{where}.dtype",
                f"{dtype!r} is not a supported dtype; use one of {', '.join(TENSOR_DTYPES)} "
                "or an Arrow type (timestamp[us], date32, decimal128(p,s))",
            )
        )
    shape = item.get("shape")
    dims: list[Dim] = []
    if not isinstance(shape, list) or len(shape) > 32:
        problems.append(Problem(f"{where}.shape", "must be a list of at most 32 dims (ints, -1 or dim names)"))
    else:
        for j, d in enumerate(shape):
            if isinstance(d, bool) or not (
                (isinstance(d, int) and (d >= 0 or d == -1)) or (isinstance(d, str) and _DIM_NAME.match(d))
            ):
                problems.append(Problem(f"{where}.shape[{j}]", f"{d!r} is not a dim: use a size >= 0, -1 or a name"))
            else:
                dims.append(d)
    flags = {}
    for key in ("optional", "nullable"):
        value = item.get(key, False)
        if not isinstance(value, bool):
            problems.append(Problem(f"{where}.{key}", "must be true or false"))
        flags[key] = bool(value)
    enum = item.get("enum")
    enum_values: tuple[Scalar, ...] | None = None
    if "enum" in item:
        if not isinstance(enum, list) or not enum or not all(isinstance(v, (bool, int, float, str)) for v in enum):
            problems.append(Problem(f"{where}.enum", "must be a non-empty list of scalars"))
        elif len(set(map(repr, enum))) != len(enum):
            problems.append(Problem(f"{where}.enum", "values must be unique"))
        else:
            enum_values = tuple(enum)
    description = item.get("description", "")
    if not isinstance(description, str):
        problems.append(Problem(f"{where}.description", "must be a string"))
    if len(problems) != before:
        return None
    assert isinstance(name, str) and isinstance(dtype, str) and isinstance(description, str)
    return Field(
        name=name,
        dtype=dtype,
        shape=tuple(dims),
        optional=flags["optional"],
        nullable=flags["nullable"],
        enum=enum_values,
        description=description,
    )


def name_problem(name: object) -> str | None:
    """Why ``name`` cannot name a contract field, or None when it can."""
    if not isinstance(name, str) or not 1 <= len(name) <= MAX_NAME:
        return f"must be a name of 1-{MAX_NAME} characters"
    bad = _NOT_IN_NAME.search(name)
    if bad:
        return (
            f"{name!r} holds {bad.group()!r}: names may not hold control characters, line separators, "
            "bidirectional controls or unpaired surrogates"
        )
    return None


def fields_by_name(fields: Sequence[Field]) -> dict[str, Field]:
    """Fields keyed by name, for lookups per request."""
    return {f.name: f for f in fields}
