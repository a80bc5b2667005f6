"""Concept Sensitivity Explorer — the web app.

    python app.py            # serves on http://127.0.0.1:7860 (GRADIO_SERVER_NAME, GRADIO_SERVER_PORT or PORT)

UI code only wires events: compute lives in `backends`, `erasure`, `sensitivity`, `evaluation` and
`jobs`; each tab is one module of `ui` (its builder and its thin handlers), and `ui.state` holds what
they share (the limits, the job manager, the one loaded pipeline). Erasures and spectra run as
background jobs (folders under CSE_JOBS_DIR, default runs/jobs), one at a time, so the job list survives
page reloads and restarts. Interactive sampling (load, generate) and heavy sampling (compare, export)
have a queue each, so a large compare never holds up a Generate; a compare works in chunks and can be
cancelled. Every action is a named API endpoint; every input is checked (ui.inputs) against the limits
of a shared machine (jobs.limits, CSE_MAX_* variables) before any work starts, and every error is one
message without server paths (ui.guard). A visitor is whoever holds a cookie this server signed
(ui.visitors): it owns its jobs, and it sees only those and the shared examples.
"""

from __future__ import annotations

import logging
import os

import gradio as gr

from backends import EMBEDDED
from backends.loader import listed_presets
from jobs import examples
from ui import compare_tab, erase_tab, jobs_tab, live, model_tab, results_tab, spectrum_tab
from ui.guard import Blocks
from ui.theme import CSS, theme

UPLOAD_MAX_AGE_S = int(os.environ.get("CSE_UPLOAD_MAX_AGE_S", "3600"))  # uploads are read at submit time


def build_ui() -> gr.Blocks:
    """The page: the shared model picker, one builder per tab, and the live updates of the job pickers."""
    # delete_cache: uploaded files (and served images) older than UPLOAD_MAX_AGE_S are removed, hourly
    with Blocks(title="Concept Sensitivity Explorer", delete_cache=(min(3600, UPLOAD_MAX_AGE_S), UPLOAD_MAX_AGE_S)) as demo:
        gr.Markdown("# Concept Sensitivity Explorer\nErase a concept from a text-to-image model and see what else it hurt.")
        model = gr.Dropdown(listed_presets(), value=EMBEDDED, label="Model", allow_custom_value=True,
                            info="a preset, a hub repo id this server allows (CSE_ALLOWED_MODELS) or a folder under "
                                 "CSE_MODEL_DIRS")
        # a first visit opens on a finished example's Results (ui.live.restore picks it) when examples ship
        with gr.Tabs(selected="results" if examples.first() else None) as tabs:
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


def launch_options() -> dict:
    """How the app is served: the visitor-cookie middleware (with the server's secret), the upload size
    enforced while a file is received (a larger one is cut off, not stored), address and port."""
    from starlette.middleware import Middleware

    from ui import state, visitors

    visitors.configure(visitors.load_secret(state.JOBS_DIR))
    visitors.trusted_proxies()  # a bad CSE_TRUSTED_PROXIES stops the app here, not at the first request
    port = os.environ.get("GRADIO_SERVER_PORT") or os.environ.get("PORT") or "7860"
    return dict(server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"), server_port=int(port),
                theme=theme(), css=CSS, max_file_size=state.LIMITS.max_upload_bytes,
                app_kwargs={"middleware": [Middleware(visitors.VisitorCookie)]})


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    from ui import state

    state.manager()  # the jobs folder, with the shipped examples in it, before the first request
    build_ui().queue(default_concurrency_limit=1).launch(**launch_options())
