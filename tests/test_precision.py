"""Low-precision models train float32 masters (erasure.master, docs/design.md §3.1): a bfloat16 run and a
float32 run from the same seeds change the same tensors, move (almost) every trained element, and agree
in direction; without the masters, bf16 rounding swallows most updates at SD's learning rate."""

import pytest
import torch

import erasure.trainer
from backends import EMBEDDED, denoiser, load_pipeline
from erasure import Cancelled, CancelToken, apply, erase, resume
from erasure.master import MasterWeights

SETTINGS = dict(steps=2, ddim_steps=3, lr=1e-5, checkpoint_every=0)  # lr 1e-5: SD's, where bf16 rounding bites


def _base(dtype: torch.dtype) -> dict[str, torch.Tensor]:
    """The denoiser's tensors as a run in `dtype` starts from, in float32."""
    return {f"unet.{n}": p.detach().to(dtype).float() for n, p in denoiser(load_pipeline(EMBEDDED)).named_parameters()}


def _update(result: dict, base: dict) -> tuple[torch.Tensor, float]:
    """All trained elements' change as one vector, and the share of elements that moved."""
    delta = torch.cat([(result[k].float() - base[k]).flatten() for k in sorted(result)])
    return delta, float((delta != 0).float().mean())


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    root = tmp_path_factory.mktemp("precision")
    return {dt: erase(EMBEDDED, "esd", ["star"], "object,fast", root / dt, dtype=dt, **SETTINGS)
            for dt in ("float32", "bfloat16")}


def test_a_bfloat16_run_moves_the_same_tensors_as_a_float32_run(runs):
    r32, r16 = runs["float32"].result(), runs["bfloat16"].result()
    assert r16.keys() == r32.keys() and all(v.dtype == torch.float32 for v in r16.values())
    d32, moved32 = _update(r32, _base(torch.float32))
    d16, moved16 = _update(r16, _base(torch.bfloat16))
    assert moved32 >= 0.99 and moved16 >= 0.99, (moved32, moved16)
    # bf16 forwards give slightly different gradients; Adam's first steps follow their signs
    assert torch.nn.functional.cosine_similarity(d32, d16, dim=0) > 0.99
    assert (d32 - d16).norm() / d32.norm() < 0.2
    record = runs["bfloat16"].record
    assert record["dtype"] == "bfloat16" and record["trained_dtype"] == "float32"


def test_a_bfloat16_result_applies_in_the_pipelines_dtype(runs):
    run = runs["bfloat16"]
    pipe = apply(load_pipeline(EMBEDDED, dtype=torch.bfloat16), run)
    net = denoiser(pipe)
    for key, value in run.result().items():
        param = net.get_parameter(key.partition(".")[2])
        assert param.dtype == torch.bfloat16 and torch.equal(param, value.to(torch.bfloat16))


def test_without_masters_bfloat16_loses_most_updates(monkeypatch, tmp_path):
    """The negative control: the masters are the bf16 tensors themselves, as before they existed."""

    class InPlace(MasterWeights):
        def __init__(self, trained):
            self.model, self.params = trained, dict(trained)

    monkeypatch.setattr(erasure.trainer, "MasterWeights", InPlace)
    result = erase(EMBEDDED, "esd", ["star"], "object,fast", tmp_path / "r", dtype="bfloat16", **SETTINGS).result()
    _, moved = _update(result, _base(torch.bfloat16))
    assert moved < 0.5, moved


def test_a_bfloat16_run_resumes_exactly(runs, tmp_path):
    token = CancelToken()

    def cancel_after_first_step(event):
        if event.kind == "step":
            token.cancel()

    with pytest.raises(Cancelled):
        erase(EMBEDDED, "esd", ["star"], "object,fast", tmp_path / "b", dtype="bfloat16", callback=cancel_after_first_step,
              cancel=token, **{**SETTINGS, "checkpoint_every": 1})
    resumed, whole = resume(tmp_path / "b").result(), runs["bfloat16"].result()
    assert resumed.keys() == whole.keys() and all(torch.equal(resumed[k], whole[k]) for k in whole)


FAMILY_MODELS = {"sd": EMBEDDED, "sdxl": "sdxl-tiny-random", "flux": "flux-tiny-random"}


def _matrix():
    from erasure import get_method
    from erasure.registry import list_methods

    # CA draws its anchor images before step 1 (20-30 s a model on 2 CPU cores) and MCE's one step runs its
    # few-step sampler through every mask site (~70 s on the embedded UNet): the slow lane's
    return [pytest.param(m, model, marks=[pytest.mark.slow] if m in ("ca", "mce") else [])
            for m in list_methods() for fam, model in FAMILY_MODELS.items() if fam in get_method(m).SPEC.families]


@pytest.mark.parametrize(("method", "model"), _matrix())
def test_every_method_runs_in_every_weights_dtype_with_autocast_on_and_off(method, model, tmp_path):
    """float32 / bfloat16 weights x precision float32 (autocast off) / bfloat16 (on): one step each, no dtype
    error, and the trained tensors come back float32 (the masters; MCE: boolean masks)."""
    from erasure import get_method

    kept = torch.float32 if get_method(method).SPEC.trains == "weights" else torch.bool
    few = {"ddim_steps": 2} if method in ("esd", "ap", "age") else {}
    # (float32 weights with autocast off: every other test does that)
    for dtype, precision in (("float32", "bfloat16"), ("bfloat16", "float32"), ("bfloat16", "bfloat16")):
        run = erase(model, method, ["star"], "object", tmp_path / f"{dtype}-{precision}", dtype=dtype,
                    precision=precision, steps=1, checkpoint_every=0, lr=1e-2, **few)
        result = run.result()
        assert result and all(v.dtype == kept for v in result.values()), (dtype, precision)
