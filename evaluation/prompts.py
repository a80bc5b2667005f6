"""Prompt sets for the evaluation protocols (docs/design.md §4), shipped in `assets/prompts/`.

    world_protocol()             # the embedded world: classes, 4 fixed 5/5 splits, templates, styles, paraphrases
    paraphrases("star")          # robustness prompts for one shape (world words only)
    imagenette_classes()         # SD: the 10 Imagenette classes (prompts: evaluation.imagenette.imagenette_prompts)
    artist_prompts("erase")      # SD: (artist, prompt) pairs of the ESD/UCE art-style experiments
    load_i2p()                   # SD: the I2P prompts (Hugging Face dataset AIML-TUDA/i2p)
    load_coco_captions(1000)     # SD: COCO val2014 captions (cocodataset.org annotations)

I2P and COCO are fetched from their public sources when online and read from the cache after that;
offline without a cached copy they raise PromptSetUnavailableError saying what to download and where.
"""

from __future__ import annotations

import copy
import csv
import json
import os
import shutil
import socket
import tempfile
import urllib.request
import zipfile
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from .errors import MetricUnavailableError

PROMPTS = Path(__file__).resolve().parent.parent / "assets" / "prompts"
ARTIST_SETS = ("erase", "keep")
SPLIT_SEED = 0  # world.json's splits are draw_splits(SHAPES, SPLIT_SEED), written out literally

I2P_REPO, I2P_FILE = "AIML-TUDA/i2p", "i2p_benchmark.csv"
I2P_CATEGORIES = ("hate", "harassment", "violence", "self-harm", "sexual", "shocking", "illegal activity")
COCO_HOST = "images.cocodataset.org"
COCO_SPLITS = ("val2014", "val2017")
HUB_HOST = "huggingface.co"


class PromptSetUnavailableError(MetricUnavailableError):
    """A prompt set that must be downloaded is not here; the message says what to download and where
    (a MetricUnavailableError, so callers catch one error for everything that cannot run offline)."""


# ---------------------------------------------------------------- the embedded world
def draw_splits(classes: list[str], seed: int = SPLIT_SEED, n: int = 4) -> list[dict[str, list[str]]]:
    """n half/half splits from seeded permutations, each followed by its complement, so every class is
    erased in exactly n/2 splits (classes keep their given order inside a split)."""
    import numpy as np

    rng, half = np.random.default_rng(seed), len(classes) // 2
    out: list[dict[str, list[str]]] = []
    while len(out) < n:
        perm = [classes[i] for i in rng.permutation(len(classes))]
        a, b = sorted(perm[:half], key=classes.index), sorted(perm[half:], key=classes.index)
        if all(s["erased"] not in (a, b) for s in out):
            out += [{"erased": a, "kept": b}, {"erased": b, "kept": a}]
    return out[:n]


def build_world_protocol() -> dict:
    """What assets/prompts/world.json holds, rebuilt from the world's definitions (tests compare them)."""
    from shapesworld.captions import CONCEPT_TEMPLATE, FRAMES, STYLE_WORDS, prompt
    from shapesworld.world import COLOURS, SHAPES, STYLES

    colours = list(COLOURS)

    def para(i: int, shape: str) -> list[str]:
        c = [colours[(i + j) % len(colours)] for j in range(6)]  # rotate colours so shapes differ
        return [prompt(shape, c[0], frame=FRAMES[1]), prompt(shape, c[1], frame=FRAMES[2]),
                prompt(shape, c[2], frame=FRAMES[3]), prompt(shape, c[3], frame=FRAMES[4]),
                prompt(shape, frame=FRAMES[1]), prompt(shape, frame=FRAMES[4]),
                prompt(shape, c[4], background="striped", frame=FRAMES[3]),
                prompt(shape, c[5], style="outline", frame=FRAMES[2])]

    return {
        "classes": list(SHAPES),
        "colours": colours,
        "concept_template": CONCEPT_TEMPLATE,
        "splits": draw_splits(list(SHAPES)),
        "erase_templates": ["a {shape}", "a {colour} {shape}"],
        "keep_templates": ["a {colour} {shape}"],
        "styles": {"axis": list(STYLES), "words": [STYLE_WORDS[s] for s in STYLES],
                   "templates": ["a {style} {shape}", "a {style} {colour} {shape}"]},
        "paraphrases": {s: para(i, s) for i, s in enumerate(SHAPES)},
    }


@lru_cache(maxsize=1)
def _world() -> dict:
    data = json.loads((PROMPTS / "world.json").read_text())
    from shapesworld.world import SHAPES

    classes = data["classes"]
    unknown = set(classes) - set(SHAPES)
    if unknown or len(set(classes)) != len(classes):
        raise ValueError(f"world.json: classes must be distinct shapes of the world; unknown {sorted(unknown)}")
    for i, s in enumerate(data["splits"]):
        erased, kept = set(s["erased"]), set(s["kept"])
        if erased & kept or erased | kept != set(classes) or not erased or not kept:
            raise ValueError(f"world.json: split {i} must divide the classes into disjoint, non-empty erased/kept")
    never = set(classes) - {c for s in data["splits"] for c in s["erased"]}
    if never:
        raise ValueError(f"world.json: {sorted(never)} are never erased in any split")
    if set(data["paraphrases"]) != set(classes):
        raise ValueError("world.json: paraphrases must list every class")
    return data


def world_protocol() -> dict:
    """The embedded world's protocol sets (a fresh copy; validated when first read)."""
    return copy.deepcopy(_world())


def fill(template: str, **words: str) -> str:
    """Format a world template and fix the article: fill("a {colour} {shape}", colour="orange", shape="star")
    -> "an orange star"."""
    text = template.format(**words).split()
    return " ".join("an" if w == "a" and i + 1 < len(text) and text[i + 1][0] in "aeiou" else w
                    for i, w in enumerate(text))


def paraphrases(shape: str) -> list[str]:
    """Paraphrased prompts naming `shape` (caption frames, colours, a background, a style)."""
    table = _world()["paraphrases"]
    if shape not in table:
        raise ValueError(f"unknown shape {shape!r}; valid: {', '.join(table)}")
    return list(table[shape])


# ---------------------------------------------------------------- Stable Diffusion prompt sets
def imagenette_classes() -> list[str]:
    return [ln.strip() for ln in (PROMPTS / "imagenette.txt").read_text().splitlines() if ln.strip()]


def artist_prompts(which: str = "erase") -> list[tuple[str, str]]:
    """(artist, prompt) for every artist of the set x every template."""
    if which not in ARTIST_SETS:
        raise ValueError(f"unknown artist set {which!r}; valid: {', '.join(ARTIST_SETS)}")
    data = json.loads((PROMPTS / "artists.json").read_text())
    return [(a, t.format(artist=a)) for a in data[which] for t in data["templates"]]


# ---------------------------------------------------------------- fetched prompt sets
@dataclass(frozen=True)
class I2PPrompt:
    prompt: str
    categories: tuple[str, ...]
    seed: int  # the seed and guidance the I2P authors generated with (SD 1.4)
    guidance: float
    nudity_percentage: float
    hard: bool


def _offline() -> bool:
    return os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes")


def _reachable(host: str, port: int, timeout: float = 3.0) -> bool:
    if _offline():
        return False
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_cache(cache_dir: str | Path | None) -> str:
    if cache_dir:
        return str(cache_dir)
    home = os.environ.get("HF_HOME", os.path.join(os.path.expanduser("~"), ".cache", "huggingface"))
    return os.environ.get("HF_HUB_CACHE") or os.path.join(home, "hub")


def load_i2p(category: str | None = None, cache_dir: str | Path | None = None) -> list[I2PPrompt]:
    """The I2P prompts (4,703), optionally only those of one category (e.g. "sexual" for nudity)."""
    if category is not None and category not in I2P_CATEGORIES:
        raise ValueError(f"unknown I2P category {category!r}; valid: {', '.join(I2P_CATEGORIES)}")
    from huggingface_hub import hf_hub_download

    cache = _hub_cache(cache_dir)
    get = lambda local: hf_hub_download(I2P_REPO, I2P_FILE, repo_type="dataset", cache_dir=cache, local_files_only=local)
    try:
        path = get(True)
    except Exception as cached_error:  # not in the cache (LocalEntryNotFoundError and friends)
        if not _reachable(HUB_HOST, 443):
            raise PromptSetUnavailableError(
                f"the I2P prompts are not in the Hugging Face cache ({cache}) and the hub cannot be reached (offline). "
                f"On a machine with internet access run `huggingface-cli download {I2P_REPO} {I2P_FILE} --repo-type dataset`"
                f" (https://huggingface.co/datasets/{I2P_REPO}) and copy the cache folder to {cache}") from cached_error
        try:
            path = get(False)
        except Exception as e:
            raise PromptSetUnavailableError(f"downloading {I2P_FILE} from https://huggingface.co/datasets/{I2P_REPO} "
                                            f"failed ({type(e).__name__}: {e})") from e
    with open(path, newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    out = []
    for r in rows:
        cats = tuple(c.strip() for c in (r.get("categories") or "").split(",") if c.strip())
        if category and category not in cats:
            continue
        out.append(I2PPrompt(
            prompt=(r.get("prompt") or "").strip(), categories=cats,
            seed=int(float(r.get("sd_seed") or r.get("evaluation_seed") or 0)),
            guidance=float(r.get("sd_guidance_scale") or r.get("evaluation_guidance") or 7.5),
            nudity_percentage=float(r.get("nudity_percentage") or 0.0), hard=str(r.get("hard", "0")).strip() == "1",
        ))
    return out


def _cache_root() -> Path:
    return Path(os.environ.get("CSE_CACHE_DIR", PROMPTS.parent.parent / "cache"))


def coco_url(split: str = "val2014") -> str:
    return f"http://{COCO_HOST}/annotations/annotations_trainval{split[-4:]}.zip"


def load_coco_captions(n: int | None = None, split: str = "val2014", seed: int = 0,
                       cache_dir: str | Path | None = None) -> list[str]:
    """One caption per COCO image (its first annotation), images in id order; with n, a seeded sample
    of n of them (still in image-id order). The annotations are fetched once into cache_dir
    (default: $CSE_CACHE_DIR or ./cache, under coco/)."""
    if split not in COCO_SPLITS:
        raise ValueError(f"unknown COCO split {split!r}; valid: {', '.join(COCO_SPLITS)}")
    if n is not None and n < 1:
        raise ValueError(f"n must be >= 1, got {n}")
    folder = Path(cache_dir) if cache_dir else _cache_root() / "coco"
    path = folder / f"captions_{split}.json"
    if not path.is_file():
        _fetch_coco(split, path)
    anns = json.loads(path.read_text())["annotations"]
    first: dict[int, tuple[int, str]] = {}
    for a in anns:
        if a["image_id"] not in first or a["id"] < first[a["image_id"]][0]:
            first[a["image_id"]] = (a["id"], " ".join(a["caption"].split()))
    captions = [first[i][1] for i in sorted(first)]
    if n is None:
        return captions
    if n > len(captions):
        raise ValueError(f"COCO {split} has {len(captions)} captioned images; asked for {n}")
    import numpy as np

    keep = np.sort(np.random.default_rng(seed).choice(len(captions), n, replace=False))
    return [captions[i] for i in keep]


def _fetch_coco(split: str, path: Path) -> None:
    url, member = coco_url(split), f"annotations/captions_{split}.json"
    if not _reachable(COCO_HOST, 80):
        raise PromptSetUnavailableError(
            f"the COCO {split} captions are not cached at {path} and {COCO_HOST} cannot be reached (offline). "
            f"On a machine with internet access download {url} (about 250 MB), unzip {member} from it and copy "
            f"that file to {path} (or point CSE_CACHE_DIR at a cache folder holding coco/captions_{split}.json)")
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory(dir=path.parent) as tmp:
            archive = Path(tmp) / "annotations.zip"
            with urllib.request.urlopen(url, timeout=60) as r, open(archive, "wb") as f:
                shutil.copyfileobj(r, f)
            with zipfile.ZipFile(archive) as z, z.open(member) as src, open(Path(tmp) / path.name, "wb") as dst:
                shutil.copyfileobj(src, dst)
            os.replace(Path(tmp) / path.name, path)
    except (OSError, zipfile.BadZipFile, KeyError) as e:
        raise PromptSetUnavailableError(f"downloading {url} failed ({type(e).__name__}: {e}); download it by hand, "
                                        f"unzip {member} and copy it to {path}") from e
