"""The Compare tab: the base and erased models on the same prompts and seeds, with progress and Stop."""

from __future__ import annotations

import gradio as gr
import numpy as np

from backends import EMBEDDED

from . import inputs, state
from .guard import Number, Slider
from .guard import handler as user_errors
from .model_tab import cancel_sampling

PROMPTS = "a red star\na blue star\na red heart\na green circle\na yellow moon"  # the form's default


@user_errors
def compare_grids(model: str, prompts: str, first_seed: float, n_seeds: float, run_jobs: list[str] | None,
                  steps: float, guidance: float, reveal: bool, device: str = state.DEVICE, dtype: str = "float32",
                  request: gr.Request = None,
                  progress=gr.Progress()) -> tuple[np.ndarray, str]:  # noqa: B008 (Gradio's form)
    """API `compare`: one image with every model side by side (a row per prompt; base first, then each
    erased model, the same seeds in the same columns) and, on the embedded model, how many images of
    each shape the world classifier still recognises, with each model's erasure and preservation rates.
    `cancel_sampling` from the same browser session stops it at its next sampler step."""
    from backends.safety import NudityDetector
    from evaluation.compare import compare, side_by_side

    model, limits = state.model_name(model), state.LIMITS
    lines = inputs.prompt_lines(prompts, "Prompts", limits.max_prompts)
    n = inputs.whole(n_seeds, "Seeds", 1, limits.max_seeds)
    seeds = [inputs.seed(first_seed, "First seed") + i for i in range(n)]
    jobs = inputs.job_ids(run_jobs, "Erased models", limits.max_compare_runs)
    images = (1 + len(jobs)) * len(lines) * n
    if images > limits.max_compare_images:
        raise ValueError(f"this compare would sample {images} images (models x prompts x seeds); the limit is "
                         f"{limits.max_compare_images}: use fewer prompts, seeds or erased models")
    settings = state.sampler(steps, guidance)
    reveal = inputs.flag(reveal, "Show flagged images")
    runs, erased = {}, []
    for job_id in jobs:
        label = state.run_label(job_id, request)
        runs[label if label not in runs else f"{label} ({job_id})"] = str(state.done_run(job_id, request))
        erased += state.erase_job(job_id, request).record["params"]["targets"]
    state.BUDGET.spend(request, images * settings.steps)
    with state.cancellable(request, background=True) as token:
        result = compare(state.pipeline(model, device, dtype), runs, lines, seeds, erased, settings,
                         detector=NudityDetector(), reveal=reveal, cancel=token,
                         progress=lambda done, total: progress(done / total, desc="sampling"))
    return side_by_side(result)[0], recognition_table(model, result, rates=True)


@user_errors
def compare_spectra(run_jobs: list[str] | None, request: gr.Request = None) -> tuple:
    """API `compare_spectra`: the chosen runs' spectra overlaid (each run's newest finished spectrum job;
    delta where every run has it, else the proxy) and a note naming the runs that have none yet."""
    from sensitivity import figures, load_spectrum

    spectra, missing = {}, []
    for job_id in inputs.job_ids(run_jobs, "Erased models", state.LIMITS.max_compare_runs):
        spectrum = state.run_spectrum(state.erase_job(job_id, request).id, done=True, request=request)
        if spectrum:
            spectra[state.run_label(job_id, request)] = load_spectrum(state.manager().folder(spectrum).spectrum_path)
        else:
            missing.append(state.run_label(job_id, request))
    note = (f"No spectrum yet for {', '.join(missing)}: compute it in the run's Results view." if missing else "")
    if not spectra:
        return None, note or "Pick erased models to overlay their spectra."
    column = "delta" if all(df["delta"].notna().any() for df in spectra.values()) else "proxy"
    return figures.overlay(spectra, 15, column), note


def recognition_table(model: str, result, rates: bool = False) -> str:
    """Markdown: per prompt and model, how many images the world classifier recognises (embedded only);
    `rates`: then each model's erasure rate (erased rows not recognised) and preservation rate (kept rows recognised)."""
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
    text = f"Images the world classifier recognises as the prompt's shape:\n\n{head}\n{body}"
    return text + ("\n\n" + _rates(rows, labels) if rates else "")


def _rates(rows: list[dict], labels: list[str]) -> str:
    """ESR (erased rows' images not recognised) and PSR (kept rows' images recognised), in %, per model."""
    def rate(label: str, erased: bool) -> str:
        counts = [tuple(map(int, r[label].split("/"))) for r in rows if r["erased"] == erased]  # (hit, n)
        hit, n = sum(c[0] for c in counts), sum(c[1] for c in counts)
        return "–" if not n else f"{100 * (n - hit if erased else hit) / n:.0f} %"

    return "; ".join(f"**{label}**: erasure rate {rate(label, True)}, preservation rate {rate(label, False)}"
                     for label in labels) + " on these rows (the world classifier as judge)."


def build(model, device, dtype) -> gr.Dropdown:
    """The tab (it samples on the Model tab's device and dtype); returns its run picker."""
    with gr.Tab("Compare"):
        with gr.Row():
            with gr.Column(scale=1):
                c_runs = gr.Dropdown([], multiselect=True, label="Erased models (finished erase jobs)",
                                     allow_custom_value=True, elem_id="compare-runs")
                c_prompts = gr.Textbox(PROMPTS, lines=5, label="Prompts (one per line)")
                c_seed = Number(value=0, precision=0, label="First seed")
                c_n = Slider(1, state.LIMITS.max_seeds, value=4, step=1, label="Seeds", elem_id="compare-seeds")
                c_steps = Number(value=20, precision=0, label="Sampler steps")
                c_guidance = Number(value=5.0, label="Guidance")
                c_reveal = gr.Checkbox(False, label="Show images NudeNet flags (unblurred)")
                with gr.Row():
                    c_go = gr.Button("Compare", variant="primary", elem_id="compare-go")
                    c_stop = gr.Button("Stop", elem_id="compare-stop")
            with gr.Column(scale=2):
                c_out = gr.Image(label="Base and erased models side by side, same seeds", show_label=False, type="numpy",
                                 elem_id="compare-grid", buttons=["download", "fullscreen"])
                c_summary = gr.Markdown(elem_id="compare-summary")
                c_spectra = gr.Plot(label="Spectra of the erased models, overlaid", elem_id="compare-spectra")
                c_spectra_note = gr.Markdown(elem_id="compare-spectra-note")
        c_go.click(compare_grids, [model, c_prompts, c_seed, c_n, c_runs, c_steps, c_guidance, c_reveal, device, dtype],
                   [c_out, c_summary], api_name="compare", concurrency_id="heavy")
        c_go.click(compare_spectra, c_runs, [c_spectra, c_spectra_note], api_name="compare_spectra")
        c_stop.click(cancel_sampling, None, c_summary, api_visibility="private", concurrency_limit=None)
    return c_runs
