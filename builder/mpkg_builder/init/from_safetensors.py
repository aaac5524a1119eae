"""`mpkg init --from weights.safetensors --code predict.py --contract contract.json`.

Safetensors hold tensors only: the computation (``predict``) and the interface (the
contract) must come from the user; init refuses, naming each missing one, rather than
writing a stub that would build a package that cannot answer.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from mpkg._internal.format.safetensors import SafetensorsInfo, parse_safetensors
from mpkg.errors import SourceError

from . import card as cards
from .draft import CARD_NAME, Draft, DraftFile, package_name
from .options import InitOptions, code_file, contract_file, require_code_and_contract


def draft_from_safetensors(path: Path, options: InitOptions) -> Draft:
    """A draft from a .safetensors file; needs --code and --contract (no stub predict)."""
    require_code_and_contract(options, str(path), f"{path.name} (safetensors)")
    info = parse_safetensors(path, str(path), SourceError)
    name = options.name or package_name(path.stem)
    intro = f"Weights from {cards.code(path.name)} (safetensors), packaged by `mpkg init`. Describe the model here."
    return weights_draft(name, [(path.name, path, info)], options, intro, f"safetensors weights from {path.name}")


def weights_draft(
    name: str,
    shards: Sequence[tuple[str, Path, SafetensorsInfo]],
    options: InitOptions,
    intro: str,
    description: str,
    card_body: str | None = None,
    card_name: str | None = None,
    made: Sequence[str] = (),
) -> Draft:
    """A safetensors draft: the shards, the user's code and contract, a tensor table in the card."""
    code = code_file(options)
    contract = contract_file(options)
    assert code is not None and contract is not None  # require_code_and_contract ran
    tensors = [(t.name, t.dtype, t.shape, rel) for rel, _, info in shards for t in info.tensors]
    total = sum(t.nbytes for _, _, info in shards for t in info.tensors)
    table = ["## Weights", "", f"{len(tensors)} tensors, {total} bytes, in {len(shards)} file(s):", ""]
    table += cards.tensor_table(tensors)
    body = card_body if card_body is not None else cards.template(name, intro, front_matter={"tags": ["safetensors"]})
    body = body.rstrip("\n") + "\n\n" + "\n".join(table) + "\n"
    files = [DraftFile(rel, source=path) for rel, path, _ in shards] + [code[0], contract[0]]
    return Draft(
        name=name,
        description=description[:200] if description.isprintable() else "safetensors weights",
        model_format="safetensors",
        model_files=tuple(rel for rel, _, _ in shards),
        contract=contract[1],
        card_body=body,
        made=(
            *made,
            f"Made by `mpkg init`; the computation is {cards.code(code[0].rel)} and the interface "
            f"{cards.code(contract[0].rel)}, both given by the author.",
        ),
        files=tuple(files),
        code_module=code[1],
        card_name=card_name or CARD_NAME,
    )


__all__ = ["draft_from_safetensors", "weights_draft"]
