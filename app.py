"""Concept Sensitivity Explorer — the web app.

    python app.py            # serves on http://127.0.0.1:7860 (GRADIO_SERVER_NAME / PORT to change)

UI code only wires events: compute lives in `backends`, `erasure`, `sensitivity`, `evaluation` and
`jobs`; each tab is one module of `ui` (its builder and its thin handlers), and `ui.state` holds what
they share (the limits, the job manager, the one loaded pipeline). Erasures and spectra run as
background jobs (folders under CSE_JOBS_DIR, default runs/jobs), one at a time, so the job list survives
page reloads and restarts. Interactive sampling (load, generate) and heavy sampling (compare, export)
have a queue each, so a large compare never holds up a Generate; a compare works in chunks and can be
cancelled. Every action is a named API endpoint; every input is checked (ui.inputs) against the limits
of a shared machine (jobs.limits, CSE_MAX_* variables) before any work starts, and every error is one
message without server paths (ui.guard).
"""

from __future__ import annotations

import logging
import os

import gradio as gr

from backends import EMBEDDED, PRESETS
from ui import compare_tab, erase_tab, jobs_tab, live, model_tab, results_tab, spectrum_tab
from ui.guard import Blocks
from ui.theme import CSS, theme


def build_ui() -> gr.Blocks:
    """The page: the shared model picker, one builder per tab, and the live updates of the job pickers."""
    with Blocks(title="Concept Sensitivity Explorer") as demo:
        gr.Markdown("# Concept Sensitivity Explorer\nErase a concept from a text-to-image model and see what else it hurt.")
        model = gr.Dropdown(list(PRESETS), value=EMBEDDED, label="Model", allow_custom_value=True,
                            info="a preset or a hub repo id 'owner/name' (local folders: CSE_MODEL_DIRS)")
        with gr.Tabs() as tabs:
            device, dtype = model_tab.build(model)
            erase = erase_tab.build(demo, model)
            results = results_tab.build((device, dtype))
            spectrum = spectrum_tab.build(model)
            compare_runs = compare_tab.build(model, device, dtype)
            jobs = jobs_tab.build()
        # in the order of live.refresh_choices' outputs
        pickers = [jobs.table, erase.job, spectrum.run, spectrum.job, compare_runs, results.job, jobs.pick]
        live.wire(demo, pickers, erase, spectrum, results, jobs, tabs)
    return demo


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    build_ui().queue(default_concurrency_limit=1).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("PORT", "7860")),
        theme=theme(), css=CSS,
    )
