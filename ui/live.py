"""Live updates: one timer refreshes the job table, every job picker and the selected jobs' views, from
one listing of the jobs folder that every open browser tab shares (JobManager.jobs(max_age=...))."""

from __future__ import annotations

import gradio as gr

from . import state
from .erase_tab import erase_view
from .jobs_tab import table
from .spectrum_tab import N_VIEWS, QUICK_ESD, spectrum_view

EVERY_S = 2.0  # the timer's period; a listing younger than half of it is reused


def refresh_choices():
    """Job table and every job picker's choices (jobs appear, finish and get resumed meanwhile):
    the table, erase jobs, spectrum runs (quick ESD + finished erasures), spectrum jobs, compare runs,
    results (finished erasures)."""
    jobs = state.manager().jobs(max_age=EVERY_S / 2)
    erasures = [j.id for j in jobs if j.kind == "erase"]
    spectra = [j.id for j in jobs if j.kind == "spectrum"]
    done = [j.id for j in jobs if j.kind == "erase" and j.state == "done"]
    return (table(jobs), gr.Dropdown(choices=erasures), gr.Dropdown(choices=[QUICK_ESD, *done]),
            gr.Dropdown(choices=spectra), gr.Dropdown(choices=done), gr.Dropdown(choices=done))


def info_or_none(job_id: str):
    """The job's info (read once per tick), or None for no or an unknown id (the picker's own event
    reports that once; the timer must not raise it every tick)."""
    try:
        return state.manager().info(job_id) if job_id else None
    except KeyError:
        return None


def changed(job_id: str, seen: str):
    """(info, "job:state") when a job's view needs an update: it is live, or its state differs from
    `seen` (the job and state shown last); (None, seen) when there is nothing to show again."""
    info = info_or_none(job_id)
    if info is None:
        return None, seen
    key = f"{job_id}:{info.state}"
    if key == seen and info.state not in ("running", "queued"):
        return None, seen
    return info, key


def poll_erase(job_id: str, seen: str):
    """Live erasure progress while the selected job runs, plus one last update when it stops;
    `seen` (per browser session) is the job and state shown last. A job seen running that finishes
    opens the Results view on it (the erasure's landing place)."""
    info, key = changed(job_id, seen)
    if info is None:
        return gr.skip(), gr.skip(), gr.skip(), gr.skip(), seen
    landed = info.state == "done" and seen in (f"{job_id}:running", f"{job_id}:queued")
    opened = (gr.Tabs(selected="results"), gr.Dropdown(value=job_id)) if landed else (gr.skip(), gr.skip())
    return (*erase_view(job_id, info), *opened, key)


def poll_results_spectrum(spectrum_job: str, seen: str):
    """The Results view's spectrum while it runs, then its plot and table once when it is done."""
    from .results_tab import results_spectrum

    info, key = changed(spectrum_job, seen)
    if info is None:
        return gr.skip(), gr.skip(), gr.skip(), seen
    return (*results_spectrum(spectrum_job), key)


def poll_spectrum(job_id: str, seen: str):
    """Spectrum progress while it runs, then the figures once when it finishes."""
    info, key = changed(job_id, seen)
    if info is None:
        return (gr.skip(),) * N_VIEWS + (seen,)
    if info.state in ("running", "queued"):
        return (spectrum_view(job_id, info)[0],) + (gr.skip(),) * (N_VIEWS - 1) + (key,)
    return (*spectrum_view(job_id, info), key)


def wire(demo, pickers: list, erase, spectrum, results, tabs) -> None:
    """Refresh `pickers` (the outputs of refresh_choices, in its order) on page load and every tick, and
    the selected erase and spectrum jobs' views while they change (a finished erasure opens `results`)."""
    demo.load(refresh_choices, None, pickers, api_visibility="private")
    timer = gr.Timer(EVERY_S)
    quiet = {"api_visibility": "private", "concurrency_limit": None, "show_progress": "hidden"}
    timer.tick(refresh_choices, None, pickers, **quiet)
    e_seen, s_seen, r_seen = gr.State(""), gr.State(""), gr.State("")
    timer.tick(poll_erase, [erase.job, e_seen], [*erase.views, tabs, results.job, e_seen], **quiet)
    timer.tick(poll_spectrum, [spectrum.job, s_seen], [*spectrum.views, s_seen], **quiet)
    timer.tick(poll_results_spectrum, [results.spectrum_job, r_seen], [*results.spectrum_views, r_seen], **quiet)
