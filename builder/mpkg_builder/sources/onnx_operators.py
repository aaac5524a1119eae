"""Which attributes of which ONNX operators are learned parameters (spec/semver.md §4.1).

Every attribute of every ``ai.onnx.ml`` operator is classified here, once: learned (what a fit
computes from data, or a numeric hyperparameter tuning a fixed function: it moves on every
retrain), class labels (what clients read back), or structure (a choice of the function itself
or of what its output means). A test checks the table against ``onnx.defs``, so a new ONNX
release with a new operator or attribute asks for a decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

ML = "ai.onnx.ml"


@dataclass(frozen=True)
class OpSplit:
    """How one operator's attributes divide: learned values, class labels, structure."""

    learned: frozenset[str] = frozenset()
    labels: frozenset[str] = frozenset()
    structure: frozenset[str] = frozenset()
    why: str = ""


def _op(learned: str = "", labels: str = "", structure: str = "", why: str = "") -> OpSplit:
    return OpSplit(frozenset(learned.split()), frozenset(labels.split()), frozenset(structure.split()), why)


_LABELS = "classlabels_ints classlabels_strings"
_TREE_NODES = (
    "nodes_falsenodeids nodes_featureids nodes_hitrates nodes_hitrates_as_tensor nodes_missing_value_tracks_true "
    "nodes_modes nodes_nodeids nodes_treeids nodes_truenodeids nodes_values nodes_values_as_tensor"
)

# Every attribute of every ai.onnx.ml operator, classified (a test checks this against onnx.defs).
# Learned: what a fit computes from data, and numeric hyperparameters tuning a fixed function;
# they move on every retrain. Structure: choices of the function itself or of what its output
# means. Attributes not listed (a newer ONNX) count as structure: unknown facts are assumed to matter.
ML_OPERATORS: Mapping[str, OpSplit] = {
    "ArrayFeatureExtractor": _op(why="no attributes; the selected indices are an input (an initializer)"),
    "Binarizer": _op("threshold", why="a tuned threshold on a fixed function"),
    "CastMap": _op(structure="cast_to map_form max_map", why="type conversion: no fitted values"),
    "CategoryMapper": _op(
        "cats_int64s cats_strings",
        structure="default_int64 default_string",
        why="the vocabulary is fitted; the value for unknown input is what callers get back",
    ),
    "DictVectorizer": _op("int64_vocabulary string_vocabulary", why="the vocabulary is fitted"),
    "FeatureVectorizer": _op(structure="inputdimensions", why="how inputs are concatenated: wiring"),
    "Imputer": _op(
        "imputed_value_floats imputed_value_int64s",
        structure="replaced_value_float replaced_value_int64",
        why="fill values are fitted (means, medians); which input value means 'missing' is the interface",
    ),
    "LabelEncoder": _op(
        "classes_strings keys_floats keys_int64s keys_strings keys_tensor "
        "values_floats values_int64s values_strings values_tensor",
        structure="default_float default_int64 default_string default_tensor",
        why="the mapping is fitted; the value for unknown keys is what callers get back",
    ),
    "LinearClassifier": _op(
        "coefficients intercepts",
        _LABELS,
        "multi_class post_transform",
        "weights are fitted; post_transform decides whether outputs are probabilities or scores",
    ),
    "LinearRegressor": _op(
        "coefficients intercepts",
        structure="post_transform targets",
        why="weights are fitted; the number of targets is the output's width",
    ),
    "Normalizer": _op(structure="norm", why="the norm chooses the function; nothing is fitted"),
    "OneHotEncoder": _op(
        "cats_int64s cats_strings",
        structure="zeros",
        why="categories are fitted from data; zeros decides whether unknown categories fail",
    ),
    "Scaler": _op("offset scale", why="offsets and scales are fitted"),
    "SVMClassifier": _op(
        "coefficients kernel_params prob_a prob_b rho support_vectors vectors_per_class",
        _LABELS,
        "kernel_type post_transform",
        "support vectors and coefficients are fitted, kernel parameters tuned; the kernel type chooses the function",
    ),
    "SVMRegressor": _op(
        "coefficients kernel_params n_supports rho support_vectors",
        structure="kernel_type one_class post_transform",
        why="as SVMClassifier",
    ),
    "TreeEnsembleClassifier": _op(
        f"base_values base_values_as_tensor class_ids class_nodeids class_treeids class_weights "
        f"class_weights_as_tensor {_TREE_NODES}",
        "classlabels_int64s classlabels_strings",
        "post_transform",
        "trees are fitted (a retrain may grow more or fewer nodes); post_transform decides what scores mean",
    ),
    "TreeEnsembleRegressor": _op(
        f"base_values base_values_as_tensor target_ids target_nodeids target_treeids target_weights "
        f"target_weights_as_tensor {_TREE_NODES}",
        structure="aggregate_function n_targets post_transform",
        why="trees are fitted; the aggregation and the number of targets are the function and the output width",
    ),
    "TreeEnsemble": _op(
        "leaf_targetids leaf_weights membership_values nodes_falseleafs nodes_falsenodeids nodes_featureids "
        "nodes_hitrates nodes_missing_value_tracks_true nodes_modes nodes_splits nodes_trueleafs "
        "nodes_truenodeids tree_roots",
        structure="aggregate_function n_targets post_transform",
        why="trees are fitted; the aggregation and the number of targets are the function and the output width",
    ),
    "ZipMap": _op(labels="classlabels_int64s classlabels_strings", why="the map keys clients read"),
}
# Default-domain operators whose attribute values are data rather than structure.
CONSTANT_VALUES = frozenset(
    {"value", "value_float", "value_floats", "value_int", "value_ints", "value_string", "value_strings", "sparse_value"}
)


__all__ = ["CONSTANT_VALUES", "ML", "ML_OPERATORS", "OpSplit"]
