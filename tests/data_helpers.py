"""Helpers shared by tests (kept out of conftest so they can be imported by name)."""

import numpy as np

from shapesworld.data import to_tensor
from shapesworld.world import SHAPES


def shape_accuracy(classifier, images: np.ndarray, shapes: list[str]) -> float:
    probs = classifier.predict(to_tensor(images))["shape"]
    y = np.array([SHAPES.index(s) for s in shapes])
    return float((probs.argmax(-1).numpy() == y).mean())
