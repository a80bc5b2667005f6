"""ShapesWorld renderer and captions: determinism and exact labels."""

import itertools

import numpy as np
import pytest

from shapesworld.captions import STYLE_WORDS, is_true_of, prompt, sample_caption, sample_mentions
from shapesworld.world import (
    BACKGROUNDS,
    COLOURS,
    IMAGE_SIZE,
    SHAPES,
    STYLES,
    Scene,
    render,
    sample_scene,
)


def centred(**kw) -> Scene:
    base = dict(shape="circle", colour="red", background="plain", style="filled", radius=12.0)
    return Scene(**{**base, **kw})


def test_sizes_of_the_world():
    assert len(SHAPES) >= 10 and len(COLOURS) >= 6 and len(BACKGROUNDS) >= 3 and len(STYLES) >= 3


def test_same_seed_same_scenes_and_pixels():
    a = [sample_scene(np.random.default_rng(7)) for _ in range(3)]
    b = [sample_scene(np.random.default_rng(7)) for _ in range(3)]
    assert a == b
    for s in a:
        assert np.array_equal(np.asarray(render(s)), np.asarray(render(s)))
    assert render(a[0]).size == (IMAGE_SIZE, IMAGE_SIZE)


def test_pinned_attributes_and_unknown_values():
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = sample_scene(rng, shape="star", style="outline")
        assert s.shape == "star" and s.style == "outline"
    with pytest.raises(ValueError, match="valid"):
        sample_scene(rng, shape="unicorn")
    with pytest.raises(ValueError):
        sample_scene(rng, texture="wood")


@pytest.mark.parametrize("colour", list(COLOURS))
def test_filled_object_has_its_colour_at_the_centre(colour):
    px = np.asarray(render(centred(colour=colour)))[16, 16].astype(int)
    assert np.abs(px - np.array(COLOURS[colour])).max() <= 2


def test_outline_is_hollow_and_shadow_is_dark():
    filled = np.asarray(render(centred(style="filled"))).astype(int)
    outline = np.asarray(render(centred(style="outline"))).astype(int)
    shadow = np.asarray(render(centred(style="shadow"))).astype(int)
    bg = np.asarray(render(centred(shape="circle", radius=10.0, dx=0, dy=0))).astype(int)[0, 0]
    assert np.abs(outline[16, 16] - bg).max() <= 2  # centre shows the background
    assert np.abs(outline[16, 4] - np.array(COLOURS["red"])).max() < 60  # rim is red
    assert shadow[26, 26].sum() < filled[26, 26].sum() - 150  # shadow down-right of the disc, outside it


def test_backgrounds_have_their_pattern():
    def bg(name):
        return np.asarray(render(centred(background=name, radius=10.0))).astype(int)[..., 0]
    plain, striped, checkered, gradient = (bg(b) for b in ("plain", "striped", "checkered", "gradient"))
    assert plain[:3].std() == 0
    assert striped[0, 0] != striped[4, 0] and striped[0, 0] == striped[0, 5]  # rows alternate every 4 px
    assert checkered[0, 0] != checkered[0, 8] and checkered[0, 0] == checkered[8, 8]
    assert gradient[0, 0] > gradient[31, 0] + 100  # light top, dark bottom


def test_shapes_have_distinct_silhouettes():
    masks = {s: np.asarray(render(centred(shape=s, colour="blue")))[..., 2] > 150 for s in SHAPES}
    for a, b in itertools.combinations(SHAPES, 2):
        iou = (masks[a] & masks[b]).sum() / (masks[a] | masks[b]).sum()
        assert iou < 0.85, (a, b, iou)


def test_captions_are_true_of_their_scene():
    rng = np.random.default_rng(1)
    words = {w: k for k in ("colour", "background") for w in (COLOURS if k == "colour" else BACKGROUNDS)}
    style_of = {v: k for k, v in STYLE_WORDS.items()}
    for _ in range(500):
        scene = sample_scene(rng)
        caption = sample_caption(scene, rng)
        assert scene.shape in caption
        for token in caption.split():
            if token in words:
                assert getattr(scene, words[token]) == token, (caption, scene)
            if token in style_of:
                assert scene.style == style_of[token], (caption, scene)
        assert is_true_of(sample_mentions(scene, rng), scene)
    other = centred(shape="square")
    assert not is_true_of({"shape": "circle", "colour": None, "style": None, "background": None}, other)


def test_canonical_prompts():
    assert prompt("star", "red") == "a red star"
    assert prompt("arrow") == "an arrow"
    assert prompt("star", "orange", background="striped", style="outline") == "an outlined orange star on a striped background"
