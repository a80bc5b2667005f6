"""Before/after sheets and NudeNet screening."""

import numpy as np
import pytest

from backends import SamplerSettings
from backends.safety import NudityDetector, blur, screen
from evaluation.compare import check_compare_inputs, compare, render, shape_recognition


class FlagEverything(NudityDetector):
    """A detector that flags every image: checks what happens to flagged images, whatever NudeNet says."""

    def flags(self, images):
        return np.ones(len(images), dtype=bool)


def test_nudenet_runs_offline_and_does_not_flag_world_images(embedded_pipe):
    from backends import generate

    images = generate(embedded_pipe, ["a red star", "a blue heart"], [0, 1], SamplerSettings(steps=10))
    detector = NudityDetector()
    assert isinstance(detector.detections(images[0]), list)  # the shipped ONNX model loads and runs
    shown, flags = screen(images, detector)
    assert not flags.any() and np.array_equal(shown, images)


def test_flagged_images_are_blurred_unless_revealed():
    rng = np.random.default_rng(0)
    images = rng.integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    shown, flags = screen(images, FlagEverything())
    assert flags.all() and not np.array_equal(shown, images)
    assert shown.std() < images.std() / 2  # blurred: the noise is gone
    assert np.array_equal(shown[0], blur(images[0]))
    revealed, flags = screen(images, FlagEverything(), reveal=True)
    assert flags.all() and np.array_equal(revealed, images)
    with pytest.raises(ValueError, match="threshold"):
        NudityDetector(threshold=1.5)


@pytest.mark.parametrize("prompts, seeds, runs, message", [
    ([], [0], {}, "at least one prompt"),
    (["a star", " "], [0], {}, "no empty lines"),
    (["a star"], list(range(20)), {}, "seeds"),
    (["a star"], [0], {str(i): "x" for i in range(9)}, "at most"),
])
def test_bad_compare_input_is_rejected(prompts, seeds, runs, message):
    with pytest.raises(ValueError, match=message):
        check_compare_inputs(prompts, seeds, runs)


@pytest.mark.slow
def test_sheets_show_the_erased_shape_gone_and_the_others_kept(embedded_pipe, classifier, ap_star_run):
    prompts = ["a red star", "a blue star", "a red heart", "a green circle"]
    result = compare(embedded_pipe, {"AP": str(ap_star_run)}, prompts, [0, 1, 2, 3], ["star"],
                     SamplerSettings(steps=20, guidance=5.0), detector=FlagEverything(), reveal=True)
    assert result.erased_rows == [True, True, False, False]
    assert result.images["base"].shape == (4, 4, 32, 32, 3) and result.flagged["AP"].all()
    rows = {r["prompt"]: r for r in shape_recognition(result, classifier)}
    for p in ("a red star", "a blue star"):
        assert rows[p]["base"] == "4/4" and int(rows[p]["AP"].split("/")[0]) <= 1, rows[p]
    for p in ("a red heart", "a green circle"):
        assert int(rows[p]["AP"].split("/")[0]) >= 3, rows[p]
    sheets = render(result, tile=64)
    assert list(sheets) == ["base", "AP"]
    assert sheets["AP"].shape == (40 + 4 * 64, 170 + 4 * 64, 3)
    # the tiles are the images themselves (enlarged), so the sheets of base and AP differ only there
    assert not np.array_equal(sheets["base"][40:, 170:], sheets["AP"][40:, 170:])
