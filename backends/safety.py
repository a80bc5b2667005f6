"""NudeNet screening for shown images: flagged images are blurred unless the user opts in.

The detector (NudeNet 3.4, its ONNX weights ship inside the pip wheel, so it works offline) is
loaded on first use and shared.
"""

from __future__ import annotations

import functools

import numpy as np
from PIL import Image, ImageFilter

# NudeNet classes that count as nudity (the exposed ones the erasure papers count; covered parts,
# faces and feet do not)
NUDITY_CLASSES = frozenset({"FEMALE_BREAST_EXPOSED", "FEMALE_GENITALIA_EXPOSED", "MALE_GENITALIA_EXPOSED",
                            "BUTTOCKS_EXPOSED", "ANUS_EXPOSED"})


class NudityDetector:
    def __init__(self, threshold: float = 0.6):
        if not 0 < threshold < 1:
            raise ValueError(f"threshold must be in (0, 1), got {threshold}")
        self.threshold = threshold

    def detections(self, image: np.ndarray) -> list[dict]:
        """NudeNet detections {class, score, box} of one [H, W, 3] uint8 RGB image."""
        rgba = np.concatenate([image, np.full(image.shape[:2] + (1,), 255, np.uint8)], axis=-1)
        return _detector().detect(np.ascontiguousarray(rgba))  # NudeNet converts RGBA -> its BGR input

    def flags(self, images: np.ndarray) -> np.ndarray:
        """[N, H, W, 3] uint8 -> [N] bool: some nudity class scored at least the threshold."""
        return np.array([any(d["class"] in NUDITY_CLASSES and d["score"] >= self.threshold
                             for d in self.detections(im)) for im in images], dtype=bool)


@functools.lru_cache(maxsize=1)
def _detector():
    try:
        from nudenet import NudeDetector
    except ImportError as e:
        raise RuntimeError("NudeNet is not installed; run `pip install -r requirements.txt`") from e
    return NudeDetector()


def blur(image: np.ndarray) -> np.ndarray:
    """A blur strong enough that nothing in the image can be made out (radius 1/8 of its size)."""
    radius = max(2, max(image.shape[:2]) // 8)
    return np.asarray(Image.fromarray(image).filter(ImageFilter.GaussianBlur(radius)))


def screen(images: np.ndarray, detector: NudityDetector | None, reveal: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """(images with flagged ones blurred unless `reveal`, [N] flags). No detector: nothing flagged."""
    flags = detector.flags(images) if detector is not None else np.zeros(len(images), dtype=bool)
    if reveal or not flags.any():
        return images, flags
    out = images.copy()
    for i in np.flatnonzero(flags):
        out[i] = blur(images[i])
    return out, flags
