"""The set of models one server answers for, with version choice and traffic splits.

Everything a request needs that does not depend on the request (metadata
responses, input decoding specs, metric slots) is computed once here so the
hot path is dictionary lookups.
"""

from __future__ import annotations

import random
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from mpkg._internal.format.manifest import SEMVER_RE
from mpkg.errors import UsageError

from .metrics import escape_label
from .splits import Chooser, Split, SplitKey
from .tensors import InputSpec, RequestError, input_specs, tensor_metadata
from .types import ArrowServable, ServableModel


def version_key(version: str) -> tuple[Any, ...]:
    """SemVer 2.0.0 precedence (package versions are SemVer, spec/format.md): 1.0.0-1 <
    1.0.0-alpha < 1.0.0 < 1.0.1; build metadata does not rank (ties fall back to the text).
    Versions that are not SemVer sort below every SemVer version, by text."""
    m = SEMVER_RE.match(version)
    if m is None:
        return (0, version)
    major, minor, patch, pre, _build = m.groups()
    release: tuple[Any, ...] = (1,)  # a release ranks above all of its pre-releases
    if pre is not None:
        release = (0, *((0, int(p), "") if p.isdigit() else (1, 0, p) for p in pre.split(".")))
    return (1, int(major), int(minor), int(patch), release, version)


@dataclass(frozen=True)
class ModelEntry:
    """One loaded package and everything precomputed for serving it."""

    model: ServableModel
    name: str
    version: str
    digest: str
    index: int  # this loaded package's key among the server's runners (never reused)
    slot: int  # its metrics slot (metrics.py; the same package swapped back in gets the same)
    specs: dict[str, InputSpec]
    output_names: tuple[str, ...]
    arrow: bool  # tabular and offers predict_arrow
    metadata_body: bytes
    ready_body: bytes
    labels: str  # Prometheus label set, pre-escaped


class ModelSet:
    """Resolves (name, version) to a loaded model; unversioned requests follow splits."""

    def __init__(
        self,
        models: Sequence[ServableModel],
        splits: Sequence[Split] = (),
        seed: int | None = None,
        platform: str = "mpkg",
        server_version: str = "0",
        indexes: Sequence[int] | None = None,
        slots: Sequence[int] | None = None,
        rng: random.Random | None = None,
        split_key: SplitKey | None = None,
    ) -> None:
        indexes = range(len(models)) if indexes is None else indexes
        slots = indexes if slots is None else slots
        self.models = tuple(models)
        self.splits = tuple(splits)
        self.split_key = split_key
        # the header carrying a sticky split's key, as ASGI names it; None: every draw is random
        self.split_header = split_key.asgi_name if split_key is not None and splits else None
        self._platform = platform
        self._server_version = server_version
        versions_of: dict[str, list[str]] = {}
        for model in models:
            seen = versions_of.setdefault(model.name, [])
            if model.version in seen:
                raise UsageError(f"two packages provide {model.name} {model.version}; serve each version once")
            seen.append(model.version)
        for seen in versions_of.values():
            seen.sort(key=version_key)
        by_name: dict[str, dict[str, ModelEntry]] = {}
        entries: list[ModelEntry] = []
        for model, index, slot in zip(models, indexes, slots, strict=True):
            entry = self._entry(model, index, slot, platform, versions_of[model.name])
            by_name.setdefault(model.name, {})[model.version] = entry
            entries.append(entry)
        self.entries: tuple[ModelEntry, ...] = tuple(entries)
        self.by_name = by_name
        self.default: dict[str, ModelEntry] = {
            name: versions[max(versions, key=version_key)] for name, versions in by_name.items()
        }
        self.rng = rng = rng if rng is not None else random.Random(seed)
        self.choosers: dict[str, Chooser[ModelEntry]] = {}
        for split in splits:
            if split.name in self.choosers:
                raise UsageError(f"model {split.name} has two --split options; give one", "--split")
            loaded = by_name.get(split.name)
            if loaded is None:
                raise UsageError(f"model {split.name} is not among the served packages {sorted(by_name)}", "--split")
            missing = [v for v, _ in split.weights if v not in loaded]
            if missing:
                raise UsageError(
                    f"{split.name} versions {missing} are not loaded; loaded: {sorted(loaded, key=version_key)}",
                    "--split",
                )
            versions = [v for v, _ in split.weights]
            self.choosers[split.name] = Chooser(
                split.name, versions, [w for _, w in split.weights], [loaded[v] for v in versions], rng
            )
        self.server_metadata_body = orjson.dumps(
            {
                "name": "mpkg",
                "version": server_version,
                "extensions": ["binary_tensor_data", "arrow_ipc_stream", "traffic_split"],
                "models": [{"name": e.name, "version": e.version, "digest": e.digest} for e in entries],
            }
        )

    def replace(self, position: int, model: ServableModel, index: int, slot: int) -> ModelSet:
        """This set with the package at ``position`` replaced (a swap, spec/runtime.md §9); raises
        UsageError when the result is not servable (a version served twice, a split left without
        one of its versions), so a bad candidate never replaces a good set."""
        models = list(self.models)
        models[position] = model
        indexes = [e.index for e in self.entries]
        indexes[position] = index
        slots = [e.slot for e in self.entries]
        slots[position] = slot
        return ModelSet(
            models,
            self.splits,
            None,
            self._platform,
            self._server_version,
            indexes,
            slots,
            rng=self.rng,
            split_key=self.split_key,
        )

    @staticmethod
    def _entry(model: ServableModel, index: int, slot: int, platform: str, versions: list[str]) -> ModelEntry:
        contract = model.contract
        metadata = {
            "name": model.name,
            "version": model.version,  # which package answers here now (it changes with a swap)
            "versions": versions,
            "platform": getattr(model, "platform", platform),
            "digest": model.digest,
            "inputs": tensor_metadata(contract.inputs),
            "outputs": tensor_metadata(contract.outputs),
        }
        labels = (
            f'model="{escape_label(model.name)}",version="{escape_label(model.version)}",'
            f'digest="{escape_label(model.digest)}"'
        )
        return ModelEntry(
            model=model,
            name=model.name,
            version=model.version,
            digest=model.digest,
            index=index,
            slot=slot,
            specs=input_specs(contract),
            output_names=tuple(f.name for f in contract.outputs),
            arrow=contract.is_tabular and isinstance(model, ArrowServable),
            metadata_body=orjson.dumps(metadata),
            ready_body=orjson.dumps({"name": model.name, "ready": True}),
            labels=labels,
        )

    def resolve(self, name: str, version: str | None, key: bytes | None = None) -> ModelEntry:
        """The entry for a request; ``key`` is its sticky split key (``split_header``'s value), if
        any. Unknown names or versions are a 404."""
        if version is None:
            chooser = self.choosers.get(name)
            if chooser is not None:
                return chooser.choose(key)
            entry = self.default.get(name)
            if entry is None:
                raise RequestError(404, f"model {name!r} is not served here; see GET /v2 for models")
            return entry
        versions = self.by_name.get(name)
        if versions is None:
            raise RequestError(404, f"model {name!r} is not served here; see GET /v2 for models")
        entry = versions.get(version)
        if entry is None:
            raise RequestError(
                404,
                f"model {name!r} has no version {version!r}; served versions: {sorted(versions, key=version_key)}",
            )
        return entry

    def metadata_entry(self, name: str, version: str | None) -> ModelEntry:
        """Metadata is deterministic: unversioned means the highest version, not a split draw."""
        if version is None:
            entry = self.default.get(name)
            if entry is None:
                raise RequestError(404, f"model {name!r} is not served here; see GET /v2 for models")
            return entry
        return self.resolve(name, version)
