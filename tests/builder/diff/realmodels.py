"""Models made by the real converters users have, for the version-truth tests (issue 10).

Every model here is trained at test time on data that ships with scikit-learn
(``load_breast_cancer``) or on a seeded synthetic table, and converted with the real
converter: skl2onnx for scikit-learn estimators and pipelines, onnxmltools for LightGBM.
Each fit takes milliseconds; a whole family of variants takes about a second.

A *family* of variants answers one question each against its ``base``:

- ``retrained``: the same estimator and hyperparameters fitted on other rows (MINOR);
- ``hyper``: another hyperparameter value that keeps the operator set (MINOR);
- ``twice``: the very same fitted object converted a second time (no model finding);
- ``upgrade``: the same fitted object re-exported as a newer converter would (PATCH): the
  converter really runs again with its ``naming`` option, so every node *and every
  intermediate value* gets another name, and ``producer_version`` says a later release;
  the stamp is the one thing we cannot get without installing two converter versions side
  by side, so it is written into the real re-export;
- ``family``: another estimator family or an added pipeline step (MAJOR).
"""

from __future__ import annotations

import contextlib
import functools
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

Variant = Callable[[], bytes]


@dataclass(frozen=True)
class Family:
    """A base model and its variants, each a callable returning ONNX bytes."""

    name: str
    n_features: int
    variants: dict[str, Variant]


@functools.cache
def breast_cancer(seed: int) -> tuple[np.ndarray, np.ndarray]:
    """80% of load_breast_cancer, rows drawn by ``seed`` (another seed = a retrain on new data)."""
    from sklearn.datasets import load_breast_cancer

    x, y = load_breast_cancer(return_X_y=True)
    rows = np.random.default_rng(seed).permutation(len(y))[: int(0.8 * len(y))]
    return x[rows].astype(np.float32), y[rows]


@functools.cache
def churn_table(seed: int, n_cats: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """A seeded table: column 0 a category code (0..n_cats-1), columns 1-3 numbers."""
    rng = np.random.default_rng(seed)
    n = 400
    cat = rng.integers(0, n_cats, n)
    num = rng.standard_normal((n, 3))
    y = ((cat == 1) | (num[:, 0] > 0.5)).astype(np.int64)
    return np.column_stack([cat, num]).astype(np.float32), y


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Converters and estimators warn about versions and convergence; the suite turns warnings into errors."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


def skl2onnx_bytes(
    est: Any, n_features: int, *, zipmap: bool = False, naming: str | None = None, producer_version: str | None = None
) -> bytes:
    """Convert a fitted estimator with skl2onnx (opset pinned so a converter default cannot drift)."""
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType

    with _quiet():
        final = est.steps[-1][1] if hasattr(est, "steps") else est
        model = convert_sklearn(
            est,
            initial_types=[("X", FloatTensorType([None, n_features]))],
            options={id(final): {"zipmap": zipmap}},
            target_opset={"": 17, "ai.onnx.ml": 3},
            naming=naming,
        )
    if producer_version is not None:
        model.producer_version = producer_version
    data: bytes = model.SerializeToString()
    return data


def lightgbm_bytes(est: Any, n_features: int, *, producer_version: str | None = None, rename: bool = False) -> bytes:
    """Convert a fitted LightGBM classifier with onnxmltools (no ZipMap)."""
    from onnxmltools.convert import convert_lightgbm
    from onnxmltools.convert.common.data_types import FloatTensorType

    with _quiet():
        model = convert_lightgbm(
            est, initial_types=[("X", FloatTensorType([None, n_features]))], zipmap=False, target_opset=15
        )
    # onnxmltools 1.16 declares the label output as shape [1] whatever the batch; the build's
    # example run catches it, and users fix the declaration the same way before packaging.
    label = next(o for o in model.graph.output if o.name == "label")
    label.type.tensor_type.shape.dim[0].dim_param = "N"
    if producer_version is not None:
        model.producer_version = producer_version
    if rename:  # onnxmltools has no naming option: rename nodes and intermediates as a newer release might
        outputs = {o.name for o in model.graph.output}
        inputs = {i.name for i in model.graph.input} | {t.name for t in model.graph.initializer}
        internal = {v for n in model.graph.node for v in n.output if v not in outputs and v not in inputs}
        for i, node in enumerate(model.graph.node):
            node.name = f"node_{i}"
            node.input[:] = [f"{v}__v2" if v in internal else v for v in node.input]
            node.output[:] = [f"{v}__v2" if v in internal else v for v in node.output]
    data: bytes = model.SerializeToString()
    return data


# --- scikit-learn estimators ---------------------------------------------------------------


@functools.cache
def scaled_logreg(c: float = 1.0, seed: int = 0) -> Any:
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    x, y = breast_cancer(seed)
    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=2000)).fit(x, y)


@functools.cache
def logreg_only(seed: int = 0) -> Any:
    from sklearn.linear_model import LogisticRegression

    x, y = breast_cancer(seed)
    with _quiet():
        return LogisticRegression(max_iter=5000).fit(x, y)


@functools.cache
def boosted(n_estimators: int = 10, max_depth: int = 3, seed: int = 0) -> Any:
    from sklearn.ensemble import GradientBoostingClassifier

    x, y = breast_cancer(seed)
    return GradientBoostingClassifier(n_estimators=n_estimators, max_depth=max_depth, random_state=0).fit(x, y)


@functools.cache
def forest(seed: int = 0) -> Any:
    from sklearn.ensemble import RandomForestClassifier

    x, y = breast_cancer(seed)
    return RandomForestClassifier(n_estimators=10, max_depth=3, random_state=0).fit(x, y)


@functools.cache
def onehot_logreg(c: float = 1.0, seed: int = 0, n_cats: int = 4) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, y = churn_table(seed, n_cats)
    columns = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), [0]), ("num", StandardScaler(), [1, 2, 3])]
    )
    return make_pipeline(columns, LogisticRegression(C=c)).fit(x, y)


@functools.cache
def onehot_boosted(seed: int = 0) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import GradientBoostingClassifier
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    x, y = churn_table(seed)
    columns = ColumnTransformer(
        [("cat", OneHotEncoder(handle_unknown="ignore"), [0]), ("num", StandardScaler(), [1, 2, 3])]
    )
    return make_pipeline(columns, GradientBoostingClassifier(n_estimators=5, random_state=0)).fit(x, y)


@functools.cache
def lgbm(n_estimators: int = 10, num_leaves: int = 15, seed: int = 0) -> Any:
    import lightgbm

    x, y = breast_cancer(seed)
    return lightgbm.LGBMClassifier(
        n_estimators=n_estimators, num_leaves=num_leaves, random_state=0, verbose=-1, n_jobs=1
    ).fit(x, y)


def _skl(make: Callable[[], Any], n: int, **kw: Any) -> Variant:
    return lambda: skl2onnx_bytes(make(), n, **kw)


BC = 30  # breast-cancer features
TABLE = 4  # churn-table columns

FAMILIES: dict[str, Family] = {
    "skl-linear": Family(
        "skl-linear",
        BC,
        {
            "base": _skl(scaled_logreg, BC),
            "retrained": _skl(lambda: scaled_logreg(seed=1), BC),
            "hyper": _skl(lambda: scaled_logreg(c=0.1), BC),
            "twice": _skl(scaled_logreg, BC),
            "upgrade": _skl(scaled_logreg, BC, naming="v2_", producer_version="1.99.0"),
            "family": _skl(boosted, BC),
            "step-removed": _skl(logreg_only, BC),
        },
    ),
    "skl-trees": Family(
        "skl-trees",
        BC,
        {
            "base": _skl(boosted, BC),
            "retrained": _skl(lambda: boosted(seed=1), BC),
            "hyper": _skl(lambda: boosted(max_depth=2), BC),
            "more-trees": _skl(lambda: boosted(n_estimators=15), BC),
            "twice": _skl(boosted, BC),
            "upgrade": _skl(boosted, BC, naming="v2_", producer_version="1.99.0"),
            "family": _skl(forest, BC),
        },
    ),
    "skl-onehot": Family(
        "skl-onehot",
        TABLE,
        {
            "base": _skl(onehot_logreg, TABLE),
            "retrained": _skl(lambda: onehot_logreg(seed=1), TABLE),
            "hyper": _skl(lambda: onehot_logreg(c=0.1), TABLE),
            "new-category": _skl(lambda: onehot_logreg(n_cats=5), TABLE),
            "twice": _skl(onehot_logreg, TABLE),
            "upgrade": _skl(onehot_logreg, TABLE, naming="v2_", producer_version="1.99.0"),
            "family": _skl(onehot_boosted, TABLE),
        },
    ),
    "lightgbm": Family(
        "lightgbm",
        BC,
        {
            "base": lambda: lightgbm_bytes(lgbm(), BC),
            "retrained": lambda: lightgbm_bytes(lgbm(seed=1), BC),
            "hyper": lambda: lightgbm_bytes(lgbm(num_leaves=7), BC),
            "twice": lambda: lightgbm_bytes(lgbm(), BC),
            "upgrade": lambda: lightgbm_bytes(lgbm(), BC, producer_version="1.99.0", rename=True),
            "family": _skl(scaled_logreg, BC),
        },
    ),
}


def write_source(src: Path, family: str, onnx_bytes: bytes, version: str | None = "1.0.0") -> Path:
    """A package source around a converted model: mpkg.toml, the model, a lockfile and a card."""
    from mpkgdiff_sources import CARD

    src.mkdir(parents=True)
    (src / "model.onnx").write_bytes(onnx_bytes)
    (src / "MODEL_CARD.md").write_text(CARD.format(name=family, tag=family), encoding="utf-8")
    (src / "requirements.lock").write_text("numpy==2.4.6\nonnxruntime==1.32.0\n", encoding="utf-8")
    declared = f'version = "{version}"\n' if version else ""
    (src / "mpkg.toml").write_text(
        f'[package]\nname = "{family}"\n{declared}\n[model]\nformat = "onnx"\nfiles = ["model.onnx"]\n\n'
        '[environment]\nlockfile = "requirements.lock"\n\n[card]\nfile = "MODEL_CARD.md"\n',
        encoding="utf-8",
    )
    return src
