"""The app's first tab: it builds, generates a grid, and rejects bad input with a clear message."""

import gradio as gr
import numpy as np
import pytest
import torch

import app
from ui import compare_tab, model_tab, state


def test_ui_builds_with_named_generate_endpoint():
    demo = app.build_ui()
    names = {d.api_name for d in demo.fns.values()}
    assert "generate" in names


def test_generate_grid_returns_enlarged_grid(embedded_pipe):
    img = model_tab.generate_grid("embedded", "a red star", 0, 4, 10, 5.0)
    assert img.dtype == np.uint8 and img.ndim == 3
    assert img.shape[0] >= 256 and img.shape[1] == 4 * img.shape[0]  # one row of four tiles
    again = model_tab.generate_grid("embedded", "a red star", 0, 4, 10, 5.0)
    assert np.array_equal(img, again)


@pytest.mark.parametrize(
    "args, message",
    [
        (("embedded", "   ", 0, 4, 10, 5.0), "Enter a prompt"),
        (("embedded", "a red star", 0, 0, 10, 5.0), "between 1 and"),
        (("embedded", "a red star", 0, 4, 0, 5.0), "steps"),
        (("no-such/model-anywhere", "a red star", 0, 4, 10, 5.0), "a hub repo id this server allows"),
    ],
)
def test_bad_input_gives_a_clear_error(args, message):
    with pytest.raises(gr.Error, match=message):
        model_tab.generate_grid(*args)


@pytest.mark.parametrize("device, dtype, message", [("tpu", "float32", "Device must be one of cpu, cuda"),
                                                    ("cpu", "float8", "unknown dtype 'float8'; valid: float32")])
def test_load_model_rejects_a_bad_device_or_dtype(device, dtype, message):
    with pytest.raises(gr.Error, match=message):
        model_tab.load_model("embedded", device, dtype)


# ---------------------------------------------------------------------------- the real app, over its API
import json  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402

from gradio_client import Client  # noqa: E402
from PIL import Image  # noqa: E402
from safetensors.torch import load_file  # noqa: E402

from tests.app_server import AppServer  # noqa: E402


@pytest.fixture(scope="module")
def served(tmp_path_factory):
    # the app as shipped: a finished erasure is judged over every concept of the world (the Results headline)
    server = AppServer(tmp_path_factory.mktemp("app") / "jobs", env={"CSE_JUDGE_SEEDS": "4"}).start()
    yield server, Client(server.url, verbose=False)
    server.kill()


def _until(client, endpoint, job_id, done, timeout=600, *extra):
    t0 = time.time()
    while time.time() - t0 < timeout:
        out = client.predict(job_id, *extra, api_name=endpoint)
        if done(out):
            return out
        time.sleep(1)
    raise TimeoutError(f"{endpoint} {job_id}: {out}")


def imread(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"))


def _headline(out) -> str:
    return (out[0] if isinstance(out, (list, tuple)) else out).split("\n")[0]


@pytest.mark.slow
def test_api_flow_erase_results_compare_spectrum_downloads(served):
    _, c = served
    assert "loaded on cpu" in c.predict("embedded", "cpu", "float32", api_name="/load_model")
    assert c.predict("embedded", "ap", "object", "fast", api_name="/erase_defaults")[0] == "xattn"
    job = c.predict("embedded", "ap", "star", "object", "fast", "xattn", 24, 1e-3, 8, api_name="/erase_start")
    status = _until(c, "/erase_status", job, lambda o: "done" in _headline(o) or "failed" in _headline(o))
    assert "**done** — step 24 / 24" in status[0] and "concept the search preserves now" in status[0]
    # the Results view: what ran, the search's history, base and erased side by side
    text, prompts, heat, sampled, centres, strips, attached, link = c.predict(job, api_name="/results")
    assert "AP · star · 24 steps" in text and "The search " in text and attached == "" and link == f"?job={job}"
    # the job judged every concept of the world once it finished: the headline (evaluation.damage)
    assert "**In short:** star is" in text and "over the 22 other concepts of the world" in text
    assert prompts.splitlines()[:2] == ["a red star", "a blue star"] and "a red heart" in prompts
    z = json.loads(heat["plot"])["data"][0]["z"]  # concepts x steps, log2 of p x n
    assert len(z) >= 2 and len(z[0]) == 24 and max(abs(v) for row in z for v in row) > 0
    assert len(json.loads(centres["plot"])["data"][0]["x"]) == 4  # snapshots at steps 1, 8, 16, 24
    strip = imread(strips)
    assert strip.shape[1] == 150 + 4 * 98  # the label column and four snapshot steps of 96-px tiles
    grid, recognised = c.predict(job, "a red star\na blue heart", 2, "cpu", "float32", api_name="/results_grid")
    grid = imread(grid)
    assert grid.shape[1] == 170 + 2 * 2 * 128 + 16  # one image: base and erased, two seeds each
    assert "| ✗ a red star | 2/2 |" in recognised and "erasure rate" in recognised
    sheet, summary = c.predict("embedded", "a red star\na blue heart", 0, 2, [job], 8, 5.0, False,
                               api_name="/compare")
    assert imread(sheet).shape == grid.shape
    assert "| prompt | base | AP · star · 24 steps |" in summary and "| ✗ a red star |" in summary
    assert "| a blue heart |" in summary
    delta, config = c.predict(job, api_name="/download_delta")
    assert all(k.startswith("unet.") and "attn2" in k for k in load_file(delta))
    with zipfile.ZipFile(c.predict(job, api_name="/download_diffusers")) as z:
        assert "model_index.json" in z.namelist() and "erasure.json" in z.namelist()
    spec = c.predict("embedded", "star", "world", None, 0, 1, 8, 5.0, 0, job, False, api_name="/spectrum_start")
    out = _until(c, "/spectrum_status", spec, lambda o: not _headline(o).startswith(("**queued", "**running")),
                 600, 10)
    assert out[0].startswith("**done") and out[4]["data"], out[0]
    csv = open(c.predict(spec, api_name="/download_csv")).read()
    assert csv.startswith("concept,") and "\nstar,target," in csv
    # the spectrum is attached to the run's Results view, and a concept of it drawn before and after
    assert c.predict(job, api_name="/results")[-2] == spec  # (the last output is the link)
    text, _, table = c.predict(spec, api_name="/results_spectrum")
    deltas = [row[2] for row in table["data"]]  # concept, kind, delta: most damaged first
    assert text.startswith("Spectrum **done**") and table["headers"][2] == "delta" and deltas == sorted(deltas, reverse=True)
    drill = imread(c.predict(job, "heart", 2, "cpu", "float32", api_name="/results_concept"))
    # heart as the spectrum drew it and in three colours (ui.results_tab.drill_prompts): four rows, base | erased
    assert drill.shape[0] == 44 + 4 * 128 and drill.shape[1] == grid.shape[1]


@pytest.mark.slow
@pytest.mark.parametrize("args, message", [
    (("embedded", "ap", "", "object", "fast", "xattn", 10, 1e-3, 0), "non-empty"),
    (("embedded", "ap", "star" * 60, "object", "fast", "xattn", 10, 1e-3, 0), "use at most 200"),
    (("embedded", "ap", "zebra", "object", "fast", "xattn", 10, 1e-3, 0), "does not know 'zebra'"),
    (("embedded", "ap", "star", "object", "fast", "xattn", 10, -1.0, 0), "Learning rate must be in 1e-09..1"),
    (("embedded", "ap", "star", "object", "fast", "xattn", 0, 1e-3, 0), "Steps must be in 1..2000"),
    (("embedded", "ap", "star", "object", "fast", "xattn", 10**6, 1e-3, 0), "Steps must be in 1..2000"),
    (("embedded", "ap", "star", "object", "fast", "everything", 10, 1e-3, 0), "not in the list of choices"),
    (("embedded", "ap", "star, heart, moon", "object", "fast", "xattn", 1000, 1e-3, 0), "3000 steps, more than"),
])
def test_api_rejects_bad_erase_input_and_keeps_serving(served, args, message):
    _, c = served
    before = c.predict(api_name="/job_list")["data"]
    with pytest.raises(Exception, match=message):
        c.predict(*args, api_name="/erase_start")
    assert c.predict(api_name="/job_list")["data"] == before  # nothing written, nothing lost


@pytest.mark.slow
@pytest.mark.parametrize("k, vocab, message", [(0, "world", "k .* must be in 1..16"),
                                               (10**7, "world", "k .* must be in 1..16"),
                                               (2, "no-such-vocabulary", "not in the list of choices")])
def test_api_rejects_bad_spectrum_input(served, k, vocab, message):
    _, c = served
    with pytest.raises(Exception, match=message):
        c.predict("embedded", "star", vocab, None, 0, k, 8, 5.0, 0, "", False, api_name="/spectrum_start")


@pytest.mark.slow
def test_api_rejects_a_binary_vocabulary_upload(served, tmp_path):
    from gradio_client import handle_file

    _, c = served
    upload = tmp_path / "words.txt"  # a .txt name does not make it text
    upload.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(Exception, match="binary|UTF-8"):
        c.predict("embedded", "star", "world", handle_file(str(upload)), 0, 2, 8, 5.0, 0, "", False,
                  api_name="/spectrum_start")


@pytest.mark.slow
def test_killed_app_shows_the_job_interrupted_and_resume_finishes_it(tmp_path):
    server = AppServer(tmp_path / "jobs").start()
    try:
        c = Client(server.url, verbose=False)
        job = c.predict("embedded", "ap", "star", "object", "fast", "xattn", 60, 1e-3, 0, api_name="/erase_start")
        _until(c, "/erase_status", job, lambda o: "step 0 " not in _headline(o) and int(
            _headline(o).split("step ")[1].split(" ")[0]) >= 12, 300)
        server.kill()
        server = AppServer(tmp_path / "jobs", port=server.port).start()
        # the same visitor (its signed cookie; the secret survives the restart in the jobs folder)
        c = Client(server.url, verbose=False, httpx_kwargs={"cookies": c.cookies})
        rows = {r[0]: r for r in c.predict(api_name="/job_list")["data"]}
        assert rows[job][2] == "interrupted"
        assert "interrupted" in c.predict(job, api_name="/erase_status")[0]
        c.predict(job, api_name="/job_resume")
        status = _until(c, "/erase_status", job, lambda o: "done" in _headline(o) or "failed" in _headline(o))
        assert "**done** — step 60 / 60" in status[0]
        events = [line for line in (tmp_path / "jobs" / job / "run" / "events.jsonl").read_text().splitlines()]
        assert sum('"kind": "start"' in e for e in events) == 2  # started once, resumed once
    finally:
        server.kill()

@pytest.mark.slow

def test_the_model_tabs_device_and_dtype_drive_generate_and_compare(monkeypatch):
    """The dtype chosen in the Model tab reaches every sampling action, and one pipeline is held per
    choice: the same choice again loads nothing, another choice replaces it."""
    from backends import load_pipeline
    from backends.pipeline_cache import PipelineCache

    loads = []
    cache = PipelineCache(lambda model, **kw: loads.append((model, kw["dtype"])) or load_pipeline(model, **kw))
    monkeypatch.setattr(state, "PIPELINES", cache)
    fp32 = model_tab.generate_grid("embedded", "a red star", 0, 2, 6, 5.0, "cpu", "float32")
    assert cache.loaded == ("embedded", "cpu", "float32")
    bf16 = model_tab.generate_grid("embedded", "a red star", 0, 2, 6, 5.0, "cpu", "bfloat16")
    assert cache.loaded == ("embedded", "cpu", "bfloat16")
    assert state.pipeline("embedded", "cpu", "bfloat16").dtype == torch.bfloat16
    assert fp32.shape == bf16.shape and not np.array_equal(fp32, bf16)  # the bf16 pipeline drew them
    assert np.abs(fp32.astype(int) - bf16.astype(int)).mean() < 40  # ... and the same pictures, roughly
    compare_tab.compare_grids("embedded", "a red star", 0, 2, [], 6, 5.0, False, "cpu", "bfloat16")
    assert len(loads) == 2  # compare reused the bf16 pipeline; nothing was loaded twice
    assert np.array_equal(model_tab.generate_grid("embedded", "a red star", 0, 2, 6, 5.0, "cpu", "float32"), fp32)
    assert len(loads) == 3 and cache.loaded == ("embedded", "cpu", "float32")


def test_the_named_endpoints_their_inputs_and_outputs_match_the_snapshot():
    """The app's API is a contract (gradio_client callers, the README): a refactor that renames an endpoint,
    or adds, drops or retypes an input or output, fails here. After an intended change, rewrite
    tests/api_snapshot.json from `app.build_ui().get_api_info()` (the shape this test reads)."""
    from pathlib import Path

    info = app.build_ui().get_api_info()["named_endpoints"]
    now = {name: {"parameters": [[p.get("parameter_name"), p.get("component"), p.get("python_type", {}).get("type")]
                                 for p in ep["parameters"]],
                  "returns": [[r.get("component"), r.get("python_type", {}).get("type")] for r in ep["returns"]]}
           for name, ep in info.items()}
    snapshot = json.loads((Path(__file__).parent / "api_snapshot.json").read_text())
    assert now == snapshot
