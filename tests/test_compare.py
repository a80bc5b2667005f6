"""Before/after sheets and NudeNet screening."""

import numpy as np
import pytest

from backends import SamplerSettings
from backends.safety import NudityDetector, blur, screen
from evaluation.compare import check_compare_inputs, compare, shape_recognition, side_by_side


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
    sheet, layout = side_by_side(result)
    assert layout.labels == ["base", "AP"] and layout.tile % 32 == 0  # enlarged by a whole factor
    assert sheet.shape[1] <= 1100 and sheet.shape[0] == layout.top + 4 * layout.tile  # one laptop-wide image
    tiles = {(i, label, j): _crop(sheet, layout.box(i, label, j)) for i in range(4) for label in layout.labels
             for j in range(4)}
    # every tile is its image enlarged pixel-exact, at the column of its seed and the block of its model
    # (inside the 3-px outline every tile has here: FlagEverything flags them all)
    scale = layout.tile // 32
    b = -(-3 // scale)  # image pixels under the outline
    for (i, label, j), tile in tiles.items():
        assert np.array_equal(tile[b * scale : (32 - b) * scale : scale, b * scale : (32 - b) * scale : scale],
                              result.images[label][i, j][b:-b, b:-b])
    # so the star rows differ between the halves more than the kept rows do (pixel gaps 28 and 32 against 24
    # and 10 for AP object,fast searching 16 centres; the classifier's counts above are the erasure's measure)
    def gap(i):
        return np.mean([np.abs(tiles[i, "base", j] - tiles[i, "AP", j]).mean() for j in range(4)])
    assert min(gap(0), gap(1)) > 1.1 * max(gap(2), gap(3)), [gap(i) for i in range(4)]


def _crop(sheet, box):
    x0, y0, x1, y1 = box
    return sheet[y0:y1, x0:x1].astype(float)
