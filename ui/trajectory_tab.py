"""The Trajectory tab: the adversarial concept per step and the image strips of an erase job."""

from __future__ import annotations

import gradio as gr

from erasure.trajectory import concept_timeline, snapshot_strips

from . import state
from .erase_tab import run_events
from .guard import handler as user_errors


@user_errors
def trajectory(job_id: str) -> tuple:
    """API `trajectory`: concept timeline and the image strips G(theta'_t, z_T, c_e) / (c_a)."""
    job = state.erase_job(job_id)
    strips = snapshot_strips(job.run_path) if (job.run_path / "config.json").exists() else {}

    def strip(name: str) -> list:
        return [(str(path), f"step {step}") for step, path in strips.get(name, [])]

    return concept_timeline(run_events(job)), strip("ce"), strip("ca")


def build() -> gr.Dropdown:
    """The tab; returns its job picker."""
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
