"""The Jobs tab (every job, newest first) and the job actions every tab shares: cancel and resume."""

from __future__ import annotations

import gradio as gr
import pandas as pd

from . import inputs, state
from .guard import client_key, scrub
from .guard import handler as user_errors

COLUMNS = ["id", "kind", "state", "step", "total", "title", "message"]


@user_errors
def job_table() -> pd.DataFrame:
    """API `job_list`: every job, newest first."""
    return table(state.manager().jobs())


def table(jobs) -> pd.DataFrame:
    """The job list as shown: titles and messages without server paths."""
    rows = [j.to_dict() | {"title": scrub(j.title), "message": scrub(j.message)} for j in jobs]
    return pd.DataFrame(rows, columns=list(rows[0]) if rows else COLUMNS)[COLUMNS]


@user_errors
def job_cancel(job_id: str, request: gr.Request = None) -> str:
    """API `job_cancel`: stop a queued or running job (an erasure checkpoints first); only the visitor
    who started a job may cancel it."""
    job_id = inputs.job_id(job_id)
    state.manager().cancel(job_id, client_key(request))
    return f"cancelling {job_id}: it stops at its next step and can be resumed"


@user_errors
def job_resume(job_id: str, request: gr.Request = None) -> str:
    """API `job_resume`: continue an interrupted, cancelled or failed job from its last checkpoint."""
    job_id = inputs.job_id(job_id)
    state.manager().resume(job_id, client_key(request))
    return f"{job_id} queued to resume"


def build() -> gr.Dataframe:
    with gr.Tab("Jobs"):
        j_table = gr.Dataframe(job_table, label="Jobs (newest first)", elem_id="job-table")
        gr.Button("Refresh").click(job_table, None, j_table, api_name="job_list")
    return j_table
