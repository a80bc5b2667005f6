"""CLIP alignment scorers behind one interface (docs/design.md §1): S(x, c) = 100 * max(cos(f_img(x), f_txt(c)), 0).

    scorer = get_scorer("embedded")                  # the shipped tiny CLIP (default for `embedded`)
    scorer = get_scorer("ViT-L-14/openai")           # open_clip model/pretrained tag (default for SD)
    s = scorer.score(images, prompts)                # uint8 [N, H, W, 3] + N texts -> [N]

Features are L2-normalised float32 on the CPU, so scores, image-image similarities and
text-text similarities all come from the same vectors.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from backends.building import serialised
from backends.paths import ASSETS
from backends.storage import weights_fingerprint

DEFAULT_SD_SCORER = "ViT-L-14/openai"


class Scorer:
    """Subclasses set `name` and implement _encode_images (float [N, 3, H, W] in 0..1) and _encode_texts."""

    name: str = "scorer"
    batch: int = 64

    def __init__(self, model, device: str | torch.device = "cpu"):
        self.model, self.device = model.eval().to(device), torch.device(device)

    @torch.no_grad()
    def image_features(self, images: np.ndarray) -> torch.Tensor:
        """uint8 [N, H, W, 3] -> unit vectors [N, d]."""
        if images.ndim != 4 or images.shape[-1] != 3 or images.dtype != np.uint8:
            raise ValueError(f"images must be uint8 [N, H, W, 3], got {images.dtype} {images.shape}")
        out = []
        for i in range(0, len(images), self.batch):
            x = torch.from_numpy(images[i : i + self.batch]).permute(0, 3, 1, 2).float().div(255).to(self.device)
            out.append(F.normalize(self._encode_images(x).float(), dim=-1).cpu())
        return torch.cat(out)

    @torch.no_grad()
    def text_features(self, texts: list[str]) -> torch.Tensor:
        """N texts -> unit vectors [N, d]."""
        out = [F.normalize(self._encode_texts(texts[i : i + self.batch]).float(), dim=-1).cpu()
               for i in range(0, len(texts), self.batch)]
        return torch.cat(out)

    def fingerprint(self) -> str:
        """Hash of the scorer's weights: part of the cache key of scores."""
        return weights_fingerprint({"scorer": self.model}, salt=self.name)

    def score(self, images: np.ndarray, texts: list[str]) -> torch.Tensor:
        """S(x_i, c_i) for paired images and texts, [N] in 0..100."""
        if len(images) != len(texts):
            raise ValueError(f"got {len(images)} images but {len(texts)} texts; pass one text per image")
        return scores_from_features(self.image_features(images), self.text_features(texts))

    def _encode_images(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def _encode_texts(self, texts: list[str]) -> torch.Tensor:
        raise NotImplementedError


def scores_from_features(image_features: torch.Tensor, text_features: torch.Tensor) -> torch.Tensor:
    """100 * max(cos, 0) row by row (torchmetrics' CLIPScore convention); both [N, d] unit vectors."""
    return 100 * (image_features * text_features).sum(-1).clamp(min=0)


class EmbeddedClipScorer(Scorer):
    """A tiny open_clip CLIP trained on an embedded world: ShapesWorld's (assets/embedded/clip) or, with
    `folder` and `name`, EmojiWorld's (assets/emoji/clip; emojiworld.train_clip)."""

    name = "embedded"

    def __init__(self, device: str | torch.device = "cpu", folder: Path = ASSETS / "clip", name: str = "embedded"):
        from backends import load_embedded_clip

        model, self.tokenize = load_embedded_clip(device, folder)
        self.name = name
        super().__init__(model, device)

    def _encode_images(self, x):
        size = _side(self.model.visual.image_size)
        if x.shape[-1] != size:  # another model's images (e.g. a tiny random pipeline's)
            x = _resize(x, size)
        return self.model.encode_image(x * 2 - 1)  # trained on [-1, 1] images (shapesworld.data.to_tensor)

    def _encode_texts(self, texts):
        return self.model.encode_text(self.tokenize(texts).to(self.device))


class OpenClipScorer(Scorer):
    """Any open_clip model, e.g. 'ViT-L-14/openai' (the default scorer for SD, docs/design.md §1); weights from the hub cache."""

    def __init__(self, spec: str = DEFAULT_SD_SCORER, device: str | torch.device = "cpu"):
        import open_clip

        arch, _, pretrained = spec.partition("/")
        try:
            model, _, self.preprocess = open_clip.create_model_and_transforms(arch, pretrained=pretrained or None)
        except Exception as e:  # offline, unknown tag, missing weights ...
            raise RuntimeError(
                f"open_clip scorer {spec!r} is not available ({type(e).__name__}: {e}). Download its weights on a "
                "machine with internet access (they go to the Hugging Face cache), pick another model with "
                "--scorer, or use the embedded scorer with the embedded model."
            ) from e
        self.name, self.tokenizer = spec, open_clip.get_tokenizer(arch)
        super().__init__(model, device)
        self.size = _side(model.visual.image_size)
        norm = [t for t in self.preprocess.transforms if type(t).__name__ == "Normalize"][0]
        self.mean = torch.tensor(norm.mean).view(1, 3, 1, 1)
        self.std = torch.tensor(norm.std).view(1, 3, 1, 1)

    def _encode_images(self, x):
        x = _resize(x, self.size)
        return self.model.encode_image((x - self.mean.to(x)) / self.std.to(x))

    def _encode_texts(self, texts):
        return self.model.encode_text(self.tokenizer(texts).to(self.device))


def _side(image_size) -> int:
    """open_clip's image_size: an int or (h, w) of a square input."""
    return image_size if isinstance(image_size, int) else image_size[0]


def _resize(x: torch.Tensor, size: int) -> torch.Tensor:
    """[N, 3, H, W] in 0..1 to a scorer's square input side."""
    return F.interpolate(x, size=(size, size), mode="bicubic", align_corners=False, antialias=True).clamp(0, 1)


@serialised  # builds a CLIP model (backends.building)
def get_scorer(name: str = "embedded", device: str | torch.device = "cpu") -> Scorer:
    """'embedded', 'emoji' (EmojiWorld's CLIP, once it is in assets/emoji/clip) or an open_clip
    'arch/pretrained' tag."""
    if name == "embedded":
        return EmbeddedClipScorer(device)
    if name == "emoji":
        from backends.paths import EMOJI_ASSETS

        from .errors import MetricUnavailableError

        folder = EMOJI_ASSETS / "clip"
        if not (folder / "open_clip_model.safetensors").is_file():
            raise MetricUnavailableError("EmojiWorld's CLIP scorer is not trained yet (assets/emoji/README.md), so "
                                         "delta cannot be scored on the emoji model; compute a proxy-only spectrum "
                                         "meanwhile")
        return EmbeddedClipScorer(device, folder, "emoji")
    if "/" not in name:
        raise ValueError(f"unknown scorer {name!r}; use 'embedded' or an open_clip 'arch/pretrained' tag "
                         f"such as {DEFAULT_SD_SCORER!r}")
    return OpenClipScorer(name, device)


def default_scorer_for(model: str) -> str:
    """The scorer of a model's own world ('embedded', 'emoji'), or open_clip's ViT-L-14 for models of open text."""
    return {"embedded": "embedded", "emoji": "emoji"}.get(model, DEFAULT_SD_SCORER)
