"""Version truth on models made by the real converters (issue 10).

Packages are built from models trained here and converted with skl2onnx (a scaled
LogisticRegression pipeline, a GradientBoosting ensemble, a ColumnTransformer with a
OneHotEncoder) and onnxmltools (LightGBM); realmodels.py holds the training scripts.
For each family: retrain -> MINOR, another hyperparameter with the same operators ->
MINOR, the same model converted twice -> no model finding, an equivalent re-export by a
newer converter -> PATCH, another estimator family or pipeline step -> MAJOR.
Before the learned/structure split every one of these came out MAJOR.
"""

from __future__ import annotations

from pathlib import Path

import onnx
import pytest
from mpkg.errors import SourceError
from mpkg_builder.diff import Bump, DiffReport, diff_packages

from tests.builder.diff.realmodels import BC, FAMILIES, breast_cancer, scaled_logreg, skl2onnx_bytes, write_source

MAJOR, MINOR, PATCH = Bump.MAJOR, Bump.MINOR, Bump.PATCH
MODEL = ("interface", "architecture", "weights")

# variant -> (bump, the rules that must fire; None: any, as long as the bump holds)
EXPECTED: dict[str, tuple[Bump, set[str] | None]] = {
    "retrained": (MINOR, {"weights-changed"}),
    "hyper": (MINOR, {"weights-changed"}),
    "more-trees": (MINOR, {"weights-changed"}),
    "new-category": (MINOR, {"weights-changed"}),
    "twice": (PATCH, {"graph-names-changed"}),
    "upgrade": (PATCH, {"graph-producer-changed"}),
    "family": (MAJOR, None),
    "step-removed": (MAJOR, None),
}
CASES = [(f, v) for f, fam in sorted(FAMILIES.items()) for v in fam.variants if v != "base"]


@pytest.fixture(scope="module")
def packages(tmp_path_factory: pytest.TempPathFactory) -> dict[tuple[str, str], Path]:
    """Every family's variants, converted and built once (about 30 builds, seconds each family)."""
    from mpkg_builder.build import build_package

    root = tmp_path_factory.mktemp("converters")
    out: dict[tuple[str, str], Path] = {}
    for fam in FAMILIES.values():
        for variant, make in fam.variants.items():
            src = write_source(root / "src" / fam.name / variant, fam.name, make())
            out[fam.name, variant] = Path(build_package(src, root / f"{fam.name}-{variant}.mpkg").path)
    return out


def _diff(packages: dict[tuple[str, str], Path], family: str, variant: str) -> DiffReport:
    return diff_packages(packages[family, "base"], packages[family, variant])


@pytest.mark.parametrize(("family", "variant"), CASES, ids=[f"{f}-{v}" for f, v in CASES])
def test_converted_model_gets_the_true_bump(packages: dict[tuple[str, str], Path], family: str, variant: str) -> None:
    bump, rules = EXPECTED[variant]
    report = _diff(packages, family, variant)
    fired = {c.rule for c in report.changes}
    assert report.bump is bump, [(c.rule, c.message) for c in report.changes]
    if rules is not None:
        model_rules = {c.rule for c in report.changes if c.category in MODEL or c.rule.startswith("graph-")}
        assert model_rules == rules, fired
    if variant in ("retrained", "hyper", "more-trees", "new-category"):
        assert not any(c.category in ("interface", "architecture") for c in report.changes), fired
    if variant == "family":
        assert fired & {"graph-structure-changed", "graph-operators-changed"}, fired


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_converting_the_same_model_twice_is_no_model_change(packages: dict[tuple[str, str], Path], family: str) -> None:
    report = _diff(packages, family, "twice")
    assert not any(c.category in MODEL for c in report.changes), report.changes
    (change,) = report.changes
    assert change.rule == "graph-names-changed" and change.category == "build"


def test_estimator_family_keeping_the_operator_is_major(packages: dict[tuple[str, str], Path]) -> None:
    """GradientBoosting -> RandomForest: the same TreeEnsembleClassifier, but scores now mean
    averaged votes, not boosted log-odds (post_transform): structure, not a retrain."""
    report = _diff(packages, "skl-trees", "family")
    assert "graph-structure-changed" in {c.rule for c in report.changes}
    assert report.bump is MAJOR


# --- build --base on converted models -------------------------------------------------------


def _rebuild(tmp_path: Path, family: str, variant: str, base: Path) -> str:
    from mpkg_builder.build import build_package

    src = write_source(tmp_path / variant, family, FAMILIES[family].variants[variant](), version=None)
    return build_package(src, tmp_path / f"{variant}.mpkg", base=base).version


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_build_base_versions_a_retrain_as_minor(
    packages: dict[tuple[str, str], Path], family: str, tmp_path: Path
) -> None:
    assert _rebuild(tmp_path, family, "retrained", packages[family, "base"]) == "1.1.0"


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_build_base_of_a_reconversion_is_nothing_to_release(
    packages: dict[tuple[str, str], Path], family: str, tmp_path: Path
) -> None:
    with pytest.raises(SourceError) as err:
        _rebuild(tmp_path, family, "twice", packages[family, "base"])
    (problem,) = err.value.problems
    assert problem.where == "--base" and problem.reason.startswith("nothing to release")
    assert "only build metadata differs (names inside model/model.onnx)" in problem.reason
    assert not (tmp_path / "twice.mpkg").exists()


def test_build_base_of_a_converter_upgrade_is_patch(packages: dict[tuple[str, str], Path], tmp_path: Path) -> None:
    assert _rebuild(tmp_path, "skl-linear", "upgrade", packages["skl-linear", "base"]) == "1.0.1"
    assert _rebuild(tmp_path, "skl-linear", "family", packages["skl-linear", "base"]) == "2.0.0"


def test_build_base_cli_says_nothing_to_release(
    packages: dict[tuple[str, str], Path], tmp_path: Path, run_mpkg: object
) -> None:
    src = write_source(tmp_path / "src", "skl-linear", FAMILIES["skl-linear"].variants["twice"](), version=None)
    proc = run_mpkg("build", src, "-o", tmp_path / "out.mpkg", "--base", packages["skl-linear", "base"], expect=1)  # type: ignore[operator]
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "nothing to release" in lines[0], proc.stderr


# --- ZipMap: refused with the fix, split the same way ---------------------------------------


def test_zipmap_model_is_refused_with_the_fix(tmp_path: Path) -> None:
    from mpkg_builder.build import build_package

    src = write_source(tmp_path / "src", "zipmapped", skl2onnx_bytes(scaled_logreg(), BC, zipmap=True))
    with pytest.raises(SourceError) as err:
        build_package(src, tmp_path / "out.mpkg")
    reasons = " ".join(p.reason for p in err.value.problems)
    assert "'output_probability' is a ZipMap" in reasons and '"zipmap": False' in reasons


def _split(data: bytes) -> dict[str, object]:
    from mpkg_builder.sources.onnx_model import describe_architecture

    return describe_architecture(onnx.load_from_string(data))


def test_zipmap_models_split_like_the_rest() -> None:
    base = _split(skl2onnx_bytes(scaled_logreg(), BC, zipmap=True))
    twice = _split(skl2onnx_bytes(scaled_logreg(), BC, zipmap=True))
    retrained = _split(skl2onnx_bytes(scaled_logreg(seed=1), BC, zipmap=True))
    assert base["graph_digest"] != twice["graph_digest"]  # the random graph name, before the split
    assert (base["structure_digest"], base["weights_digest"]) == (twice["structure_digest"], twice["weights_digest"])
    assert base["structure_digest"] == retrained["structure_digest"]
    assert base["weights_digest"] != retrained["weights_digest"]
    assert base["class_labels"] == [[0, 1]]  # LinearClassifier and ZipMap agree: recorded once
    plain = _split(skl2onnx_bytes(scaled_logreg(), BC))
    assert plain["structure_digest"] != base["structure_digest"]  # ZipMap is an operator: structure


def test_string_class_labels_are_interface() -> None:
    """A retrain that meets a new class changes what clients read: MAJOR, not a retrain."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = breast_cancer(0)
    names = np.array(["benign", "malignant", "unsure"])
    two = make_pipeline(StandardScaler(), LogisticRegression()).fit(x[:, :4], names[y])
    y3 = y.copy()
    y3[:40] = 2
    three = make_pipeline(StandardScaler(), LogisticRegression()).fit(x[:, :4], names[y3])
    a, b = _split(skl2onnx_bytes(two, 4)), _split(skl2onnx_bytes(three, 4))
    assert a["class_labels"] == [["benign", "malignant"]]
    assert b["class_labels"] == [["benign", "malignant", "unsure"]]


def test_adding_a_pipeline_step_is_major(packages: dict[tuple[str, str], Path]) -> None:
    """LogisticRegression -> StandardScaler + LogisticRegression: a Scaler operator more."""
    report = diff_packages(packages["skl-linear", "step-removed"], packages["skl-linear", "base"])
    assert report.bump is MAJOR
    assert "graph.operators.ai.onnx.ml::Scaler" in {c.subject for c in report.changes}
