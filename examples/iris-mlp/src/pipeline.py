"""Pre- and post-processing for iris-mlp.

The graph itself standardises features; preprocessing only guards the input domain
(measurements are lengths in centimetres: clip negatives and absurd values), and
postprocessing returns the graph outputs unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

# Generous bounds around the observed iris ranges (cm); outside them the model extrapolates.
LOW, HIGH = 0.0, 20.0


def preprocess(inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Clip measurements into a physically plausible range, as float32."""
    features = np.asarray(inputs["features"], dtype=np.float32)
    return {"features": np.clip(features, LOW, HIGH)}


def postprocess(outputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Pass the graph's probabilities and labels through."""
    return {"probabilities": outputs["probabilities"], "label": outputs["label"]}
