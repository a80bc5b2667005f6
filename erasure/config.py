"""Typed erasure configs, presets and model profiles.

A config is resolved in layers: the method's dataclass defaults (the published settings),
then named presets in the order given (e.g. "object,fast"), then the model profile (the
embedded model needs its prompt template and a larger learning rate: docs/design.md §6 measured
that tiny models need learning rates far above SD's 1e-5), then explicit overrides.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field

from backends.prompts import prompt_traits

PARAM_GROUPS = ("xattn", "noxattn", "kv", "full")
MAX_STEPS = 1_000_000  # outer steps of one run (the message below says 1e6)


@dataclass
class EraseConfig:
    """Settings shared by every fine-tuning method."""

    targets: list[str] = field(default_factory=list)  # concepts to erase; one is sampled per step
    template: str = "{concept}"  # prompt template for targets (and AP's vocabulary words)
    param_group: str = "xattn"  # which UNet tensors train: xattn | noxattn | kv | full
    steps: int = 1000  # outer optimisation steps
    lr: float = 1e-5  # Adam learning rate for the UNet tensors
    batch: int = 1  # start codes z_T per step
    ddim_steps: int = 50  # DDIM steps of the sampler that produces z_t
    start_guidance: float = 3.0  # classifier-free guidance while sampling z_t
    negative_guidance: float = 1.0  # eta in ESD's target eps_n - eta (eps_e - eps_n)
    zt_from: str = "trained"  # which UNet samples z_t: "trained" (reference) or "frozen"
    loss_space: str = "eps"  # "eps" (paper) or "x0" (reference code: predicted x0)
    seed: int = 0  # seeds every random draw (targets, z_T, timesteps, Gumbel noise)
    checkpoint_every: int = 100  # steps between resumable checkpoints (0 = only at the end)
    snapshot_every: int = 0  # steps between trajectory images (0 = none)
    snapshot_steps: int = 20  # sampler steps for trajectory images
    snapshot_guidance: float = 5.0  # guidance for trajectory images

    def validate(self) -> None:
        """Raise ValueError with a fix-it message for every bad field."""
        if not self.targets or any(not isinstance(t, str) or not t.strip() for t in self.targets):
            raise ValueError("targets must be a non-empty list of non-empty concepts, e.g. --target star")
        if any(len(t) > 200 for t in self.targets):
            raise ValueError("a target concept is longer than 200 characters; use a short word or phrase")
        if "{concept}" not in self.template:
            raise ValueError(f"template must contain '{{concept}}', got {self.template!r}")
        if self.param_group not in PARAM_GROUPS:
            raise ValueError(f"unknown parameter group {self.param_group!r}; valid: {', '.join(PARAM_GROUPS)}")
        _positive(self, "steps", "lr", "batch", "ddim_steps", "snapshot_steps")
        if self.steps > MAX_STEPS or self.batch > 256 or self.ddim_steps > 1000:
            raise ValueError("steps <= 1e6, batch <= 256 and ddim_steps <= 1000 are required")
        if self.lr > 1.0:
            raise ValueError(f"lr must be <= 1, got {self.lr}")
        if self.zt_from not in ("trained", "frozen"):
            raise ValueError(f"zt_from must be 'trained' or 'frozen', got {self.zt_from!r}")
        if self.loss_space not in ("eps", "x0"):
            raise ValueError(f"loss_space must be 'eps' or 'x0', got {self.loss_space!r}")
        for name in ("checkpoint_every", "snapshot_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")

    def prompts(self) -> list[str]:
        return [self.template.format(concept=t.strip()) for t in self.targets]

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _positive(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


# Model profiles: what a model needs that the published SD settings do not give it.
# Keys a method's config lacks are ignored (ESD has no search space).
MODEL_PROFILES = {
    "embedded": {
        "template": prompt_traits("embedded").template,  # the world's caption form (backends.prompts)
        "lr_scale": 100.0,  # docs/design.md §6: lr 1e-5 erases nothing on a 3 M-parameter UNet
        "ddim_steps": 25,  # the sampler the embedded model is evaluated with
        # The tiny text encoder only learnt the world's words; untrained CLIP tokens all embed
        # near the null prompt, so they would crowd the search space with copies of "".
        "vocab": prompt_traits("embedded").vocabulary,
        "k_closest": 100,
        "n_centres": 16,
        # MCE: world captions naming the concept, and world captions to keep (ones naming a target are
        # dropped by the method)
        "erase_templates": ["a {concept}", "a red {concept}", "a green {concept}", "a blue {concept}",
                            "a yellow {concept}", "a purple {concept}", "an orange {concept}",
                            "a {concept} on a striped background", "a {concept} in outline"],
        # MCE: masks also on the resnets' GroupNorm channels, with a 10x preservation weight. Masking all
        # 2112 FFN neurons of the embedded UNet still leaves 90 % of stars recognisable, so the published MCE sites
        # erase only by chance there (ESR-1 25-94 % over training seeds); with these, 100 % in every seed
        # tried (README, "MCE on the embedded model"; benchmarks/bench_mce_sites.py)
        "sites": ["ffn", "norm", "resnet"],
        "beta": 0.1,
        "keep_prompts": ["a red circle", "a blue square", "a green triangle", "a yellow cross", "a purple diamond",
                         "an orange heart", "a red moon", "a blue arrow", "a green hourglass", "a yellow star"],
    },
}


def check_types(cls, values: dict) -> None:
    """Each value has its field's type (the type of the field's default): `--set steps=abc` or a list
    for a number gets a message naming the field, not a TypeError deep in a check."""
    for f in dataclasses.fields(cls):
        if f.name not in values or values[f.name] is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        value, kind = values[f.name], type(default)
        if default is None:
            continue  # optional settings: the method's own validate() checks them
        ok = (isinstance(value, (int, float)) and not isinstance(value, bool) if kind is float
              else isinstance(value, int) and not isinstance(value, bool) if kind is int
              else isinstance(value, kind))
        if not ok:
            shown = repr(value) if len(repr(value)) <= 40 else repr(value)[:39] + "…"
            raise ValueError(f"{f.name} must be {_TYPE_NAMES.get(kind, kind.__name__)}, got {shown}")


_TYPE_NAMES = {int: "a whole number", float: "a number", str: "text", bool: "true or false", list: "a list"}


def apply_layers(config: EraseConfig, presets: dict[str, dict], names: list[str], model: str,
                 overrides: dict) -> EraseConfig:
    """defaults -> model profile -> presets (in order) -> the profile's lr scale -> overrides."""
    values = config.to_dict()
    profile = MODEL_PROFILES.get(model, {})
    values.update({k: v for k, v in profile.items() if k in values})  # keys the method has
    for name in names:
        if name not in presets:
            raise ValueError(f"unknown preset {name!r}; valid: {', '.join(presets)}")
        values.update(presets[name])
    if getattr(config, "SCALE_LR", True):  # MCE's mask logits opt out: their lr does not depend on model size
        values["lr"] = values["lr"] * profile.get("lr_scale", 1.0)
    unknown = set(overrides) - set(values)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; valid: {sorted(values)}")
    values.update({k: v for k, v in overrides.items() if v is not None})
    check_types(type(config), values)
    resolved = type(config)(**values)
    resolved.validate()
    return resolved
