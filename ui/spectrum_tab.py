"""The Spectrum tab: a named or uploaded vocabulary against a finished erasure (or a quick one: ESD, MCE on FLUX);
progress, then the figures, the top-N table and the CSV."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace
from typing import Any, NamedTuple

import gradio as gr
import pandas as pd

from jobs.tasks import ERASING
from sensitivity.results import SpectrumFolder
from sensitivity.vocab import APP_VOCABULARIES as VOCABULARIES
from sensitivity.vocab import load_user_vocabulary

from . import inputs, state
from .guard import Number, md_text
from .guard import handler as user_errors
from .helptext import SETTING, glossary, placeholder
from .jobs_tab import duration, job_cancel, queue_text

TABLE_COLUMNS = ["concept", "kind", "delta", "proxy", "text_sim"]  # the top table's columns (proxy-only: no delta)
QUICK_ERASURE = "quick erasure (fast preset: ESD; MCE on FLUX)"  # the run picker's choice that erases first
N_VIEWS = 6  # status, histogram, most affected, scatter, table, CSV


@user_errors
def spectrum_start(model: str, target: str, vocab: str, vocab_file, size: float, k: float, steps: float,
                   guidance: float, seed: float, run_job: str, proxy_only: bool, delta_top: float = 0,
                   request: gr.Request = None) -> str:
    """API `spectrum_start`: queue a spectrum job against a finished erasure (or a quick one: ESD, MCE on FLUX).
    The vocabulary is a named one or an uploaded file, never a path on the server: an upload's words
    are read here and travel in the job's parameters. `delta_top` > 0 makes it proxy-guided: delta for
    the N concepts of largest D(c), the N / 2 of largest text similarity to the target and a random
    calibration sample of N / 2 more."""
    from sensitivity import SpectrumRequest

    model, limits = state.model_name(model), state.LIMITS
    targets = inputs.concepts(target, "Erased concept(s)")
    n = inputs.whole(size or 0, "First N words (0 = all)", 0, limits.max_concepts)
    config = {"size": n or None, "k": inputs.whole(k, "k (samples per concept)", 1, limits.max_k),
              "steps": inputs.whole(steps, "Sampler steps", 1, limits.max_sampler_steps),
              "guidance": inputs.real(guidance, "Guidance", 0.0, 50.0), "seed": inputs.seed(seed, "First seed"),
              "proxy_only": inputs.flag(proxy_only, "Proxy only"), "dtype": state.JOB_DTYPE}
    top = inputs.whole(delta_top or 0, "Proxy-guided: delta for the top N", 0, limits.max_concepts)
    if top:
        # N/2 more by text similarity to the target: D(c) alone recovered 3-6 of the full top-10 on two
        # targets, N + N/2 + N/2 recovered 9 on both (docs/results.md, session 18)
        config |= {"delta_top": top, "delta_text": max(1, top // 2), "delta_random": max(1, top // 2)}
    words = None
    if vocab_file:
        path = inputs.uploaded_file(vocab_file, [Path(gr.utils.get_upload_folder())], limits.max_upload_bytes)
        config["vocab"] = f"upload:{path.name[:60]}"
        words = tuple(load_user_vocabulary(path, source=f"the uploaded file {path.name[:60]!r}",
                                           dedupe_hint="remove the repeated lines and upload it again"))
        for i, word in enumerate(words):  # the same rule as typed concepts: no markup, no formulas
            inputs.concept_word(word, f"Vocabulary file, line {i + 1}")
    else:
        config["vocab"] = inputs.choice(vocab, "Vocabulary", VOCABULARIES)
    job = SpectrumRequest(model, tuple(targets), config, words=words, device=state.DEVICE).to_dict()
    # `run` names a finished erase job of this app (the job resolves it to its run folder)
    job["run"] = None if run_job in (None, "", QUICK_ERASURE) else state.erase_job(run_job, request).id
    return state.manager().submit("spectrum", job, *state.who(request))


class SpectrumView(NamedTuple):
    """The outputs of API `spectrum_status`, by name (build() wires the components in this order)."""

    status: Any  # markdown: state, progress, title
    histogram: Any  # delta (or the proxy) over every concept
    top: Any  # the most affected concepts
    scatter: Any  # similarity to the target against damage
    table: Any  # the top-N table
    csv: Any  # the spectrum CSV (a file; None until done)


@user_errors
def spectrum_status(job_id: str, top_n: float = 20, request: gr.Request = None) -> SpectrumView:
    """API `spectrum_status`: progress, then the figures, the top-N table and the CSV file."""
    job = state.job(job_id, request, "Spectrum job", "spectrum")
    return spectrum_view(job.id, state.manager().info(job.id), inputs.whole(top_n, "Top N", 1, 1000))


@user_errors
def spectrum_view(job_id: str, info, top_n: int = 20) -> SpectrumView:
    """The views of a spectrum job whose info was read already (only the text until it is done)."""
    from sensitivity import figures

    if info.kind != "spectrum":
        raise ValueError(f"{job_id} is a {info.kind} job; pick a spectrum job")
    erasing = info.phase == ERASING and info.state != "done"
    done = info.message if erasing else f"{info.step} / {info.total or '?'} concepts"  # the erasure's steps first
    text = f"**{info.state}** — {md_text(done)}{timing(job_id, info, erasing)}. {md_text(info.title)}"
    if info.message and info.state != "done" and not erasing:
        text += f"\n\n{md_text(info.message)}"
    folder = SpectrumFolder(state.manager().folder(job_id).spectrum_path)
    if info.state != "done" or not folder.finished:
        wait = placeholder("the figures appear here when the spectrum is done" if info.state in ("running", "queued")
                           else f"no spectrum: the job is {info.state}")
        return SpectrumView(text, wait, wait, wait, pd.DataFrame(columns=TABLE_COLUMNS), None)
    df = folder.load()
    text += guided_note(folder.path)
    column = "delta" if df["delta"].notna().any() else "proxy"
    top = df.sort_values(column, ascending=False).head(int(top_n))
    table = top[["concept", "kind", column, "proxy", "text_sim"]].round(4)
    return SpectrumView(text, figures.histogram(df, column), figures.top_affected(df, int(top_n), column),
                        figures.similarity_scatter(df, column), table, str(folder.csv))


def timing(job_id: str, info, erasing: bool) -> str:
    """A spectrum job's place in the queue, or its time so far and (counting concepts) the time left."""
    if info.state == "queued":
        return queue_text(job_id)
    if info.state != "running":
        return f" · ran {duration(info.run_s)}" if info.run_s else ""
    left = f", about {duration(info.eta_s)} left" if info.eta_s is not None and not erasing else ""
    return f"{left} · {duration(info.elapsed())} so far"


def guided_note(folder: Path) -> str:
    """A proxy-guided spectrum's calibration in words (its config.json summary; "" for a full one)."""
    g = SpectrumFolder(folder).guided()
    if not g:
        return ""
    return (f"\n\nProxy-guided: δ sampled for {g['sampled']} of {g['concepts']} concepts (the top by D(c), the "
            f"targets and {g['calibration']} drawn at random). {g['calibration_above_cut']} of the random ones are "
            f"damaged as much as the {g['top']}th most damaged sampled concept: about {g['expected_missed']} such "
            "concepts are expected among those not sampled.")


@user_errors
def download_csv(job_id: str, request: gr.Request = None) -> str:
    """API `download_csv`: the spectrum table of a finished spectrum job."""
    job = state.job(job_id, request, "Spectrum job", "spectrum")
    folder = SpectrumFolder(job.spectrum_path)
    if not folder.finished:
        raise ValueError(f"{job.id} has no spectrum yet; wait until it is done")
    return str(folder.csv)


class SpectrumForm(NamedTuple):
    """The form's settings, by name: what a picked spectrum job ran with (build() wires them in this order)."""

    targets: Any
    run: Any  # the erase job it measured, or the quick erasure
    vocab: Any  # a named vocabulary (an uploaded one leaves the field as it is)
    size: Any
    k: Any
    steps: Any
    guidance: Any
    seed: Any
    proxy_only: Any
    delta_top: Any


def spectrum_form(job_id: str, request: gr.Request = None) -> SpectrumForm:
    """The form's values of a picked spectrum job, so the form shows exactly what it ran with; nothing
    changes for no job or an unreadable one (its status line says why)."""
    skip = SpectrumForm(*[gr.skip()] * len(SpectrumForm._fields))
    try:
        params = state.job(job_id, request, "Spectrum job", "spectrum").record["params"] if job_id else None
    except (KeyError, ValueError, OSError):
        return skip
    if params is None:
        return skip
    c = params.get("config", {})
    vocab = c.get("vocab") if c.get("vocab") in VOCABULARIES else gr.skip()
    return SpectrumForm(", ".join(params["targets"]), params.get("run") or QUICK_ERASURE, vocab, c.get("size") or 0,
                        c.get("k", gr.skip()), c.get("steps", gr.skip()), c.get("guidance", gr.skip()),
                        c.get("seed", gr.skip()), bool(c.get("proxy_only")), c.get("delta_top") or 0)


def build(model) -> SimpleNamespace:
    """The tab; returns its run and job pickers and the N_VIEWS views the live updates refresh."""
    with gr.Tab("Spectrum", id="spectrum"):
        with gr.Row():
            with gr.Column(scale=1):
                s_target = gr.Textbox(value="star", label="Erased concept(s)", info="comma-separated")
                s_run = gr.Dropdown([QUICK_ERASURE], value=QUICK_ERASURE, label="Sanitized model (a finished erase job)",
                                    allow_custom_value=True, elem_id="spectrum-run")
                s_vocab = gr.Dropdown(list(VOCABULARIES), value="world", label="Vocabulary",
                                      info="the concepts to measure: world = the embedded model's 25 words; world-captions = its "
                                           "1,400 caption phrases; english = frequent "
                                           "English words; imagenet / imagenette = ImageNet class names; clip-words "
                                           "and clip-all = CLIP tokens (some are word pieces)")
                s_file = gr.File(label="…or upload a vocabulary (.txt, .csv)", file_types=[".txt", ".csv"],
                                 type="filepath")
                s_size = Number(value=0, precision=0, label="First N words (0 = all)",
                                info="measure only the vocabulary's first N words (most frequent first)")
                s_k = Number(value=8, precision=0, label="Samples per concept (k)", info=SETTING["k"], elem_id="spectrum-k")
                s_steps = Number(value=25, precision=0, label="Sampler steps", info=SETTING["sampler_steps"],
                                 elem_id="spectrum-steps")
                s_guidance = Number(value=5.0, label="Guidance", info=SETTING["guidance"])
                s_seed = Number(value=0, precision=0, label="First seed",
                                info="both models draw from the same seeds, so δ is the erasure's effect alone")
                s_proxy = gr.Checkbox(False, label="Proxy only (fast: no sampling)", info=SETTING["proxy_only"])
                s_guided = Number(value=0, precision=0, label="Proxy-guided: δ for the top N (0 = every concept)",
                                  info=SETTING["delta_top"], elem_id="spectrum-guided")
                s_start = gr.Button("Compute spectrum", variant="primary", elem_id="spectrum-start")
            with gr.Column(scale=2):
                s_job = gr.Dropdown([], label="Spectrum job", allow_custom_value=True, elem_id="spectrum-job")
                s_status = gr.Markdown(elem_id="spectrum-status")
                with gr.Accordion("What the words mean", open=False):
                    gr.Markdown(glossary())
                s_hist = gr.Plot(placeholder(), label="Histogram")
                s_top = gr.Plot(placeholder(), label="Most affected")
                s_scatter = gr.Plot(placeholder(), label="Similarity vs damage")
                s_table = gr.Dataframe(pd.DataFrame(columns=TABLE_COLUMNS), label="Top concepts",
                                       elem_id="spectrum-table")
                s_csv = gr.File(label="Spectrum CSV", elem_id="spectrum-csv")
        views = list(SpectrumView(s_status, s_hist, s_top, s_scatter, s_table, s_csv))
        s_start.click(spectrum_start, [model, s_target, s_vocab, s_file, s_size, s_k, s_steps, s_guidance, s_seed,
                                       s_run, s_proxy, s_guided], s_job, api_name="spectrum_start")
        s_job.change(spectrum_status, s_job, views, api_name="spectrum_status")
        form = list(SpectrumForm(s_target, s_run, s_vocab, s_size, s_k, s_steps, s_guidance, s_seed, s_proxy, s_guided))
        s_job.change(spectrum_form, s_job, form, api_visibility="private", show_progress="hidden")
        gr.Button("Cancel spectrum").click(job_cancel, s_job, s_status, api_visibility="private")
        s_dl = gr.Button("Download CSV", visible=False)
        s_dl.click(download_csv, s_job, s_csv, api_name="download_csv")
    return SimpleNamespace(run=s_run, job=s_job, views=views)
