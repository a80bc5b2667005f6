"""Model CPU offload (backends.offload): when a pipeline is offloaded, when it is refused, and that an
offloaded pipeline (and its erased copy) draws exactly what a whole one draws. The offload device here is
the CPU itself, so every call goes through accelerate's hooks as it would on a GPU."""

import numpy as np
import pytest
import torch

from backends import ModelUnavailableError, SamplerSettings, generate, load_pipeline
from backends import offload as off

FAST = SamplerSettings(steps=6, guidance=5.0)
PROMPTS, SEEDS = ["a red star", "a blue circle"], [0, 1]


def _gpu(monkeypatch, free: int):
    monkeypatch.setattr(torch.cuda, "mem_get_info", lambda device: (free, 4 * free))


def test_plan_offloads_only_when_the_whole_pipeline_does_not_fit(monkeypatch, embedded_pipe):
    sizes = {k: off.module_bytes(m) for k, m in off.components(embedded_pipe).items()}
    need, (name, largest) = sum(sizes.values()), max(sizes.items(), key=lambda kv: kv[1])
    _gpu(monkeypatch, need)
    assert off.plan(embedded_pipe, "cuda:0", "auto") == "none"  # fits exactly: moved whole
    _gpu(monkeypatch, need - 1)
    assert off.plan(embedded_pipe, "cuda:0", "auto") == "model"
    with pytest.raises(off.DoesNotFitError, match=f"MiB \\(largest component: {name}, .* let it offload"):
        off.plan(embedded_pipe, "cuda:0", "none")
    _gpu(monkeypatch, largest - 1)  # not even the UNet fits: offload cannot help
    with pytest.raises(off.DoesNotFitError, match="free of") as err:
        off.plan(embedded_pipe, "cuda:0", "auto")
    assert "let it offload" not in str(err.value)
    assert off.plan(embedded_pipe, "cpu", "auto") == "none"  # host memory is not checked
    assert off.plan(embedded_pipe, "cpu", "model") == "model"  # asked for: offloaded whatever the sizes
    with pytest.raises(ValueError, match="offload must be one of auto, none, model"):
        load_pipeline("embedded", offload="sequential")


def test_load_refuses_what_will_not_fit_with_the_loaders_error(monkeypatch):
    _gpu(monkeypatch, 1)
    with pytest.raises(ModelUnavailableError, match="weights take .* free"):
        load_pipeline("embedded", device="cuda:0")


@pytest.fixture(scope="module")
def esd_run(tmp_path_factory):
    from erasure import erase

    return erase("embedded", "esd", ["star"], "object,fast", tmp_path_factory.mktemp("esd") / "run",
                 pipe=load_pipeline("embedded"), checkpoint_every=0, snapshot_every=0, steps=20).path


def test_an_offloaded_pipeline_and_its_erased_copy_draw_what_whole_ones_draw(embedded_pipe, esd_run):
    from erasure import erased_copy

    whole = generate(embedded_pipe, PROMPTS, SEEDS, FAST)
    pipe = load_pipeline("embedded", offload="model")
    assert off.offloaded(pipe) and not off.offloaded(embedded_pipe)
    np.testing.assert_array_equal(generate(pipe, PROMPTS, SEEDS, FAST), whole)

    erased = erased_copy(pipe, esd_run)
    assert off.offloaded(erased) and erased.unet is not pipe.unet
    assert not hasattr(erased.unet, "_hf_hook") or erased.unet._hf_hook is not pipe.unet._hf_hook
    expected = generate(erased_copy(embedded_pipe, esd_run), PROMPTS, SEEDS, FAST)
    np.testing.assert_array_equal(generate(erased, PROMPTS, SEEDS, FAST), expected)
    assert not np.array_equal(expected, whole)  # the run changed the model: the comparison can fail
    # the base still draws as before: the copy shares its text encoder and VAE, not its UNet
    np.testing.assert_array_equal(generate(pipe, PROMPTS, SEEDS, FAST), whole)


def test_erasure_refuses_an_offloaded_pipeline_before_writing_anything(tmp_path):
    from erasure import erase

    with pytest.raises(ValueError, match="offloaded .* bfloat16"):
        erase("embedded", "esd", ["star"], "object,fast", tmp_path / "run", pipe=load_pipeline("embedded", offload="model"),
              steps=2)
    assert not (tmp_path / "run").exists()
