"""One loader for all backends: offline embedded loading and clear errors for the rest."""

import socket
import time

import pytest
import torch
from diffusers import StableDiffusionPipeline

from backends import EMBEDDED, PRESETS, ModelUnavailableError, load_pipeline, resolve_model
from backends.loader import ASSETS


def test_embedded_loads_offline_like_a_hub_model(embedded_pipe):
    pipe = embedded_pipe
    assert isinstance(pipe, StableDiffusionPipeline)
    assert len(pipe.tokenizer) == 49408
    assert pipe.unet.dtype == torch.float32 and pipe.device.type == "cpu"
    assert pipe.safety_checker is None
    # The exact call a user makes for SD 1.4 works on the folder too.
    direct = StableDiffusionPipeline.from_pretrained(ASSETS / "pipeline", local_files_only=True)
    assert direct.unet.config.sample_size == pipe.unet.config.sample_size


def test_assets_are_safetensors_only():
    files = [p for p in ASSETS.rglob("*") if p.is_file()]
    assert not [p for p in files if p.suffix in (".bin", ".pt", ".pth", ".pkl", ".ckpt")]
    assert len([p for p in files if p.suffix == ".safetensors"]) >= 5


def test_unavailable_hub_model_fails_at_once_with_instructions(monkeypatch, tmp_path):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path))  # an empty cache
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))

    def no_network(*a, **k):
        raise AssertionError("the loader must not touch the network when offline")

    monkeypatch.setattr(socket, "create_connection", no_network)
    t0 = time.perf_counter()
    with pytest.raises(ModelUnavailableError) as err:
        load_pipeline("sd-1.4")
    message = str(err.value)
    assert PRESETS["sd-1.4"] in message and "huggingface-cli download" in message and "offline" in message
    assert time.perf_counter() - t0 < 30  # "at once": no retries or timeouts


@pytest.mark.parametrize("bad", ["", "   ", "not a model", "a/b/c", "./missing-folder"])
def test_bad_model_names_are_rejected(bad):
    with pytest.raises((ValueError, ModelUnavailableError)):
        resolve_model(bad)


def test_folder_without_pipeline_is_rejected(tmp_path):
    with pytest.raises(ModelUnavailableError, match="model_index.json"):
        resolve_model(str(tmp_path))


def test_presets_resolve():
    assert resolve_model("embedded").is_local
    spec = resolve_model("sd-1.4")
    assert spec.source == "CompVis/stable-diffusion-v1-4" and not spec.is_local


def test_assets_fit_the_size_budget():
    total = sum(p.stat().st_size for p in ASSETS.rglob("*") if p.is_file())
    assert total <= 40e6, f"assets are {total / 1e6:.1f} MB; the bar is 40 MB"


def test_fp16_stored_scorers_load_as_float32():
    from backends import load_classifier, load_embedded_clip

    clip, _ = load_embedded_clip()
    assert all(p.dtype == torch.float32 for p in clip.parameters())
    assert all(p.dtype == torch.float32 for p in load_classifier().parameters())


def test_loads_in_several_threads_leave_no_module_empty():
    """diffusers builds models under a process-wide patch (backends.building): loads in the app's request
    threads and job worker at once, while MCE builds its masks, must give real tensors everywhere and leave
    module construction as it was. Without the lock this leaves every new module on the meta device."""
    import threading

    from backends.building import BUILD_LOCK
    from erasure.masks import Masker, mask_sites

    meta, errors = [], []

    def load():
        try:
            for _ in range(4):
                pipe = load_pipeline(EMBEDDED)
                meta.extend(n for n, m in pipe.components.items() if isinstance(m, torch.nn.Module)
                            and any(t.is_meta for t in [*m.parameters(), *m.buffers()]))
        except Exception as e:  # noqa: BLE001 (reported below, with the thread's error)
            errors.append(repr(e))

    def mask(unet):
        for _ in range(20):
            masker = Masker(unet, mask_sites(unet))
            meta.extend("masks" for p in masker.logits if p.is_meta)
            masker.remove()

    unet = load_pipeline(EMBEDDED).unet
    threads = [threading.Thread(target=load) for _ in range(3)] + [threading.Thread(target=mask, args=(unet,))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors and not meta, (errors, meta)
    assert torch.nn.Linear(2, 2).weight.device.type == "cpu"  # nothing left patched
    assert BUILD_LOCK.acquire(blocking=False)  # and the lock is free again
    BUILD_LOCK.release()
