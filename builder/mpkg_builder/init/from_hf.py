"""`mpkg init --from FOLDER` for a Hugging Face-style folder: config.json, safetensors shards,
README.md with YAML front matter.

The README becomes the card, front matter and text kept byte for byte, with the required
sections it lacks appended as "Not stated". The shards become the weights: those the
index (``model.safetensors.index.json``) names when there is one, else every
``*.safetensors`` beside config.json. Pickle checkpoints are never taken.
"""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path
from typing import Any

from mpkg._internal.format.safetensors import SafetensorsInfo, parse_safetensors
from mpkg.errors import ProblemCollector, SourceError

from ..sources.card import parse_card_text
from . import card as cards
from .draft import Draft, Lineage, package_name
from .from_safetensors import weights_draft
from .options import InitOptions, require_code_and_contract
from .origin import ORIGIN_NAME, origin_file
from .reading import MiB, inside, load_json, read_capped, short_text

INDEX_NAME = "model.safetensors.index.json"
README_NAME = "README.md"
_PICKLED = re.compile(r".*\.(bin|pt|pth|ckpt|pkl|pickle)$")
_CONFIG_KEYS = ("architectures", "model_type", "torch_dtype", "dtype", "transformers_version")


def is_hf_folder(folder: Path) -> bool:
    """Whether ``folder`` is laid out as Hugging Face lays out a model."""
    return (folder / "config.json").is_file() and ((folder / INDEX_NAME).is_file() or any(folder.glob("*.safetensors")))


def draft_from_hf(folder: Path, options: InitOptions) -> Draft:
    """A draft from a Hugging Face folder: shards become weights, README the card."""
    require_code_and_contract(options, str(folder), f"{folder.name}/ (safetensors shards)")
    config = load_json(read_capped(folder / "config.json", f"{folder.name}/config.json", 4 * MiB), "config.json")
    if not isinstance(config, dict):
        raise SourceError("must be a JSON object", f"{folder.name}/config.json")
    shards = _shards(folder)
    infos: list[tuple[str, Path, SafetensorsInfo]] = []
    for rel in shards:
        path = inside(folder, rel, f"{folder.name}/{rel}")
        infos.append((rel, path, parse_safetensors(path, f"{folder.name}/{rel}", SourceError)))
    name = options.name or package_name(folder.absolute().name)
    facts = _config_facts(config, folder.name)
    origin = {"kind": "huggingface", "config": facts, "files": list(shards)}
    readme = folder / README_NAME
    if readme.is_file():
        where = f"{folder.name}/{README_NAME}"
        try:
            text = read_capped(readme, where, 4 * MiB).decode("utf-8")
        except UnicodeDecodeError:
            raise SourceError("is not UTF-8 text", where) from None
        body = cards.complete(text)
        parse_card_text(body, where)  # front matter and marker checks, naming the README
    else:
        intro = f"A model from the Hugging Face-style folder {cards.code(folder.name)}, packaged by `mpkg init`."
        body = cards.template(name, intro, front_matter={"tags": ["safetensors"]})
    left = _not_packed(folder, set(shards))
    draft = weights_draft(
        name,
        infos,
        options,
        intro="",
        description=f"{facts.get('model_type', 'safetensors')} weights from {folder.name}",
        card_body=body,
        card_name=README_NAME,
        made=(
            f"Made by `mpkg init` from the folder {cards.code(folder.name)}: its README is this card, "
            f"{len(shards)} safetensors file(s) are the weights, config.json is recorded in the lineage.",
        ),
    )
    notes = tuple(f"not packed: {n}" for n in left)
    return _with_origin(draft, origin, notes)


def _with_origin(draft: Draft, origin: dict[str, Any], notes: tuple[str, ...]) -> Draft:
    return replace(
        draft,
        files=(*draft.files, origin_file(origin)),
        lineage=Lineage(origin=ORIGIN_NAME),
        notes=(*draft.notes, *notes),
    )


def _shards(folder: Path) -> list[str]:
    """The weight files: the index's shards, else every top-level *.safetensors."""
    index_path = folder / INDEX_NAME
    if not index_path.is_file():
        found = sorted(p.name for p in folder.glob("*.safetensors") if p.is_file())
        if not found:
            raise SourceError("has no *.safetensors files", str(folder))
        return found
    doc = load_json(read_capped(index_path, f"{folder.name}/{INDEX_NAME}", 64 * MiB), INDEX_NAME)
    weight_map = doc.get("weight_map") if isinstance(doc, dict) else None
    if not isinstance(weight_map, dict) or not weight_map:
        raise SourceError("has no weight_map object of tensor -> shard file", f"{folder.name}/{INDEX_NAME}")
    problems = ProblemCollector()
    shards = set()
    for tensor, shard in weight_map.items():
        if not isinstance(shard, str) or "/" in shard or not shard.endswith(".safetensors"):
            problems.add(f"{folder.name}/{INDEX_NAME}: weight_map[{tensor!r}]", f"{shard!r} is not a shard file name")
        elif not (folder / shard).is_file():
            problems.add(f"{folder.name}/{INDEX_NAME}: weight_map[{tensor!r}]", f"names {shard!r}, which is missing")
        else:
            shards.add(shard)
    problems.raise_if_any(SourceError)
    return sorted(shards)


def _config_facts(config: dict[str, Any], where: str) -> dict[str, Any]:
    """The few config.json values worth recording: short printable strings (lists of them)."""
    facts: dict[str, Any] = {}
    for key in _CONFIG_KEYS:
        value = config.get(key)
        if isinstance(value, str):
            facts[key] = short_text(value, f"{where}/config.json: {key}")
        elif isinstance(value, list) and all(isinstance(v, str) for v in value) and len(value) <= 16:
            facts[key] = [short_text(v, f"{where}/config.json: {key}") for v in value]
    return facts


def _not_packed(folder: Path, shards: set[str]) -> list[str]:
    out = []
    for path in sorted(folder.iterdir()):
        if path.name in shards or path.name in (README_NAME, "config.json", INDEX_NAME) or path.name.startswith("."):
            continue
        why = "a pickle-based checkpoint: never packed" if _PICKLED.match(path.name) else "not a weight file"
        out.append(f"{path.name!r} ({why}; package code sees only the weights)")
    return out


__all__ = ["draft_from_hf", "is_hf_folder"]
