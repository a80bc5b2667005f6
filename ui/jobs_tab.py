"""The Jobs tab, a job manager: every job newest first with its created time and duration, filters by
kind and state, and the actions on one job (open, cancel, resume, delete, rerun); cancel and resume are
shared by the other tabs."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, NamedTuple

import gradio as gr
import pandas as pd

from jobs.tasks import KINDS

from . import inputs, state
from .guard import handler as user_errors
from .guard import scrub

COLUMNS = ["id", "kind", "state", "progress", "title", "created", "duration", "message"]
ALL = "all"
KIND_FILTER = (ALL, *KINDS)
STATE_FILTER = (ALL, "running", "queued", "done", "failed", "cancelled", "interrupted")


def duration(seconds: float | None) -> str:
    """12 s, 3 min 05 s, 1 h 02 min."""
    s = int(round(seconds or 0))
    if s < 60:
        return f"{s} s"
    return f"{s // 60} min {s % 60:02d} s" if s < 3600 else f"{s // 3600} h {s % 3600 // 60:02d} min"


@user_errors
def job_table(kind: str = ALL, job_state: str = ALL, request: gr.Request = None) -> pd.DataFrame:
    """API `job_list`: your jobs (and the shared examples) of that kind and state ("all": any), newest first."""
    return table(state.manager().jobs(client=state.who(request)[0]), kind, job_state)


def table(jobs, kind: str = ALL, job_state: str = ALL) -> pd.DataFrame:
    """The job list as shown: filtered, titles and messages without server paths."""
    kind = inputs.choice(kind or ALL, "Kind", KIND_FILTER)
    job_state = inputs.choice(job_state or ALL, "State", STATE_FILTER)
    rows = [{"id": j.id, "kind": j.kind, "state": j.state, "progress": f"{j.step} / {j.total or '?'}",
             "title": scrub(j.title), "created": j.created, "duration": duration(j.run_s) if j.run_s else "",
             "message": scrub(j.message)}
            for j in jobs if kind in (ALL, j.kind) and job_state in (ALL, j.state)]
    return pd.DataFrame(rows, columns=COLUMNS)


@user_errors
def job_cancel(job_id: str, request: gr.Request = None) -> str:
    """API `job_cancel`: stop a queued or running job (an erasure checkpoints first); only the visitor
    who started a job may cancel it."""
    job_id = inputs.job_id(job_id)
    state.manager().cancel(job_id, state.who(request)[0])
    return f"cancelling {job_id}: it stops at its next step and can be resumed"


@user_errors
def job_resume(job_id: str, request: gr.Request = None) -> str:
    """API `job_resume`: continue an interrupted, cancelled or failed job from its last checkpoint."""
    job_id = inputs.job_id(job_id)
    state.manager().resume(job_id, *state.who(request))
    return f"{job_id} queued to resume: {resume_point(job_id)}"


def resume_point(job_id: str) -> str:
    """What a resume keeps, in words: an erasure restarts from its last checkpoint, so its step counter
    may go back (e.g. from 17 to 12); the steps after it are run again with the same random draws."""
    from erasure import RunFolder

    job = state.manager().folder(job_id)
    if job.kind != "erase":
        return "concepts already scored are kept (cached), the rest are computed"
    ckpts = RunFolder(job.run_path).checkpoints() if job.run_path.exists() else []
    if not ckpts:
        return "it has no checkpoint yet, so it starts again from step 0"
    step = int(ckpts[-1].name.removeprefix("step_"))
    return (f"it continues from its last checkpoint, at step {step}; the steps after it are run again with the "
            "same random draws (the result equals an uninterrupted run's)")


@user_errors
def job_delete(job_id: str, request: gr.Request = None) -> str:
    """API `job_delete`: remove a finished, failed, cancelled or interrupted job with its files."""
    job_id = inputs.job_id(job_id)
    state.manager().delete(job_id, state.who(request)[0])
    return f"deleted {job_id}"


@user_errors
def job_rerun(job_id: str, request: gr.Request = None) -> tuple[str, str]:
    """API `job_rerun`: a new job with the same settings; returns (message, the new job's id)."""
    new = state.manager().rerun(inputs.job_id(job_id), *state.who(request))
    return f"{job_id} started again as {new}", new


class OpenJob(NamedTuple):
    """What the Jobs tab's Open does, by name (ui.live.open_job wires it): the tab that shows a job and the
    id for that tab's picker."""

    tab: Any  # "erase" | "results" | "spectrum"
    erase: Any  # the Erase tab's picker (gr.skip(): unchanged)
    results: Any  # the Results view's picker
    spectrum: Any  # the Spectrum tab's picker


def stale_message(job_id: str) -> str:
    """A Cancel/Resume message clears when another job becomes the subject (it named the last one)."""
    return ""


def queue_text(job_id: str) -> str:
    """Where a queued job waits: " · next in the queue" or " · 2 jobs ahead in the queue"."""
    ahead = state.manager().position(job_id)
    if ahead is None:
        return ""
    return " · next in the queue" if ahead == 0 else f" · {ahead} job{'s' if ahead > 1 else ''} ahead in the queue"


@user_errors
def job_open(job_id: str, request: gr.Request = None) -> OpenJob:
    """The tab that shows a job (a finished erasure: Results; an erasure under way: Erase; a spectrum:
    Spectrum) and the job id for that tab's picker."""
    info = state.manager().info(state.job(job_id, request).id)
    if info.kind == "spectrum":
        return OpenJob("spectrum", gr.skip(), gr.skip(), info.id)
    if info.state == "done":
        return OpenJob("results", gr.skip(), info.id, gr.skip())
    return OpenJob("erase", info.id, gr.skip(), gr.skip())


def pick_row(rows: pd.DataFrame, evt: gr.SelectData) -> str:
    """A click on a row of the table picks its job."""
    return str(rows.iloc[evt.index[0]]["id"]) if rows is not None and len(rows) else gr.skip()


def build() -> SimpleNamespace:
    """The tab; returns the table, its filters, the job picker and the buttons app.py wires to other tabs."""
    with gr.Tab("Jobs", id="jobs"):
        with gr.Row():
            kind = gr.Radio(list(KIND_FILTER), value=ALL, label="Kind", elem_id="jobs-kind")
            job_state = gr.Dropdown(list(STATE_FILTER), value=ALL, label="State", elem_id="jobs-state")
            refresh = gr.Button("Refresh", scale=0)
        j_table = gr.Dataframe(table([]), label="Jobs (newest first; click a row to pick it)", elem_id="job-table",
                               interactive=False)
        with gr.Row():
            pick = gr.Dropdown([], label="Job", allow_custom_value=True, elem_id="jobs-pick", scale=2)
            b_open = gr.Button("Open", variant="primary", elem_id="jobs-open", scale=0)
            b_cancel = gr.Button("Cancel", elem_id="jobs-cancel", scale=0)
            b_resume = gr.Button("Resume", elem_id="jobs-resume", scale=0)
            b_rerun = gr.Button("Run again", elem_id="jobs-rerun", scale=0)
            b_delete = gr.Button("Delete", variant="stop", elem_id="jobs-delete", scale=0)
        msg = gr.Markdown(elem_id="jobs-message")
        filters = [kind, job_state]
        for w in filters:
            w.change(job_table, filters, j_table, api_visibility="private")
        refresh.click(job_table, filters, j_table, api_name="job_list")
        j_table.select(pick_row, j_table, pick, api_visibility="private")
        pick.change(stale_message, pick, msg, api_visibility="private", show_progress="hidden")
        b_cancel.click(job_cancel, pick, msg, api_visibility="private")
        b_resume.click(job_resume, pick, msg, api_visibility="private")
        b_delete.click(job_delete, pick, msg, api_name="job_delete").then(job_table, filters, j_table,
                                                                           api_visibility="private")
        b_rerun.click(job_rerun, pick, [msg, pick], api_name="job_rerun")
    return SimpleNamespace(table=j_table, filters=filters, pick=pick, open=b_open)
