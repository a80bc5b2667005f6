"""The erasure engine's contract: registry, configs, parameter groups, AP's search, runs, resume, CLI."""

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from backends import load_pipeline
from erasure import Cancelled, CancelToken, RunFolder, apply, erase, get_method, list_methods, resolve_config, resume
from erasure.methods.search import gumbel_softmax_hard, kmeans_1d
from erasure.params import select_parameters

ROOT = Path(__file__).resolve().parent.parent
TINY = dict(steps=4, checkpoint_every=2, ddim_steps=6)  # a few steps of a 6-step sampler


@pytest.fixture()
def pipe():
    return load_pipeline("embedded")  # fresh: erasure modifies the UNet in place


def test_registry_lists_methods_and_rejects_unknown():
    assert {"esd", "ap"} <= set(list_methods())
    with pytest.raises(ValueError, match="valid: .*esd.*ap"):
        get_method("magic")


def test_presets_resolve_in_layers():
    ref = resolve_config("ap", "sd-1.4", "object,reference", targets=["church"])
    assert (ref.lr, ref.steps, ref.n_iter, ref.tau, ref.n_centres, ref.ddim_steps) == (1e-5, 1000, 2, 2.0, 100, 50)
    nud = resolve_config("ap", "sd-1.4", "nudity", targets=["nudity"])
    assert (nud.param_group, nud.k_closest, nud.n_centres) == ("noxattn", 2000, 50)
    emb = resolve_config("ap", "embedded", "object,reference", targets=["star"])
    assert emb.template == "a {concept}" and emb.lr == pytest.approx(1e-3) and emb.vocab == "world"
    fast = resolve_config("ap", "embedded", "object,fast", targets=["star"], steps=7)
    assert fast.steps == 7 and fast.lr == pytest.approx(1e-3) and fast.zt_from == "frozen"


@pytest.mark.parametrize("bad, match", [
    (dict(targets=[]), "targets"), (dict(targets=["  "]), "targets"), (dict(steps=0), "steps"),
    (dict(lr=-1.0), "lr"), (dict(param_group="attn9"), "parameter group"), (dict(preserve="fixed"), "fixed_concept"),
    (dict(n_centres=500, k_closest=100), "n_centres"), (dict(vocab="klingon"), "vocab"), (dict(tau=0.0), "tau"),
])
def test_bad_configs_are_rejected(bad, match):
    with pytest.raises(ValueError, match=match):
        resolve_config("ap", "embedded", "object", **{"targets": ["star"], **bad})


@pytest.mark.parametrize("group", ["xattn", "noxattn", "kv", "full"])
def test_parameter_groups_select_exactly_their_tensors(pipe, group):
    chosen = select_parameters(pipe.unet, group)
    names = set(chosen)
    all_names = {n for n, _ in pipe.unet.named_parameters()}
    expected = {
        "xattn": {n for n in all_names if ".attn2." in n},
        "kv": {n for n in all_names if ".attn2.to_k." in n or ".attn2.to_v." in n},
        "noxattn": {n for n in all_names if ".attn2." not in n
                    and not n.startswith(("time_embedding.", "conv_norm_out.", "conv_out."))},
        "full": all_names,
    }[group]
    assert names == expected and names
    assert all(p.requires_grad == (n in names) for n, p in pipe.unet.named_parameters())


def test_only_the_group_changes_after_training(pipe, tmp_path):
    before = {n: p.detach().clone() for n, p in pipe.unet.named_parameters()}
    run = erase("embedded", "esd", ["star"], "object", tmp_path / "run", pipe=pipe, steps=2, ddim_steps=4, lr=1e-2)
    changed = {n for n, p in pipe.unet.named_parameters() if not torch.equal(p, before[n])}
    assert changed and all(".attn2." in n for n in changed)
    assert set(run.result()) == {f"unet.{n}" for n in before if ".attn2." in n}


def test_gumbel_softmax_is_one_hot_with_soft_gradient():
    logits = torch.zeros(5, requires_grad=True)
    y = gumbel_softmax_hard(logits, 2.0, torch.Generator().manual_seed(0))
    assert torch.equal(y.detach().sort().values, torch.tensor([0.0, 0, 0, 0, 1]))
    (y * torch.arange(5.0)).sum().backward()
    assert logits.grad is not None and logits.grad.abs().sum() > 0


def test_kmeans_1d_finds_separated_clusters():
    values = torch.tensor([0.0, 0.1, 0.2, 5.0, 5.1, 9.9, 10.0])
    centres = kmeans_1d(values, 3)
    assert torch.allclose(centres, torch.tensor([0.1, 5.05, 9.95]), atol=1e-4)

@pytest.mark.slow

def test_ap_search_returns_a_vocabulary_word_and_ascends_l2(pipe, tmp_path):
    from erasure.trainer import Context

    cfg = resolve_config("ap", "embedded", "object", targets=["star"], ddim_steps=4, search_lr=0.1, n_iter=1)
    ctx = Context(pipe, cfg)
    with torch.no_grad():  # make theta' differ from theta so L2 is not identically zero
        for p in ctx.trained.values():
            p.add_(0.05 * torch.randn(p.shape, generator=torch.Generator().manual_seed(1)))
    method = get_method("ap")(ctx)
    prompt = cfg.prompts()[0]
    space = method.spaces[prompt]
    assert set(space.words) <= set(__import__("backends.vocab", fromlist=["x"]).world_words()) and "star" not in space.words
    # One fixed start code and sampler step for the search and the measurement: the ascent is then
    # on one smooth function of pi, and the check cannot pass or fail on the luck of the codes.
    fixed = ctx.draw()
    ctx.draw = lambda: fixed
    draws = [fixed]

    def expected_l2() -> float:  # E_{c ~ softmax(pi)} E_{z_T, k} L2(c), in the loss space the search ascends
        with torch.no_grad():
            per_word = []
            for i in range(len(space.words)):
                c, total = {"emb": space.R[i][None]}, 0.0
                for start in draws:
                    z_r, t, alpha_bar = ctx.sample_zt(c, start)
                    total += ctx.loss(ctx.predict(ctx.denoiser, z_r, t, c), ctx.predict(ctx.frozen, z_r, t, c), z_r,
                                      alpha_bar)
                per_word.append(total / len(draws))
            return float(space.pi.softmax(-1) @ torch.stack(per_word))

    before = expected_l2()
    for _ in range(30):
        method._search(prompt, 0)
    after = expected_l2()
    assert after > before
    _, info = method.loss(0)
    assert info["concept"] in space.words and info["sampled"] in space.words and len(info["top5"]) == 5

@pytest.mark.slow

def test_run_folder_records_and_apply_round_trip(pipe, tmp_path):
    run = erase("embedded", "ap", ["star"], "object,fast", tmp_path / "run", pipe=pipe, snapshot_every=2, **TINY)
    record = json.loads((run.path / "config.json").read_text())
    assert record["method"] == "ap" and record["config"]["targets"] == ["star"] and record["seed"] == 0
    assert {"torch", "diffusers", "transformers", "python"} <= set(record["versions"])
    events = run.events()
    assert [e["kind"] for e in events][0] == "start" and events[-1]["kind"] == "done"
    steps = [e for e in events if e["kind"] == "step"]
    assert len(steps) == 4 and all({"l1", "l2", "total"} <= set(e["losses"]) for e in steps)
    assert all(e["concept"] and len(e["top5"]) == 5 for e in steps)
    shots = [e for e in events if e["kind"] == "snapshot"]
    assert shots and all((run.path / f).is_file() for e in shots for f in e["images"].values())
    assert {"ce", "ca"} <= set(shots[-1]["images"])
    fresh = load_pipeline("embedded")
    apply(fresh, run)
    result = load_file(str(run.path / "result.safetensors"))
    for key, value in result.items():
        assert torch.equal(fresh.unet.get_parameter(key.removeprefix("unet.")), value)
    assert not list(run.path.rglob("*.tmp"))

@pytest.mark.slow

def test_cancel_then_resume_equals_uninterrupted(tmp_path):
    full = erase("embedded", "ap", ["star"], "object,fast", tmp_path / "full", **TINY)
    token = CancelToken()

    def cancel_at_2(event):
        if event.kind == "step" and event.step == 2:
            token.cancel()

    with pytest.raises(Cancelled):
        erase("embedded", "ap", ["star"], "object,fast", tmp_path / "cut", callback=cancel_at_2, cancel=token, **TINY)
    cut = RunFolder.open(tmp_path / "cut")
    assert cut.status()["state"] == "cancelled"
    resumed = resume(tmp_path / "cut")
    a, b = full.result(), resumed.result()
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)
    steps = [e["step"] for e in resumed.events() if e["kind"] == "step"]
    assert steps == [1, 2, 3, 4]


@pytest.mark.slow
def test_killed_process_resumes_to_the_same_result(tmp_path):
    args = ["--target", "star", "--preset", "object,fast", "--steps", "6", "--set", "checkpoint_every=2",
            "--set", "ddim_steps=6"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cli = [sys.executable, "-m", "erasure", "erase"]
    subprocess.run(cli + args + ["--out", str(tmp_path / "full")], check=True, cwd=ROOT, env=env, capture_output=True)
    proc = subprocess.Popen(cli + args + ["--out", str(tmp_path / "killed")], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 300
    while time.time() < deadline and not (tmp_path / "killed" / "checkpoints" / "step_0000004").exists():
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert RunFolder.open(tmp_path / "killed").status()["state"] == "running"  # died without a word
    subprocess.run([sys.executable, "-m", "erasure", "resume", str(tmp_path / "killed")], check=True, cwd=ROOT, env=env,
                   capture_output=True)
    a = load_file(str(tmp_path / "full" / "result.safetensors"))
    b = load_file(str(tmp_path / "killed" / "result.safetensors"))
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("args, message", [
    (["--target", ""], "targets"), (["--target", "star", "--method", "nope"], "unknown erasure method"),
    (["--target", "star", "--steps", "0"], "steps must be > 0"), (["--target", "star", "--lr", "-1"], "lr must be > 0"),
    (["--target", "star", "--param-group", "wings"], "unknown parameter group"),
])
def test_cli_rejects_bad_input_and_writes_nothing(tmp_path, capsys, args, message):
    from erasure.cli import main

    out = tmp_path / "run"
    assert main(["erase", *args, "--out", str(out)]) == 2
    assert message in capsys.readouterr().err
    assert not out.exists()


@pytest.mark.parametrize("limit", [1, 3])
def test_a_run_keeps_only_its_newest_checkpoints(pipe, tmp_path, limit):
    """checkpoints_total_limit: a full-UNet checkpoint of SD is ~10 GB, so old ones are deleted, newest kept."""
    from erasure.cli import main

    out = tmp_path / "run"
    assert main(["erase", "--method", "esd", "--target", "star", "--preset", "object,fast", "--steps", "5",
                 "--set", "checkpoint_every=1", "--set", "ddim_steps=3", "--checkpoints-total-limit", str(limit),
                 "--out", str(out)]) == 0
    kept = [p.name for p in RunFolder.open(out).checkpoints()]
    assert kept == [f"step_{s:07d}" for s in range(5 - limit, 5)]  # steps 1-4 checkpoint; the end is the result
    assert RunFolder.open(out).record["checkpoints_total_limit"] == limit


def test_existing_run_folder_is_not_overwritten(tmp_path, capsys):
    from erasure.cli import main

    out = tmp_path / "run"
    out.mkdir()
    (out / "keep.txt").write_text("precious")
    assert main(["erase", "--target", "star", "--out", str(out)]) == 2
    assert "not empty" in capsys.readouterr().err and (out / "keep.txt").read_text() == "precious"


def test_export_writes_a_loadable_diffusers_folder(pipe, tmp_path):
    from diffusers import StableDiffusionPipeline

    from erasure import export

    run = erase("embedded", "esd", ["star"], "object", tmp_path / "run", pipe=pipe, steps=1, ddim_steps=4, lr=1e-2)
    folder = export(run, tmp_path / "exported")
    loaded = StableDiffusionPipeline.from_pretrained(folder, local_files_only=True)
    for key, value in run.result().items():
        assert torch.equal(loaded.unet.get_parameter(key.removeprefix("unet.")), value)
    assert json.loads((folder / "erasure.json").read_text())["method"] == "esd"
    with pytest.raises(FileExistsError):
        export(run, tmp_path / "exported")


def test_x0_loss_is_eps_loss_scaled_by_snr():
    from erasure.diffusion import loss_in_space

    g = torch.Generator().manual_seed(0)
    z, a, b = (torch.randn(2, 4, 8, 8, generator=g) for _ in range(3))
    alpha_bar = torch.tensor(0.3)
    eps = loss_in_space(a, b, z, alpha_bar, "eps")
    x0 = loss_in_space(a, b, z, alpha_bar, "x0")
    torch.testing.assert_close(x0, eps * (1 - alpha_bar) / alpha_bar)


@pytest.mark.parametrize("alpha_bar", [0.0, 0.3, 0.97])
def test_x0_from_v_prediction_recovers_the_clean_latent(alpha_bar):
    """z = sqrt(a) x0 + sqrt(1-a) eps and v = sqrt(a) eps - sqrt(1-a) x0 give back x0 exactly,
    also at a = 0 (the zero-SNR timestep), where the eps formula divides by zero."""
    from erasure.diffusion import loss_in_space, to_x0

    g = torch.Generator().manual_seed(1)
    x0, eps = torch.randn(2, 4, 8, 8, generator=g), torch.randn(2, 4, 8, 8, generator=g)
    a = torch.tensor(alpha_bar)
    z = a.sqrt() * x0 + (1 - a).sqrt() * eps
    v = a.sqrt() * eps - (1 - a).sqrt() * x0
    torch.testing.assert_close(to_x0(z, v, a, "v_prediction"), x0)
    assert loss_in_space(v, v + 1.0, z, a, "x0", "v_prediction") == pytest.approx(1 - alpha_bar, abs=1e-5)
    with pytest.raises(ValueError, match="not supported"):
        to_x0(z, v, a, "sample")


@pytest.mark.parametrize("preserve, extra, concept", [
    ("none", {}, None), ("neutral", {}, ""), ("fixed", {"fixed_concept": "heart"}, "heart"),
    pytest.param("pgd", {}, "pgd", marks=pytest.mark.slow),  # its inner PGD: ~8 s
])
def test_preservation_variants_run_and_report_their_concept(pipe, tmp_path, preserve, extra, concept):
    run = erase("embedded", "ap", ["star"], "object,fast", tmp_path / "run", pipe=pipe, steps=2, ddim_steps=4,
                preserve=preserve, **extra)
    step = [e for e in run.events() if e["kind"] == "step"][-1]
    assert step["concept"] == concept
    assert ("l2" in step["losses"]) == (preserve != "none")


def test_several_targets_are_sampled_per_step(pipe, tmp_path):
    run = erase("embedded", "esd", ["star", "moon"], "object", tmp_path / "run", pipe=pipe, steps=12, ddim_steps=2)
    prompts = {e["message"] for e in run.events() if e["kind"] == "step"}
    assert prompts == {"a star", "a moon"}
