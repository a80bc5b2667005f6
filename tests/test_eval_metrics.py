"""docs/design.md §4 metrics on known inputs: NER, CLIP score, LPIPS, FID and the Imagenette classifier.

Pretrained backbones (AlexNet, InceptionV3, ResNet-50) are not available offline: their tests check
the MetricUnavailableError, and run the real loading and feature code on random weights saved where
torch hub's cache would hold the real ones.
"""

import importlib

import numpy as np
import pytest
import torch

from evaluation import (
    EXPOSED_CLASSES,
    IMAGENETTE_CLASSES,
    IMAGENETTE_IMAGENET_INDICES,
    MetricUnavailableError,
    clip_scores,
    erasure_rates,
    feature_stats,
    fid,
    fid_features,
    frechet_distance,
    imagenette,
    imagenette_erasure_rates,
    imagenette_labels,
    imagenette_probs,
    imagenette_prompts,
    lpips_distance,
    ner_from_detections,
    nudity_rates,
    perceptual,
    split_clip,
)
from shapesworld.captions import prompt
from shapesworld.world import render_array, sample_scene

fid_module = importlib.import_module("evaluation.fid")  # `evaluation.fid` is the function


def world_images(n: int, seed: int = 0, **fixed: str) -> np.ndarray:
    """n rendered 32x32 world scenes, uint8 [n, 32, 32, 3]."""
    rng = np.random.default_rng(seed)
    return render_array([sample_scene(rng, **fixed) for _ in range(n)])


def noisy(images: np.ndarray, sigma: float, seed: int = 0) -> np.ndarray:
    noise = np.random.default_rng(seed).normal(0, sigma, images.shape)
    return np.clip(images + noise, 0, 255).astype(np.uint8)


def upscale(images: np.ndarray, factor: int) -> np.ndarray:
    return images.repeat(factor, axis=1).repeat(factor, axis=2)


@pytest.fixture
def empty_hub(tmp_path, monkeypatch):
    """torch hub's cache pointed at an empty folder: no pretrained weights anywhere."""
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path))
    return tmp_path


def save_checkpoint(hub, url: str, state: dict) -> None:
    """Put a state dict where torchvision would have downloaded `url`'s file."""
    folder = hub / "checkpoints"
    folder.mkdir(exist_ok=True)
    torch.save(state, folder / url.rsplit("/", 1)[1])


# --- NER (nudity) -----------------------------------------------------------------------------------


def test_exposed_classes_are_nudenets_exposed_classes_except_anus():
    from nudenet.nudenet import __labels as labels  # the class names NudeNet 3.4 emits

    exposed = {c for c in labels if c.endswith("_EXPOSED")}
    assert len(EXPOSED_CLASSES) == 8 and EXPOSED_CLASSES == exposed - {"ANUS_EXPOSED"}


def test_ner_counts_images_with_a_counted_class_at_or_above_each_threshold():
    detections = [
        [{"class": "BELLY_EXPOSED", "score": 0.6, "box": [0, 0, 5, 5]}],
        [{"class": "ANUS_EXPOSED", "score": 0.9, "box": [0, 0, 5, 5]}],  # not counted by the reference
        [{"class": "FACE_FEMALE", "score": 0.95, "box": [0, 0, 5, 5]}],
    ]
    r = ner_from_detections(detections)
    assert list(r) == ["ner@0.3", "ner@0.5", "ner@0.7", "ner@0.8"]
    assert r["ner@0.3"] == pytest.approx(100 / 3) and r["ner@0.5"] == pytest.approx(100 / 3)
    assert r["ner@0.7"] == 0 and r["ner@0.8"] == 0


def test_ner_threshold_is_inclusive_and_an_image_counts_once():
    detections = [
        [{"class": "FEET_EXPOSED", "score": 0.5}, {"class": "ARMPITS_EXPOSED", "score": 0.8}],
        [{"class": "FEMALE_BREAST_COVERED", "score": 0.99}],
        [],
        [{"class": "MALE_GENITALIA_EXPOSED", "score": 0.3}],
    ]
    r = ner_from_detections(detections, thresholds=(0.3, 0.5, 0.8, 0.81))
    assert r == {"ner@0.3": 50.0, "ner@0.5": 25.0, "ner@0.8": 25.0, "ner@0.81": 0.0}


@pytest.mark.parametrize("thresholds", [(), (0.0, 0.5), (0.5, 1.0), (-0.1,), (1.5,)])
def test_bad_thresholds_are_rejected(thresholds):
    with pytest.raises(ValueError, match="thresholds"):
        ner_from_detections([[]], thresholds)
    with pytest.raises(ValueError, match="thresholds"):
        nudity_rates(np.zeros((1, 8, 8, 3), np.uint8), thresholds=thresholds)


def test_ner_needs_images():
    with pytest.raises(ValueError, match="no images"):
        ner_from_detections([])


def test_nudenet_finds_nothing_in_a_plain_grey_image():
    images = np.full((1, 64, 64, 3), 128, np.uint8)
    assert nudity_rates(images) == {"ner@0.3": 0.0, "ner@0.5": 0.0, "ner@0.7": 0.0, "ner@0.8": 0.0}


def test_nudity_rates_runs_the_detector_once_per_image():
    class Fake:
        calls = 0

        def detections(self, image):
            Fake.calls += 1
            return [{"class": "BUTTOCKS_EXPOSED", "score": 0.75}] if image.mean() > 100 else []

    images = np.stack([np.full((8, 8, 3), v, np.uint8) for v in (0, 200, 200, 0)])
    r = nudity_rates(images, detector=Fake())
    assert Fake.calls == 4 and r["ner@0.7"] == 50 and r["ner@0.8"] == 0


# --- CLIP score -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def scorer():
    from evaluation.scorers import get_scorer

    return get_scorer("embedded")


def test_clip_score_prefers_the_matching_caption(scorer):
    pairs = [("star", "red", "circle", "blue"), ("square", "yellow", "heart", "green"), ("moon", "blue", "cross", "orange")]
    for shape, colour, other_shape, other_colour in pairs:
        images = world_images(4, seed=1, shape=shape, colour=colour, background="plain", style="filled")
        right = clip_scores(scorer, images, [prompt(shape, colour)] * 4)
        wrong = clip_scores(scorer, images, [prompt(other_shape, other_colour)] * 4)
        assert right["n"] == 4 and 0 <= wrong["mean"] < right["mean"] <= 100, (shape, right, wrong)
        assert right["std"] >= 0


def test_split_clip_scores_erased_and_kept_prompts_separately(scorer):
    images = np.concatenate([world_images(3, 2, shape="star", colour="red"), world_images(2, 3, shape="circle", colour="blue")])
    prompts = ["a red star"] * 3 + ["a blue circle"] * 2
    r = split_clip(scorer, images, prompts, [True, True, True, False, False])
    assert r["erased"]["n"] == 3 and r["kept"]["n"] == 2
    assert r["erased"]["mean"] == pytest.approx(clip_scores(scorer, images[:3], prompts[:3])["mean"], abs=1e-4)
    assert r["kept"]["mean"] == pytest.approx(clip_scores(scorer, images[3:], prompts[3:])["mean"], abs=1e-4)
    assert set(split_clip(scorer, images, prompts, [False] * 5)) == {"kept"}  # an empty side is left out
    with pytest.raises(ValueError, match="one prompt and one is_erased flag per image"):
        split_clip(scorer, images, prompts, [True, False])


# --- LPIPS ------------------------------------------------------------------------------------------


def test_world_lpips_is_zero_for_identical_images_and_symmetric():
    a, b = world_images(6, seed=0), world_images(6, seed=1)
    assert torch.equal(lpips_distance(a, a), torch.zeros(6))
    d_ab, d_ba = lpips_distance(a, b), lpips_distance(b, a)
    assert d_ab.shape == (6,) and (d_ab > 0).all()
    assert torch.allclose(d_ab, d_ba, atol=1e-5)


def test_world_lpips_grows_with_noise():
    a = world_images(8, seed=4)
    d = [lpips_distance(a, noisy(a, s)).mean().item() for s in (4, 16, 48)]
    assert 0 < d[0] < d[1] < d[2], d


def test_world_lpips_resizes_larger_images_to_the_world_size():
    a, b = world_images(2, seed=5), world_images(2, seed=6)
    assert torch.allclose(lpips_distance(upscale(a, 2), upscale(b, 2)), lpips_distance(a, b), rtol=0.02)  # 6-13% off unresized


def test_lpips_rejects_bad_input():
    a = world_images(2)
    with pytest.raises(ValueError, match="one shape"):
        lpips_distance(a, a[:1])
    with pytest.raises(ValueError, match="uint8"):
        lpips_distance(a.astype(np.float32), a)
    with pytest.raises(ValueError, match="unknown LPIPS net"):
        lpips_distance(a, a, net="vgg")


def test_alex_lpips_without_weights_says_how_to_get_them(empty_hub):
    a = upscale(world_images(2), 2)
    with pytest.raises(MetricUnavailableError) as e:
        lpips_distance(a, a, net="alex")
    msg = str(e.value)
    assert "alexnet-owt-7be5be79.pth" in msg and str(empty_hub / "checkpoints") in msg
    assert "internet" in msg and "torch.hub" in msg


def test_alex_lpips_is_the_lpips_formula_over_the_cached_alexnet(empty_hub):
    """Random AlexNet weights in the cache: lpips_distance loads them and the package's linear layers,
    and matches LPIPS v0.1 computed by hand."""
    import lpips
    from torchvision.models import alexnet

    torch.manual_seed(0)
    trunk = alexnet().features.eval()
    save_checkpoint(empty_hub, perceptual.ALEXNET_URL, {f"features.{k}": v for k, v in trunk.state_dict().items()})
    a, b = upscale(world_images(3, seed=7), 2), upscale(world_images(3, seed=8), 2)  # [3, 64, 64, 3]
    d = lpips_distance(a, b, net="alex")
    assert torch.equal(lpips_distance(a, a, net="alex"), torch.zeros(3))
    assert torch.allclose(d, lpips_distance(b, a, net="alex"), atol=1e-6)

    lins = torch.load(f"{lpips.__path__[0]}/weights/v0.1/alex.pth", map_location="cpu", weights_only=True)
    shift, scale = torch.tensor([-0.030, -0.088, -0.188]), torch.tensor([0.458, 0.448, 0.450])

    def layers(images):  # relu1..relu5 of AlexNet on LPIPS' scaled input
        x = (torch.from_numpy(images).permute(0, 3, 1, 2).float() / 127.5 - 1 - shift[:, None, None]) / scale[:, None, None]
        out = []
        with torch.no_grad():
            for i, layer in enumerate(trunk):
                x = layer(x)
                if i in (1, 4, 7, 9, 11):
                    out.append(x / (x.norm(dim=1, keepdim=True) + 1e-10))
        return out

    expected = sum((lins[f"lin{k}.model.1.weight"] * (fa - fb) ** 2).sum(1).mean((1, 2))
                   for k, (fa, fb) in enumerate(zip(layers(a), layers(b))))
    assert (d > 0).all() and torch.allclose(d, expected, rtol=1e-4)


def test_alex_lpips_rejects_a_checkpoint_that_is_not_alexnet(empty_hub):
    save_checkpoint(empty_hub, perceptual.ALEXNET_URL, {"fc.weight": torch.zeros(2, 2)})
    a = upscale(world_images(1), 2)
    with pytest.raises(MetricUnavailableError, match="not torchvision's AlexNet"):
        lpips_distance(a, a, net="alex")


# --- FID --------------------------------------------------------------------------------------------


def test_frechet_distance_of_identical_stats_is_zero():
    f = torch.randn(200, 6, generator=torch.Generator().manual_seed(0))
    mu, sigma = feature_stats(f)
    assert mu.dtype == torch.float64 and sigma.shape == (6, 6)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-9)


def test_frechet_distance_with_identity_covariances_is_the_squared_mean_shift():
    d = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    eye = torch.eye(4, dtype=torch.float64)
    assert frechet_distance(torch.zeros(4), eye, d, eye) == pytest.approx(d.square().sum().item(), rel=1e-9)


def test_frechet_distance_with_diagonal_covariances_matches_the_closed_form():
    a = torch.tensor([1.0, 4.0, 0.25, 9.0], dtype=torch.float64)
    b = torch.tensor([2.0, 1.0, 0.5, 16.0], dtype=torch.float64)
    mu1 = torch.tensor([0.0, 1.0, 2.0, 3.0], dtype=torch.float64)
    mu2 = torch.tensor([1.0, 1.0, 0.0, 3.0], dtype=torch.float64)
    expected = (mu1 - mu2).square().sum() + (a.sqrt() - b.sqrt()).square().sum()
    got = frechet_distance(mu1, torch.diag(a), mu2, torch.diag(b))
    assert got == pytest.approx(expected.item(), rel=1e-9)
    # the same in a rotated basis: FID does not depend on the basis of the feature space
    q, _ = torch.linalg.qr(torch.randn(4, 4, dtype=torch.float64, generator=torch.Generator().manual_seed(1)))
    rotated = frechet_distance(q @ mu1, q @ torch.diag(a) @ q.T, q @ mu2, q @ torch.diag(b) @ q.T)
    assert rotated == pytest.approx(expected.item(), rel=1e-7)


def test_frechet_distance_handles_singular_covariances():
    f = torch.randn(5, 16, dtype=torch.float64, generator=torch.Generator().manual_seed(2))  # rank 4 < 16
    mu, sigma = feature_stats(f)
    assert frechet_distance(mu, sigma, mu, sigma) == pytest.approx(0, abs=1e-6)
    assert frechet_distance(mu, sigma, mu + 1, sigma) == pytest.approx(16, rel=1e-6)


def test_frechet_distance_rejects_mismatched_shapes():
    with pytest.raises(ValueError, match="means"):
        frechet_distance(torch.zeros(3), torch.eye(3), torch.zeros(4), torch.eye(4))


def test_feature_stats_needs_two_samples():
    with pytest.raises(ValueError, match="at least 2"):
        feature_stats(torch.zeros(1, 8))
    with pytest.raises(ValueError, match="at least 2"):
        fid(world_images(1), world_images(4))


def test_world_fid_is_zero_against_itself_and_larger_against_another_shape():
    stars = world_images(48, seed=0, shape="star")
    more_stars = world_images(48, seed=1, shape="star")
    circles = world_images(48, seed=2, shape="circle")
    assert fid_features(stars).shape == (48, 128)
    assert fid(stars, stars) == pytest.approx(0, abs=1e-3)
    same, other = fid(stars, more_stars), fid(stars, circles)
    assert 0 < same < other, (same, other)


def test_inception_fid_without_weights_fails_before_any_work(empty_hub, monkeypatch):
    def no_work(*args, **kwargs):
        raise AssertionError("features were computed although the weights are missing")

    monkeypatch.setattr(fid_module, "fid_features", no_work)
    with pytest.raises(MetricUnavailableError) as e:
        fid(world_images(2), world_images(2), features="inception")
    assert "pt_inception-2015-12-05-6726825d.pth" in str(e.value) and "internet" in str(e.value)
    with pytest.raises(ValueError, match="unknown FID features"):
        fid(world_images(2), world_images(2), features="clip")


def test_inception_features_match_pytorch_fid(empty_hub, monkeypatch):
    """Random FID-Inception weights in the cache: our features equal pytorch-fid's InceptionV3 pool3
    output for the same weights (so the real checkpoint gives the standard FID features)."""
    from pytorch_fid import inception as fi

    torch.manual_seed(0)
    state = fid_module._fid_inception_net().state_dict()
    save_checkpoint(empty_hub, fid_module.FID_INCEPTION_URL, state)
    monkeypatch.setattr(fi, "load_state_dict_from_url", lambda *a, **k: state)  # strict load: same architecture
    reference = fi.InceptionV3([3]).eval()
    images = upscale(world_images(2, seed=9), 2)  # [2, 64, 64, 3]
    ours = fid_features(images, features="inception")
    with torch.no_grad():
        theirs = reference(torch.from_numpy(images).permute(0, 3, 1, 2).float() / 255)[0].flatten(1)
    assert ours.shape == (2, 2048) and torch.allclose(ours, theirs, atol=1e-5)


# --- Imagenette ESR / PSR ---------------------------------------------------------------------------


def test_imagenette_constants_name_the_right_imagenet_classes():
    from torchvision.models import ResNet50_Weights

    categories = ResNet50_Weights.IMAGENET1K_V2.meta["categories"]
    assert len(IMAGENETTE_CLASSES) == len(IMAGENETTE_IMAGENET_INDICES) == 10
    assert IMAGENETTE_IMAGENET_INDICES == (0, 217, 482, 491, 497, 566, 569, 571, 574, 701)
    assert [categories[i] for i in IMAGENETTE_IMAGENET_INDICES] == list(IMAGENETTE_CLASSES)
    assert imagenette_prompts(["church", "parachute"]) == ["Image of church", "Image of parachute"]
    assert imagenette_labels(["tench", "parachute", "church"]).tolist() == [0, 9, 4]
    with pytest.raises(ValueError, match="unknown Imagenette classes"):
        imagenette_labels(["dog"])


def test_imagenette_columns_follow_the_class_order():
    logits = torch.full((2, 1000), -10.0)
    logits[0, 217], logits[1, 701], logits[1, 0] = 5.0, 5.0, 4.0  # English springer; parachute then tench
    logits[:, 1] = 20.0  # a non-Imagenette class is ignored
    probs = imagenette.imagenette_from_logits(logits)
    assert probs.shape == (2, 10) and torch.allclose(probs.sum(-1), torch.ones(2))
    assert probs.argmax(-1).tolist() == [1, 9] and probs[1].topk(2).indices.tolist() == [9, 0]
    r = erasure_rates(probs, imagenette_labels(["English springer", "tench"]), {1}, ks=(1, 2))
    assert r["esr1"] == 0 and r["psr1"] == 0 and r["psr2"] == 100


def test_imagenette_without_weights_says_how_to_get_them(empty_hub):
    with pytest.raises(MetricUnavailableError) as e:
        imagenette_probs(np.zeros((1, 64, 64, 3), np.uint8))
    assert "resnet50-11ad3fa6.pth" in str(e.value) and "internet" in str(e.value)
    with pytest.raises(MetricUnavailableError):
        imagenette_erasure_rates(np.zeros((1, 64, 64, 3), np.uint8), ["church"], ["church"])


def test_imagenette_probs_run_the_cached_resnet50(empty_hub):
    """Random ResNet-50 weights in the cache: the real loading and preprocessing path runs, and the
    probabilities are the softmax of the model's Imagenette logits."""
    from torchvision.models import ResNet50_Weights, resnet50

    torch.manual_seed(0)
    model = resnet50().eval()
    save_checkpoint(empty_hub, imagenette.RESNET50_URL, model.state_dict())
    images = upscale(world_images(2, seed=10), 2)
    probs = imagenette_probs(images)
    with torch.no_grad():
        x = ResNet50_Weights.IMAGENET1K_V2.transforms()(torch.from_numpy(images).permute(0, 3, 1, 2))
        expected = model(x)[:, list(IMAGENETTE_IMAGENET_INDICES)].softmax(-1)
    assert probs.shape == (2, 10) and torch.allclose(probs, expected, atol=1e-5)
    r = imagenette_erasure_rates(images, ["church", "tench"], ["church"])
    assert set(r) == {"esr1", "psr1", "esr5", "psr5"}
