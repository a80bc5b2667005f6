"""Concept Sensitivity Explorer — the web app.

    python app.py            # serves on http://127.0.0.1:7860 (GRADIO_SERVER_NAME / PORT to change)

UI code only wires events: compute lives in `backends`, `erasure`, `sensitivity`, `evaluation` and
`jobs`. Erasures and spectra run as background jobs (folders under CSE_JOBS_DIR, default runs/jobs),
one at a time, so the job list survives page reloads and restarts. Interactive sampling (load, generate)
and heavy sampling (compare, export) have a queue each, so a large compare never holds up a Generate;
a compare works in chunks and can be cancelled. Every action is a named API endpoint; every input is
checked (ui.inputs) against the limits of a shared machine (jobs.limits, CSE_MAX_* variables) before
any work starts, and every error is one message without server paths (ui.guard).
"""

from __future__ import annotations

import contextlib
import logging
import os
from pathlib import Path
from types import SimpleNamespace

import gradio as gr
import numpy as np
import pandas as pd
import torch

from backends import DTYPES, EMBEDDED, PRESETS, SamplerSettings, check_device, generate, grid
from backends.pipeline_cache import PipelineCache
from erasure import CONCEPT_PRESETS as SCOPES
from erasure import PARAM_GROUPS, CancelToken, list_methods
from erasure import SPEED_PRESETS as SPEEDS
from erasure.trajectory import concept_timeline, loss_figure, progress, snapshot_strips
from jobs import JobManager, Limits
from sensitivity.vocab import APP_VOCABULARIES as VOCABULARIES
from sensitivity.vocab import load_user_vocabulary
from ui import inputs
from ui.guard import Blocks, Number, Slider, client_key, register_root, scrub
from ui.guard import handler as user_errors

LIMITS = Limits.from_env()
MAX_IMAGES = LIMITS.max_images
JOBS_DIR = os.environ.get("CSE_JOBS_DIR", str(Path(__file__).resolve().parent / "runs" / "jobs"))
register_root(JOBS_DIR, "the jobs folder")
# Local diffusers folders the app may open (os.pathsep-separated); none by default: on a public Space a
# typed server path must not be a way to probe the file system.
MODEL_DIRS = [Path(os.path.realpath(p)) for p in os.environ.get("CSE_MODEL_DIRS", "").split(os.pathsep) if p]
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"  # jobs and grids run here (a GPU Space: cuda)
# Weights' dtype of erasure jobs; a Space erasing from FLUX sets CSE_DTYPE=bfloat16 (float32 weights: ~67 GB)
JOB_DTYPE = os.environ.get("CSE_DTYPE", "float32")
_manager: JobManager | None = None
PIPELINES = PipelineCache()  # one loaded pipeline, keyed by (model, device, dtype) chosen in the Model tab
_sampling: dict[str, set[CancelToken]] = {}  # browser session -> cancel tokens of its running generate/compare


def manager() -> JobManager:
    global _manager
    if _manager is None:
        _manager = JobManager(JOBS_DIR, limits=LIMITS)
    return _manager


def _pipeline(model: str, device: str = DEVICE, dtype: str = "float32"):
    """The pipeline for the Model tab's choice; the device is checked here, the dtype by the cache
    (torch_dtype), both before anything loads."""
    return PIPELINES.get(model, check_device(inputs.choice(device, "Device", ("cpu", "cuda"))), dtype)


def _model(value) -> str:
    return inputs.model_name(value, PRESETS, MODEL_DIRS)


def _sampler(steps, guidance, label: str = "Sampler steps") -> SamplerSettings:
    return SamplerSettings(steps=inputs.whole(steps, label, 1, LIMITS.max_sampler_steps),
                           guidance=inputs.real(guidance, "Guidance", 0.0, 50.0))


def _enlarge(image: np.ndarray, size: int = 256) -> np.ndarray:
    scale = max(1, size // image.shape[0])  # 32-px images are shown enlarged, pixel-exact
    return image.repeat(scale, 0).repeat(scale, 1)


# ====================================================================== Model
@user_errors
def load_model(model: str, device: str, dtype: str) -> str:
    """API `load_model`: load (or reuse) a pipeline and describe it."""
    model = _model(model)
    from backends.families import denoiser
    from backends.generate import native_size

    pipe = _pipeline(model, device, dtype)
    net = denoiser(pipe)
    n = sum(p.numel() for p in net.parameters())
    size = native_size(pipe)
    return (f"**{model}** loaded on {device} ({dtype}): {type(pipe).__name__}, {type(net).__name__} "
            f"{n / 1e6:.1f} M parameters, "
            f"{size}×{size} px, scheduler {type(pipe.scheduler).__name__} "
            f"({pipe.scheduler.config.get('prediction_type', 'epsilon')}).")


@user_errors
def generate_grid(model: str, prompt: str, seed: float, n_images: float, steps: float, guidance: float,
                  device: str = DEVICE, dtype: str = "float32", request: gr.Request = None) -> np.ndarray:
    """API `generate`: n images of one prompt from seeds seed, seed+1, ... as one grid image, on the
    device and in the dtype chosen in the Model tab."""
    model = _model(model)
    if isinstance(prompt, str) and not prompt.strip():
        raise ValueError("Enter a prompt, e.g. 'a red star'.")
    prompt = inputs.text(prompt, "Prompt", inputs.MAX_PROMPT)
    n = inputs.whole(n_images, f"Number of images (between 1 and {MAX_IMAGES})", 1, MAX_IMAGES)
    settings = _sampler(steps, guidance)
    seeds = [inputs.seed(seed, "First seed") + i for i in range(n)]
    with _cancellable(request) as token:
        images = generate(_pipeline(model, device, dtype), [prompt] * len(seeds), seeds, settings, cancel=token)
    return _enlarge(grid(images, min(len(seeds), 4)))


def _session(request: gr.Request | None) -> str:
    """The browser session a request came from ("local" for calls from Python)."""
    return getattr(request, "session_hash", None) or "local"


@contextlib.contextmanager
def _cancellable(request: gr.Request | None):
    """A cancel token for one generate/compare of this browser session, which `cancel_sampling` sets."""
    key, token = _session(request), CancelToken()
    _sampling.setdefault(key, set()).add(token)
    try:
        yield token
    finally:
        _sampling[key].discard(token)


@user_errors
def cancel_sampling(request: gr.Request = None) -> str:
    """API `cancel_sampling`: stop this browser session's running Generate and Compare at their next
    sampler step."""
    tokens = _sampling.get(_session(request)) or set()
    if not tokens:
        raise ValueError("nothing of yours is sampling; nothing to cancel")
    for token in list(tokens):
        token.cancel()
    return "sampling cancelled"


# ====================================================================== jobs (shared)
JOB_COLUMNS = ["id", "kind", "state", "step", "total", "title", "message"]


@user_errors
def job_table() -> pd.DataFrame:
    """API `job_list`: every job, newest first."""
    return _table(manager().jobs())


def _table(jobs) -> pd.DataFrame:
    rows = [j.to_dict() | {"title": scrub(j.title), "message": scrub(j.message)} for j in jobs]
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else JOB_COLUMNS)[JOB_COLUMNS]


@user_errors
def job_cancel(job_id: str, request: gr.Request = None) -> str:
    """API `job_cancel`: stop a queued or running job (an erasure checkpoints first); only the visitor
    who started a job may cancel it."""
    job_id = inputs.job_id(job_id)
    manager().cancel(job_id, client_key(request))
    return f"cancelling {job_id}: it stops at its next step and can be resumed"


@user_errors
def job_resume(job_id: str, request: gr.Request = None) -> str:
    """API `job_resume`: continue an interrupted, cancelled or failed job from its last checkpoint."""
    job_id = inputs.job_id(job_id)
    manager().resume(job_id, client_key(request))
    return f"{job_id} queued to resume"


# ====================================================================== Erase
def _presets(scope: str, speed: str) -> str:
    """The presets string of the form's two choices, e.g. "object,fast"."""
    return f"{inputs.choice(scope, 'Preset: concept type', SCOPES)},{inputs.choice(speed, 'Preset: settings', SPEEDS)}"


@user_errors
def erase_defaults(model: str, method: str, scope: str, speed: str) -> tuple:
    """API `erase_defaults`: the settings the chosen presets give (to prefill the form)."""
    model, method = _model(model), inputs.choice(method, "Method", list_methods())
    from erasure import EraseRequest

    # the settings do not depend on the concept: any placeholder, past the unknown-word guard
    cfg = EraseRequest(model, method, ("x",), _presets(scope, speed), force=True).check()
    return cfg.param_group, cfg.steps, cfg.lr


@user_errors
def erase_start(model: str, method: str, target: str, scope: str, speed: str, param_group: str, steps: float,
                lr: float, snapshot_every: float, request: gr.Request = None) -> str:
    """API `erase_start`: queue an erasure job; returns its id."""
    model, method = _model(model), inputs.choice(method, "Method", list_methods())
    if isinstance(target, str) and not target.strip(" ,"):
        raise ValueError("targets must be a non-empty list of non-empty concepts, e.g. star")
    targets = inputs.concepts(target, "Concept(s) to erase")
    presets = _presets(scope, speed)
    n_steps = inputs.whole(steps, "Steps", 1, LIMITS.max_erase_steps)
    overrides = {"param_group": inputs.text(param_group, "Parameter group", 20), "steps": n_steps,
                 "lr": inputs.real(lr, "Learning rate", 1e-9, 1.0),
                 "snapshot_every": inputs.whole(snapshot_every, "Trajectory image every N steps", 0, n_steps)}
    from erasure import EraseRequest

    job = EraseRequest(model, method, tuple(targets), presets, overrides, DEVICE, JOB_DTYPE)
    return manager().submit("erase", job.to_dict(), client_key(request))


@user_errors
def erase_status(job_id: str) -> tuple[str, object]:
    """API `erase_status`: progress (step, ETA, adversarial concept and its top-5) and the loss plot."""
    job_id = inputs.job_id(job_id, "Erase job")
    return _erase_view(job_id, manager().info(job_id))


@user_errors
def _erase_view(job_id: str, info) -> tuple[str, object]:
    job = manager().folder(job_id)
    if info.kind != "erase":
        raise ValueError(f"{job_id} is a {info.kind} job; pick an erase job")
    events = _run_events(job)
    p = progress(events)
    lines = [f"**{info.state}** — step {max(p['step'], info.step)} / {info.total}"
             + (f", ETA {p['eta_s']:.0f} s" if p["eta_s"] and info.state == "running" else ""), f"{info.title}"]
    if p["concept"] is not None:
        top = ", ".join(f"{w or chr(34) * 2} {q:.2f}" for w, q in p["top5"])
        lines.append(f"adversarial concept: **{p['concept'] or chr(34) * 2}** (top-5: {top})")
    if info.message and info.state in ("failed", "cancelled", "interrupted"):
        lines.append(f"message: {info.message}")
    if info.state == "interrupted":
        lines.append("This job was cut off (the app stopped). Press Resume to continue from its last checkpoint.")
    return scrub("\n\n".join(lines)), loss_figure(events)


def _run_events(job) -> list[dict]:
    from erasure import RunFolder

    return RunFolder(job.run_path).events() if job.run_path.exists() else []


@user_errors
def download_delta(job_id: str) -> list[str]:
    """API `download_delta`: the erased tensors (safetensors) and the run's config."""
    run = _done_run(job_id)
    return [str(run / "result.safetensors"), str(run / "config.json")]


@user_errors
def download_diffusers(job_id: str) -> str:
    """API `download_diffusers`: a zip of the full diffusers folder with the erasure applied."""
    from erasure import export_zip

    run = _done_run(job_id)
    return str(export_zip(run, run.parent / "export" / f"{run.parent.name}-diffusers.zip"))


def _done_run(job_id: str) -> Path:
    job_id = inputs.job_id(job_id, "Erase job")
    job = manager().folder(job_id)
    if job.kind != "erase" or not (job.run_path / "result.safetensors").exists():
        raise ValueError(f"{job_id} is not a finished erase job; pick one whose state is done")
    return job.run_path


# ====================================================================== Spectrum
@user_errors
def spectrum_start(model: str, target: str, vocab: str, vocab_file, size: float, k: float, steps: float,
                   guidance: float, seed: float, run_job: str, proxy_only: bool, request: gr.Request = None) -> str:
    """API `spectrum_start`: queue a spectrum job against a finished erasure (or a quick ESD one).
    The vocabulary is a named one or an uploaded file, never a path on the server: an upload's words
    are read here and travel in the job's parameters."""
    model = _model(model)
    targets = inputs.concepts(target, "Erased concept(s)")
    n = inputs.whole(size or 0, "First N words (0 = all)", 0, LIMITS.max_concepts)
    config = {"size": n or None, "k": inputs.whole(k, "k (samples per concept)", 1, LIMITS.max_k),
              "steps": inputs.whole(steps, "Sampler steps", 1, LIMITS.max_sampler_steps),
              "guidance": inputs.real(guidance, "Guidance", 0.0, 50.0), "seed": inputs.seed(seed, "First seed"),
              "proxy_only": inputs.flag(proxy_only, "Proxy only")}
    from sensitivity import SpectrumRequest

    words = None
    if vocab_file:
        path = inputs.uploaded_file(vocab_file, [Path(gr.utils.get_upload_folder())], LIMITS.max_upload_bytes)
        config["vocab"] = f"upload:{path.name[:60]}"
        words = tuple(load_user_vocabulary(path, source=f"the uploaded file {path.name[:60]!r}",
                                           dedupe_hint="remove the repeated lines and upload it again"))
    else:
        config["vocab"] = inputs.choice(vocab, "Vocabulary", VOCABULARIES)
    job = SpectrumRequest(model, tuple(targets), config, words=words, device=DEVICE).to_dict()
    # `run` names a finished erase job of this app (the job resolves it to its run folder)
    job["run"] = None if run_job in (None, "", QUICK_ESD) else inputs.job_id(run_job, "Sanitized model")
    return manager().submit("spectrum", job, client_key(request))


QUICK_ESD = "quick ESD erasure (fast preset)"


@user_errors
def spectrum_status(job_id: str, top_n: float = 20) -> tuple:
    """API `spectrum_status`: progress, then the figures, the top-N table and the CSV file."""
    job_id = inputs.job_id(job_id, "Spectrum job")
    return _spectrum_view(job_id, manager().info(job_id), inputs.whole(top_n, "Top N", 1, 1000))


@user_errors
def _spectrum_view(job_id: str, info, top_n: float = 20) -> tuple:
    from sensitivity import figures, load_spectrum

    if info.kind != "spectrum":
        raise ValueError(f"{job_id} is a {info.kind} job; pick a spectrum job")
    text = f"**{info.state}** — {info.step} / {info.total or '?'} concepts. {info.title}"
    if info.message and info.state != "done":
        text += f"\n\n{info.message}"
    text = scrub(text)
    csv = manager().folder(job_id).spectrum_path / "spectrum.csv"
    if info.state != "done" or not csv.exists():
        return text, None, None, None, None, None
    df = load_spectrum(csv.parent)
    column = "delta" if df["delta"].notna().any() else "proxy"
    top = df.sort_values(column, ascending=False).head(int(top_n))
    table = top[["concept", "kind", column, "proxy", "text_sim"]].round(4)
    return (text, figures.histogram(df, column), figures.top_affected(df, int(top_n), column),
            figures.similarity_scatter(df, column), table, str(csv))


@user_errors
def download_csv(job_id: str) -> str:
    """API `download_csv`: the spectrum table of a finished spectrum job."""
    job_id = inputs.job_id(job_id, "Spectrum job")
    csv = manager().folder(job_id).spectrum_path / "spectrum.csv"
    if not csv.exists():
        raise ValueError(f"{job_id} has no spectrum yet; wait until it is done")
    return str(csv)


# ====================================================================== Compare
@user_errors
def compare_grids(model: str, prompts: str, first_seed: float, n_seeds: float, run_jobs: list[str] | None,
                  steps: float, guidance: float, reveal: bool, device: str = DEVICE, dtype: str = "float32",
                  request: gr.Request = None,
                  progress=gr.Progress()) -> tuple[list[tuple[np.ndarray, str]], str]:  # noqa: B008 (Gradio's form)
    """API `compare`: one sheet per model (base first; rows = prompts, columns = seeds) and, on the
    embedded model, how many images of each shape the world classifier still recognises.
    `cancel_sampling` from the same browser session stops it at its next sampler step."""
    from backends.safety import NudityDetector
    from evaluation.compare import compare, render

    model = _model(model)
    lines = inputs.prompt_lines(prompts, "Prompts", LIMITS.max_prompts)
    n = inputs.whole(n_seeds, "Seeds", 1, LIMITS.max_seeds)
    seeds = [inputs.seed(first_seed, "First seed") + i for i in range(n)]
    jobs = inputs.job_ids(run_jobs, "Erased models", LIMITS.max_compare_runs)
    images = (1 + len(jobs)) * len(lines) * n
    if images > LIMITS.max_compare_images:
        raise ValueError(f"this compare would sample {images} images (models x prompts x seeds); the limit is "
                         f"{LIMITS.max_compare_images}: use fewer prompts, seeds or erased models")
    settings = _sampler(steps, guidance)
    reveal = inputs.flag(reveal, "Show flagged images")
    runs, erased = {}, []
    for job_id in jobs:
        runs[job_id] = str(_done_run(job_id))
        erased += manager().folder(job_id).record["params"]["targets"]
    with _cancellable(request) as token:
        result = compare(_pipeline(model, device, dtype), runs, lines, seeds, erased, settings, detector=NudityDetector(),
                         reveal=reveal, cancel=token, progress=lambda done, total: progress(done / total, desc="sampling"))
    return [(sheet, label) for label, sheet in render(result).items()], _recognition_table(model, result)


def _recognition_table(model: str, result) -> str:
    from evaluation.compare import shape_recognition

    if model != EMBEDDED:
        return ""
    from backends import load_classifier

    rows = shape_recognition(result, load_classifier())
    if not rows:
        return ""
    labels = list(result.images)
    head = "| prompt | " + " | ".join(labels) + " |\n|---|" + "---|" * len(labels)
    body = "\n".join(f"| {'✗ ' if r['erased'] else ''}{r['prompt']} | " + " | ".join(r[label] for label in labels)
                     + " |" for r in rows)
    return f"Images the world classifier recognises as the prompt's shape:\n\n{head}\n{body}"


# ====================================================================== Trajectory
@user_errors
def trajectory(job_id: str) -> tuple:
    """API `trajectory`: concept timeline and the image strips G(theta'_t, z_T, c_e) / (c_a)."""
    job = manager().folder(inputs.job_id(job_id, "Erase job"))
    if job.kind != "erase":
        raise ValueError(f"{job_id} is a {job.kind} job; pick an erase job")
    strips = snapshot_strips(job.run_path) if (job.run_path / "config.json").exists() else {}

    def strip(name: str) -> list:
        return [(str(path), f"step {step}") for step, path in strips.get(name, [])]

    return concept_timeline(_run_events(job)), strip("ce"), strip("ca")


# ====================================================================== UI
LIVE_EVERY_S = 2.0  # the live-update timer; every open tab shares one listing per tick


def _refresh_choices():
    """Job table and every job picker's choices (jobs appear, finish and get resumed meanwhile), from one
    listing of the jobs folder shared by every open tab."""
    jobs = manager().jobs(max_age=LIVE_EVERY_S / 2)
    erasures = [j.id for j in jobs if j.kind == "erase"]
    spectra = [j.id for j in jobs if j.kind == "spectrum"]
    done = [j.id for j in jobs if j.kind == "erase" and j.state == "done"]
    return (_table(jobs), gr.Dropdown(choices=erasures), gr.Dropdown(choices=[QUICK_ESD, *done]),
            gr.Dropdown(choices=spectra), gr.Dropdown(choices=done), gr.Dropdown(choices=erasures))


def _model_tab(model) -> tuple:
    """Model: device, dtype (they drive every sampling action), load, Generate and Stop."""
    with gr.Tab("Model"):
        with gr.Row():
            with gr.Column(scale=1):
                device = gr.Dropdown(["cpu", "cuda"], value=DEVICE, label="Device")
                dtype = gr.Dropdown(list(DTYPES), value="float32", label="Dtype")
                load = gr.Button("Load model")
                info = gr.Markdown(elem_id="model-info")
                prompt = gr.Textbox(value="a red star", label="Prompt")
                seed = Number(value=0, precision=0, label="First seed")
                n_images = Slider(1, MAX_IMAGES, value=8, step=1, label="Images")
                steps = Slider(1, LIMITS.max_sampler_steps, value=25, step=1, label="Sampler steps")
                guidance = Slider(0, 15, value=5.0, step=0.5, label="Guidance scale")
                with gr.Row():
                    run = gr.Button("Generate", variant="primary")
                    stop = gr.Button("Stop", elem_id="generate-stop")
            with gr.Column(scale=2):
                out = gr.Image(label="Images (same seeds give the same images)", type="numpy", format="png")
        load.click(load_model, [model, device, dtype], info, api_name="load_model", concurrency_id="interactive")
        run.click(generate_grid, [model, prompt, seed, n_images, steps, guidance, device, dtype], out, api_name="generate",
                  concurrency_id="interactive")
        stop.click(cancel_sampling, None, info, api_name="cancel_sampling", concurrency_limit=None)
    return device, dtype


def _erase_tab(demo, model) -> SimpleNamespace:
    """Erase: method and presets prefill the form; the job's status, losses, cancel, resume, downloads."""
    with gr.Tab("Erase"):
        with gr.Row():
            with gr.Column(scale=1):
                methods = list_methods()
                e_method = gr.Dropdown(methods, value="ap" if "ap" in methods else methods[0], label="Method")
                e_target = gr.Textbox(value="star", label="Concept(s) to erase", info="comma-separated",
                                      elem_id="erase-target")
                e_scope = gr.Radio(list(SCOPES), value="object", label="Preset: concept type")
                e_speed = gr.Radio(list(SPEEDS), value="fast", label="Preset: settings")
                e_group = gr.Dropdown(list(PARAM_GROUPS), value="xattn", label="Parameter group")
                e_steps = Number(value=300, precision=0, label="Steps", elem_id="erase-steps")
                e_lr = Number(value=1e-3, label="Learning rate", elem_id="erase-lr")
                e_snap = Number(value=25, precision=0, label="Trajectory image every N steps (0 = none)",
                                   elem_id="erase-snapshot")
                e_start = gr.Button("Start erasure", variant="primary", elem_id="erase-start")
            with gr.Column(scale=2):
                e_job = gr.Dropdown([], label="Erase job", allow_custom_value=True, elem_id="erase-job")
                e_status = gr.Markdown(elem_id="erase-status")
                e_losses = gr.Plot(label="Losses")
                with gr.Row():
                    e_cancel = gr.Button("Cancel", elem_id="erase-cancel")
                    e_resume = gr.Button("Resume", elem_id="erase-resume")
                    e_delta = gr.Button("Download erased weights")
                    e_full = gr.Button("Download diffusers folder")
                e_msg = gr.Markdown()
                e_files = gr.File(label="Downloads", file_count="multiple")
        demo.load(erase_defaults, [model, e_method, e_scope, e_speed], [e_group, e_steps, e_lr],
                  api_name="erase_defaults")
        for w in (e_method, e_scope, e_speed):
            w.change(erase_defaults, [model, e_method, e_scope, e_speed], [e_group, e_steps, e_lr],
                     api_visibility="private")
        e_start.click(erase_start, [model, e_method, e_target, e_scope, e_speed, e_group, e_steps, e_lr, e_snap],
                      e_job, api_name="erase_start")
        e_job.change(erase_status, e_job, [e_status, e_losses], api_name="erase_status")
        e_cancel.click(job_cancel, e_job, e_msg, api_name="job_cancel")
        e_resume.click(job_resume, e_job, e_msg, api_name="job_resume")
        e_delta.click(download_delta, e_job, e_files, api_name="download_delta")
        e_full.click(download_diffusers, e_job, e_files, api_name="download_diffusers", concurrency_id="heavy")
    return SimpleNamespace(job=e_job, status=e_status, losses=e_losses)


def _spectrum_tab(model) -> SimpleNamespace:
    """Spectrum: a named or uploaded vocabulary against a finished erasure (or a quick ESD one)."""
    with gr.Tab("Spectrum"):
        with gr.Row():
            with gr.Column(scale=1):
                s_target = gr.Textbox(value="star", label="Erased concept(s)", info="comma-separated")
                s_run = gr.Dropdown([QUICK_ESD], value=QUICK_ESD, label="Sanitized model (a finished erase job)",
                                    allow_custom_value=True, elem_id="spectrum-run")
                s_vocab = gr.Dropdown(list(VOCABULARIES), value="world", label="Vocabulary")
                s_file = gr.File(label="…or upload a vocabulary (.txt, .csv)", file_types=[".txt", ".csv"],
                                 type="filepath")
                s_size = Number(value=0, precision=0, label="First N words (0 = all)")
                s_k = Number(value=8, precision=0, label="Samples per concept (k)", elem_id="spectrum-k")
                s_steps = Number(value=25, precision=0, label="Sampler steps", elem_id="spectrum-steps")
                s_guidance = Number(value=5.0, label="Guidance")
                s_seed = Number(value=0, precision=0, label="First seed")
                s_proxy = gr.Checkbox(False, label="Proxy only (fast: no sampling)")
                s_start = gr.Button("Compute spectrum", variant="primary", elem_id="spectrum-start")
            with gr.Column(scale=2):
                s_job = gr.Dropdown([], label="Spectrum job", allow_custom_value=True, elem_id="spectrum-job")
                s_status = gr.Markdown(elem_id="spectrum-status")
                s_hist = gr.Plot(label="Histogram")
                s_top = gr.Plot(label="Most affected")
                s_scatter = gr.Plot(label="Similarity vs damage")
                s_table = gr.Dataframe(label="Top concepts", elem_id="spectrum-table")
                s_csv = gr.File(label="Spectrum CSV", elem_id="spectrum-csv")
        s_start.click(spectrum_start, [model, s_target, s_vocab, s_file, s_size, s_k, s_steps, s_guidance, s_seed,
                                       s_run, s_proxy], s_job, api_name="spectrum_start")
        s_job.change(spectrum_status, s_job, [s_status, s_hist, s_top, s_scatter, s_table, s_csv],
                     api_name="spectrum_status")
        gr.Button("Cancel spectrum").click(job_cancel, s_job, s_status, api_visibility="private")
        s_dl = gr.Button("Download CSV", visible=False)
        s_dl.click(download_csv, s_job, s_csv, api_name="download_csv")
    return SimpleNamespace(run=s_run, job=s_job, views=[s_status, s_hist, s_top, s_scatter, s_table, s_csv])


def _compare_tab(model, device, dtype) -> gr.Dropdown:
    """Compare: base and erased models on the same prompts and seeds, with progress and Stop."""
    with gr.Tab("Compare"):
        with gr.Row():
            with gr.Column(scale=1):
                c_runs = gr.Dropdown([], multiselect=True, label="Erased models (finished erase jobs)",
                                     allow_custom_value=True, elem_id="compare-runs")
                c_prompts = gr.Textbox("a red star\na blue star\na red heart\na green circle\na yellow moon",
                                       lines=5, label="Prompts (one per line)")
                c_seed = Number(value=0, precision=0, label="First seed")
                c_n = Slider(1, LIMITS.max_seeds, value=4, step=1, label="Seeds", elem_id="compare-seeds")
                c_steps = Number(value=20, precision=0, label="Sampler steps")
                c_guidance = Number(value=5.0, label="Guidance")
                c_reveal = gr.Checkbox(False, label="Show images NudeNet flags (unblurred)")
                with gr.Row():
                    c_go = gr.Button("Compare", variant="primary", elem_id="compare-go")
                    c_stop = gr.Button("Stop", elem_id="compare-stop")
            with gr.Column(scale=2):
                c_out = gr.Gallery(label="Base and erased models, same seeds", columns=1, height="auto",
                                   elem_id="compare-gallery")
                c_summary = gr.Markdown(elem_id="compare-summary")
        c_go.click(compare_grids, [model, c_prompts, c_seed, c_n, c_runs, c_steps, c_guidance, c_reveal, device, dtype],
                   [c_out, c_summary], api_name="compare", concurrency_id="heavy")
        c_stop.click(cancel_sampling, None, c_summary, api_visibility="private", concurrency_limit=None)
    return c_runs


def _trajectory_tab() -> gr.Dropdown:
    """Trajectory: the adversarial concept per step and the image strips."""
    with gr.Tab("Trajectory"):
        t_job = gr.Dropdown([], label="Erase job", allow_custom_value=True, elem_id="trajectory-job")
        t_go = gr.Button("Show trajectory", elem_id="trajectory-go")
        t_timeline = gr.Plot(label="Adversarial concept per step")
        t_ce = gr.Gallery(label="G(θ'_t, z_T, c_e): the erased concept over training", columns=8, height="auto",
                          elem_id="trajectory-ce")
        t_ca = gr.Gallery(label="G(θ'_t, z_T, c_a): the adversarial concept over training", columns=8,
                          height="auto", elem_id="trajectory-ca")
        t_go.click(trajectory, t_job, [t_timeline, t_ce, t_ca], api_name="trajectory")
    return t_job


def _jobs_tab() -> gr.Dataframe:
    """Jobs: every job, newest first."""
    with gr.Tab("Jobs"):
        j_table = gr.Dataframe(job_table, label="Jobs (newest first)", elem_id="job-table")
        gr.Button("Refresh").click(job_table, None, j_table, api_name="job_list")
    return j_table


def build_ui() -> gr.Blocks:
    """The page: the shared model picker, one builder per tab, and the live updates of the job pickers."""
    with Blocks(title="Concept Sensitivity Explorer") as demo:
        gr.Markdown("# Concept Sensitivity Explorer\nErase a concept from a text-to-image model and see what else it hurt.")
        model = gr.Dropdown(list(PRESETS), value=EMBEDDED, label="Model", allow_custom_value=True,
                            info="a preset or a hub repo id 'owner/name' (local folders: CSE_MODEL_DIRS)")
        device, dtype = _model_tab(model)
        erase = _erase_tab(demo, model)
        spectrum = _spectrum_tab(model)
        c_runs = _compare_tab(model, device, dtype)
        t_job = _trajectory_tab()
        j_table = _jobs_tab()
        outputs = [j_table, erase.job, spectrum.run, spectrum.job, c_runs, t_job]
        demo.load(_refresh_choices, None, outputs, api_visibility="private")
        timer = gr.Timer(LIVE_EVERY_S)
        timer.tick(_refresh_choices, None, outputs, api_visibility="private", concurrency_limit=None, show_progress="hidden")
        e_seen, s_seen = gr.State(""), gr.State("")
        timer.tick(_poll_erase, [erase.job, e_seen], [erase.status, erase.losses, e_seen], api_visibility="private",
                   concurrency_limit=None, show_progress="hidden")
        timer.tick(_poll_spectrum, [spectrum.job, s_seen], [*spectrum.views, s_seen],
                   api_visibility="private", concurrency_limit=None, show_progress="hidden")
    return demo


def _info_or_none(job_id: str):
    """The job's info (read once per tick), or None for no or an unknown id (the picker's own event
    reports that once; the timer must not raise it every tick)."""
    try:
        return manager().info(job_id) if job_id else None
    except KeyError:
        return None


def _poll_erase(job_id: str, seen: str):
    """Live erasure progress while the selected job runs, plus one last update when it stops;
    `seen` (per browser session) is the job and state shown last."""
    info = _info_or_none(job_id)
    if info is None:
        return gr.skip(), gr.skip(), seen
    key = f"{job_id}:{info.state}"
    if key == seen and not key.endswith((":running", ":queued")):
        return gr.skip(), gr.skip(), seen
    return (*_erase_view(job_id, info), key)


def _poll_spectrum(job_id: str, seen: str):
    """Spectrum progress while it runs, then the figures once when it finishes."""
    info = _info_or_none(job_id)
    if info is None:
        return (gr.skip(),) * 6 + (seen,)
    key = f"{job_id}:{info.state}"
    if key == seen and info.state not in ("running", "queued"):
        return (gr.skip(),) * 6 + (seen,)
    if info.state in ("running", "queued"):
        return (_spectrum_view(job_id, info)[0],) + (gr.skip(),) * 5 + (key,)
    return (*_spectrum_view(job_id, info), key)


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_ui().queue(default_concurrency_limit=1).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("PORT", "7860")),
    )
