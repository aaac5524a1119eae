"""``mpkg.load``: verify a package, then load it and predict under its contract.

Order matters and is fixed: the package is verified completely (layout, manifest,
signatures, every file's digest) on one open file, and only then is anything mapped or
imported; package code never runs for a package that failed verification. Weights are
memory-mapped from the .mpkg itself (no extraction, no copy); inputs are checked against
the contract before any package code runs and outputs after.

The same :class:`Model` runs a model from source (``Model(ModelParts(...))``) so the builder
can record the example's outputs before the package exists.
"""

from __future__ import annotations

import contextlib
import mmap
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from mpkg._internal.contract import enforce, examples, tabular
from mpkg._internal.contract.contract import Contract
from mpkg._internal.contract.convert import convert
from mpkg._internal.format.archive import PackageFile
from mpkg._internal.format.digests import hash_bytes
from mpkg._internal.format.manifest import ENTRY_POINTS, FileEntry, Manifest
from mpkg._internal.load.codeimport import PackageCode, private_prefix
from mpkg._internal.load.onnxrun import OnnxRunner
from mpkg._internal.load.parts import Example, ModelCard, ModelParts, OnnxModel, Weights
from mpkg._internal.load.weights import TensorMap, map_safetensors
from mpkg._internal.trust.verify import Policy, VerificationResult, as_policy, payload_bytes, verified
from mpkg.errors import ContractError, FormatError, MpkgError, Problem, VerificationError

Array = np.ndarray[Any, Any]


class Model:
    """A loaded package: verified, mapped, its code imported; predict under its contract."""

    def __init__(self, parts: ModelParts) -> None:
        self.name = parts.name
        self.version = parts.version
        self.digest = parts.digest
        self.contract = parts.contract
        self.model_format = parts.model_format
        self.card = parts.card
        self.example = parts.example
        self.manifest = parts.manifest
        self.code: PackageCode | None = None
        self._functions: dict[str, Callable[..., Any]] = {}
        self._keepalive = list(parts.keepalive)
        self._runner: OnnxRunner | None = None
        self.weights: TensorMap | None = None
        if parts.code_module is not None:
            label = f"{parts.name}@{parts.version}"
            self.code = PackageCode(dict(parts.code_files), private_prefix(parts.digest), label, parts.code_location)
        try:
            if self.code is not None and parts.code_module is not None:
                module = self.code.import_module(parts.code_module)
                self._functions = _entry_functions(module, parts.code_module, parts.entry_points, parts.model_format)
            self._attach(parts.weights)
        except BaseException:
            if self.code is not None:
                self.code.close()  # a model that failed to load leaves no modules behind
            raise

    def _attach(self, weights: Weights) -> None:
        """Check the weights fit the format and the code, and make them runnable."""
        where = f"{self.name}@{self.version}: model"
        if self.model_format == "onnx":
            if not isinstance(weights, OnnxModel):
                raise TypeError("an ONNX model needs OnnxModel weights")
            self._runner = OnnxRunner(weights, where)
            if "preprocess" not in self._functions:
                missing = [f.name for f in self.contract.inputs if f.name not in self._runner.input_names]
                if missing:
                    raise FormatError(
                        f"contract inputs {missing} are not ONNX graph inputs "
                        f"{self._runner.input_names} "
                        "and the code defines no preprocess",
                        where,
                    )
        elif self.model_format == "safetensors":
            if not isinstance(weights, TensorMap):
                raise TypeError("a safetensors model needs a TensorMap")
            if "predict" not in self._functions:
                raise FormatError(
                    "a safetensors package needs a code module defining predict(weights, inputs)",
                    "code",
                )
            self.weights = weights
        else:
            raise FormatError(f"model format {self.model_format!r} is not supported", "model.format")

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
        if tabular.is_tabular_data(inputs):
            arrays, dims = tabular.check_arrow_inputs(self.contract, inputs)
        else:
            arrays, dims = enforce.check_inputs(self.contract, inputs)
        return enforce.check_outputs(self.contract, self._run(arrays), dims)

    def predict_arrow(self, batch: Any) -> Any:
        """A pyarrow Table/RecordBatch in, a pyarrow RecordBatch of the outputs out."""
        arrays, dims = tabular.check_arrow_inputs(self.contract, batch)
        outputs = enforce.check_outputs(self.contract, self._run(arrays), dims)
        return tabular.outputs_to_arrow(self.contract, outputs)

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
        data = dict(inputs) if inputs is not None else examples.example_inputs(self.contract)
        arrays, dims = enforce.at_boundary("example → contract inputs", enforce.check_inputs, self.contract, data)
        produced = self._run(arrays)
        last = next((e for e in ("postprocess", "predict") if e in self._functions), "graph outputs")
        outputs = enforce.at_boundary(
            f"{last} → contract outputs", enforce.check_outputs, self.contract, produced, dims
        )
        return {
            "inputs": {k: examples.to_jsonable(v) for k, v in arrays.items()},
            "outputs": {k: examples.to_jsonable(v) for k, v in outputs.items()},
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
                expected = convert(out_field, recorded, "output")
            except ContractError as exc:
                problems.append(Problem(where, f"the recorded value is invalid: {exc.problems[0].reason}"))
                continue
            reason = examples.max_deviation(out_field, outputs[name], expected, ex.rtol, ex.atol)
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
    return examples.example_inputs(contract)


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
    policy: Policy | Sequence[str | os.PathLike[str]] = (),
    *,
    keys: Sequence[str | os.PathLike[str]] | None = None,
    strict_env: bool = False,
    insecure: bool = False,
) -> Model:
    """Verify the package exactly as ``mpkg verify`` does (fail closed), then load it.

    Trust is one policy: a :class:`Policy`, or public-key paths (positionally or as ``keys=``) for
    the fail-closed ``Policy.from_paths``; unsigned packages load only under
    ``Policy.unsafe_allow_unsigned()``. ``path`` may also be a registry or local-store reference
    (``host:5000/fraud:production``, ``fraud:1.2.0``, ``…@sha256:…``): it is pulled with ``mpkg
    pull``'s checks into the cache under ``MPKG_HOME`` once (registries need the ``mpkg[registry]``
    extra; ``insecure``: plain HTTP). Raises VerificationError (or FormatError/SignatureError) for a
    package that does not verify, EnvironmentMismatch with ``strict_env`` when this environment
    differs from the lockfile. Package code is imported only after verification passed."""
    trust = as_policy(policy, keys)
    expected = None
    if not isinstance(path, str) or not path.endswith(".mpkg"):
        from mpkg._internal.registry.fetch import FetchPolicy, locate

        path, expected = locate(path, FetchPolicy(trust, insecure=insecure))
    with verified(path, trust) as (pkg, result):  # hashes every byte once, on this open file
        result.raise_for_errors()
        assert pkg is not None
        if expected is not None:
            from mpkg._internal.registry.fetch import require_digest

            require_digest(str(result.digest), expected, os.fspath(path))
        return from_verified(pkg, result, strict_env)


def from_verified(pkg: PackageFile, result: VerificationResult, strict_env: bool = False) -> Model:
    """Load a package that ``result`` says verified, from the same open file (see
    :func:`mpkg._internal.trust.verify.verified`). Package code is imported only here, after verification."""
    result.raise_for_errors()
    manifest = result.manifest
    assert manifest is not None
    if strict_env:
        from mpkg._internal.load.environment import require_environment  # packaging: only when asked

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
    parts = ModelParts(
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
    return Model(parts)


__all__ = ["Model", "example_inputs", "from_verified", "load"]
