"""What a job will cost before it is queued, in image-steps (one image through one sampler step), the
unit of the app's sampling budget (ui.state.StepBudget): a spectrum samples every concept it scores k
times with both models; its quick erasure (ESD; MCE on FLUX) and its D(c) forwards are small beside that and not counted.
An erasure's cost is bounded by its step limit (CSE_MAX_ERASE_STEPS) instead."""

from __future__ import annotations


def spectrum_image_steps(config: dict, concepts: int, targets: int = 1) -> int:
    """Images x sampler steps of a spectrum job: `concepts` rows (every one sampled, or the proxy-guided
    share), k seeds each, two models (original and erased)."""
    if config.get("proxy_only"):
        return 0
    sampled = concepts
    if config.get("delta_top"):  # the guided split: the top by D(c), by text, at random, near, plus the rows
        # always sampled (sensitivity.guided): the targets, the null prompt and the neutral "a photo"
        picked = sum(int(config.get(k) or 0) for k in ("delta_top", "delta_text", "delta_random", "delta_near"))
        sampled = min(concepts, picked + targets + 2)
    return sampled * int(config.get("k", 8)) * int(config.get("steps", 25)) * 2


def job_image_steps(kind: str, params: dict, total: int) -> int:
    """A job's sampling cost from its request (0 for an erasure, bounded by its step limit instead)."""
    if kind != "spectrum":
        return 0
    return spectrum_image_steps(params.get("config") or {}, total, len(params.get("targets") or ()) or 1)


def in_words(image_steps: int) -> str:
    return f"{image_steps:,} image-steps (images x sampler steps)"
