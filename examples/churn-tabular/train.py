"""Fit the churn logistic regression on synthetic customers and write weights.safetensors.

The data is synthetic (no real customers): drawn from a fixed-seed generator with a
known churn mechanism, so the example is shareable. Deterministic on a given platform.

    python examples/churn-tabular/train.py
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import save_file

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE / "src"))
from churn import PLANS, features, predict  # noqa: E402

PARAMS: dict[str, Any] = {
    "rows": 4000,
    "seed": 7,
    "iterations": 25,
    "l2": 0.01,
    "missing_rate": 0.1,
    "test_fraction": 0.25,
}


def synthesize(rng: np.random.Generator, n: int) -> tuple[dict[str, np.ndarray], np.ndarray]:
    tenure = rng.gamma(2.0, 15.0, n).round(1)
    calls = rng.poisson(1.5, n).astype(np.int64)
    plan = rng.choice(np.array(PLANS), n, p=[0.5, 0.3, 0.2])
    charges = (20 + 15 * (plan == "standard") + 40 * (plan == "premium") + rng.normal(0, 8, n)).round(2)
    logit = 0.8 - 0.05 * tenure + 0.6 * calls + 0.02 * (charges - 50) - 0.7 * (plan == "premium")
    churn = rng.random(n) < 1 / (1 + np.exp(-logit))
    charges[rng.random(n) < PARAMS["missing_rate"]] = np.nan
    return {"tenure": tenure, "calls": calls, "plan": plan, "monthly_charges": charges}, churn


def fit(x: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    """Newton's method on L2-regularised log loss (intercept unpenalised)."""
    xb = np.hstack([np.ones((len(x), 1)), x])
    w = np.zeros(xb.shape[1])
    reg = PARAMS["l2"] * np.eye(len(w))
    reg[0, 0] = 0
    for _ in range(PARAMS["iterations"]):
        p = 1 / (1 + np.exp(-xb @ w))
        grad = xb.T @ (p - y) + reg @ w
        hess = (xb * (p * (1 - p))[:, None]).T @ xb + reg
        w -= np.linalg.solve(hess, grad)
    return w[1:], float(w[0])


def auc(score: np.ndarray, y: np.ndarray) -> float:
    order = np.argsort(score, kind="stable")
    ranks = np.empty(len(score))
    ranks[order] = np.arange(1, len(score) + 1)
    pos = y.sum()
    return float((ranks[y].sum() - pos * (pos + 1) / 2) / (pos * (len(y) - pos)))


def main() -> None:
    rng = np.random.default_rng(PARAMS["seed"])
    cols, y = synthesize(rng, PARAMS["rows"])
    test = rng.random(len(y)) < PARAMS["test_fraction"]
    train_cols = {k: v[~test] for k, v in cols.items()}
    charges = train_cols["monthly_charges"]
    fill = np.array(np.nanmean(charges))
    numeric = np.stack(
        [
            train_cols["tenure"],
            train_cols["calls"].astype(np.float64),
            np.where(np.isnan(charges), fill, charges),
        ],
        axis=1,
    )
    weights = {"charges_fill": fill, "mean": numeric.mean(axis=0), "scale": numeric.std(axis=0)}
    coef, intercept = fit(features(weights, train_cols), y[~test].astype(np.float64))
    weights |= {"coef": coef, "intercept": np.array([intercept])}
    weights = {k: np.ascontiguousarray(v, dtype=np.float64) for k, v in weights.items()}
    prob = predict(weights, {k: v[test] for k, v in cols.items()})["churn_probability"]
    metrics = {
        "auc": round(auc(prob, y[test]), 4),
        "accuracy": round(float(((prob > 0.5) == y[test]).mean()), 4),
        "churn_rate": round(float(y.mean()), 4),
    }
    save_file(
        weights,
        str(HERE / "weights.safetensors"),
        # One key only: the library writes metadata from a hash map, so several keys
        # would come out in a different order on each run.
        metadata={"features": "tenure,calls,monthly_charges,monthly_charges_missing,plan=standard,plan=premium"},
    )
    (HERE / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n")
    print(json.dumps(metrics, sort_keys=True))


if __name__ == "__main__":
    main()
