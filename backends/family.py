"""Model families (docs/design.md §1): what differs between Stable-Diffusion-style UNets, SDXL and FLUX,
behind one protocol, so nothing outside `backends/` asks which model it holds.

    family = family_of(pipe)                       # backends.families: picked once, from the pipeline's class
    cond = family.encode(pipe, ["a star"])         # {"emb": [1, L, d], ...}: conditioning of each prompt
    out = family.predict(family.denoiser(pipe), z, t, cond)   # one denoiser call

A conditioning `Cond` is a dict of batch-first tensors; "emb" is always the cross-attention input
[B, L, d] (SDXL adds its pooled embedding and size ids). Rows can be cut and concatenated (`rows`,
`cat`), so methods cache one row per prompt whatever the family.
"""

from __future__ import annotations

from typing import Any, Protocol

import torch

Cond = dict[str, torch.Tensor]
# a diffusers denoiser (UNet2DConditionModel, FluxTransformer2DModel): an nn.Module whose `config`, `dtype`
# and blocks are set at runtime, so the type checker sees it as Any (pyproject.toml, [tool.mypy])
Denoiser = Any


class Family(Protocol):
    name: str  # "sd" | "sdxl" | "flux": what methods list as the families they support
    pipeline_classes: tuple[str, ...]  # diffusers pipeline class names (model_index.json's _class_name)
    component: str  # the pipeline attribute of the denoiser ("unet" | "transformer")

    def denoiser(self, pipe) -> Denoiser:
        """The network that denoises (the one erasure trains)."""

    def encode(self, pipe, prompts: list[str]) -> Cond:
        """Conditioning of each prompt, batch-first, without gradients."""

    def predict(self, net: torch.nn.Module, z: torch.Tensor, t: torch.Tensor, cond: Cond) -> torch.Tensor:
        """One denoiser call; a cond of one row is broadcast over z's batch."""

    def prediction_type(self, pipe) -> str:
        """What `predict` returns: "epsilon" | "v_prediction" | "flow" (a velocity)."""

    def native_size(self, pipe) -> int:
        """Image side in pixels the model was trained at."""

    def latent_size(self, pipe) -> int:
        """Side of the (unpacked) latent at the native size."""

    def noise(self, pipe, n: int, gen: torch.Generator, size: int | None = None) -> torch.Tensor:
        """n start codes z_T drawn from a CPU generator at `size` px (native by default), on the pipe's
        device and dtype; the same draws on CPU and GPU."""

    def initial_latents(self, pipe, seeds: list[int], height: int, width: int) -> torch.Tensor:
        """z_T per seed (each from its own generator), as the pipeline's `latents` argument."""

    def pipeline_inputs(self, cond: Cond, negative: Cond) -> dict:
        """Keyword arguments that make the pipeline sample from given conditionings."""

    def text_inputs(self, pipe) -> dict:
        """Keyword arguments the pipeline needs besides text prompts to encode them as training did
        (FLUX: its T5 length); the same settings as `encode`."""

    def few_step_sampler(self, pipe, steps: int, guidance: float, size: int | None = None):
        """A sampler a method can back-propagate through, drawing size x size px images (native by
        default; see backends.sd.UNetSampler)."""


def rows(cond: Cond) -> list[Cond]:
    """One conditioning per prompt (each with a batch of 1)."""
    n = len(next(iter(cond.values())))
    return [{k: v[i : i + 1] for k, v in cond.items()} for i in range(n)]


def cat(conds: list[Cond]) -> Cond:
    """Concatenate conditionings along the batch."""
    return {k: torch.cat([c[k] for c in conds]) for k in conds[0]}


def expand(cond: Cond, n: int) -> Cond:
    """A conditioning of one row repeated to n rows (a view); one of n rows is returned as it is."""
    return {k: v.expand(n, *v.shape[1:]) if len(v) == 1 else v for k, v in cond.items()}


def broadcast(cond: Cond, n: int) -> Cond:
    """A one-row cond broadcast to a batch of n (a cond of n rows is returned as it is)."""
    return expand(cond, n) if len(cond["emb"]) == 1 and n > 1 else cond


def repeat_rows(cond: Cond, n: int) -> Cond:
    """Each row repeated n times in place ([a, b] -> [a, a, b, b] for n = 2)."""
    return {k: v.repeat_interleave(n, dim=0) for k, v in cond.items()}


def detach(cond: Cond) -> Cond:
    return {k: v.detach() for k, v in cond.items()}


def to(cond: Cond, dtype: torch.dtype) -> Cond:
    """Floating tensors cast to dtype (ids and integer tensors stay as they are)."""
    return {k: v.to(dtype) if v.is_floating_point() else v for k, v in cond.items()}
