"""Who an erasure hurt, judged over every concept of the world (docs/design.md §5, "the headline").

    damage = measure_damage(base_pipe, erased_pipe, classifier, ["star"])   # ShapesWorld: 23 concepts x 4 seeds
    headline(damage)  # "star is now drawn as cross (9 of 16) ... hit hardest: arrow (4/4 -> 1/4) ..."

The base and the erased model draw each concept of the world on the same seeds; the world classifier reads
the attribute the concept names (its shape, colour, background or style head). A concept's damage is the drop
in recognised images. Preservation is counted over *every* other concept of the world, not over a chosen
kept list: a neighbour the erasure breaks (arrow, cross after erasing star) is named even when nobody
thought to look at it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field

from backends import SamplerSettings, generate

SEEDS = 4  # images per concept and model: one in four is the finest step a damage can take
HIT = 0.5  # a concept whose recognised share dropped by at least this much is "hit" in the headline
NAMED = 3  # the headline names at most this many hit concepts


@dataclass
class ConceptDamage:
    """One concept of the world, drawn by both models on the same seeds and read by the classifier."""

    concept: str
    attribute: str  # the classifier head that judges it: "shape", "colour", "background", "style"
    targeted: bool  # one of the erased concepts
    base: int  # base model's images recognised as the concept, of n
    erased: int  # the erased model's, same prompts and seeds
    n: int
    drawn_as: dict[str, int] = field(default_factory=dict)  # the erased model's images read as (class -> count)

    @property
    def drop(self) -> float:
        """Share of images the erasure took from the concept: (base - erased) / n, in [-1, 1]."""
        return (self.base - self.erased) / self.n


def world_items(targets: Sequence[str], seeds: int = SEEDS) -> list[tuple[str, str, str, int]]:
    """(concept, attribute, prompt, seed) for every ShapesWorld concept: each shape in the six colours in turn,
    each colour, background and style on the shapes that are not erased in turn (so a colour's damage is not
    the erased shape's)."""
    from shapesworld.captions import prompt
    from shapesworld.world import BACKGROUNDS, COLOURS, SHAPES, STYLES

    colours, kept = list(COLOURS), [s for s in SHAPES if s not in targets] or list(SHAPES)
    items = [(s, "shape", prompt(s, colours[i % len(colours)]), i) for s in SHAPES for i in range(seeds)]
    items += [(c, "colour", prompt(kept[i % len(kept)], c), i) for c in colours for i in range(seeds)]
    items += [(b, "background", prompt(kept[i % len(kept)], colours[i % len(colours)], b), i)
              for b in BACKGROUNDS for i in range(seeds)]
    items += [(st, "style", prompt(kept[i % len(kept)], colours[i % len(colours)], style=st), i)
              for st in STYLES for i in range(seeds)]
    return items


def measure_damage(base, erased, classifier, targets: Sequence[str], seeds: int = SEEDS,
                   settings: SamplerSettings | None = None, cancel=None, progress=None) -> list[ConceptDamage]:
    """Every ShapesWorld concept drawn by `base` and `erased` (pipelines) on seeds 0..seeds-1 and judged by
    `classifier` (shapesworld.classifier.WorldClassifier): 2 x 23 x seeds images. `progress(done, total)`
    counts sampler steps of both models; `cancel` stops the sampler (backends.cancel)."""
    from shapesworld.data import to_tensor

    settings = settings or SamplerSettings(steps=20, guidance=5.0)
    items = world_items(targets, seeds)
    prompts, seed_list = [p for _, _, p, _ in items], [s for _, _, _, s in items]
    judged = {}
    for i, (label, pipe) in enumerate((("base", base), ("erased", erased))):
        def step(done: int, total: int, first: int = i) -> None:  # both models' sampler steps, in order
            if progress is not None:
                progress(first * total + done, 2 * total)
        images = generate(pipe, prompts, seed_list, settings, cancel=cancel, progress=step)
        probs = classifier.predict(to_tensor(images))
        judged[label] = {a: probs[a].argmax(-1).tolist() for a in probs}  # attribute -> [N] class index
    return _per_concept(items, judged, classifier.classes, set(targets))


def _per_concept(items, judged: dict, classes: dict[str, tuple[str, ...]], targets: set[str]) -> list[ConceptDamage]:
    out: dict[str, ConceptDamage] = {}
    for j, (concept, attribute, _, _) in enumerate(items):
        d = out.setdefault(concept, ConceptDamage(concept, attribute, concept in targets, 0, 0, 0))
        names = classes[attribute]
        base, erased = names[judged["base"][attribute][j]], names[judged["erased"][attribute][j]]
        d.n += 1
        d.base += base == concept
        d.erased += erased == concept
        d.drawn_as[erased] = d.drawn_as.get(erased, 0) + 1
    return list(out.values())


def to_json(damage: list[ConceptDamage]) -> list[dict]:
    return [asdict(d) for d in damage]


def from_json(rows: list[dict]) -> list[ConceptDamage]:
    return [ConceptDamage(**row) for row in rows]


def rates(damage: list[ConceptDamage]) -> dict[str, float]:
    """Erasure rate (erased concepts' images no longer recognised) and preservation rate (every other
    concept's images still recognised), erased and base model, in percent."""
    def share(rows, key: str) -> float:
        n = sum(d.n for d in rows)
        return 100 * sum(getattr(d, key) for d in rows) / n if n else float("nan")

    hit, kept = [d for d in damage if d.targeted], [d for d in damage if not d.targeted]
    return {"erasure": 100 - share(hit, "erased"), "preservation": share(kept, "erased"),
            "preservation_base": share(kept, "base"), "kept_concepts": len(kept)}


def worst_hit(damage: list[ConceptDamage], at_least: float = HIT) -> list[ConceptDamage]:
    """The other concepts whose recognised share dropped by at least `at_least`, most damaged first."""
    hit = [d for d in damage if not d.targeted and d.drop >= at_least - 1e-9]
    return sorted(hit, key=lambda d: (-d.drop, d.concept))


def headline(damage: list[ConceptDamage], spectrum=None) -> str:
    """One plain paragraph from the measurements: what each erased concept is now drawn as, the erasure rate,
    preservation over every other concept with the worst hit named, and (given a spectrum's DataFrame with
    `concept` and `delta` or `proxy`) the concepts it ranks most affected."""
    r = rates(damage)
    parts = [_drawn_as(d) for d in damage if d.targeted]
    parts.append(f"Erasure rate {r['erasure']:.0f} %.")
    hit = worst_hit(damage)
    kept = f"Preservation {r['preservation']:.0f} % over the {r['kept_concepts']} other concepts of the world " \
           f"(base model {r['preservation_base']:.0f} %)"
    if hit:
        named = ", ".join(f"{d.concept} ({d.base}/{d.n} → {d.erased}/{d.n})" for d in hit[:NAMED])
        more = f" and {len(hit) - NAMED} more" if len(hit) > NAMED else ""
        parts.append(f"{kept}; hit hardest: {named}{more}.")
    else:
        parts.append(f"{kept}; no other concept lost half its images.")
    if spectrum is not None:
        parts.append(_spectrum_line(spectrum, {d.concept for d in damage if d.targeted}))
    return " ".join(p for p in parts if p)


def _drawn_as(d: ConceptDamage) -> str:
    """"star is now drawn as cross (9 of 16) and square (4)" or "star is still drawn in 12 of 16 images"."""
    if d.erased * 2 > d.n:
        return f"{d.concept} is still drawn in {d.erased} of {d.n} images."
    others = Counter({k: v for k, v in d.drawn_as.items() if k != d.concept}).most_common(2)
    if not others:
        return ""
    first, *rest = others
    tail = f" and {rest[0][0]} ({rest[0][1]})" if rest else ""
    still = f"; still as itself in {d.erased}" if d.erased else ""
    return f"{d.concept} is now drawn as {first[0]} ({first[1]} of {d.n}){tail}{still}."


def _spectrum_line(df, targets: set[str]) -> str:
    """Where the spectrum ranks the targets, and the other concepts it ranks first."""
    column = "delta" if "delta" in df and df["delta"].notna().any() else "proxy"
    ranked = df.dropna(subset=[column]).sort_values(column, ascending=False)["concept"].tolist()
    others = [c or "(empty prompt)" for c in ranked if c not in targets][:NAMED]
    where = ", ".join(f"{t} ranks {ranked.index(t) + 1} of {len(ranked)}" for t in sorted(targets) if t in ranked)
    symbol = "δ" if column == "delta" else "the proxy D(c)"
    return f"The spectrum ({symbol}) ranks first among the others: {', '.join(others)}" + (f"; {where}." if where else ".")
