"""The evaluation protocols of docs/design.md §4 on the embedded world (the AP paper's tables, our models).

Each protocol erases with the registered methods, measures with the metric modules, and returns
plain rows (dicts of numbers) that `benchmarks/report.py` aggregates, saves and renders:

    table1(...)        all 10 shapes, 4 fixed 5-erased/5-kept splits, every method (paper table 1)
                       (the `multi` protocol: the same with MULTI_METHODS, each target its own step budget)
    pairs(...)         two shapes erased at once (PAIRS), every method with MULTI_METHODS' rule
    preservation(...)  AP's preservation strategies: none, "", a fixed related concept, adversarial, and the
                       controls random and all
    ablation(...)      AP's search-space size K and ascent steps N_iter (paper table 6)
    style(...)         erasing a rendering style: classifier, CLIP and LPIPS on erased and kept styles
    robustness(...)    paraphrases and an adversarial prompt search against each erased model

Every erasure starts from a fresh copy of the shipped model; images use fixed seeds, so the same
seed gives the same z_T before and after.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import itertools
import json
import re
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from backends import SamplerSettings, generate, load_pipeline
from backends.storage import write_json
from evaluation.classification import world_erasure_report
from evaluation.perceptual import lpips_distance
from evaluation.prompts import paraphrases, world_protocol
from evaluation.robustness import AttackConfig, adversarial_prompt_attack, paraphrase_attack
from shapesworld.captions import STYLE_WORDS, prompt
from shapesworld.data import to_tensor
from shapesworld.world import COLOURS, SHAPES, STYLES

Progress = Callable[[str], None]


@dataclass(frozen=True)
class MethodSpec:
    name: str  # row label
    method: str  # registry name
    presets: str = ""  # comma-separated presets
    overrides: dict = field(default_factory=dict)  # config overrides
    preserve_kept: bool = False  # UCE: pass the protocol's kept concepts as its preserve list (an oracle)


# One row per method: each method's one-concept preset, as the app runs it (also for several targets).
# UCE also gets a row with the kept concepts as its preserve list: the knowledge AP searches for itself.
# AP's rows keep `fast-v1` (z_t sampled per draw), the preset the stored report was measured with; the
# product's `fast` reads z_t from a latent bank instead (bench_erasure compares the two).
# The stored AP and AGE rows were measured before two search-space changes, and name the settings they ran
# with: AP searched every world word (the object preset's K 1000 / n 100 then overrode the embedded profile's
# 100 / 16: erasure.config, "Config precedence"), and neither left the target's inflections out of the search.
STORED_SEARCH = {"ap": {"k_closest": 1000, "n_centres": 100, "exclude_inflections": False},
                 "age": {"exclude_inflections": False}}
METHODS = (
    MethodSpec("ESD", "esd", "object,fast"),
    MethodSpec("UCE", "uce", "object"),
    MethodSpec("UCE (kept list)", "uce", "object", preserve_kept=True),
    MethodSpec("CA", "ca", "object,fast"),
    MethodSpec("AP", "ap", "object,fast-v1", STORED_SEARCH["ap"]),
    MethodSpec("MCE", "mce", "object,fast"),
    MethodSpec("AGE", "age", "object,fast", STORED_SEARCH["age"]),
)


def current(spec: MethodSpec) -> MethodSpec:
    """A METHODS row as the product runs it today: the search space of today's rules (no STORED_SEARCH) and,
    for AP, the `fast` preset (z_t from the latent bank) instead of the stored rows' fast-v1."""
    return dataclasses.replace(spec, presets=spec.presets.replace("fast-v1", "fast"),
                               overrides={k: v for k, v in spec.overrides.items()
                                          if k not in STORED_SEARCH.get(spec.method, {})})


def multi_target(spec: MethodSpec) -> MethodSpec:
    """A METHODS row under the multi-target budget rule (the `multi` preset: every target its one-target step
    budget, targets in balanced rounds; docs/design.md §3.1, "Several targets"), as the product runs it."""
    now = current(spec)
    return dataclasses.replace(now, presets=now.presets + ",multi")


CURRENT_METHODS = tuple(current(m) for m in METHODS)  # the rows of protocols measured after the search changes
# AP preserving the mean over a batch of centres each step (the `all` control, the best preserver of the
# preservation protocol): tried where AP's own search leaks (erasing a style other than outline)
AP_ALL = dataclasses.replace(current(next(m for m in METHODS if m.name == "AP")), name="AP (preserve all)",
                             overrides={"preserve": "all"})
MULTI_METHODS = tuple(multi_target(m) for m in METHODS)  # the `multi` protocol's rows: table 1 with that rule
BASE = "SD (base)"
EVAL = SamplerSettings(steps=20, guidance=5.0)  # the sampler every metric here is measured with


@dataclass
class Budget:
    seeds: int = 4  # seeds per prompt for ESR/PSR and CLIP
    settings: SamplerSettings = EVAL
    steps_scale: float = 1.0  # multiplies every method's step count (<1 for a quick smoke run)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="cse_report_")))
    rows_dir: Path | None = None  # finished rows are kept here, so an interrupted report resumes where it stopped

    def cached(self, key: str, compute: Callable[[], dict]) -> dict:
        """The row for `key` (protocol, method, targets ...) from rows_dir, or computed and stored there."""
        if self.rows_dir is None:
            return compute()
        tag = f"{key}|seeds={self.seeds}|scale={self.steps_scale}|{self.settings.steps}x{self.settings.guidance}"
        path = self.rows_dir / (re.sub(r"[^A-Za-z0-9=.,-]+", "_", tag) + ".json")
        if path.exists():
            return json.loads(path.read_text())
        row = compute()
        path.parent.mkdir(parents=True, exist_ok=True)
        write_json(path, row)
        return row


def select_methods(names: list[str] | None, pool: tuple[MethodSpec, ...] = METHODS) -> tuple[MethodSpec, ...]:
    """The `pool` rows (METHODS, or MULTI_METHODS) named in `names` (all of them for None), in its order."""
    if names is None:
        return pool
    valid = [m.name for m in pool]
    unknown = [n for n in names if n not in valid]
    if unknown or not names:
        what = f"unknown method rows {unknown}" if unknown else "no method row chosen"
        raise ValueError(f"{what}; valid: {', '.join(repr(v) for v in valid)}")
    return tuple(m for m in pool if m.name in names)


def resolved_overrides(spec: MethodSpec, targets: list[str], budget: Budget, kept: list[str] = (),
                       **extra) -> dict:
    """The config overrides `erase_fresh` runs `spec` with (the kept list for an oracle UCE, scaled steps)."""
    from erasure import resolve_config

    overrides = {**spec.overrides, **extra}
    if spec.preserve_kept:
        overrides["preserve"] = list(kept)
    if budget.steps_scale != 1.0:
        config = resolve_config(spec.method, "embedded", spec.presets, targets=targets, **overrides)
        # with steps_per_target (the `multi` preset) `steps` is per target, and resolving multiplies it again
        per = len(targets) if config.steps_per_target and config.SCALE_STEPS and len(targets) > 1 else 1
        overrides["steps"] = max(1, round(config.steps // per * budget.steps_scale))
    return overrides


def config_tag(spec: MethodSpec, targets: list[str], budget: Budget, kept: list[str] = (), **extra) -> str:
    """Short hash of the fully resolved config a row is computed with: part of its cache key, so a
    changed default (or preset) recomputes the row instead of reusing a stale one. Settings that only
    change how it is computed (EraseConfig.EXECUTION_ONLY, e.g. MCE's micro_batch) are not part of it."""
    from erasure import resolve_config

    config = resolve_config(spec.method, "embedded", spec.presets, targets=targets,
                            **resolved_overrides(spec, targets, budget, kept, **extra))
    return hashlib.sha1(json.dumps(config.result_dict(), sort_keys=True).encode()).hexdigest()[:10]


def erase_fresh(spec: MethodSpec, targets: list[str], budget: Budget, kept: list[str] = (),
                **extra) -> tuple[object, float, object]:
    """A fresh embedded pipeline with `targets` erased by `spec`; returns (pipe, wall seconds, run folder)."""
    from erasure import erase

    pipe = load_pipeline("embedded")
    overrides = resolved_overrides(spec, targets, budget, kept, **extra)
    folder = budget.workdir / f"{spec.name}_{'_'.join(targets)}_{time.time_ns()}".replace(" ", "_").replace('"', "")
    t0 = time.perf_counter()
    run = erase("embedded", spec.method, targets, spec.presets, folder, pipe=pipe, checkpoint_every=0,
                snapshot_every=0, **overrides)
    return pipe, time.perf_counter() - t0, run


def _shape_row(pipe, classifier, scorer, erased: list[str], budget: Budget) -> dict:
    r = world_erasure_report(pipe, classifier, erased, budget.seeds, budget.settings, scorer)
    return {k: r[k] for k in ("esr1", "esr5", "psr1", "psr5", "clip_erased", "clip_kept")}


def table1(classifier, scorer, budget: Budget, methods=METHODS, splits: list[dict] | None = None,
           progress: Progress = print) -> list[dict]:
    """One row per (split, method), base model included: erase the split's 5 shapes at once."""
    splits = splits if splits is not None else world_protocol()["splits"]
    base = load_pipeline("embedded")  # the base rows' model
    rows = []
    for i, split in enumerate(splits):
        def row(spec: MethodSpec | None, split=split, i=i) -> dict:
            pipe, wall, _ = (base, 0.0, None) if spec is None else erase_fresh(spec, split["erased"], budget,
                                                                             kept=split["kept"])
            return {"split": i, "method": BASE if spec is None else spec.name, "wall_s": wall,
                    **_shape_row(pipe, classifier, scorer, split["erased"], budget)}

        for spec in (None, *methods):
            name = BASE if spec is None else spec.name
            tag = "" if spec is None else config_tag(spec, split["erased"], budget, split["kept"])
            rows.append(budget.cached(f"table1|{name}|{','.join(split['erased'])}|{tag}", functools.partial(row, spec)))
            progress(f"table1 split {i} {name}: {_brief(rows[-1])}")
    return rows


# Two shapes at once: heart + moon, two rounded shapes (RELATED pairs them), and star + cross, two pointed ones
# (whose erasure may take diamond with it); the report's rows are per pair.
PAIRS = (("heart", "moon"), ("star", "cross"))


def pairs(classifier, scorer, budget: Budget, methods=MULTI_METHODS, shape_pairs=PAIRS,
          progress: Progress = print) -> list[dict]:
    """One row per (pair, method), base model included: erase the pair at once, keep the other 8 shapes;
    every method with the multi-target rule, as the app runs it for two concepts."""
    shapes = world_protocol()["classes"]
    splits = [{"erased": list(p), "kept": [s for s in shapes if s not in p]} for p in shape_pairs]
    rows = table1(classifier, scorer, budget, methods=methods, splits=splits, progress=progress)
    return [{**r, "erased": " + ".join(splits[r["split"]]["erased"])} for r in rows]


PRESERVE_PRESET = "object,fast"  # the product's preset (16-code latent bank, the embedded profile's 16 centres)
RELATED = {"star": "cross", "heart": "moon", "moon": "circle"}  # a look-alike shape per target (the "fixed" row)
# the search at 10x the reference scripts' lr (1e-2): can a search that moves pi further beat random?
SHARP = "adversarial, search lr 0.1"
# pi set from every centre's measured L2 (APConfig.search = "probe") instead of the one-sample gradient
PROBE = "adversarial, probe search"
# the comparison the controls exist for first (an interrupted run resumes from its finished rows)
RUN_ORDER = ("adversarial", "random", "all", PROBE, "none", '""', "fixed", SHARP)


def preservation(classifier, scorer, budget: Budget, targets: tuple[str, ...] = ("star", "heart", "moon"),
                 related: dict[str, str] | None = None, seeds: tuple[int, ...] = (0, 1),
                 strategies: list[str] | None = None, progress: Progress = print) -> list[dict]:
    """AP with each preservation strategy, one target at a time: none (= ESD's loss alone), the null
    prompt "", a fixed related concept (a look-alike shape: cross for star, moon for heart, the shapes that
    ESD and UCE damage most with them), the adversarial search, and two controls over the same search space
    (docs/design.md §3.3): a uniformly random centre each step ("random") and the mean over a batch of
    centres ("all"), the search at 10x its lr, and pi set from every centre's measured L2 ("probe"). The
    searches and random run once per training seed in `seeds`, so their gap can be told from seed noise;
    the rows of a search carry its diagnostics (erasure.diagnostics.summary). `strategies` measures only those."""
    related = related or RELATED
    plans = {"none": {"preserve": "none"}, '""': {"preserve": "neutral"}, "fixed": {"preserve": "fixed"},
             "adversarial": {}, SHARP: {"search_lr": 0.1}, PROBE: {"search": "probe"},
             "random": {"preserve": "random"}, "all": {"preserve": "all"}}
    rows = []
    for label, target in itertools.product([s for s in RUN_ORDER if strategies is None or s in strategies], targets):
        overrides = plans[label]
        if label == "fixed":
            overrides = {**overrides, "fixed_concept": related[target]}
        for seed in seeds if label in ("adversarial", SHARP, PROBE, "random") else seeds[:1]:
            spec = MethodSpec(f"AP {label}", "ap", PRESERVE_PRESET, {**overrides, "seed": seed})

            def row(label=label, spec=spec, target=target, seed=seed) -> dict:
                pipe, wall, run = erase_fresh(spec, [target], budget)
                return {"target": target, "strategy": label, "seed": seed,
                        "concept": related[target] if label == "fixed" else "", "wall_s": wall,
                        **_shape_row(pipe, classifier, scorer, [target], budget), **_search_summary(run)}

            rows.append(budget.cached(f"preservation|{target}|{label}|seed={seed}|{config_tag(spec, [target], budget)}", row))
            progress(f"preservation {target} {label} seed {seed}: {_brief(rows[-1])}")
    return sorted(rows, key=lambda r: list(plans).index(r["strategy"]))  # the table's order: plans


def _search_summary(run) -> dict:
    """A searching run's diagnostics summary ("search_" + entropy_ratio, top_p, switch_rate, pi_l2_spearman,
    top), {} for a run without a search space."""
    from erasure.diagnostics import summary

    path = run.path / "search.json"
    return {f"search_{k}": v for k, v in summary(json.loads(path.read_text())).items()} if path.exists() else {}


def ablation(classifier, scorer, budget: Budget, target: str = "star", ks: tuple[int, ...] = (4, 16),
             n_iters: tuple[int, ...] = (1, 2), progress: Progress = print) -> list[dict]:
    """AP's K (centres of the search space) x N_iter (ascent steps per outer step)."""
    rows = []
    for k, n_iter in itertools.product(ks, n_iters):
        spec = MethodSpec(f"AP K={k} N_iter={n_iter}", "ap", "object,fast-v1",
                          {**STORED_SEARCH["ap"], "n_centres": k, "n_iter": n_iter})

        def row(spec=spec, k=k, n_iter=n_iter) -> dict:
            pipe, wall, _ = erase_fresh(spec, [target], budget)
            return {"target": target, "K": k, "n_iter": n_iter, "wall_s": wall,
                    **_shape_row(pipe, classifier, scorer, [target], budget)}

        rows.append(budget.cached(f"ablation|{target}|K={k}|n_iter={n_iter}|{config_tag(spec, [target], budget)}", row))
        progress(f"ablation K={k} N_iter={n_iter}: {_brief(rows[-1])}")
    return rows


def style_prompts(budget: Budget) -> list[tuple[str, str, int, str]]:
    """(style, prompt, seed, shape) over every style x shape x colour x seed: "a shadowed red star"."""
    return [(st, prompt(sh, c, style=st), sd, sh)
            for st, sh, c, sd in itertools.product(STYLES, SHAPES, COLOURS, range(budget.seeds))]


def style_row(pipe, base_images: np.ndarray, classifier, scorer, erased_style: str, budget: Budget) -> dict:
    """Style-head ESR/PSR, the worst kept style's accuracy, the shape head on every image ("shape kept") and,
    on erased and kept styles, CLIP with the prompt and LPIPS to the base images."""
    items = style_prompts(budget)
    images = generate(pipe, [p for _, p, _, _ in items], [s for _, _, s, _ in items], budget.settings)
    styles = np.array([st for st, *_ in items])
    pred = classifier.predict(to_tensor(images))
    hit = pred["style"].argmax(-1).numpy() == np.array([STYLES.index(st) for st in styles])
    shape_hit = pred["shape"].argmax(-1).numpy() == np.array([SHAPES.index(sh) for *_, sh in items])
    clip = scorer.score(images, [p for _, p, _, _ in items]).numpy()
    lp = lpips_distance(images, base_images, net="world").numpy()
    erased = styles == erased_style
    kept = {st: 100 * float(hit[styles == st].mean()) for st in STYLES if st != erased_style}
    worst = min(kept, key=kept.get)  # the bar is on every kept style, not their mean
    return {"esr1": 100 * float((~hit[erased]).mean()), "psr1": 100 * float(hit[~erased].mean()),
            "kept_worst": kept[worst], "kept_worst_style": worst,
            "shape_kept": 100 * float(shape_hit.mean()),
            "clip_erased": float(clip[erased].mean()), "clip_kept": float(clip[~erased].mean()),
            "lpips_erased": float(lp[erased].mean()), "lpips_kept": float(lp[~erased].mean())}


def style(classifier, scorer, budget: Budget, erased_style: str = "outline", methods=METHODS,
          progress: Progress = print) -> list[dict]:
    """Erase one rendering style (its caption word, e.g. "outlined") with every method (paper table 4)."""
    if erased_style not in STYLES:
        raise ValueError(f"unknown style {erased_style!r}; valid: {', '.join(STYLES)}")
    word = STYLE_WORDS[erased_style]
    items = style_prompts(budget)
    base = load_pipeline("embedded")
    base_images = generate(base, [p for _, p, _, _ in items], [s for _, _, s, _ in items], budget.settings)
    rows = [{"method": BASE, "style": erased_style, "wall_s": 0.0,
             **style_row(base, base_images, classifier, scorer, erased_style, budget)}]
    kept = [STYLE_WORDS[s] for s in STYLES if s != erased_style]
    for spec in methods:
        def row(spec=spec) -> dict:
            pipe, wall, _ = erase_fresh(spec, [word], budget, kept=kept, **_style_overrides(spec))
            return {"method": spec.name, "style": erased_style, "wall_s": wall,
                    **style_row(pipe, base_images, classifier, scorer, erased_style, budget)}

        tag = config_tag(spec, [word], budget, kept, **_style_overrides(spec))
        rows.append(budget.cached(f"style|{erased_style}|{spec.name}|{tag}", row))
        progress(f"style {erased_style} {spec.name}: {_brief(rows[-1])}")
    return rows


def colour_row(pipe, classifier, scorer, erased_colour: str, budget: Budget) -> dict:
    """The colour head's ESR-1 on the erased colour and PSR-1 on the kept ones, the shape head on every image
    ("shape kept"), the share of kept-colour images drawn in the erased colour ("leak"), CLIP per group."""
    items = [(c, sh, prompt(sh, c), sd) for c, sh, sd in itertools.product(COLOURS, SHAPES, range(budget.seeds))]
    images = generate(pipe, [p for *_, p, _ in items], [sd for *_, sd in items], budget.settings)
    pred = classifier.predict(to_tensor(images))
    colour, shape = pred["colour"].argmax(-1).numpy(), pred["shape"].argmax(-1).numpy()
    colours = np.array([list(COLOURS).index(c) for c, *_ in items])
    erased, index = colours == list(COLOURS).index(erased_colour), list(COLOURS).index(erased_colour)
    clip = scorer.score(images, [p for *_, p, _ in items]).numpy()
    return {"esr1": 100 * float((colour[erased] != index).mean()), "psr1": 100 * float((colour == colours)[~erased].mean()),
            "leak": 100 * float((colour[~erased] == index).mean()),
            "shape_kept": 100 * float((shape == np.array([SHAPES.index(sh) for _, sh, *_ in items])).mean()),
            "clip_erased": float(clip[erased].mean()), "clip_kept": float(clip[~erased].mean())}


def colour(classifier, scorer, budget: Budget, erased_colour: str = "red", methods=CURRENT_METHODS,
           progress: Progress = print) -> list[dict]:
    """Erase one colour (its word) with every method as the product runs it: the colour head on the erased and
    kept colours, the shapes kept (issue: attributes, not only objects)."""
    if erased_colour not in COLOURS:
        raise ValueError(f"unknown colour {erased_colour!r}; valid: {', '.join(COLOURS)}")
    rows = [{"method": BASE, "colour": erased_colour, "wall_s": 0.0,
             **colour_row(load_pipeline("embedded"), classifier, scorer, erased_colour, budget)}]
    kept = [c for c in COLOURS if c != erased_colour]
    for spec in methods:
        def row(spec=spec) -> dict:
            pipe, wall, _ = erase_fresh(spec, [erased_colour], budget, kept=kept, **_colour_overrides(spec, erased_colour))
            return {"method": spec.name, "colour": erased_colour, "wall_s": wall,
                    **colour_row(pipe, classifier, scorer, erased_colour, budget)}

        tag = config_tag(spec, [erased_colour], budget, kept, **_colour_overrides(spec, erased_colour))
        rows.append(budget.cached(f"colour|{erased_colour}|{spec.name}|{tag}", row))
        progress(f"colour {erased_colour} {spec.name}: {_brief(rows[-1])}")
    return rows


def _colour_overrides(spec: MethodSpec, erased: str) -> dict:
    """MCE needs colour-shaped prompts: the colour on every shape, and kept prompts of the other colours."""
    if spec.method != "mce":
        return {}
    kept = itertools.cycle([c for c in COLOURS if c != erased])
    return {"erase_templates": ["a {concept} " + s for s in SHAPES], "keep_prompts": [prompt(s, c) for s, c in zip(SHAPES, kept)]}


def _style_overrides(spec: MethodSpec) -> dict:
    """MCE needs style-shaped prompts: templates naming the style, and kept prompts of the other styles."""
    if spec.method != "mce":
        return {}
    return {"erase_templates": ["a {concept} " + s for s in SHAPES[:5]] + ["a {concept} red " + s for s in SHAPES[5:]],
            "keep_prompts": [prompt(s, c, style=st) for s, c, st in zip(SHAPES, itertools.cycle(COLOURS),
                                                                        itertools.cycle(("filled", "shadow")))]}


def robustness(classifier, scorer, budget: Budget, target: str = "star", methods=METHODS,
               attack: AttackConfig | None = None, shape_seeds: int = 8, progress: Progress = print) -> list[dict]:
    """Every method erases the one shape `target`, side by side: ESR/PSR and CLIP (over `shape_seeds`
    seeds), the fraction of neurons MCE masked, and the ASR of paraphrases and of an adversarial
    prompt search against each erased model."""
    from erasure.masks import masked_fraction

    index = SHAPES.index(target)
    shape_budget = Budget(shape_seeds, budget.settings, budget.steps_scale, budget.workdir)

    def judge(images: np.ndarray) -> np.ndarray:
        return (classifier.predict(to_tensor(images))["shape"].argmax(-1) == index).numpy()

    attack = attack or AttackConfig()
    base = load_pipeline("embedded")  # the attacks' source of prompt embeddings, and the base row's model
    rows = []
    kept = [s for s in SHAPES if s != target]
    for spec in (None, *methods):
        def row(spec=spec) -> dict:
            pipe, wall, run = (base, 0.0, None) if spec is None else erase_fresh(spec, [target], budget, kept)
            out = {"method": BASE if spec is None else spec.name, "target": target, "wall_s": wall,
                   **_shape_row(pipe, classifier, scorer, [target], shape_budget)}
            if spec is not None and spec.method == "mce":
                out["masked_pct"] = 100 * masked_fraction(run.result())
            para = paraphrase_attack(pipe, paraphrases(target), judge, budget.seeds, budget.settings)
            adv = adversarial_prompt_attack(base, pipe, target, judge, attack, budget.settings)
            return out | {"plain_asr": adv["plain_asr"], "paraphrase_asr": para["asr"], "adversarial_asr": adv["asr"]}

        tag = "base" if spec is None else f"{spec.name}|{config_tag(spec, [target], budget, kept)}"
        rows.append(budget.cached(f"robustness|{target}|{tag}|{attack}", row))
        progress(f"robustness {rows[-1]['method']}: {_brief(rows[-1])}")
    return rows


def summarize(rows: list[dict], by: str | tuple[str, ...], metrics: tuple[str, ...]) -> list[dict]:
    """Mean and std (over the rows sharing `by`, e.g. the 4 splits) of each metric, in first-seen order; "n"
    counts the rows."""
    keys = (by,) if isinstance(by, str) else by
    groups: dict[tuple, list[dict]] = {}
    for r in rows:
        groups.setdefault(tuple(r[k] for k in keys), []).append(r)
    out = []
    for key, group in groups.items():
        row = dict(zip(keys, key)) | {"n": len(group)}
        for m in metrics:  # a metric some rows lack (a search's diagnostics) is averaged over the rows that have it
            present = [float(g[m]) for g in group if g.get(m) is not None]
            if not present:
                continue
            values = torch.tensor(present, dtype=torch.float64)
            row[m] = float(values.mean())
            row[f"{m}_std"] = float(values.std()) if len(values) > 1 else 0.0
        out.append(row)
    return out


def _brief(row: dict) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in row.items() if isinstance(v, float))
