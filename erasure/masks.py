"""Neuron masks for MCE: where they sit, how they act while training, and how a binary mask is baked
into the weights (exactly: a masked neuron's weights are zeroed, so nothing else needs hooks).

A site masks one vector of activations of a module, either its input (`where="input"`: the FFN hidden
neurons entering the FFN's output projection) or its output (`where="output"`: LayerNorm channels,
AdaLayerNorm modulation values, FLUX single blocks' MLP neurons).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from backends.building import BUILD_LOCK

# Site kinds. "ffn" and "norm" are the published MCE sites: FFN hidden neurons and the normalisation/modulation
# outputs of transformer blocks. "resnet": the channels of a UNet's resnet GroupNorms, the normalisation
# outputs outside its transformer blocks (the embedded UNet draws its shapes there, see MCE.PROFILES).
KINDS = ("ffn", "norm", "resnet")
SEED_KINDS = ("ffn", "norm")  # the published MCE sites: MCE's default
# How a logit becomes a mask while training. "sigmoid": the relaxed mask sigmoid(logit) (the model
# trained is not the binarised one); "straight_through": the binary mask logit > 0 in the forward pass
# and sigmoid's gradient in the backward pass (the model trained is the one that is saved);
# "hard_concrete": Louizos et al.'s stochastic gate (the reference code's "hard_discrete"), a noisy
# sigmoid stretched past [0, 1] and clipped, so most gates sit at exactly 0 or 1 while training and the
# model trained is close to the binarised one.
RELAXATIONS = ("sigmoid", "straight_through", "hard_concrete")
# Hard-concrete constants (Louizos et al. 2018): temperature and the stretch interval (gamma, zeta).
HC_TEMPERATURE, HC_GAMMA, HC_ZETA = 2 / 3, -0.1, 1.1


@dataclass(frozen=True)
class Site:
    path: str  # submodule path inside the denoiser
    kind: str  # one of KINDS
    where: str  # "input" | "output" of that submodule
    size: int  # neurons masked

    def key(self, component: str) -> str:
        """Name of this site's mask in a result file: mask.<where>.<pipeline component>.<path>."""
        return f"mask.{self.where}.{component}.{self.path}"


def parse_key(key: str) -> tuple[str, str, str]:
    """"mask.input.unet.down_blocks.0...." -> ("input", "unet", "down_blocks.0....")."""
    parts = key.split(".", 3)
    if len(parts) != 4 or parts[0] != "mask" or parts[1] not in ("input", "output"):
        raise ValueError(f"{key!r} is not a mask key (mask.<input|output>.<component>.<module path>)")
    return parts[1], parts[2], parts[3]


def mask_sites(model: nn.Module, kinds: tuple[str, ...] = SEED_KINDS) -> list[Site]:
    """The sites of `kinds`. "ffn": diffusers' FeedForward (UNet and FLUX double blocks) and FLUX single
    blocks' MLP; "norm": affine LayerNorms inside transformer blocks and AdaLayerNorm* modulation
    projections; "resnet": affine GroupNorms of UNet resnet blocks (FLUX has none)."""
    unknown = set(kinds) - set(KINDS)
    if unknown or not kinds:
        raise ValueError(f"unknown or no mask site kinds {sorted(unknown)}; valid: {', '.join(KINDS)}")
    sites = [s for s in _all_sites(model) if s.kind in kinds]
    if not sites:
        raise ValueError(f"{type(model).__name__} has no {' or '.join(kinds)} layers to mask")
    return sites


def _all_sites(model: nn.Module) -> list[Site]:
    sites = []
    for name, m in model.named_modules():
        cls = type(m).__name__
        if cls == "FeedForward":
            last = len(m.net) - 1
            sites.append(Site(f"{name}.net.{last}", "ffn", "input", m.net[last].in_features))
        elif cls == "FluxSingleTransformerBlock":
            sites.append(Site(f"{name}.proj_mlp", "ffn", "output", m.proj_mlp.out_features))
        elif isinstance(m, nn.LayerNorm) and m.elementwise_affine and "transformer_blocks" in name:
            sites.append(Site(name, "norm", "output", m.normalized_shape[0]))
        elif cls.startswith("AdaLayerNorm") and isinstance(getattr(m, "linear", None), nn.Linear):
            sites.append(Site(f"{name}.linear", "norm", "output", m.linear.out_features))
        elif isinstance(m, nn.GroupNorm) and m.affine and ".resnets." in name:
            sites.append(Site(name, "resnet", "output", m.num_channels))
    return sites


class Masker(nn.Module):
    """One logit per neuron and site; mask = the relaxation of the logit while training ("soft"),
    logit > 0 once binarised ("hard"), or no masking at all ("off": the original model)."""

    def __init__(self, model: nn.Module, sites: list[Site], init_logit: float = 3.0, component: str = "unet",
                 relaxation: str = "sigmoid"):
        super().__init__()
        if relaxation not in RELAXATIONS:
            raise ValueError(f"unknown relaxation {relaxation!r}; valid: {', '.join(RELAXATIONS)}")
        self.sites, self.component, self.relaxation = sites, component, relaxation
        with BUILD_LOCK:  # a pipeline loading in another thread would make these meta (backends.building)
            self.logits = nn.ParameterList([nn.Parameter(torch.full((s.size,), init_logit)) for s in sites])
        self.mode = "soft"
        self._noise: list[torch.Tensor] | None = None  # hard_concrete: logistic noise of this step, per site
        self._handles = [self._hook(model.get_submodule(s.path), s, i) for i, s in enumerate(sites)]

    def _hook(self, module: nn.Module, site: Site, i: int):
        def scale(x: torch.Tensor) -> torch.Tensor:  # x [..., size] (resnet: [B, size, h, w])
            if self.mode == "off":
                return x
            m = self.mask(i).to(x.dtype)
            return x * (m[:, None, None] if site.kind == "resnet" else m)

        if site.where == "input":
            return module.register_forward_pre_hook(lambda mod, args: (scale(args[0]), *args[1:]))
        return module.register_forward_hook(lambda mod, args, out: scale(out))

    def mask(self, i: int) -> torch.Tensor:
        logit = self.logits[i]
        hard = (logit > 0).to(logit.dtype)
        if self.mode == "hard":
            return hard
        if self.relaxation == "hard_concrete":
            return self._hard_concrete(i)
        soft = torch.sigmoid(logit)
        if self.relaxation == "straight_through":
            return hard + soft - soft.detach()  # value: the binary mask; gradient: sigmoid's
        return soft

    def resample(self, gen: torch.Generator) -> None:
        """Draw this step's hard-concrete noise (one value per neuron). It is held fixed until the next
        call, so every denoiser call of the step and the checkpointed recomputation see the same gates."""
        if self.relaxation != "hard_concrete":
            return
        u = [torch.rand(s.size, generator=gen).clamp(1e-6, 1 - 1e-6) for s in self.sites]
        self._noise = [(torch.log(x) - torch.log1p(-x)).to(logit.device) for x, logit in zip(u, self.logits)]

    def _hard_concrete(self, i: int) -> torch.Tensor:
        if self._noise is None:
            raise RuntimeError("hard_concrete masks need Masker.resample(generator) before a soft forward pass")
        s = torch.sigmoid((self.logits[i] + self._noise[i]) / HC_TEMPERATURE)
        return (s * (HC_ZETA - HC_GAMMA) + HC_GAMMA).clamp(0.0, 1.0)

    def binary(self) -> dict[str, torch.Tensor]:
        """Result tensors: site key -> bool mask [size] (True = neuron kept)."""
        return {s.key(self.component): (logit.detach() > 0).cpu() for s, logit in zip(self.sites, self.logits)}

    @torch.no_grad()
    def masked_fraction(self) -> float:
        """Fraction of neurons the binary mask would drop, counted on the device (one sync)."""
        dropped = sum((logit <= 0).sum() for logit in self.logits)
        return float(dropped) / sum(s.size for s in self.sites)

    def param_groups(self, lr_ffn: float, lr_norm: float) -> list[dict]:
        groups: dict[str, list[nn.Parameter]] = {"ffn": [], "norm": []}
        for s, logit in zip(self.sites, self.logits):
            groups["ffn" if s.kind == "ffn" else "norm"].append(logit)  # resnet GroupNorms learn at lr_norm
        return [{"params": p, "lr": lr} for p, lr in ((groups["ffn"], lr_ffn), (groups["norm"], lr_norm)) if p]

    def remove(self) -> None:
        for h in self._handles:
            h.remove()


def masked_fraction(masks: dict[str, torch.Tensor]) -> float:
    total = sum(m.numel() for m in masks.values())
    return float(sum((~m.bool()).sum().item() for m in masks.values()) / max(total, 1))


@torch.no_grad()
def bake(model: nn.Module, where: str, path: str, keep: torch.Tensor) -> None:
    """Zero the weights that feed (or read) masked neurons: the model then computes exactly what the
    binary mask computes, with no hooks. keep: bool [neurons], True = kept."""
    module: Any = model.get_submodule(path)  # a Linear or a norm: its weight (and bias) are tensors
    drop = ~keep.bool().to(module.weight.device)
    if drop.numel() != (module.weight.shape[1] if where == "input" else module.weight.shape[0]):
        raise ValueError(f"a mask of {drop.numel()} neurons does not fit {path}; was the run made on another model?")
    if where == "input":
        module.weight[:, drop] = 0
    else:
        module.weight[drop] = 0
        if getattr(module, "bias", None) is not None:
            module.bias[drop] = 0
