"""Prompt embeddings shared by erasure (AP's search space, every method's conditioning) and the
sensitivity spectrum (the proxy, nearest-K vocabularies), and what each model needs to phrase a
concept as a prompt.

    emb = embed_prompts(pipe, ["a star"])                  # [1, L, d]
    (per-word embeddings of whole vocabularies, cached on disk: backends.word_store)

Shapes: text embeddings [N, L, d] with L the tokenizer's context (77 on SD, 24 on the embedded model).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .offload import execution_device
from .paths import EMBEDDED, EMOJI


@dataclass(frozen=True)
class ModelTraits:
    """What a model needs that the published SD settings do not give it (every method's first layer
    over its defaults, docs/design.md §3.1)."""

    template: str  # how a concept becomes a prompt ("a {concept}": the embedded world's caption form)
    vocabulary: str  # the words the model knows, for searches over concepts (AP, AGE, nearest-K)
    lr_scale: float = 1.0  # multiplies the published learning rates (docs/design.md §6: tiny models need more)
    sampler_steps: int | None = None  # the z_t sampler's steps, when the model is evaluated with fewer than 50
    world: str | None = None  # the embedded world whose words alone the model knows ("shapes", "emoji"), or None


_TRAITS = {EMBEDDED: ModelTraits("a {concept}", "world", lr_scale=100.0, sampler_steps=25, world="shapes"),
           # EmojiWorld's model: the same architecture and training recipe at 32 px, its concept names as words
           # ("{a}": the concept's article, as its captions write it: "an otter", "a cat face")
           EMOJI: ModelTraits("{a} {concept}", "emoji", lr_scale=100.0, sampler_steps=25, world="emoji")}
_DEFAULT = ModelTraits("{concept}", "clip-words")


def fill(template: str, concept: str) -> str:
    """A concept in a prompt template: "{concept}" is the concept, and "{a}" its English article ("an" before a
    vowel), for worlds whose captions write it (EmojiWorld's "an otter"; ShapesWorld's stored template, "a
    {concept}", keeps its numbers unchanged)."""
    return template.format(concept=concept, a="an" if concept[:1].lower() in "aeiou" and concept else "a")


def model_traits(model: str) -> ModelTraits:
    """The embedded models only learnt their world's captions and words, and lr 1e-5 moves nothing on
    their few-million-parameter UNets; any other model takes the concept as it is, searches CLIP's
    whole-word vocabulary and uses the published learning rates."""
    return _TRAITS.get(model, _DEFAULT)


@torch.no_grad()
def embed_prompts(pipe, prompts: list[str]) -> torch.Tensor:
    """Text-encoder hidden states [N, L, d] for prompts, padded to the tokenizer's context."""
    tok = pipe.tokenizer(prompts, padding="max_length", max_length=pipe.tokenizer.model_max_length,
                         truncation=True, return_tensors="pt")
    return pipe.text_encoder(tok.input_ids.to(execution_device(pipe)))[0]
