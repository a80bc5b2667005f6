"""The spectrum's unit of work (docs: README, "The sensitivity spectrum"): both models and the scorer
loaded once (`load_models`), then the rows of one chunk of concepts (`chunk_rows`): text similarity to
the target, the proxy D(c) and, unless proxy-only, delta(c) from k seeded samples per model (the
original model's from the disk cache). The in-process loop (spectrum.py) and the Ray actors
(distributed.py) both call these, so shards give the same table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field

import torch

from backends import SamplerSettings, generate
from backends.families import family_of
from backends.generate import check_resolution
from backends.offload import execution_device
from backends.precision import autocast, check_precision, resolve_precision
from backends.prompts import model_traits
from erasure import erased_copy
from evaluation.scorers import Scorer, default_scorer_for, get_scorer, scores_from_features
from shapesworld.captions import concept_prompts

from .cache import SampleCache, pipeline_fingerprint
from .proxy import proxy_divergence, proxy_points
from .vocab import NEUTRAL, kind_of, prompt_of

Progress = Callable[[int, int, str], None]  # (concepts done, concepts total, message)
MAX_K = 1000  # samples per concept
TEXT_SPACES = ("model", "scorer")  # where text_sim is measured (SpectrumConfig.text_space)


@dataclass
class SpectrumConfig:
    targets: list[str] = field(default_factory=list)  # the erased concept(s), as words
    vocab: str = "world"  # english | imagenet | imagenette | world | clip-words | clip-all | nearest-K | a .txt/.csv path
    size: int | None = None  # first N concepts of the vocabulary (or of the nearest-K pool)
    k: int = 8  # samples per concept; seeds are seed .. seed + k - 1
    seed: int = 0  # first seed
    steps: int = 25  # sampler steps
    guidance: float = 5.0  # classifier-free guidance scale
    template: str | None = None  # prompt template; None = the model's ("a {concept}" embedded, "{concept}" SD)
    scorer: str | None = None  # "embedded" or open_clip "arch/pretrained"; None = the model's default (resolved:
    # None when nothing is scored, a proxy-only spectrum in the model's text space)
    proxy_only: bool = False  # only D(c) and text similarity: no sampling, no CLIP scores, no scorer weights
    text_space: str = "model"  # text_sim in: "model" (its own text encoder: conditioning_directions) or "scorer"
    proxy_timesteps: int = 2  # D(c): timesteps in the fixed set (2: t = 750 and 250 on a 1000-step schedule)
    proxy_latents: int = 1  # D(c): z_t per timestep in the fixed set
    proxy_dtype: str = "float32"  # D(c) forwards: "float32", or "bfloat16" autocast (faster on CPUs with AMX/BF16)
    chunk: int = 8  # concepts per work unit (and per Ray task); results do not depend on it
    batch: int = 64  # images per generation call (lower it for large models on small GPUs)
    dtype: str = "float32"  # weights' dtype of both models when the spectrum loads them ("bfloat16" for FLUX)
    # autocast of both models' sampling over float32 weights: "auto" (bfloat16 on a GPU with native bf16,
    # float32 on the CPU), "float32" or "bfloat16"; recorded resolved (on_device; docs/design.md §3.1)
    precision: str = "auto"
    dedupe: bool = False  # drop repeated concepts of a user list instead of rejecting it
    # the embedded world's words drawn in captions it was trained on, the k seeds taking turns over them ("red":
    # "a red circle", "a red square", ...; a bare "a red" is a prompt it never saw); off on every other model
    world_prompts: bool = True
    resolution: int = 0  # image side (px) the samples and D(c)'s latents are drawn at; 0 = the model's native size
    nearest_pool: str | None = None  # what nearest-K picks from; None = the model's (world embedded, else clip-words)
    # proxy-guided spectrum (sensitivity.guided): D(c) for every concept, delta(c) only for the targets, the
    # neutral concepts, the `delta_top` concepts of largest D(c) and `delta_random` others drawn at random
    # (seeded by `seed`: the calibration sample); 0 = delta for every concept
    delta_top: int = 0
    delta_random: int = 0
    # and then for the `delta_near` unsampled concepts whose text lies nearest to the 10 most damaged found so far
    delta_near: int = 0
    delta_text: int = 0  # and for the `delta_text` others of largest text_sim (the target's own phrases)

    def seeds(self) -> list[int]:
        return list(range(self.seed, self.seed + self.k))

    def sampler(self) -> SamplerSettings:
        size = self.resolution or None
        return SamplerSettings(steps=self.steps, guidance=self.guidance, height=size, width=size)

    def resolved(self, model: str) -> SpectrumConfig:
        """Model-dependent defaults filled in, then checked (the form recorded next to results)."""
        traits = model_traits(model)
        # a spectrum that never scores an image records no scorer (config.json says what ran)
        scorer = (self.scorer or default_scorer_for(model)) if needs_scorer(self) else None
        out = dataclasses.replace(self, targets=[t.strip() for t in self.targets],
                                  template=self.template or traits.template, scorer=scorer,
                                  nearest_pool=self.nearest_pool or traits.vocabulary,
                                  world_prompts=self.world_prompts and traits.vocabulary == "world")
        out.check()
        return out

    def on_device(self, device) -> SpectrumConfig:
        """`precision` resolved for `device` ("auto" -> "bfloat16" or "float32"), as results record it."""
        return dataclasses.replace(self, precision=resolve_precision(self.precision, device))

    def check(self) -> None:
        if not self.targets or not all(self.targets):
            raise ValueError("give at least one non-empty target concept (the concept that was erased)")
        if not 1 <= self.k <= MAX_K:
            raise ValueError(f"k (samples per concept) must be in 1..{MAX_K}, got {self.k}")
        if min(self.chunk, self.batch, self.proxy_timesteps, self.proxy_latents) < 1:
            raise ValueError("chunk, batch, proxy_timesteps and proxy_latents must be >= 1")
        check_resolution(self.resolution)
        check_precision(self.precision)
        from backends import torch_dtype

        torch_dtype(self.dtype)  # a bad name fails here, before anything loads
        if self.text_space not in TEXT_SPACES:
            raise ValueError(f"text_space must be one of {', '.join(TEXT_SPACES)}, got {self.text_space!r}")
        if self.proxy_dtype not in ("float32", "bfloat16", "float16"):
            raise ValueError(f"proxy_dtype must be float32, bfloat16 or float16, got {self.proxy_dtype!r}")
        if min(self.delta_top, self.delta_random, self.delta_near, self.delta_text) < 0:
            raise ValueError("delta_top, delta_random, delta_near and delta_text must be >= 0 "
                             "(0 delta_top = delta for every concept)")
        if (self.delta_random or self.delta_near or self.delta_text) and not self.delta_top:
            raise ValueError("delta_random, delta_near and delta_text extend a proxy-guided spectrum: set delta_top "
                             "too (e.g. 100)")
        if self.delta_top and self.proxy_only:
            raise ValueError("delta_top samples delta for the proxy's top concepts; proxy_only samples none: "
                             "choose one")
        if self.size is not None and self.size < 1:
            raise ValueError(f"size (first N words of the vocabulary) must be >= 1, got {self.size}")
        if self.template is not None and "{concept}" not in self.template:
            raise ValueError(f"template must contain '{{concept}}', got {self.template!r}")
        self.sampler().check()


@dataclass
class Models:
    """Both models and the scorer (None when nothing needs it: proxy-only in the model's text space); the
    erased pipeline shares every component but the denoiser."""

    base: object
    erased: object
    scorer: Scorer | None
    cache: SampleCache | None
    fixed: dict = field(default_factory=dict)  # per-spectrum inputs every chunk shares (see shared_inputs)
    null: torch.Tensor | None = None  # e("") [1, L, d] in the model's text space, encoded once

    def shared_inputs(self, config: SpectrumConfig) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Targets' text features [m, d] and the proxy's fixed (t [P], z_t [P, c, h, w]), computed once
        per config rather than once per chunk."""
        key = (tuple(config.targets), config.template, config.proxy_timesteps, config.proxy_latents, config.seed,
               config.world_prompts, config.k, config.resolution)
        if key not in self.fixed:
            target_text = self.concept_features(config.targets, config)  # [m, d]
            t, z = proxy_points(self.base, config.proxy_timesteps, config.proxy_latents, config.seed,
                                config.resolution or None)  # D(c) at the size the samples are drawn at
            self.fixed = {key: (target_text, t, z)}  # one entry: a new config replaces the old one
        return self.fixed[key]

    def similarity_text(self, prompts: list[str], config: SpectrumConfig, emb: torch.Tensor | None = None,
                        clip_text: torch.Tensor | None = None) -> torch.Tensor:
        """[n, d] unit text features that text_sim compares, in config.text_space; `emb` (the prompts'
        conditioning "emb") and `clip_text` (their scorer features) are reused when the caller has them."""
        if config.text_space == "scorer":
            assert self.scorer is not None  # text_space "scorer" always loads one (needs_scorer)
            return clip_text if clip_text is not None else self.scorer.text_features(prompts)
        family = family_of(self.base)
        if emb is None:
            emb = family.encode(self.base, prompts)["emb"]
        if self.null is None:
            self.null = family.encode(self.base, [""])["emb"]
        return conditioning_directions(emb, self.null)

    @torch.no_grad()
    def concept_features(self, concepts: list[str], config: SpectrumConfig) -> torch.Tensor:
        """[n, d] each concept's text direction, as text_sim measures it: the unit mean over its distinct
        prompts' similarity_text rows (the targets' in shared_inputs; every concept's in the proxy-guided
        spectrum's "near" pass)."""
        own = [list(dict.fromkeys(seed_prompts(c, config))) for c in concepts]
        flat = list(dict.fromkeys(p for ps in own for p in ps))
        at = {p: i for i, p in enumerate(flat)}
        directions = torch.cat([self.similarity_text(flat[i : i + 256], config) for i in range(0, len(flat), 256)])
        return torch.stack([mean_direction(directions, [at[p] for p in ps]) for ps in own])


@torch.no_grad()
def conditioning_directions(emb: torch.Tensor, null: torch.Tensor) -> torch.Tensor:
    """[n, L * d] unit vectors from emb [n, L, d] and the empty prompt's null [1, L, d]: how each prompt
    moves the denoiser's cross-attention input away from the empty prompt's (e(c) - e(""), flattened), in
    the model's own text encoder, the space AP searches. A pooled end-token embedding would not do: the
    embedded model's is nearly the same for every prompt (cos > 0.999), while these directions separate
    its shapes (docs/design.md §2)."""
    return torch.nn.functional.normalize((emb.float() - null.float()).flatten(1), dim=-1).cpu()


def needs_scorer(config: SpectrumConfig) -> bool:
    """CLIP scores need the scorer; a proxy-only spectrum in the model's text space needs no extra weights."""
    return not config.proxy_only or config.text_space == "scorer"


def load_models(model: str, run, config: SpectrumConfig, device: str = "cpu", cache_root=None, pipe=None) -> Models:
    """Base pipeline (loaded unless given), theta' from a run folder, the scorer, the base's sample cache."""
    from backends import load_pipeline, torch_dtype
    from backends.generate import resolve_size

    base = pipe if pipe is not None else load_pipeline(model, device=device, dtype=torch_dtype(config.dtype))
    resolve_size(base, config.resolution)  # a side this model cannot take fails here, before sampling
    if not needs_scorer(config):
        return Models(base, erased_copy(base, run), None, None)
    scorer = get_scorer(config.scorer, device)
    # everything that changes the original model's samples or their scores is in the key
    key = {"steps": config.steps, "guidance": config.guidance, "scorer": scorer.name,
           "scorer_weights": scorer.fingerprint(), "size": family_of(base).latent_size(base),
           "scheduler": {**base.scheduler.config, "class": type(base.scheduler).__name__}}
    if config.resolution:  # only when set, so native-size caches keep their keys
        key["resolution"] = config.resolution
    precision = sampling_precision(base, config)
    if precision != "float32":  # bf16 samples are other images; float32 keys unchanged
        key["precision"] = precision
    cache = SampleCache(pipeline_fingerprint(base), key, cache_root)
    return Models(base, erased_copy(base, run), scorer, cache)

def chunk_rows(models: Models, concepts: list[str], config: SpectrumConfig, cancel=None) -> list[dict]:
    """Rows for one chunk of concepts (one generation batch per model). A concept's k seeds may each have
    their own prompt (seed_prompts: a world colour drawn on several shapes); its D(c) is the mean over its
    distinct prompts, its text direction their normalised mean. `cancel` (erasure.CancelToken) stops the
    sampler at its next step (erasure.Cancelled)."""
    per_seed = [seed_prompts(c, config) for c in concepts]  # [n][k]
    own = [list(dict.fromkeys(p)) for p in per_seed]  # each concept's distinct prompts
    flat = list(dict.fromkeys(p for ps in own for p in ps))  # [u] the chunk's distinct prompts
    at = {p: i for i, p in enumerate(flat)}
    cond = family_of(models.base).encode(models.base, flat)  # the proxy's, and text_sim's in the model's space
    text = models.scorer.text_features(flat) if models.scorer is not None else None  # [u, d]: the scorer's
    sim_text = models.similarity_text(flat, config, cond["emb"], text)  # [u, d]
    target_text, t, z = models.shared_inputs(config)
    dtype = getattr(torch, config.proxy_dtype)
    proxy = proxy_divergence(models.base, models.erased, cond, t, z, dtype)  # [u]
    rows = [{"concept": c, "kind": kind_of(c, config.targets), "prompt": " | ".join(ps),
             "text_sim": (mean_direction(sim_text, [at[p] for p in ps]) @ target_text.T).max().item(),
             "proxy": proxy[[at[p] for p in ps]].mean().item()} for c, ps in zip(concepts, own)]
    if config.proxy_only:
        return rows
    assert text is not None and models.scorer is not None  # sampling always loads the scorer (needs_scorer)
    items = [(p, seed) for ps in per_seed for p, seed in zip(ps, config.seeds())]  # [n * k], concept-major
    feats_text = text[[at[p] for p, _ in items]]  # [n * k, d]: each image's own prompt
    k = config.k
    before_scores, before_feats = _base_samples(models, items, feats_text, config, cancel)  # [n * k], [n * k, d]
    after_scores, after_feats = _samples(models.erased, models.scorer, items, feats_text, config, cancel)
    for i, row in enumerate(rows):
        s0, s1 = before_scores[i * k : (i + 1) * k], after_scores[i * k : (i + 1) * k]
        f0, f1 = before_feats[i * k : (i + 1) * k], after_feats[i * k : (i + 1) * k]
        diff = s0 - s1
        row.update(delta=diff.mean().item(), delta_std=diff.std(unbiased=False).item(),
                   score_before=s0.mean().item(), score_after=s1.mean().item(), image_sim=(f0 * f1).sum(-1).mean().item())
    return rows


def seed_prompts(concept: str, config: SpectrumConfig) -> list[str]:
    """The prompt of each of a concept's k seeds: the template's, or with world_prompts the captions the
    embedded world was trained on that show the word (shapesworld.captions.concept_prompts), in turn."""
    assert config.template is not None, "resolve the config first (SpectrumConfig.resolved names the template)"
    own = [prompt_of(concept, config.template)]
    if config.world_prompts and concept not in NEUTRAL:
        own = concept_prompts(concept, avoid=config.targets) or own
    return [own[i % len(own)] for i in range(config.k)]


def drawn_prompts(model: str, targets: list[str], concept: str, n: int) -> list[str]:
    """The distinct prompts a spectrum of `targets` on `model` draws `concept` with, at most n (what the app
    shows when a concept of the spectrum is clicked)."""
    config = SpectrumConfig(targets=list(targets), k=n).resolved(model)
    return list(dict.fromkeys(seed_prompts(concept, config)))


def mean_direction(directions: torch.Tensor, rows: list[int]) -> torch.Tensor:
    """The unit mean [d] of some unit rows of directions [u, d] (a row itself when there is one)."""
    return torch.nn.functional.normalize(directions[rows].mean(0), dim=-1)


def _samples(pipe, scorer: Scorer, items: list[tuple[str, int]], text: torch.Tensor, config: SpectrumConfig,
             cancel=None):
    """Scores [N] and image features [N, d] of one sample per (prompt, seed) item; text [N, d] each
    item's prompt features."""
    with autocast(sampling_precision(pipe, config), execution_device(pipe)):
        images = generate(pipe, [p for p, _ in items], [seed for _, seed in items], config.sampler(),
                          batch_size=config.batch, cancel=cancel)
    feats = scorer.image_features(images)  # [N, d]
    return scores_from_features(feats, text), feats


def sampling_precision(pipe, config: SpectrumConfig) -> str:
    """The autocast both models sample under: config.precision on the device the pipe computes on, over
    float32 weights; "float32" (none) over half-precision weights, which already compute in their dtype."""
    if pipe.dtype != torch.float32:
        return "float32"
    return resolve_precision(config.precision, execution_device(pipe))


def _base_samples(models: Models, items: list[tuple[str, int]], text: torch.Tensor, config: SpectrumConfig,
                  cancel=None):
    """The original model's samples of every (prompt, seed) item: from the cache where a prompt's seeds are
    all there, generated (and stored per prompt) otherwise; scores [N], features [N, d]."""
    groups: dict[str, list[int]] = {}  # prompt -> its items' positions
    for i, (p, _) in enumerate(items):
        groups.setdefault(p, []).append(i)
    scores: dict[int, torch.Tensor] = {}  # item position -> its score [] and features [d]
    feats: dict[int, torch.Tensor] = {}
    missing: list[int] = []
    for p, at in groups.items():
        found = models.cache.get(p, [items[i][1] for i in at]) if models.cache else None
        if found is None:
            missing += at
            continue
        for j, i in enumerate(at):
            scores[i], feats[i] = found[0][j], found[1][j]
    if missing:
        assert models.scorer is not None  # only sampling spectra read samples
        new_scores, new_feats = _samples(models.base, models.scorer, [items[i] for i in missing], text[missing], config,
                                         cancel)
        for j, i in enumerate(missing):
            scores[i], feats[i] = new_scores[j], new_feats[j]
        if models.cache:
            for p, at in groups.items():
                if at[0] in set(missing):
                    models.cache.put(p, [items[i][1] for i in at], torch.stack([scores[i] for i in at]),
                                     torch.stack([feats[i] for i in at]))
    return torch.stack([scores[i] for i in range(len(items))]), torch.stack([feats[i] for i in range(len(items))])
