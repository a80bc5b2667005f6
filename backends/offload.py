"""Where a loaded pipeline's weights live (docs/design.md §1, "Offload").

A pipeline that fits the GPU's free memory is moved there whole. One that does not can still draw:
diffusers' model CPU offload keeps every component in CPU memory and moves one model at a time to the
GPU while it runs (the peak is the largest component, e.g. FLUX.1-schnell's 24 GB transformer in
bfloat16 beside 9.5 GB of T5 that never share the GPU). Erasure trains the denoiser and steps an
optimiser over tensors that must stay put, so training refuses an offloaded pipeline.

    mode = plan(pipe, "cuda", "auto")      # "none" | "model"; raises if not even one component fits
    place(pipe, "cuda", mode)
    execution_device(pipe)                 # where inputs go: the GPU, whether offloaded or not
"""

from __future__ import annotations

import copy
import logging

import torch

MODES = ("auto", "none", "model")  # auto: offload only when the whole pipeline does not fit the GPU
log = logging.getLogger(__name__)


class DoesNotFitError(RuntimeError):
    """The pipeline (or, offloaded, its largest component) is larger than the device's free memory."""


def check_mode(offload: str) -> str:
    if offload not in MODES:
        raise ValueError(f"offload must be one of {', '.join(MODES)}, not {offload!r}")
    return offload


def module_bytes(module: torch.nn.Module) -> int:
    return sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])


def components(pipe) -> dict[str, torch.nn.Module]:
    return {k: v for k, v in pipe.components.items() if isinstance(v, torch.nn.Module)}


def plan(pipe, device, offload: str = "auto") -> str:
    """"none" (move the whole pipeline) or "model" (model CPU offload) for `device`.

    Only CUDA memory is checked (host memory is the operating system's business). A pipeline larger than
    the GPU's free memory is refused under "none", and under "auto" when even its largest component does
    not fit, saying what to change; the check runs before any move, so a half-moved pipeline never exists."""
    check_mode(offload)
    device = torch.device(device)
    if offload == "model" or device.type != "cuda":
        return offload if offload == "model" else "none"
    free, total = torch.cuda.mem_get_info(device)
    sizes = {k: module_bytes(m) for k, m in components(pipe).items()}
    need, (largest, big) = sum(sizes.values()), max(sizes.items(), key=lambda kv: kv[1])
    if need <= free:
        return "none"
    if offload == "auto" and big <= free:
        return "model"
    hint = "load it in bfloat16 (--dtype bfloat16, CSE_DTYPE=bfloat16), " if pipe.dtype == torch.float32 else ""
    if offload == "none" and big <= free:
        hint += "let it offload (offload='auto' or 'model'; not for erasure, which trains it whole), "
    raise DoesNotFitError(f"the model's weights take {size(need)} (largest component: {largest}, {size(big)}) but "
                          f"{device} has {size(free)} free of {size(total)}: {hint}free the GPU, or use a GPU "
                          "with more memory")


def size(n: int) -> str:
    """Bytes as GiB (MiB below one GiB, so a small model's message does not read 0.0)."""
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.1f} MiB"


def place(pipe, device, mode: str):
    """Move `pipe` to `device` whole, or offload it there; returns the pipeline."""
    if mode == "model":
        log.warning("%s runs offloaded to %s (model CPU offload): each model moves there only while it runs",
                    type(pipe).__name__, device)
        pipe.enable_model_cpu_offload(device=device)
        return pipe
    return pipe.to(device)


def offloaded(pipe) -> bool:
    """Whether `pipe` runs under model CPU offload (diffusers keeps its hooks in `_all_hooks`)."""
    return bool(getattr(pipe, "_all_hooks", None))


def execution_device(pipe) -> torch.device:
    """Where the pipeline computes, so where inputs go: `pipe.device` unless offloaded, where the weights
    sit on the CPU between calls but every forward runs on the offload device."""
    return pipe._execution_device if offloaded(pipe) else pipe.device


def copy_module(module: torch.nn.Module) -> torch.nn.Module:
    """A deep copy of a module without its offload hook: the hook links to the previous model of its
    pipeline's offload chain, so a plain deepcopy would copy that model (e.g. the text encoder) as well."""
    from accelerate.hooks import add_hook_to_module, remove_hook_from_module

    hook = getattr(module, "_hf_hook", None)
    if hook is None:
        return copy.deepcopy(module)
    remove_hook_from_module(module)
    try:
        return copy.deepcopy(module)
    finally:
        add_hook_to_module(module, hook)


def offload_like(copy_pipe, pipe):
    """Give a pipeline built from `pipe`'s components the same placement (offloaded to the same device)."""
    if offloaded(pipe):
        copy_pipe.enable_model_cpu_offload(device=pipe._offload_device)
    return copy_pipe
