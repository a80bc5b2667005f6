"""The training loop every fine-tuning method shares: `train_loop` runs one (erasure.request.train starts a
run from a checked request), `resume` continues one.

A method supplies a loss per step; the loop owns the optimiser, events, snapshots,
checkpoints, cancellation and exact resume (every random draw comes from generators whose
state is checkpointed, so a resumed run replays the uninterrupted one).
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import functools
import time
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
from PIL import Image

from backends.families import family_of
from backends.family import Cond
from backends.generate import resolve_size
from backends.offload import offloaded
from backends.precision import autocast

from . import memory
from .config import EraseConfig, apply_layers, resolve_layers
from .diffusion import ddim_scheduler, loss_in_space, sample_until
from .events import Callback, Cancelled, CancelToken, Event
from .latent_bank import LatentBank
from .master import MasterWeights
from .params import select_parameters
from .registry import get_method
from .runs import KEEP_CHECKPOINTS, RunFolder
from .state import load_optimizer


class Start(NamedTuple):
    """What `Context.draw` draws for one z_t: start codes z_T [batch, C, h, w] and a sampler step index k;
    `codes` are their indices in the latent bank (None when z_T was drawn fresh)."""

    z: torch.Tensor
    k: int
    codes: tuple[int, ...] | None = None


class Context:
    """What a method sees: the pipeline and its model family (the denoiser is theta', being trained),
    the frozen original denoiser theta, the selected parameters, the z_t sampler and the seeded random
    sources. Methods call the denoiser through `predict`, so they never ask which family they train.

    Mask methods (MCE, trains_weights=False) get no frozen copy (a second FLUX transformer would double
    the memory); the DDIM scheduler and c_n are for UNet families and built on first use."""

    def __init__(self, pipe, config: EraseConfig, trains_weights: bool = True):
        self.pipe, self.config = pipe, config
        self.family = family_of(pipe)
        self.device = pipe.device
        for name in ("text_encoder", "text_encoder_2", "vae"):
            if getattr(pipe, name, None) is not None:
                getattr(pipe, name).requires_grad_(False)
        net = self.family.denoiser(pipe)
        # weight-training methods get their parameter group; mask methods (MCE) train nothing here
        self.trained = select_parameters(net, config.param_group) if trains_weights else {}
        # the float32 tensors the optimiser steps (the trained ones themselves on a float32 model)
        self.master = MasterWeights(self.trained)
        # theta, copied before any step or checkpoint restore touches the weights
        self.frozen = copy.deepcopy(net).requires_grad_(False).eval() if trains_weights else None
        net.eval()  # no dropout/batch-norm train behaviour; gradients still flow
        # image side the run trains and draws at (config.resolution, or the model's native size)
        self.size = resolve_size(pipe, config.resolution)
        self.gen = torch.Generator().manual_seed(config.seed)  # CPU: same draws on CPU and GPU
        self.rng = np.random.default_rng(config.seed)
        self.bank: LatentBank | None = None  # frozen-model trajectories (bank_codes > 0), filled by `bank_add`

    def autocast(self):
        """The run's mixed precision (config.precision, docs/design.md §3.1): a bf16 autocast region, or
        nothing for float32 (the CPU default)."""
        return autocast(self.config.precision, self.device)

    @functools.cached_property
    def scheduler(self):
        return ddim_scheduler(self.pipe, self.config.ddim_steps)

    @functools.cached_property
    def emb_null(self) -> Cond:
        return self.family.encode(self.pipe, [""])  # c_n, one row

    @property
    def denoiser(self) -> torch.nn.Module:
        """theta', the network being trained."""
        return self.family.denoiser(self.pipe)

    def embed(self, prompts: list[str]) -> Cond:
        """Conditioning of the prompts, one row each ("emb" [N, L, d], plus what the family adds)."""
        return self.family.encode(self.pipe, prompts)

    def predict(self, net: torch.nn.Module, z: torch.Tensor, t: torch.Tensor, cond: Cond) -> torch.Tensor:
        """One call of `net` (ctx.denoiser or ctx.frozen); a one-row cond is broadcast over z."""
        return self.family.predict(net, z, t, cond)

    def loss(self, pred: torch.Tensor, target: torch.Tensor, z: torch.Tensor, alpha_bar: torch.Tensor) -> torch.Tensor:
        """MSE of two UNet outputs in the configured loss space (eps/v as predicted, or x0)."""
        return loss_in_space(pred, target, z, alpha_bar, self.config.loss_space, self.family.prediction_type(self.pipe))

    def pick_target(self, prompts: list[str], step: int) -> str:
        """This step's target prompt: drawn at random from ctx.rng, or with balanced_targets the step's place
        in a shuffled round of all targets (the round's order is a function of the seed and the round alone,
        so a resumed run draws what an uninterrupted one did, with nothing more to checkpoint)."""
        n = len(prompts)
        if not self.config.balanced_targets:
            return prompts[int(self.rng.integers(n))]
        order = np.random.default_rng([self.config.seed, step // n]).permutation(n)
        return prompts[int(order[step % n])]

    def bank_add(self, conds: dict[str, Cond], centres: tuple[str, ...] = ()) -> None:
        """Sample (or load) the frozen-model trajectories of these labelled one-row conditionings, when the
        run has a latent bank (bank_codes > 0, which validate() allows only with zt_from="frozen"). The
        `centres` labels get bank_centre_codes codes each, sampled when first read, when that is fewer."""
        cfg = self.config
        if not cfg.bank_codes:
            return
        if self.bank is None:
            self.bank = LatentBank(self, cfg.bank_codes)
        lazy = {label: conds[label] for label in centres} if cfg.centre_codes() < cfg.bank_codes else {}
        self.bank.add({label: c for label, c in conds.items() if label not in lazy})
        self.bank.add_lazy(lazy, cfg.centre_codes())

    def draw(self) -> Start:
        """Start codes z_T [batch, C, h, w] and a sampler step index k (uniform): fresh codes, or with a
        latent bank `batch` of its codes (uniform)."""
        if self.bank is not None:
            codes = tuple(torch.randint(0, self.bank.n, (self.config.batch,), generator=self.gen).tolist())
            z = self.bank.codes[list(codes)]
        else:
            z, codes = self.family.noise(self.pipe, self.config.batch, self.gen, self.size), None
        k = int(torch.randint(0, self.config.ddim_steps, (1,), generator=self.gen))
        return Start(z, k, codes)

    def sample_zt(self, cond: Cond, start: Start, label: str | None = None):
        """z_t by k guided DDIM steps from z_T under `cond`; returns (z_t, t [B], alpha_bar). With a latent
        bank holding `label` (the name `cond` was added under) it is read from the bank instead."""
        k = start.k
        if self.bank is not None and start.codes is not None and label is not None and label in self.bank:
            z = self.bank.get(label, start.codes, k)
        else:
            net = self.denoiser if self.config.zt_from == "trained" else self.frozen
            z = sample_until(self.family, net, self.scheduler, start.z, cond, self.emb_null, self.config.start_guidance, k)
        t = self.scheduler.timesteps[k]
        alpha_bar = self.scheduler.alphas_cumprod[t].to(self.device, z.dtype)
        return z, t.expand(z.shape[0]).to(self.device), alpha_bar

    def rng_state(self) -> dict:
        return {"torch": self.gen.get_state(), "numpy": self.rng.bit_generator.state}

    def load_rng_state(self, state: dict) -> None:
        self.gen.set_state(state["torch"])
        self.rng.bit_generator.state = state["numpy"]


def check_model_family(method: str, model: str) -> None:
    """The method supports the model's family (its spec's families): ESD, AP, UCE and CA train or edit a
    UNet against eps predictions with classifier-free guidance, so on FLUX only mask methods apply."""
    from backends.loader import model_family

    family, supported = model_family(model).name, get_method(method).SPEC.families
    if family not in supported:
        from .registry import list_methods

        usable = [m for m in list_methods() if family in get_method(m).SPEC.families]
        raise ValueError(f"{method} is not defined for {model!r} (model family {family}; {method} supports "
                         f"{', '.join(supported)}); on this model use: {', '.join(usable)}")


def resolve_with_sources(method: str, model: str, presets: list[str] | str = "",
                         **overrides) -> tuple[EraseConfig, dict[str, str]]:
    """The method's config with the model's traits, the method's profile for it, presets and overrides
    applied, validated; and the layer each value came from ("default", "model", "preset:<name>",
    "profile:<model>" or "user"). EraseRequest.check calls it once per request (docs/design.md §3.1)."""
    cls = get_method(method)
    check_model_family(method, model)
    return apply_layers(cls.Config(), cls.PRESETS, preset_names(presets), model, overrides, cls.PROFILES)


def resolve_config(method: str, model: str, presets: list[str] | str = "", **overrides) -> EraseConfig:
    """`resolve_with_sources`'s config alone (settings tables, tests)."""
    return resolve_with_sources(method, model, presets, **overrides)[0]


def config_sources(method: str, model: str, presets: list[str] | str = "", **overrides) -> dict[str, str]:
    """Which layer each of `resolve_config`'s values came from (erasure.config.resolve_layers), unvalidated."""
    cls = get_method(method)
    return resolve_layers(cls.Config(), cls.PRESETS, preset_names(presets), model, overrides, cls.PROFILES)[1]


def preset_names(presets: list[str] | str) -> list[str]:
    names = [p.strip() for p in presets.split(",")] if isinstance(presets, str) else list(presets)
    return [n for n in names if n]


def check_trainable(pipe) -> None:
    """Erasure trains the denoiser in place and keeps a frozen copy and optimiser state beside it, so the
    pipeline must sit whole on its device; an offloaded one (backends.offload) moves weights every call."""
    if offloaded(pipe):
        raise ValueError("this pipeline is offloaded (its weights do not fit the GPU whole), and erasure trains "
                         "it in place: load it in bfloat16 (--dtype bfloat16), free the GPU, or use a GPU with "
                         "more memory; generation and the spectrum run offloaded")


def resume(run_path: str | Path, callback: Callback | None = None, cancel: CancelToken | None = None,
           device: str = "cpu", pipe=None) -> RunFolder:
    """Continue a stopped run from its latest checkpoint (or from the start if it has none)."""
    run = RunFolder.open(run_path)
    record = run.record
    if run.status()["state"] == "done":
        return run
    cls = get_method(record["method"])
    config = cls.Config(**record["config"])
    config.validate()
    if pipe is None:
        pipe = run.base_pipeline(device)
    check_trainable(pipe)
    return train_loop(run, pipe, record["method"], config, run.latest_checkpoint(), callback, cancel)


def train_loop(run: RunFolder, pipe, method_name: str, config: EraseConfig, checkpoint, callback, cancel) -> RunFolder:
    cls = get_method(method_name)
    spec, weights = cls.SPEC, cls.SPEC.trains == "weights"
    try:  # estimated before the frozen copy (fine-tuning) or the first step (masks) takes any memory
        estimate = _checked_estimate(pipe, config) if weights else None
        ctx = Context(pipe, config, trains_weights=weights)
        method = cls(ctx)
        estimate = estimate or _checked_estimate(pipe, config, method)
    except memory.WillNotFitError as e:
        run.set_status("failed", run.status()["step"], str(e))
        raise
    # the loop trains ctx.trained; a method with its own parameters (MCE's mask logits) brings its optimiser
    opt = torch.optim.Adam(list(ctx.master.params.values()), lr=config.lr) if weights else method.optimizer()
    start = 0
    if checkpoint is not None:
        start, state = checkpoint
        _restore(ctx, method, opt, state)
        run.truncate_events(start)
    emit = _emitter(run, callback)
    t0 = time.time()
    run.set_status("running", start)
    extra = {"memory": {"weights": estimate.weights, "added": estimate.added, **estimate.detail}}
    if spec.searches:  # the centres' words, once: step events carry softmax(pi) in this order
        extra["search"], extra["excluded"] = method.search_spaces(), method.excluded_words()
    message = f"{method_name} on {config.targets}; {estimate.describe()}"
    if ctx.bank is not None:
        extra["latent_bank"] = bank = ctx.bank.summary()
        message += (f"; latent bank: {bank['conditionings']} conditionings x {bank['codes']} codes "
                    f"({bank['loaded']} from the cache, the rest sampled in {bank['sampled_s']:.1f} s)")
        if ctx.bank.store_error:
            message += f"; {ctx.bank.store_error}"
    emit(Event("start", start, config.steps, message=message, extra=extra))
    try:
        if spec.closed_form:  # UCE: one solve instead of an optimisation loop
            info = method.solve()
            ctx.master.masters_to_model()
            start = config.steps
            emit(step_event(method_name, config.steps, config.steps, time.time() - t0, info))
        for step in range(start, config.steps):
            if cancel is not None:
                cancel.give_way()  # a background job waits here while a visitor's Generate runs
            if cancel is not None and cancel.cancelled:
                _checkpoint(run, ctx, method, opt, step)
                run.set_status("cancelled", step, "cancelled by the user; resume to continue")
                emit(Event("cancelled", step, config.steps, time.time() - t0))
                raise Cancelled(f"run {run.path} cancelled at step {step}; resume it to continue")
            with ctx.autocast():  # forwards in the run's precision; backward follows each op's dtype
                loss, info = method.loss(step)
            _optimise(ctx, opt, loss)
            done = step + 1
            emit(step_event(method_name, done, config.steps, time.time() - t0, info))
            if config.snapshot_every and (done % config.snapshot_every == 0 or done == 1):
                images = _snapshot(run, ctx, method, done)
                extra = {"centre_l2": method.centre_losses()} if spec.searches else {}
                emit(Event("snapshot", done, config.steps, time.time() - t0, images=images, extra=extra))
            if config.checkpoint_every and done % config.checkpoint_every == 0 and done < config.steps:
                _checkpoint(run, ctx, method, opt, done)
                run.set_status("running", done)
    except Cancelled:
        raise
    except BaseException as e:
        run.set_status("failed", run.status()["step"], f"{type(e).__name__}: {e}")
        raise
    run.save_result({f"{ctx.family.component}.{n}": p for n, p in ctx.master.params.items()} if weights else method.result())
    if spec.searches and method.search_spaces():
        _save_search(run, ctx, method)
    if not weights:  # MCE: hooks off, binary masks baked, so `pipe` is the saved result
        method.finish()
    run.set_status("done", config.steps)
    emit(Event("done", config.steps, config.steps, time.time() - t0))
    return run


def _save_search(run: RunFolder, ctx: Context, method) -> None:
    """<run>/search.json: the search diagnostics (erasure.diagnostics), with every centre's loss at the end."""
    from .diagnostics import search_diagnostics
    from .trajectory import search_history

    with ctx.autocast():
        final = method.centre_losses()
    run.save_search(search_diagnostics(search_history(run.events()), final, method.excluded_words()))


def _checked_estimate(pipe, config: EraseConfig, method=None) -> memory.MemoryEstimate:
    """The run's memory estimate (erasure.memory), refused with the settings to change if it will not fit."""
    estimate, fixes = memory.fine_tune_estimate(pipe, config) if method is None else method.memory_estimate()
    memory.check_fits(estimate, fixes)
    return estimate


# what a method's info dict may set: Event's fields but those the loop itself fills in
STEP_FIELDS = {f.name for f in dataclasses.fields(Event)} - {"kind", "step", "total", "elapsed_s", "images"}


def step_event(method: str, step: int, total: int, elapsed_s: float, info: dict) -> Event:
    """A step event from a method's info dict; a key outside Event's fields is the method's bug, named
    here rather than dropped (a method's own numbers go in "metrics", anything else in "extra")."""
    unknown = set(info) - STEP_FIELDS
    if unknown:
        raise ValueError(f"{method} reported unknown event fields {sorted(unknown)}; put numbers in 'metrics' and "
                         f"other values in 'extra' (valid: {', '.join(sorted(STEP_FIELDS))})")
    return Event("step", step, total, elapsed_s, **info)


def _optimise(ctx: Context, opt: torch.optim.Optimizer, loss: torch.Tensor) -> None:
    """One optimiser step on the float32 masters from the model-dtype backward (erasure.master)."""
    opt.zero_grad(set_to_none=True)
    for p in ctx.trained.values():  # the inner search may have left gradients on theta'
        p.grad = None
    loss.backward()
    ctx.master.grads_to_masters()
    opt.step()
    ctx.master.masters_to_model()


def _emitter(run: RunFolder, callback: Callback | None):
    def emit(event: Event) -> None:
        run.append_event(event)
        if callback is not None:
            callback(event)

    return emit


def check_checkpoint_limit(limit) -> None:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 1000:
        raise ValueError(f"checkpoints_total_limit must be a whole number from 1 to 1000 (checkpoints kept on disk), "
                         f"got {limit!r}")


def _checkpoint(run: RunFolder, ctx: Context, method, opt, step: int) -> None:
    keep = run.record.get("checkpoints_total_limit", KEEP_CHECKPOINTS)  # runs recorded before the setting: 2
    run.save_checkpoint(step, keep=keep, state={
        "step": step,
        "params": {name: p.detach() for name, p in ctx.master.params.items()},  # float32
        "optimizer": opt.state_dict(),
        "method": method.state_dict(),
        "rng": ctx.rng_state(),
    })


def _restore(ctx: Context, method, opt, state: dict) -> None:
    ctx.master.load(state["params"])
    load_optimizer(opt, state["optimizer"])
    method.load_state_dict(state["method"])
    ctx.load_rng_state(state["rng"])


@torch.no_grad()
def _snapshot(run: RunFolder, ctx: Context, method, step: int) -> dict[str, str]:
    """Trajectory images G(theta'_t, z_T, c) for the method's snapshot inputs, one fixed z_T: text
    prompts (any pipeline) or conditionings (AP's adversarial mixtures; UNet families). Methods that
    train their own parameters draw them with their snapshot model (MCE: binarised masks)."""
    from backends.generate import SamplerSettings, generate, initial_latents

    cfg = ctx.config
    inputs = method.snapshot_inputs()
    texts = {name: p for name, p in inputs.items() if isinstance(p, str)}
    size = ctx.size
    z = initial_latents(ctx.pipe, [cfg.seed], size, size)  # fixed over training
    images: dict[str, np.ndarray] = {}
    with contextlib.nullcontext() if type(method).SPEC.trains == "weights" else method.snapshot_model():
        if texts:
            settings = SamplerSettings(steps=cfg.snapshot_steps, guidance=cfg.snapshot_guidance, height=size, width=size)
            images |= dict(zip(texts, generate(ctx.pipe, list(texts.values()), [cfg.seed] * len(texts), settings)))
        for name, cond in ((n, c) for n, c in inputs.items() if n not in texts):
            image = ctx.pipe(**ctx.family.pipeline_inputs(cond, ctx.emb_null), latents=z.clone(), height=size,
                             width=size, num_inference_steps=cfg.snapshot_steps, guidance_scale=cfg.snapshot_guidance,
                             output_type="np").images[0]
            images[name] = (np.clip(image, 0, 1) * 255).round().astype(np.uint8)
    saved = {}
    for name, image in images.items():
        path, saved[name] = run.trajectory_image(step, name)
        Image.fromarray(image).save(path)
    return saved
