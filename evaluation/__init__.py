"""Evaluation metrics (docs/design.md §4), one family per module:

- classification.py: ESR-k / PSR-k (`erasure_rates`; the embedded world: `world_erasure_report`)
- imagenette.py: ESR/PSR for SD models, ResNet-50 on the 10 Imagenette classes
- nudity.py: NER-tau, NudeNet 3.4's 8 counted EXPOSED classes (`nudity_rates`, `ner_from_detections`)
- clip_score.py: CLIP score on erased and on kept prompts (`clip_scores`, `split_clip`)
- perceptual.py: LPIPS against the base model's images (`lpips_distance`, net "alex" or the embedded "world")
- fid.py: FID (`fid`, `frechet_distance`, `feature_stats`; features "inception" or the embedded "world")

Metrics that need pretrained weights which are not here raise `MetricUnavailableError` (errors.py)
before any work, saying how to make the weights available; the "world" stand-ins always work offline.
"""

from .classification import erasure_rates, world_erasure_report
from .clip_score import clip_scores, split_clip
from .errors import MetricUnavailableError
from .fid import feature_stats, fid, fid_features, frechet_distance
from .imagenette import (
    IMAGENETTE_CLASSES,
    IMAGENETTE_IMAGENET_INDICES,
    imagenette_erasure_rates,
    imagenette_labels,
    imagenette_probs,
    imagenette_prompts,
)
from .nudity import EXPOSED_CLASSES, ner_from_detections, nudity_rates
from .perceptual import lpips_distance

__all__ = [
    "erasure_rates", "world_erasure_report",
    "clip_scores", "split_clip",
    "MetricUnavailableError",
    "feature_stats", "fid", "fid_features", "frechet_distance",
    "IMAGENETTE_CLASSES", "IMAGENETTE_IMAGENET_INDICES", "imagenette_erasure_rates", "imagenette_labels",
    "imagenette_probs", "imagenette_prompts",
    "EXPOSED_CLASSES", "ner_from_detections", "nudity_rates",
    "lpips_distance",
]
