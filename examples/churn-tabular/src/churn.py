"""Churn prediction: logistic regression over four mixed-type columns.

``predict(weights, inputs)`` is the entry point the mpkg runtime calls. ``weights`` is a
read-only mapping of tensor name to numpy array (from weights.safetensors); ``inputs``
maps each contract column to a 1-D numpy array. Nulls in the nullable float column
``monthly_charges`` arrive as NaN and are imputed with the training mean, with a
missing-indicator feature so the model can learn that absence itself is informative.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

PLANS = ("basic", "standard", "premium")  # same order as the contract enum


def features(weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]) -> np.ndarray:
    """The design matrix: scaled numerics, missing indicator, plan one-hot (basic dropped)."""
    tenure = np.asarray(inputs["tenure"], dtype=np.float64)
    calls = np.asarray(inputs["calls"], dtype=np.int64).astype(np.float64)
    charges = np.asarray(inputs["monthly_charges"], dtype=np.float64)
    plan = np.asarray(inputs["plan"]).astype(str)
    missing = np.isnan(charges)
    charges = np.where(missing, weights["charges_fill"], charges)
    numeric = np.stack([tenure, calls, charges], axis=1)
    scaled = (numeric - weights["mean"]) / weights["scale"]
    onehot = np.stack([plan == p for p in PLANS[1:]], axis=1).astype(np.float64)
    return np.concatenate([scaled, missing[:, None].astype(np.float64), onehot], axis=1)


def predict(
    weights: Mapping[str, np.ndarray], inputs: Mapping[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """Churn probability per row, float64."""
    z = features(weights, inputs) @ weights["coef"] + weights["intercept"][0]
    return {"churn_probability": 1.0 / (1.0 + np.exp(-z))}
