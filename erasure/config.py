"""Typed erasure configs, presets and model profiles.

A config is resolved in layers, each overriding the one before (docs/design.md §3.1, "Config precedence"):
the method's dataclass defaults (the published settings) with the model's traits (backends.prompts.model_traits:
its prompt template and sampler steps, which replace the published SD values), then named presets in the order
given (e.g. "object,fast"), then the method's own profile for the model (its file's PROFILES: what the model
needs whatever preset is chosen, e.g. AP's search space on the embedded world), then the traits' learning-rate
scale (docs/design.md §6 measured that tiny models need learning rates far above SD's 1e-5), then the user's
settings. `config_sources` names the layer every resolved value came from; runs record it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import ClassVar

from backends.generate import check_resolution
from backends.precision import check_precision
from backends.prompts import fill, model_traits

PARAM_GROUPS = ("xattn", "noxattn", "kv", "full")
MAX_STEPS = 1_000_000  # outer steps of one run (the message below says 1e6)


@dataclass
class EraseConfig:
    """Settings shared by every fine-tuning method."""

    # settings that change how a run is computed (memory, chunking), not what it computes: a result
    # cache may ignore them (benchmarks.protocols.config_tag)
    EXECUTION_ONLY: ClassVar[tuple[str, ...]] = ()
    # settings added after results were cached: at their default they compute exactly what the code did
    # before them, so a cache key leaves them out at that default (and keeps every stored row's key)
    OMIT_AT_DEFAULT: ClassVar[dict[str, object]] = {"resolution": 0, "bank_codes": 0, "bank_centre_codes": 0,
                                                    "precision": "auto",
                                                    "steps_per_target": False, "balanced_targets": False}
    # methods whose `steps` is not a training budget (UCE: one closed-form solve) opt out of steps_per_target
    SCALE_STEPS: ClassVar[bool] = True

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
    # image side (px) the run trains and draws at; 0 = the model's native size (SD 1.4 512, FLUX.1-schnell
    # 1024); a multiple of the model's latent granularity (backends.generate.resolve_size)
    resolution: int = 0
    # start codes per conditioning of the frozen-model latent bank (erasure.latent_bank): z_t is read from
    # trajectories sampled ahead in batches instead of k sampler steps per draw; zt_from="frozen" only;
    # 0 = sample z_t at each draw
    bank_codes: int = 0
    # start codes per search centre in the latent bank (AP's centres), sampled the first time the centre is
    # drawn; 0 = bank_codes, all sampled ahead; no effect without a bank. 100 centres x 16 codes would be
    # 1,616 trajectories for about 1,200 centre reads in 600 steps (docs/design.md §3.1, "The latent bank")
    bank_centre_codes: int = 0
    # autocast precision of every forward (z_t sampler, frozen and trained denoiser): "auto" (bfloat16 on a
    # GPU with native bf16, float32 on the CPU), "float32" or "bfloat16"; the run records the resolved one.
    # Trained tensors keep float32 masters either way (erasure.master)
    precision: str = "auto"
    # several targets (docs/design.md §3.1, "Several targets"): `steps` counts each target's steps, so the
    # resolved run takes steps x len(targets) outer steps and every target gets a one-target budget
    steps_per_target: bool = False
    # targets drawn in shuffled rounds, each once per len(targets) steps, instead of independently at random;
    # a round's order depends only on the seed and the round, so a resumed run draws the same targets
    balanced_targets: bool = False

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
        if not isinstance(self.bank_codes, int) or not 0 <= self.bank_codes <= 64:
            raise ValueError(f"bank_codes must be a whole number from 0 (no latent bank) to 64, got {self.bank_codes!r}")
        if not isinstance(self.bank_centre_codes, int) or not 0 <= self.bank_centre_codes <= 64:
            raise ValueError("bank_centre_codes must be a whole number from 0 (as many as bank_codes) to 64, got "
                             f"{self.bank_centre_codes!r}")
        if self.bank_codes and self.zt_from != "frozen":
            raise ValueError("bank_codes needs zt_from='frozen': z_t from the trained model changes every step, so it "
                             "cannot be sampled ahead; set bank_codes=0 or zt_from='frozen'")
        check_precision(self.precision)
        if self.loss_space not in ("eps", "x0"):
            raise ValueError(f"loss_space must be 'eps' or 'x0', got {self.loss_space!r}")
        for name in ("checkpoint_every", "snapshot_every"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        check_resolution(self.resolution)

    def prompts(self) -> list[str]:
        return [fill(self.template, t.strip()) for t in self.targets]

    def centre_codes(self) -> int:
        """Start codes each search centre gets in the latent bank: bank_centre_codes when that is fewer than
        bank_codes (sampled when the centre is first drawn), else bank_codes (all ahead; 0: no bank)."""
        return self.bank_centre_codes if 0 < self.bank_centre_codes < self.bank_codes else self.bank_codes

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def result_dict(self) -> dict:
        """to_dict without the EXECUTION_ONLY settings (and OMIT_AT_DEFAULT ones at their default): what
        decides the result."""
        return {k: v for k, v in self.to_dict().items()
                if k not in self.EXECUTION_ONLY and not (k in self.OMIT_AT_DEFAULT and v == self.OMIT_AT_DEFAULT[k])}


def _positive(cfg, *names: str) -> None:
    for name in names:
        value = getattr(cfg, name)
        if not value > 0:
            raise ValueError(f"{name} must be > 0, got {value}")


def check_types(cls, values: dict) -> None:
    """Each value has its field's type (the type of the field's default): `--set steps=abc` or a list
    for a number gets a message naming the field, not a TypeError deep in a check."""
    for f in dataclasses.fields(cls):
        if f.name not in values or values[f.name] is None:
            continue
        default = f.default if f.default_factory is dataclasses.MISSING else f.default_factory()
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


# presets every method takes: `multi`, what the app adds when a user enters several concepts (each target its
# one-target step budget, targets in balanced rounds: docs/design.md §3.1, "Several targets")
COMMON_PRESETS = {"multi": {"steps_per_target": True, "balanced_targets": True}}


def resolve_layers(config: EraseConfig, presets: dict[str, dict], names: list[str], model: str,
                   overrides: dict, profiles: dict[str, dict] | None = None) -> tuple[dict, dict[str, str]]:
    """(resolved values, the layer each came from): defaults + model traits -> presets (in order) -> the
    method's profile for the model -> lr scale -> the user's overrides. Sources read "default", "model",
    "preset:<name>", "profile:<model>", "user"; a scaled lr adds " x <scale> (model lr scale)"."""
    values = config.to_dict()
    sources = dict.fromkeys(values, "default")
    traits = model_traits(model)

    def layer(new: dict, source: str) -> None:
        values.update(new)
        sources.update(dict.fromkeys(new, source))

    layer({"template": traits.template, **({"ddim_steps": traits.sampler_steps} if traits.sampler_steps else {})}, "model")
    presets = {**COMMON_PRESETS, **presets}
    for name in names:
        if name not in presets:
            raise ValueError(f"unknown preset {name!r}; valid: {', '.join(presets)}")
        layer(presets[name], f"preset:{name}")
    profile = (profiles or {}).get(model, {})
    unknown = set(profile) - set(values)
    if unknown:  # a profile names the method's own settings; a typo must not be dropped silently
        raise ValueError(f"the {model!r} profile of {type(config).__name__} has unknown setting(s) {sorted(unknown)}")
    layer(profile, f"profile:{model}")
    # MCE's mask logits opt out: their lr does not depend on model size
    if getattr(config, "SCALE_LR", True) and traits.lr_scale != 1.0:
        values["lr"] = values["lr"] * traits.lr_scale
        sources["lr"] += f" x {traits.lr_scale:g} (model lr scale)"
    unknown = set(overrides) - set(values)
    if unknown:
        raise ValueError(f"unknown setting(s) {sorted(unknown)}; valid: {sorted(values)}")
    layer({k: v for k, v in overrides.items() if v is not None}, "user")
    n = len(values["targets"]) if isinstance(values["targets"], list) else 1
    if values.get("steps_per_target") and config.SCALE_STEPS and n > 1 and isinstance(values["steps"], int):
        values["steps"] *= n
        sources["steps"] += f" x {n} targets (steps_per_target)"
    return values, sources


def apply_layers(config: EraseConfig, presets: dict[str, dict], names: list[str], model: str,
                 overrides: dict, profiles: dict[str, dict] | None = None) -> tuple[EraseConfig, dict[str, str]]:
    """The validated config of `resolve_layers`' values, and the layer each came from (one resolution)."""
    values, sources = resolve_layers(config, presets, names, model, overrides, profiles)
    check_types(type(config), values)
    resolved = type(config)(**values)
    resolved.validate()
    return resolved, sources
