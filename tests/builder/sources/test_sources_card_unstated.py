"""Card sections that still say "Not stated:": the build warns, --strict-card refuses."""

from __future__ import annotations

from pathlib import Path

import pytest
from mpkg.errors import SourceError
from mpkg_builder.build import build_package
from mpkg_builder.sources.card import unstated_sections

BODY = """# m

## Intended use

Not stated: who should use it.

Evaluation
----------

*Not stated:* the data.

## Limitations

```text
Not stated: inside a fence this is an example, not a gap
```

> not stated: quoted, still a gap
"""


def test_unstated_sections_in_order_outside_fences() -> None:
    assert unstated_sections(BODY) == ("Intended use", "Evaluation", "Limitations")
    assert unstated_sections("## Limitations\n\nIt is not stated anywhere that this works.\n") == ()


def test_build_warns_and_strict_card_refuses(source: Path, tmp_path: Path) -> None:
    card = (source / "MODEL_CARD.md").read_text()
    (source / "MODEL_CARD.md").write_text(card.replace("## Limitations\n", "## Limitations\n\nNot stated: yet.\n", 1))
    result = build_package(source, tmp_path / "a.mpkg")
    assert result.warnings == ("MODEL_CARD.md: section 'Limitations' says 'Not stated': a person has to write it",)
    with pytest.raises(SourceError, match="section 'Limitations' says 'Not stated'"):
        build_package(source, tmp_path / "b.mpkg", strict_card=True)
    assert not (tmp_path / "b.mpkg").exists()
