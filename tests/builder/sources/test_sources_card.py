"""Model cards: front matter, required sections, and the packaged card's generated part."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from mpkg._internal.contract.contract import Contract
from mpkg.errors import SourceError
from mpkg_builder.sources.card import (
    GENERATED_BEGIN,
    GENERATED_END,
    REQUIRED_SECTIONS,
    parse_card,
    parse_card_text,
    render_packaged_card,
    split_packaged_card,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples"
SECTIONS = "".join(f"## {name}\n\nText.\n\n" for name in REQUIRED_SECTIONS)


def refused(text: str) -> str:
    with pytest.raises(SourceError) as exc:
        parse_card_text(text, "MODEL_CARD.md")
    return exc.value.diagnostics()


def test_example_cards_parse() -> None:
    card = parse_card(EXAMPLES / "iris-mlp" / "MODEL_CARD.md")
    assert card.metadata["license"] == "apache-2.0"
    assert card.sections[0] == "iris-mlp" and "Ethical considerations" in card.sections
    assert card.body.startswith("\n# iris-mlp")
    parse_card(EXAMPLES / "churn-tabular" / "MODEL_CARD.md")


def test_no_front_matter_is_allowed() -> None:
    card = parse_card_text("# Model\n\n" + SECTIONS)
    assert card.metadata == {} and card.sections[0] == "Model"


def test_front_matter_dates_become_iso_strings() -> None:
    card = parse_card_text("---\nreleased: 2024-05-01\ntags: [a]\n---\n" + SECTIONS)
    assert card.metadata == {"released": "2024-05-01", "tags": ["a"]}
    json.dumps(card.metadata)


@pytest.mark.parametrize("missing", list(REQUIRED_SECTIONS))
def test_each_missing_section_named(missing: str) -> None:
    text = "".join(f"## {name}\n\nText.\n\n" for name in REQUIRED_SECTIONS if name != missing)
    assert refused(text) == f"MODEL_CARD.md: missing section '{missing}'; add a '## {missing}' heading with its text"


def test_all_missing_sections_named_at_once() -> None:
    with pytest.raises(SourceError) as exc:
        parse_card_text("# Just a title\n")
    assert len(exc.value.problems) == len(REQUIRED_SECTIONS)


@pytest.mark.parametrize(
    "heading",
    [
        "### INTENDED USES",
        "# Intended use:",
        "## **Intended use**",
        "## Intended use ##",
        "Intended use\n============",
    ],
)
def test_heading_variants_accepted(heading: str) -> None:
    rest = "".join(f"## {n}\n\nx\n\n" for n in REQUIRED_SECTIONS if n != "Intended use")
    assert "missing section 'Intended use'" in refused(rest)  # without the heading: refused
    parse_card_text(f"{heading}\n\nx\n\n{rest}")


def test_headings_inside_code_fences_do_not_count() -> None:
    fenced = "```markdown\n## Ethical considerations\n```\n"
    text = "".join(f"## {n}\n\nx\n\n" for n in REQUIRED_SECTIONS if n != "Ethical considerations") + fenced
    assert "missing section 'Ethical considerations'" in refused(text)


def test_indented_code_is_not_a_heading() -> None:
    text = "".join(f"## {n}\n\nx\n\n" for n in REQUIRED_SECTIONS if n != "Evaluation") + "    ## Evaluation\n"
    assert "missing section 'Evaluation'" in refused(text)


def test_front_matter_must_be_a_mapping() -> None:
    assert "must be a YAML mapping" in refused("---\n- a\n- b\n---\n" + SECTIONS)


def test_front_matter_invalid_yaml_refused() -> None:
    assert "front matter is not valid YAML" in refused("---\nkey: [unclosed\n---\n" + SECTIONS)


def test_front_matter_unclosed_refused() -> None:
    assert "is never closed" in refused("---\nkey: value\n" + SECTIONS)


def test_front_matter_non_json_values_refused() -> None:
    assert "cannot be recorded" in refused("---\nblob: !!binary aGVsbG8=\n---\n" + SECTIONS)


def test_front_matter_non_string_keys_refused() -> None:
    assert "key 1 must be a string" in refused("---\n1: one\n---\n" + SECTIONS)


def test_reserved_marker_refused() -> None:
    assert "reserved marker" in refused(SECTIONS + GENERATED_BEGIN + "\n")


def test_non_utf8_card_refused(tmp_path: Path) -> None:
    (tmp_path / "card.md").write_bytes(b"# \xff\n")
    with pytest.raises(SourceError, match="is not UTF-8"):
        parse_card(tmp_path / "card.md")


# --- packaged card --------------------------------------------------------------------

CONTRACT = Contract.from_json(
    {
        "inputs": [
            {
                "name": "plan",
                "dtype": "string",
                "shape": ["batch"],
                "enum": ["a|b", "c"],
                "nullable": True,
            }
        ],
        "outputs": [{"name": "p", "dtype": "float64", "shape": ["batch"], "description": "probability"}],
    }
)
FACTS = {
    "name": "churn",
    "version": "1.2.3",
    "contract": CONTRACT,
    "metrics": {"auc": 0.78, "accuracy.test": 0.7},
    "lineage": {
        "git": {"commit": "ab" * 20, "dirty": True},
        "data": [{"path": "d.csv", "md5": "f" * 32, "size": 10}],
    },
    "environment": {"kind": "requirements", "packages": [{"name": "numpy", "version": "2.4.6"}]},
    "builder": {"version": "0.1.0"},
}


@pytest.mark.parametrize("author", ["# Card\n\nText.\n", "# Card\n\nNo trailing newline", "", "# A\r\n\r\nCRLF\r\n"])
def test_author_text_kept_byte_for_byte(author: str) -> None:
    packaged = render_packaged_card(author, FACTS)
    assert packaged.startswith(author)
    assert split_packaged_card(packaged) == (author, packaged[len(author) + 1 :])


def test_generated_part_is_delimited_and_has_facts() -> None:
    packaged = render_packaged_card("# Card\n", FACTS)
    _, generated = split_packaged_card(packaged)
    assert generated is not None
    assert generated.startswith(GENERATED_BEGIN) and generated.rstrip().endswith(GENERATED_END)
    assert '| input | `plan` | string | [batch] | nullable; enum: "a\\|b", "c" |  |' in generated
    assert "| output | `p` | float64 | [batch] |  | probability |" in generated
    assert "| accuracy.test | 0.7 |" in generated and "| auc | 0.78 |" in generated
    assert f"`{'ab' * 20}` (uncommitted changes)" in generated
    assert "| numpy | 2.4.6 |" in generated
    assert '"builder"' in generated  # unknown facts are still shown


def test_render_is_deterministic() -> None:
    assert render_packaged_card("x\n", FACTS) == render_packaged_card("x\n", dict(reversed(FACTS.items())))


def test_split_without_generated_part() -> None:
    assert split_packaged_card("# plain card\n") == ("# plain card\n", None)


def _headings(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.startswith("#")]


@pytest.mark.parametrize(
    "facts",
    [
        {"name": "x", "version": "1.0.0", "lineage": {}, "metrics": {}, "environment": {}},
        {"name": "x", "version": "1.0.0", "lineage": {"params": {}}, "contract": {"inputs": [], "outputs": []}},
        {"name": "x", "version": "1.0.0", "environment": {"packages": []}},
    ],
)
def test_no_empty_heading(facts: dict[str, object]) -> None:
    """A section with nothing to show is left out whole."""
    _, generated = split_packaged_card(render_packaged_card("# Card\n", facts))
    assert generated is not None
    assert _headings(generated) == ["## Package facts (generated by mpkg)"]


def test_every_heading_has_content() -> None:
    _, generated = split_packaged_card(render_packaged_card("# Card\n", {**FACTS, "lineage": {"builder": {}}}))
    assert generated is not None
    lines = generated.splitlines()
    for i, line in enumerate(lines):
        if line.startswith("#"):
            body = next((x for x in lines[i + 1 :] if x.strip()), "")
            assert body and not body.startswith(("#", "<!--")), (line, body)


def test_built_card_states_the_metrics(tmp_path: Path) -> None:
    """The build passes [lineage].metrics to the generated section (spec/source.md)."""
    import shutil

    from mpkg._internal.format.package import extract_member, read_manifest
    from mpkg_builder.build import build_package

    src = shutil.copytree(Path(__file__).resolve().parents[3] / "examples" / "iris-mlp", tmp_path / "src")
    out = build_package(src, tmp_path / "iris.mpkg")
    manifest = read_manifest(out.path)
    card = extract_member(out.path, manifest.card["path"]).decode("utf-8")
    author, generated = split_packaged_card(card)
    assert generated is not None and "### Metrics" in generated
    for name, value in manifest.metrics.items():
        assert f"| {name} | {value!r} |" in generated
    assert "- **Built with:** mpkg " in generated
    from mpkg._internal.format.digests import hash_bytes

    assert manifest.card["author_digest"] == str(hash_bytes(author.encode("utf-8")))


def test_contract_names_render_as_code_whatever_they_hold() -> None:
    """Any name real data uses is a contract name: spaces, pipes and backticks stay in one cell."""
    contract = {
        "inputs": [
            {"name": "mean radius", "dtype": "float64", "shape": ["batch"]},
            {"name": "a|b`c", "dtype": "float64", "shape": ["batch"]},
        ],
        "outputs": [{"name": "y", "dtype": "float64", "shape": ["batch"]}],
    }
    card = render_packaged_card("# M\n", {"name": "x", "version": "1.0.0", "contract": contract})
    assert "| input | `mean radius` | float64 |" in card
    assert "| input | ``a\\|b`c`` | float64 |" in card
