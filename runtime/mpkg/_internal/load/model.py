"""``mpkg.load``: verify a package, then load it and predict under its contract.

Order matters and is fixed: the package is verified completely (layout, manifest,
signatures, every file's digest) on one open file, and only then is anything mapped or
imported; package code never runs for a package that failed verification. Weights are
memory-mapped from the .mpkg itself (no extraction, no copy); inputs are checked against
the contract before any package code runs and outputs after.

The same :class:`Model` runs a model from source (``Model.from_parts``) so the builder can
record the example's outputs before the package exists.
"""

from __future__ import annotations

import contextlib
import json
import math
import mmap
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from mpkg._internal.contract import enforce
from mpkg._internal.contract.contract import Contract
from mpkg._internal.contract.dtypes import DTYPE_OF_NUMPY, DTYPE_OF_ONNX, NUMPY_DTYPE, NUMPY_OF_ONNX_ELEM
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.manifest import ENTRY_POINTS, FileEntry, Manifest
from mpkg._internal.load.codeimport import PackageCode, private_prefix
from mpkg._internal.load.environment import require_environment
from mpkg._internal.load.weights import TensorMap, map_safetensors, onnx_external_tensors
from mpkg._internal.trust.verify import Policy, VerificationResult, payload_bytes, verified
from mpkg.errors import ContractError, FormatError, MpkgError, Problem, VerificationError

Array = np.ndarray[Any, Any]


@dataclass(frozen=True)
class ModelCard:
    text: str
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Example:
    """The stored input example and the outputs the builder recorded for it."""

    inputs: Mapping[str, Any]
    outputs: Mapping[str, Any]
    rtol: float = 1e-5
    atol: float = 1e-6
    where: str = "example/example.json"

    @classmethod
    def from_bytes(cls, data: bytes, rtol: float, atol: float, where: str) -> Example:
        try:
            doc = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as exc:
            raise FormatError(f"is not valid JSON ({exc})", where) from None
        if (
            not isinstance(doc, dict)
            or set(doc) != {"inputs", "outputs"}
            or not all(isinstance(doc[k], dict) for k in doc)
        ):
            raise FormatError('must be {"inputs": {name: data}, "outputs": {name: data}}', where)
        return cls(doc["inputs"], doc["outputs"], float(rtol), float(atol), where)


@dataclass(frozen=True)
class OnnxModel:
    """An ONNX model's bytes and its external data files, by the location the model uses
    (relative to the model file's folder). Buffers may be memoryviews over a mmap."""

    model: bytes
    external: Mapping[str, Any] = field(default_factory=dict)


Weights = OnnxModel | TensorMap


class _OnnxRunner:
    """An onnxruntime session. External initializers are handed to onnxruntime as OrtValues
    over the mapped bytes (``add_external_initializers``: no copy by mpkg); anything that
    cannot be mapped that way is given as in-memory files, which onnxruntime copies."""

    def __init__(self, onnx: OnnxModel, where: str) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.log_severity_level = 3
        self.mapped: list[str] = []
        self._keep: list[object] = []
        values = []
        external = onnx_external_tensors(onnx.model) if onnx.external else []
        for t in external:
            buf = onnx.external.get(t.location)
            dtype_str = NUMPY_OF_ONNX_ELEM.get(t.elem_type)
            if buf is None or dtype_str is None:
                continue
            dtype = np.dtype(dtype_str)
            count = math.prod(t.dims)
            nbytes = count * dtype.itemsize
            if (t.length not in (-1, nbytes)) or t.offset < 0 or t.offset + nbytes > len(buf):
                continue
            arr = np.frombuffer(buf, dtype=dtype, count=count, offset=t.offset).reshape(t.dims)
            if arr.ctypes.data % max(dtype.alignment, 1):
                continue
            self.mapped.append(t.name)
            self._keep.append(arr)
            values.append(ort.OrtValue.ortvalue_from_numpy(arr))
        if self.mapped:
            options.add_external_initializers(self.mapped, values)
        self._keep.append(values)
        if onnx.external and (not external or len(self.mapped) < len(external)):
            names = list(onnx.external)
            buffers = [onnx.external[n] for n in names]
            options.add_external_initializers_from_files_in_memory(names, buffers, [len(b) for b in buffers])
        try:
            self.session = ort.InferenceSession(onnx.model, options, providers=["CPUExecutionProvider"])
        except Exception as exc:  # onnxruntime raises its own exception types
            raise FormatError(f"onnxruntime cannot load the model: {exc}", where) from None
        self.inputs = {i.name: (DTYPE_OF_ONNX.get(i.type, i.type), list(i.shape)) for i in self.session.get_inputs()}
        # What a well-formed feed looks like, precomputed: the per-call check is a few compares.
        self._expect = [
            (
                name,
                np.dtype(NUMPY_DTYPE[dtype]) if dtype in NUMPY_DTYPE and dtype != "string" else None,
                len(dims),
                tuple((i, d) for i, d in enumerate(dims) if isinstance(d, int)),
            )
            for name, (dtype, dims) in self.inputs.items()
        ]
        self.input_names = list(self.inputs)
        self.output_names = [o.name for o in self.session.get_outputs()]
        self.where = where

    def run(self, feeds: Mapping[str, Any], boundary: str = "contract → graph inputs") -> dict[str, Any]:
        """Run the graph on ``feeds``; a feed the graph cannot take is refused naming ``boundary``
        (what produced the feeds), the input, and what the graph takes."""
        arrays = {k: np.ma.getdata(v) if isinstance(v, np.ma.MaskedArray) else v for k, v in feeds.items()}
        if not self._feeds_fit(arrays):
            reasons = self._feed_problems(arrays)
            if reasons:
                raise MpkgError([Problem(f"{self.where}: {boundary}", r) for r in reasons])
        try:
            results = self.session.run(None, arrays)
        except Exception as exc:  # onnxruntime's InvalidArgument, Fail, ...
            raise MpkgError(f"onnxruntime failed: {exc}", self.where) from None
        return dict(zip(self.output_names, results, strict=True))

    def _feeds_fit(self, feeds: Mapping[str, Any]) -> bool:
        """The fast path: every graph input given with its dtype, rank and fixed dims, nothing else."""
        if len(feeds) != len(self._expect):
            return False
        for name, dtype, rank, fixed in self._expect:
            value = feeds.get(name)
            if not isinstance(value, np.ndarray) or value.ndim != rank:
                return False
            if (value.dtype != dtype) if dtype is not None else value.dtype.kind not in "OUS":
                return False
            shape = value.shape
            for i, d in fixed:
                if shape[i] != d:
                    return False
        return True

    def _feed_problems(self, feeds: Mapping[str, Any]) -> list[str]:
        """Names, dtypes, ranks and fixed dims of numpy feeds against the graph's inputs."""
        reasons = [
            f"{name!r} is not a graph input; the graph takes {self.input_names}"
            for name in feeds
            if name not in self.inputs
        ]
        for name, (dtype, dims) in self.inputs.items():
            value = feeds.get(name)
            if value is None:
                reasons.append(f"graph input {name!r} ({dtype} {dims}) was not given")
                continue
            if not isinstance(value, np.ndarray):
                continue  # onnxruntime converts what it can, and says what it cannot
            kind = value.dtype.kind
            got = "string" if kind in "OUS" else DTYPE_OF_NUMPY.get((kind, value.dtype.itemsize))
            fixed_ok = value.ndim == len(dims) and all(
                not isinstance(d, int) or d == n for d, n in zip(dims, value.shape, strict=True)
            )
            if (got != dtype and dtype in NUMPY_DTYPE) or not fixed_ok:  # bfloat16: onnxruntime decides
                shown = got or str(value.dtype)
                reasons.append(f"{name!r} is {shown} {list(value.shape)}; the graph takes {dtype} {dims}")
        return reasons


class Model:
    """A loaded package: verified, mapped, its code imported; predict under its contract."""

    def __init__(
        self,
        *,
        name: str,
        version: str,
        digest: str,
        contract: Contract,
        model_format: str,
        weights: Weights,
        code: PackageCode | None,
        functions: Mapping[str, Callable[..., Any]],
        card: ModelCard | None,
        example: Example | None,
        manifest: Manifest | None,
        keepalive: Sequence[object] = (),
    ) -> None:
        self.name = name
        self.version = version
        self.digest = digest
        self.contract = contract
        self.model_format = model_format
        self.card = card
        self.example = example
        self.manifest = manifest
        self.code = code
        self._functions = dict(functions)
        self._keepalive = list(keepalive)
        self._runner: _OnnxRunner | None = None
        self.weights: TensorMap | None = None
        where = f"{name}@{version}: model"
        if model_format == "onnx":
            if not isinstance(weights, OnnxModel):
                raise TypeError("an ONNX model needs OnnxModel weights")
            self._runner = _OnnxRunner(weights, where)
            if "preprocess" not in self._functions:
                missing = [f.name for f in contract.inputs if f.name not in self._runner.input_names]
                if missing:
                    raise FormatError(
                        f"contract inputs {missing} are not ONNX graph inputs "
                        f"{self._runner.input_names} "
                        "and the code defines no preprocess",
                        where,
                    )
        elif model_format == "safetensors":
            if not isinstance(weights, TensorMap):
                raise TypeError("a safetensors model needs a TensorMap")
            if "predict" not in self._functions:
                raise FormatError(
                    "a safetensors package needs a code module defining predict(weights, inputs)",
                    "code",
                )
            self.weights = weights
        else:
            raise FormatError(f"model format {model_format!r} is not supported", "model.format")

    # --- construction ------------------------------------------------------------------------

    @classmethod
    def from_parts(
        cls,
        *,
        name: str,
        version: str,
        digest: str,
        contract: Contract,
        model_format: str,
        weights: Weights,
        code_files: Mapping[str, bytes] | None = None,
        code_module: str | None = None,
        code_location: str | None = None,
        entry_points: Mapping[str, Sequence[str]] | None = None,
        card: ModelCard | None = None,
        example: Example | None = None,
        manifest: Manifest | None = None,
        keepalive: Sequence[object] = (),
    ) -> Model:
        """A model from its parts, with or without a package. ``code_files`` maps paths
        relative to the code root to bytes; ``code_location`` is where they appear to be
        (``__file__``); ``entry_points`` None means: whichever of preprocess/postprocess/predict
        the module defines."""
        code = None
        functions: dict[str, Callable[..., Any]] = {}
        if code_module is not None:
            code = PackageCode(code_files or {}, private_prefix(digest), f"{name}@{version}", code_location)
        try:
            if code is not None and code_module is not None:
                functions = _entry_functions(code.import_module(code_module), code_module, entry_points, model_format)
            return cls(
                name=name,
                version=version,
                digest=digest,
                contract=contract,
                model_format=model_format,
                weights=weights,
                code=code,
                functions=functions,
                card=card,
                example=example,
                manifest=manifest,
                keepalive=keepalive,
            )
        except BaseException:
            if code is not None:
                code.close()  # a model that failed to load leaves no modules behind
            raise

    # --- prediction -----------------------------------------------------------------------------

    @property
    def session(self) -> Any:
        """The onnxruntime InferenceSession (ONNX packages), else None."""
        return self._runner.session if self._runner else None

    @property
    def mapped_initializers(self) -> list[str]:
        """ONNX initializers served zero-copy from the mapped package."""
        return list(self._runner.mapped) if self._runner else []

    def predict(self, inputs: Any) -> dict[str, Array]:
        """Run the model on ``inputs`` (name -> array-like; for tabular packages also a pyarrow
        Table/RecordBatch or pandas DataFrame). Raises ContractError naming the field."""
        if enforce.is_tabular_data(inputs):
            arrays, dims = enforce.check_arrow_inputs(self.contract, inputs)
        else:
            arrays, dims = enforce.check_inputs(self.contract, inputs)
        return enforce.check_outputs(self.contract, self._run(arrays), dims)

    def predict_arrow(self, batch: Any) -> Any:
        """A pyarrow Table/RecordBatch in, a pyarrow RecordBatch of the outputs out."""
        arrays, dims = enforce.check_arrow_inputs(self.contract, batch)
        outputs = enforce.check_outputs(self.contract, self._run(arrays), dims)
        return enforce.outputs_to_arrow(self.contract, outputs)

    def _call(self, entry: str, *args: Any) -> Mapping[str, Any]:
        try:
            result = self._functions[entry](*args)
        except MpkgError:
            raise
        except Exception as exc:  # the package's own code: say which entry point, keep the cause
            raise MpkgError(f"{entry} raised {type(exc).__name__}: {exc}", f"{self.name}@{self.version}: code") from exc
        if not isinstance(result, Mapping):
            raise MpkgError(
                f"{entry} returned {type(result).__name__}; it must return a dict of name -> array",
                f"{self.name}@{self.version}: code",
            )
        return result

    def _run(self, arrays: Mapping[str, Array]) -> Mapping[str, Any]:
        x: Mapping[str, Any] = dict(arrays)
        y: Mapping[str, Any]
        if "preprocess" in self._functions:
            x = self._call("preprocess", dict(x))
        if self._runner is not None:
            y = self._runner.run(
                x, "preprocess → graph inputs" if "preprocess" in self._functions else "contract → graph inputs"
            )
        else:
            y = self._call("predict", self.weights, dict(x))
        if "postprocess" in self._functions:
            y = self._call("postprocess", dict(y))
        return y

    # --- examples -------------------------------------------------------------------------------

    def record_example(self, inputs: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The example.json document for ``inputs`` (default: ``example_inputs(contract)``):
        the inputs and the outputs this model produces for them, as JSON-ready lists."""
        data = dict(inputs) if inputs is not None else enforce.example_inputs(self.contract)
        arrays, dims = _at("example → contract inputs", enforce.check_inputs, self.contract, data)
        produced = self._run(arrays)
        last = next((e for e in ("postprocess", "predict") if e in self._functions), "graph outputs")
        outputs = _at(f"{last} → contract outputs", enforce.check_outputs, self.contract, produced, dims)
        return {
            "inputs": {k: enforce.to_jsonable(v) for k, v in arrays.items()},
            "outputs": {k: enforce.to_jsonable(v) for k, v in outputs.items()},
        }

    def smoke_test(self) -> None:
        """Replay the stored example; VerificationError naming each output and its deviation."""
        ex = self.example
        if ex is None:
            return
        try:
            outputs = self.predict(ex.inputs)
        except ContractError as exc:
            raise VerificationError(
                [Problem(f"{ex.where}: {p.where}" if p.where else ex.where, p.reason) for p in exc.problems]
            ) from None
        problems: list[Problem] = []
        for name, recorded in ex.outputs.items():
            where = f"{ex.where}: output {name!r}"
            out_field = self.contract.output(name)
            if out_field is None:
                problems.append(Problem(where, "is recorded but is not an output of the contract"))
                continue
            if name not in outputs:
                problems.append(Problem(where, "is recorded but the model did not return it"))
                continue
            try:
                expected = enforce.convert(out_field, recorded, "output")
            except ContractError as exc:
                problems.append(Problem(where, f"the recorded value is invalid: {exc.problems[0].reason}"))
                continue
            reason = enforce.max_deviation(out_field, outputs[name], expected, ex.rtol, ex.atol)
            if reason:
                problems.append(Problem(where, reason))
        if problems:
            raise VerificationError(problems)

    # --- lifetime -------------------------------------------------------------------------------

    def package_fd(self) -> int | None:
        """The file descriptor of the verified package file the weights are mapped from (the
        map's own), or None for a model built from parts. A server watches this exact file:
        bytes changed under a shared map would change answers without changing the digest."""
        for obj in self._keepalive:
            if isinstance(obj, _OpenFile) and obj.fd >= 0:
                return obj.fd
        return None

    def close(self) -> None:
        """Drop the session, weights and code; the map closes once no array refers to it."""
        self._runner = None
        self.weights = None
        if self.code is not None:
            self.code.close()  # its private modules leave sys.modules
        self.code = None
        self._functions = {}
        for obj in self._keepalive:
            if isinstance(obj, mmap.mmap):
                # arrays handed out may still refer to it; then GC closes it later
                with contextlib.suppress(BufferError):
                    obj.close()
            elif isinstance(obj, _OpenFile):
                obj.close()
        self._keepalive = []

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"<mpkg.Model {self.name}@{self.version} {self.digest[:19]}>"


def _at(boundary: str, check: Callable[..., Any], *args: Any) -> Any:
    """Run a contract check, naming the boundary of the chain where it failed."""
    try:
        return check(*args)
    except ContractError as exc:
        raise ContractError(
            [Problem(f"{boundary}: {p.where}" if p.where else boundary, p.reason) for p in exc.problems]
        ) from None


class _OpenFile:
    """The verified package's open file, kept (as a duplicate descriptor) while its map is in use."""

    def __init__(self, fd: int) -> None:
        self.fd = fd

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def __del__(self) -> None:
        self.close()


def _entry_functions(
    module: Any, code_module: str, entry_points: Mapping[str, Sequence[str]] | None, model_format: str
) -> dict[str, Callable[..., Any]]:
    wanted = (
        list(entry_points)
        if entry_points is not None
        else [n for n in ENTRY_POINTS if callable(getattr(module, n, None))]
    )
    functions: dict[str, Callable[..., Any]] = {}
    for ep in wanted:
        fn = getattr(module, ep, None)
        if not callable(fn):
            raise FormatError(f"module {code_module!r} defines no function {ep!r}", "code.entry_points")
        functions[ep] = fn
    if model_format == "onnx":
        functions.pop("predict", None)  # ONNX packages run the graph; predict is not called
    return functions


def example_inputs(contract: Contract) -> dict[str, Array]:
    """A deterministic example for a contract (named/dynamic dims -> 2, enums -> first value)."""
    return enforce.example_inputs(contract)


def _small_file(pkg: PackageFile, entry: FileEntry) -> bytes:
    """A small file's bytes, re-checked against its digest: it is read after verification,
    so this closes the window in which the file could change under us (code runs from it)."""
    data = payload_bytes(pkg, entry)
    if hash_bytes(data) != entry.digest:
        raise VerificationError(
            f"{entry.path}: changed after verification; the package file is being modified",
            pkg.where,
        )
    return data


def load(
    path: str | os.PathLike[str],
    keys: Sequence[str | os.PathLike[str]] | Policy = (),
    allow_unsigned: bool = False,
    strict_env: bool = False,
) -> Model:
    """Verify the package exactly as ``mpkg verify`` does (fail closed), then load it.

    Raises VerificationError (or FormatError/SignatureError) for a package that does not
    verify, EnvironmentMismatch with ``strict_env`` when this environment differs from the
    lockfile. Package code is imported only after verification passed."""
    policy = keys if isinstance(keys, Policy) else Policy.from_paths(keys, allow_unsigned)
    with verified(path, policy) as (pkg, result):  # hashes every byte once, on this open file
        result.raise_for_errors()
        assert pkg is not None
        return from_verified(pkg, result, strict_env)


def from_verified(pkg: PackageFile, result: VerificationResult, strict_env: bool = False) -> Model:
    """Load a package that ``result`` says verified, from the same open file (see
    :func:`mpkg._internal.trust.verify.verified`). Package code is imported only here, after verification."""
    result.raise_for_errors()
    manifest = result.manifest
    assert manifest is not None
    if strict_env:
        require_environment(manifest)
    mm = pkg.mmap()
    try:
        return _from_package(pkg, manifest, mm)
    except BaseException:
        with contextlib.suppress(BufferError):
            mm.close()
        raise


def _from_package(pkg: PackageFile, manifest: Manifest, mm: mmap.mmap) -> Model:
    label = f"{pkg.where}"
    weights: Weights
    if manifest.model_format == "safetensors":
        maps = []
        for p in manifest.model_files:
            member = pkg.by_name[p]
            maps.append(map_safetensors(mm, member.data_offset, member.size, f"{label}: {p}"))
        weights = TensorMap.merge(maps, f"{label}: model.files")
    else:
        graphs = [p for p in manifest.model_files if p.endswith(".onnx")]
        if len(graphs) != 1:
            raise FormatError(f"model.files must hold exactly one .onnx file, found {len(graphs)}", label)
        folder = graphs[0].rpartition("/")[0]
        view = memoryview(mm)
        external = {}
        for p in manifest.model_files:
            if p == graphs[0]:
                continue
            member = pkg.by_name[p]
            rel = p[len(folder) + 1 :] if folder and p.startswith(folder + "/") else p
            external[rel] = view[member.data_offset : member.data_offset + member.size]
        weights = OnnxModel(pkg.read(pkg.by_name[graphs[0]]), external)
    code_files = {}
    for entry in manifest.files:
        if entry.role == "code":
            code_files[entry.path.partition("/")[2]] = _small_file(pkg, entry)
    card = None
    card_ref = manifest.card
    card_entry = manifest.file(str(card_ref.get("path", "")))
    if card_entry is not None:
        text = _small_file(pkg, card_entry).decode("utf-8", "replace")
        card = ModelCard(text, dict(card_ref.get("metadata") or {}))
    example = None
    ex_ref = manifest.example
    if ex_ref is not None:
        ex_entry = manifest.file(str(ex_ref["path"]))
        if ex_entry is not None:
            example = Example.from_bytes(
                _small_file(pkg, ex_entry),
                ex_ref["rtol"],
                ex_ref["atol"],
                f"{label}: {ex_entry.path}",
            )
    return Model.from_parts(
        name=manifest.name,
        version=manifest.version,
        digest=str(manifest.digest),
        contract=manifest.contract,
        model_format=manifest.model_format,
        weights=weights,
        code_files=code_files,
        code_module=manifest.code_module,
        code_location=f"{os.path.abspath(pkg.where)}/code",
        entry_points=manifest.entry_points if manifest.code_module else None,
        card=card,
        example=example,
        manifest=manifest,
        keepalive=(mm, _OpenFile(os.dup(pkg.file.fileno()))),
    )


__all__ = ["Example", "Model", "ModelCard", "OnnxModel", "example_inputs", "load"]
