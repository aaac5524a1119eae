"""Clients send two named columns; preprocess hands the graph float64 where it takes float32."""

import numpy as np

COLUMNS = ("mean radius", "mean texture")


def preprocess(inputs):
    return {"X": np.stack([np.asarray(inputs[c], dtype=np.float64) for c in COLUMNS], axis=1)}


def postprocess(outputs):
    label = np.asarray(outputs["label"])
    return {
        "diagnosis": np.where(label == 1, "benign", "malignant"),
        "probability benign": np.asarray(outputs["probabilities"])[:, 1],
    }
