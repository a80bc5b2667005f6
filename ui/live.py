"""Live updates: one timer refreshes the job table, every job picker and the selected jobs' views, from
one listing of the jobs folder that every open browser tab shares (JobManager.jobs(max_age=...))."""

from __future__ import annotations

import functools

import gradio as gr

from . import state
from .erase_tab import erase_view
from .guard import scrub
from .jobs_tab import ALL, job_open, table
from .spectrum_tab import N_VIEWS, QUICK_ERASURE, spectrum_view

EVERY_S = 2.0  # the timer's period; a listing younger than half of it is reused


def refresh_choices(kind: str = ALL, job_state: str = ALL, request: gr.Request = None):
    """Job table (with the Jobs tab's filters) and every job picker's choices (jobs appear, finish and get
    resumed meanwhile): the table, erase jobs, spectrum runs (quick erasure + finished erasures), spectrum
    jobs, compare runs, results (finished erasures), the Jobs tab's picker (every job)."""
    jobs = state.manager().jobs(max_age=EVERY_S / 2, client=state.who(request)[0])  # yours and the examples
    erasures = [labelled(j) for j in jobs if j.kind == "erase"]
    spectra = [labelled(j) for j in jobs if j.kind == "spectrum"]
    done = [labelled(j) for j in jobs if j.kind == "erase" and j.state == "done"]
    return (table(jobs, kind, job_state), gr.Dropdown(choices=erasures), gr.Dropdown(choices=[QUICK_ERASURE, *done]),
            gr.Dropdown(choices=spectra), gr.Dropdown(choices=done), gr.Dropdown(choices=done),
            gr.Dropdown(choices=[labelled(j) for j in jobs]))


def labelled(job) -> tuple[str, str]:
    """A picker's (label, value): what the job is ("ap erases star from embedded (450 steps)"), then its id."""
    return f"{scrub(job.title)} · {job.id}", job.id


SELECTED = ("erase", "results", "spectrum")  # the pickers whose job a page reload brings back


def remember(saved: dict, job_id: str, which: str) -> dict:
    """The browser's record of the selected jobs, with `which` set to `job_id`."""
    return {**(saved or {}), which: job_id or ""}


def restore(saved: dict, request: gr.Request = None) -> tuple:
    """What a page opens with: the selected job per picker (SELECTED order) and the tab. A link's ?job=<id>
    opens that job (an erasure in Results, a spectrum in Spectrum); else the last visit's selections that
    still exist; a Results picker with nothing to restore shows the first shipped example (jobs.examples)."""
    from jobs import examples

    picked = [job if (job := (saved or {}).get(w)) and info_or_none(job, request) is not None else None
              for w in SELECTED]
    tab = None
    linked = str(request.query_params.get("job") or "") if request is not None else ""
    info = info_or_none(linked, request) if linked else None
    if info is not None:
        tab = "results" if info.kind == "erase" and info.state == "done" else info.kind
        picked[SELECTED.index("results" if tab == "results" else tab)] = linked
    elif picked[1] is None and (example := examples.first()) and info_or_none(example, request) is not None:
        picked[1] = example
    return (*[job or gr.skip() for job in picked], gr.Tabs(selected=tab) if tab else gr.skip())


def open_job(job_id: str, request: gr.Request = None) -> tuple:
    """The Jobs tab's Open: switch to the job's tab with it picked."""
    tab, *pickers = job_open(job_id, request)
    return (gr.Tabs(selected=tab), *pickers)


def info_or_none(job_id: str, request=None):
    """The job's info (read once per tick) if the request's visitor may view it, or None for no, an
    unknown or another visitor's id (the picker's own event reports that once; the timer must not raise
    it every tick)."""
    try:
        return state.manager().info(state.job(job_id, request).id) if job_id else None
    except (KeyError, ValueError):
        return None


def changed(job_id: str, seen: str, request=None):
    """(info, "job:state") when a job's view needs an update: it is live, or its state differs from
    `seen` (the job and state shown last); (None, seen) when there is nothing to show again."""
    info = info_or_none(job_id, request)
    if info is None:
        return None, seen
    key = f"{job_id}:{info.state}"
    if key == seen and info.state not in ("running", "queued"):
        return None, seen
    return info, key


def poll_erase(job_id: str, seen: str, request: gr.Request = None):
    """Live erasure progress while the selected job runs, plus one last update when it stops;
    `seen` (per browser session) is the job and state shown last. A job seen running that finishes
    opens the Results view on it (the erasure's landing place)."""
    info, key = changed(job_id, seen, request)
    if info is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
    landed = info.state == "done" and seen in (f"{job_id}:running", f"{job_id}:queued")
    opened = (gr.Tabs(selected="results"), gr.Dropdown(value=job_id)) if landed else (gr.skip(), gr.skip())
    return (*erase_view(job_id, info), *opened, key)


def poll_results_spectrum(spectrum_job: str, seen: str, request: gr.Request = None):
    """The Results view's spectrum while it runs, then its plot and table once when it is done."""
    from .results_tab import results_spectrum

    info, key = changed(spectrum_job, seen, request)
    if info is None:
        return gr.skip(), gr.skip(), gr.skip(), seen
    return (*results_spectrum(spectrum_job, request=request), key)


def poll_spectrum(job_id: str, seen: str, request: gr.Request = None):
    """Spectrum progress while it runs, then the figures once when it finishes."""
    info, key = changed(job_id, seen, request)
    if info is None:
        return (gr.skip(),) * N_VIEWS + (seen,)
    if info.state in ("running", "queued"):
        return (spectrum_view(job_id, info)[0],) + (gr.skip(),) * (N_VIEWS - 1) + (key,)
    return (*spectrum_view(job_id, info), key)


def wire(demo, pickers: list, erase, spectrum, results, jobs, tabs) -> None:
    """Refresh `pickers` (the outputs of refresh_choices, in its order) on page load and every tick, and
    the selected erase and spectrum jobs' views while they change (a finished erasure opens `results`);
    the selected jobs are kept in the browser, so a reload shows them again; the Jobs tab's Open."""
    demo.load(refresh_choices, jobs.filters, pickers, api_visibility="private")
    timer = gr.Timer(EVERY_S)
    quiet = {"api_visibility": "private", "concurrency_limit": None, "show_progress": "hidden"}
    timer.tick(refresh_choices, jobs.filters, pickers, **quiet)
    saved = gr.BrowserState({w: "" for w in SELECTED}, storage_key="cse-selected-jobs")
    selected = [erase.job, results.job, spectrum.job]  # SELECTED's order
    for which, picker in zip(SELECTED, selected):
        picker.change(functools.partial(remember, which=which), [saved, picker], saved, **quiet)
    demo.load(restore, saved, [*selected, tabs], api_visibility="private")
    jobs.open.click(open_job, jobs.pick, [tabs, *selected], api_visibility="private")
    e_seen, s_seen, r_seen = gr.State(""), gr.State(""), gr.State("")
    timer.tick(poll_erase, [erase.job, e_seen], [*erase.views, tabs, results.job, e_seen], **quiet)
    timer.tick(poll_spectrum, [spectrum.job, s_seen], [*spectrum.views, s_seen], **quiet)
    timer.tick(poll_results_spectrum, [results.spectrum_job, r_seen], [*results.spectrum_views, r_seen], **quiet)
