"""How much device memory a run needs, estimated before its first step (docs/design.md §3.1, "Memory").

Weights are counted (they are loaded); what a step adds is measured by a probe: one differentiated
denoiser call (the sampler step MCE differentiates, or the predict call a fine-tuning method does) at
three small image sizes, counting the bytes autograd saves for the backward pass, per transformer block.
Saved bytes grow with the image tokens n at most as a + b n + c n^2 (attention), so the three probes
fit each quantity exactly and give it at the run's size; the step's peak then follows from how the
run checkpoints (`activation_bytes`). A run that would not fit the visible GPU is refused before it
starts, naming the settings that shrink it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

GiB = 2**30
# fine-tuning methods hold this many differentiated calls at once (AP: the erasure and the preservation
# term; ESD, CA and AGE one)
GRAPH_CALLS = 2
# the backward pass holds the gradients of one unit's activations beside them (a unit: one block when
# checkpointed per block, one call when checkpointed per call)
BACKWARD_FACTOR = 2


@dataclass(frozen=True)
class CallProfile:
    """Autograd-saved bytes of one differentiated call at one image size, one prompt."""

    outside: float  # saved outside the checkpointable blocks (embedders, a UNet's every layer)
    inputs: float  # the blocks' inputs (what per-block checkpointing keeps instead of their activations)
    blocks: tuple[float, ...]  # saved inside each block

    @property
    def total(self) -> float:
        return self.outside + sum(self.blocks)


@dataclass(frozen=True)
class MemoryEstimate:
    device: str
    weights: int  # the pipeline's tensors already on the device
    added: int  # what the run allocates: frozen copy, optimiser state, activations at the step's peak
    detail: dict  # name -> bytes of each part of `added`

    def describe(self) -> str:
        parts = ", ".join(f"{k} {v / GiB:.2f}" for k, v in self.detail.items())
        return (f"memory on {self.device}: weights {self.weights / GiB:.2f} GiB loaded, the run adds "
                f"≈ {self.added / GiB:.2f} GiB ({parts} GiB)")


def blocks_of(net: torch.nn.Module) -> list[torch.nn.Module]:
    """The units per-block checkpointing recomputes (FLUX's double and single blocks); none for a UNet,
    which the sampler checkpoints per call."""
    return [*getattr(net, "transformer_blocks", []), *getattr(net, "single_transformer_blocks", [])] \
        if hasattr(net, "single_transformer_blocks") else []


def profile(net: torch.nn.Module, call) -> CallProfile:
    """Run call() (a differentiated forward of `net`) and count, without the weights, the storage bytes
    autograd saves, inside each of net's blocks and outside them, and the bytes of the blocks' inputs."""
    params = {p.untyped_storage().data_ptr() for p in net.parameters()}
    blocks = blocks_of(net)
    saved, inputs, seen, where = [0.0] * (len(blocks) + 1), [0.0], {}, [len(blocks)]

    def new_bytes(t) -> int:
        if not isinstance(t, torch.Tensor) or t.device.type == "meta":
            return 0
        ptr = t.untyped_storage().data_ptr()
        if ptr in params or ptr in seen:
            return 0
        seen[ptr] = t  # held until the probe ends, so no later tensor reuses (and hides behind) its address
        return t.untyped_storage().nbytes()

    def pack(t):
        saved[where[0]] += new_bytes(t)
        return t

    def enter(i):
        def hook(module, args, kwargs):
            values = [*args, *kwargs.values()]
            tensors = [x for v in values for x in (v if isinstance(v, (tuple, list)) else (v,))]
            inputs[0] += sum(new_bytes(t) for t in tensors)
            where[0] = i
        return hook

    handles = [b.register_forward_pre_hook(enter(i), with_kwargs=True) for i, b in enumerate(blocks)]
    handles += [b.register_forward_hook(lambda *_: where.__setitem__(0, len(blocks))) for b in blocks]
    try:
        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            out = call()
        del out
    finally:
        for h in handles:
            h.remove()
    return CallProfile(saved[-1], inputs[0], tuple(saved[:-1]))


def extrapolate(profiles: list[CallProfile], tokens: list[int], at: int) -> CallProfile:
    """Each quantity fitted as a + b n + c n^2 through the probes (n = image tokens), taken at `at`."""
    def fit(values):
        coef = np.polyfit(np.array(tokens, float), np.array(values, float), deg=min(2, len(tokens) - 1))
        return max(0.0, float(np.polyval(coef, at)))

    return CallProfile(fit([p.outside for p in profiles]), fit([p.inputs for p in profiles]),
                       tuple(fit([p.blocks[i] for p in profiles]) for i in range(len(profiles[0].blocks))))


def probe_sizes(pipe) -> list[int]:
    """Three small image sizes (px) the denoiser accepts: multiples of its latent granularity."""
    from backends.generate import size_unit

    return [size_unit(pipe) * k for k in (1, 2, 3)]


def tokens_at(pipe, size: int) -> int:
    return (size // pipe.vae_scale_factor) ** 2  # latent pixels


def call_profile(family, pipe, call_at, size: int) -> CallProfile:
    """The profile of call_at(px) at `size` px, from probes at three small sizes (or measured directly
    when `size` is no larger than them)."""
    sizes = [s for s in probe_sizes(pipe) if s < size] or [size]
    profiles = [profile(family.denoiser(pipe), lambda s=s: call_at(s)) for s in sizes]
    return extrapolate(profiles, [tokens_at(pipe, s) for s in sizes], tokens_at(pipe, size))


def activation_bytes(p: CallProfile, rows: int, calls: int, checkpointing: str) -> float:
    """Peak saved bytes of `calls` differentiated calls of `rows` prompts each, held together:
    "none" keeps every call's activations; "call" keeps each call's inputs and recomputes one call;
    "block" keeps each block's inputs and recomputes one block."""
    if checkpointing == "none":
        held, unit = calls * p.total, max(p.blocks, default=p.total)
    elif checkpointing == "block":
        held, unit = calls * (p.outside + p.inputs), max(p.blocks, default=0.0)
    else:
        held, unit = p.total, p.total
    return rows * (held + (BACKWARD_FACTOR - 1) * unit)


class WillNotFitError(ValueError):
    """A run's estimated memory exceeds what its GPU has free; the message names the settings to change."""


def free_memory(device: str) -> tuple[int, int] | None:
    """(free, total) bytes of a CUDA device; None for the CPU (host memory is not checked)."""
    where = torch.device(device)
    return torch.cuda.mem_get_info(where) if where.type == "cuda" else None


def check_fits(estimate: MemoryEstimate, fixes: list[str]) -> None:
    """Refuse a run whose added memory exceeds what the visible GPU has free."""
    free = free_memory(estimate.device)
    if free is not None and estimate.added > free[0]:
        raise WillNotFitError(f"this run will not fit {estimate.device} ({free[1] / GiB:.1f} GiB, "
                              f"{free[0] / GiB:.1f} GiB free): {estimate.describe()}. To fit it: {'; '.join(fixes)}")


def fine_tune_estimate(pipe, config) -> tuple[MemoryEstimate, list[str]]:
    """A fine-tuning run (ESD, AP, CA, AGE, UCE): the frozen copy theta, the trained tensors' float32
    masters, gradients and Adam moments, and GRAPH_CALLS differentiated calls at the run's batch."""
    from backends.families import family_of
    from backends.generate import resolve_size
    from backends.loader import weight_bytes

    from .params import select_parameters

    family = family_of(pipe)
    net = family.denoiser(pipe)
    trained = select_parameters(net, config.param_group)  # what Context will train (it selects the same)
    n = sum(p.numel() for p in trained.values())
    size, itemsize = resolve_size(pipe, config.resolution), next(iter(trained.values())).element_size()
    masters = 0 if itemsize == 4 else 2 * 4 * n  # float32 copy and its gradient (erasure.master)
    cond = family.encode(pipe, [""])
    t = torch.full((1,), 500, device=pipe.device)

    def call_at(px):
        z = family.noise(pipe, 1, torch.Generator().manual_seed(0), px)
        return family.predict(net, z, t, cond)

    p = call_profile(family, pipe, call_at, size)
    detail = {"frozen copy": sum(x.numel() * x.element_size() for x in net.parameters()),
              "optimiser state": n * itemsize + masters + 2 * 4 * n,
              "activations": activation_bytes(p, config.batch, GRAPH_CALLS, "none")}
    if getattr(config, "bank_codes", 0):  # [n_cond, n, K, C, h, w] latents (erasure.latent_bank)
        latent = family.noise(pipe, 1, torch.Generator().manual_seed(0), size)
        # each centre's codes at most (lazily banked ones only once drawn)
        codes = len(config.targets) * (config.bank_codes + getattr(config, "n_centres", 0) * config.centre_codes())
        detail["latent bank"] = codes * config.ddim_steps * latent.numel() * latent.element_size()
    fixes = [f"a smaller param_group than {config.param_group!r} (xattn trains the fewest tensors)"] \
        if config.param_group != "xattn" else []
    fixes += [f"batch (now {config.batch})"] if config.batch > 1 else []
    fixes += [f"bank_codes (now {config.bank_codes}; 0 samples z_t at each step)"] if detail.get("latent bank") else []
    fixes += ["a GPU with more free memory"]
    return MemoryEstimate(str(pipe.device), weight_bytes(pipe, pipe.device), int(sum(detail.values())), detail), fixes
