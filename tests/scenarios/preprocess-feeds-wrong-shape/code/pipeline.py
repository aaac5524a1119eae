"""Clients send two named columns; preprocess forgets one, so the graph gets [N, 1] for [N, 2]."""

import numpy as np


def preprocess(inputs):
    return {"X": np.asarray(inputs["mean radius"], dtype=np.float32).reshape(-1, 1)}


def postprocess(outputs):
    label = np.asarray(outputs["label"])
    return {
        "diagnosis": np.where(label == 1, "benign", "malignant"),
        "probability benign": np.asarray(outputs["probabilities"])[:, 1],
    }
