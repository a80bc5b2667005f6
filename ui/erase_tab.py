"""The Erase tab: method and presets prefill the form; the job's status and losses, cancel, resume and
downloads."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any, NamedTuple

import gradio as gr

from backends.loader import listed_presets
from backends.paths import EMOJI
from erasure import CONCEPT_PRESETS as SCOPES
from erasure import PARAM_GROUPS, list_methods
from erasure import SPEED_PRESETS as SPEEDS
from erasure.trajectory import progress

from . import helptext, inputs, state
from .guard import Number, md_text, scrub
from .guard import handler as user_errors
from .jobs_tab import duration, job_cancel, job_resume, queue_text, stale_message
from .plots import loss_figure


def presets(scope: str, speed: str) -> str:
    """The presets string of the form's two choices, e.g. "object,fast"."""
    return f"{inputs.choice(scope, 'Preset: concept type', SCOPES)},{inputs.choice(speed, 'Preset: settings', SPEEDS)}"


@user_errors
def erase_defaults(model: str, method: str, scope: str, speed: str) -> tuple:
    """API `erase_defaults`: the settings the chosen presets give (to prefill the form)."""
    from erasure import EraseRequest

    model, method = state.model_name(model), inputs.choice(method, "Method", list_methods())
    # the settings do not depend on the concept: any placeholder, past the unknown-word guard
    cfg = EraseRequest(model, method, ("x",), presets(scope, speed), force=True).check().config
    return cfg.param_group, cfg.steps, cfg.lr


def erase_defaults_of_example(model: str, method: str, target: str, scope: str, speed: str) -> tuple:
    """An example's form values: its presets' settings (the concept fills the form by itself)."""
    return erase_defaults(model, method, scope, speed)


@user_errors
def erase_start(model: str, method: str, target: str, scope: str, speed: str, param_group: str, steps: float,
                lr: float, snapshot_every: float, request: gr.Request = None) -> str:
    """API `erase_start`: queue an erasure job; returns its id."""
    from erasure import EraseRequest, with_targets

    model, method = state.model_name(model), inputs.choice(method, "Method", list_methods())
    if isinstance(target, str) and not target.strip(" ,"):
        raise ValueError("targets must be a non-empty list of non-empty concepts, e.g. star")
    targets = inputs.concepts(target, "Concept(s) to erase")
    # the field's range; the run's step total (Steps x concepts) against the limit is the request's own check
    n_steps = inputs.whole(steps, "Steps", 1, state.LIMITS.max_erase_steps)
    overrides = {"param_group": inputs.text(param_group, "Parameter group", 20), "steps": n_steps,
                 "lr": inputs.real(lr, "Learning rate", 1e-9, 1.0),
                 "snapshot_every": inputs.whole(snapshot_every, "Trajectory image every N steps", 0, n_steps)}
    # several concepts: Steps counts each concept's steps and the concepts take turns (erasure's rule)
    job = EraseRequest(model, method, tuple(targets), with_targets(presets(scope, speed), method, targets), overrides,
                       state.DEVICE, state.JOB_DTYPE)
    return state.manager().submit("erase", job.to_dict(), *state.who(request))


@user_errors
def erase_status(job_id: str, request: gr.Request = None) -> tuple[str, object]:
    """API `erase_status`: progress (step, ETA, adversarial concept and its top-5) and the loss plot."""
    job = state.job(job_id, request, "Erase job")
    return erase_view(job.id, state.manager().info(job.id))


@user_errors
def erase_view(job_id: str, info) -> tuple[str, object]:
    """The status text and the loss figure of an erase job whose info was read already."""
    if info.kind != "erase":
        raise ValueError(f"{job_id} is a {info.kind} job; pick an erase job")
    job = state.manager().folder(job_id)
    events = run_events(job)
    p = progress(events, run_config(job).get("snapshot_every", 0))
    lines = [f"**{info.state}** — step {max(p['step'], info.step)} / {info.total}"
             + (_eta_text(p, info) if info.state == "running" else queue_text(job_id) if info.state == "queued" else "")
             + (f" · {duration(info.elapsed())} so far" if info.state == "running" else
                f" · ran {duration(info.run_s)}" if info.run_s else ""), md_text(info.title)]
    if p["resumed_at"] is not None and info.state in ("running", "queued"):
        lines.append(f"Resumed from its last checkpoint, at step {p['resumed_at']}: the steps after it are run again "
                     "(with the same random draws, so the result equals an uninterrupted run's).")
    if p["concept"] is not None:
        top = ", ".join(f"{w or '(empty prompt)'} {q:.2f}" for w, q in p["top5"])
        lines.append(f"concept the search preserves now: {p['concept'] or '(empty prompt)'} (top-5: {top})")
    if info.message and info.state in ("failed", "cancelled", "interrupted"):
        lines.append(f"message: {md_text(info.message)}")
    if info.state == "interrupted":
        lines.append("This job was cut off (the app stopped). Press Resume to continue from its last checkpoint.")
    return scrub("\n\n".join(lines)), loss_figure(events)


class EraseForm(NamedTuple):
    """The Erase form's settings, by name: what a picked job ran with (build() wires them in this order)."""

    method: Any
    targets: Any  # comma-separated concepts
    scope: Any  # the concept-type preset
    speed: Any  # the settings preset
    param_group: Any
    steps: Any
    lr: Any
    snapshot_every: Any

    @classmethod
    def unchanged(cls) -> EraseForm:
        return cls(*[gr.skip()] * len(cls._fields))


def erase_settings(job_id: str, request=None) -> EraseForm:
    """The form's values of an erase job (method, concepts, the two presets, parameter
    group, steps, learning rate, snapshot cadence), so the form shows what the selected job ran with."""
    job = state.erase_job(job_id, request)
    params, config = job.record["params"], run_config(job)
    over = params.get("overrides", {})
    names = params.get("presets", "").split(",")
    scope = next((n for n in names if n in SCOPES), gr.skip())
    speed = next((n for n in names if n in SPEEDS), gr.skip())

    def value(key):  # what the job asked for, else what its run resolved, else leave the form alone
        return over.get(key, config.get(key, gr.skip()))

    return EraseForm(params["method"], ", ".join(params["targets"]), scope, speed, value("param_group"),
                     value("steps"), value("lr"), value("snapshot_every"))


def job_settings(job_id: str, request: gr.Request = None) -> EraseForm:
    """The form's values for a picked job; nothing changes for no job or an unreadable one (its status
    line already says why)."""
    try:
        return erase_settings(job_id, request) if job_id else EraseForm.unchanged()
    except (KeyError, ValueError, OSError):
        return EraseForm.unchanged()


def method_help(model: str, method: str, speed: str, steps) -> str:
    """The method's one line, the paper's settings and the expected run time (ui.helptext); "" for a bad value
    (the form's own checks say what is wrong when it is submitted)."""
    try:
        n = inputs.whole(steps, "Steps", 1, state.LIMITS.max_erase_steps)
        method = inputs.choice(method, "Method", list_methods())
        return helptext.run_time(method, speed, n, str(model), measured_here(str(model), method, speed))
    except (ValueError, TypeError):
        return ""


def measured_here(model: str, method: str, speed: str) -> tuple[float, int] | None:
    """(seconds, steps) of this server's latest finished erase job of that model, method and speed preset
    (any visitor's: it measures the machine, not the visitor), or None."""
    from jobs import examples

    manager, shipped = state.manager(), {e["id"] for e in examples.shipped()}  # examples ran elsewhere
    for info in manager.jobs(kind="erase"):  # newest first (a fresh listing: the form changes rarely)
        if info.state != "done" or not info.run_s or info.id in shipped:
            continue
        params = manager.folder(info.id).record["params"]
        if (params["model"], params["method"]) == (model, method) and speed in params.get("presets", "").split(","):
            return info.run_s, info.total
    return None


def _eta_text(p: dict, info=None) -> str:
    """What a running erasure is doing now, and the time left when its steps have been timed."""
    from jobs.tasks import JUDGING

    if info is not None and info.phase == JUDGING:  # trained: the world's concepts are drawn and judged
        return f" — {md_text(info.message)}"
    if not p["total"]:  # no start event yet
        return " — preparing: loading the model and, for AP's fast preset, building its latent bank"
    if p["phase"] == "picture":
        return f" — drawing the trajectory picture of step {p['step']}" + (
            f"; about {duration(p['eta_s'])} left" if p["eta_s"] else "")
    if p["phase"] == "finishing":
        return " — finishing (last snapshot, saving the result)"
    if not p["eta_s"]:
        return ""
    untimed = p.get("untimed_pictures", 0)
    return f", about {duration(p['eta_s'])} left" + (f" (plus {untimed} trajectory picture{'s' if untimed > 1 else ''} "
                                                   "not yet timed)" if untimed else "")


def run_config(job) -> dict:
    """The resolved config of an erase job's run ({} before it starts)."""
    from erasure import RunFolder

    return RunFolder(job.run_path).record_or_empty().get("config", {})


def run_events(job) -> list[dict]:
    """The step events an erase job's run folder holds so far (none before it starts)."""
    from erasure import RunFolder

    return RunFolder(job.run_path).events() if job.run_path.exists() else []


@user_errors
def download_delta(job_id: str, request: gr.Request = None) -> list[str]:
    """API `download_delta`: the erased tensors (safetensors) and the run's config."""
    from erasure import RunFolder

    run = RunFolder(state.done_run(job_id, request))
    return [str(run.result_path), str(run.record_path)]


@user_errors
def download_diffusers(job_id: str, request: gr.Request = None, progress=gr.Progress()) -> str:  # noqa: B008
    """API `download_diffusers`: a zip of the full diffusers folder with the erasure applied."""
    from erasure import export_zip

    run = state.done_run(job_id, request)
    progress(0, desc="writing the diffusers folder and its zip")  # made once, then reused
    return str(export_zip(run, run.parent / "export" / f"{run.parent.name}-diffusers.zip"))


def build(demo, model) -> SimpleNamespace:
    """The tab; returns the job picker and the views the live updates refresh."""
    with gr.Tab("Erase", id="erase"):
        with gr.Row():
            with gr.Column(scale=1):
                methods = list_methods()
                e_method = gr.Dropdown(helptext.method_choices(), value="ap" if "ap" in methods else methods[0],
                                       label="Method", elem_id="erase-method")
                e_help = gr.Markdown(elem_id="erase-method-help")
                e_target = gr.Textbox(value="star", label="Concept(s) to erase", info=helptext.SETTING["target"],
                                      elem_id="erase-target")
                e_scope = gr.Radio(list(SCOPES), value="object", label="Preset: concept type", info=helptext.SETTING["scope"])
                e_speed = gr.Radio(list(SPEEDS), value="fast", label="Preset: settings", info=helptext.SETTING["speed"])
                e_group = gr.Dropdown(list(PARAM_GROUPS), value="xattn", label="Parameter group",
                                      info=helptext.SETTING["param_group"])
                e_steps = Number(value=300, precision=0, label="Steps", info=helptext.SETTING["steps"], elem_id="erase-steps")
                e_lr = Number(value=1e-3, label="Learning rate", info=helptext.SETTING["lr"], elem_id="erase-lr")
                e_snap = Number(value=25, precision=0, label="Trajectory image every N steps (0 = none)",
                                info=helptext.SETTING["snapshot"], elem_id="erase-snapshot")
                e_start = gr.Button("Start erasure", variant="primary", elem_id="erase-start")
            with gr.Column(scale=2):
                e_job = gr.Dropdown([], label="Erase job", allow_custom_value=True, elem_id="erase-job")
                e_status = gr.Markdown(elem_id="erase-status")
                e_losses = gr.Plot(label="Losses")
                with gr.Row():
                    e_cancel = gr.Button("Cancel", elem_id="erase-cancel")
                    e_resume = gr.Button("Resume", elem_id="erase-resume")
                    e_delta = gr.Button("Download erased weights")
                    e_full = gr.Button("Download diffusers folder", elem_id="erase-export")
                e_msg = gr.Markdown()
                e_files = gr.File(label="Downloads", file_count="multiple", elem_id="erase-files")
        form = [model, e_method, e_scope, e_speed]
        demo.load(erase_defaults, form, [e_group, e_steps, e_lr], api_name="erase_defaults")
        # .input (a user's choice), not .change: showing a picked job's settings must not reset them to the presets'
        for w in (e_method, e_scope, e_speed):
            w.input(erase_defaults, form, [e_group, e_steps, e_lr], api_visibility="private")
        # examples on the embedded worlds: clicking one fills the form with its presets' settings
        examples = [["embedded", "ap", "star", "object", "fast"], ["embedded", "esd", "red", "object", "fast"],
                    ["embedded", "ap", "outline", "style", "fast"], ["embedded", "uce", "heart, moon", "object", "fast"]]
        labels = ["erase star with AP", "erase red with ESD", "erase the outline style with AP",
                  "erase heart and moon with UCE"]
        if EMOJI in listed_presets():  # EmojiWorld's, once its pipeline ships
            examples += [[EMOJI, "ap", "tiger", "object", "fast"], [EMOJI, "esd", "hamburger", "object", "fast"]]
            labels += ["erase tiger with AP (emoji)", "erase hamburger with ESD (emoji)"]
        gr.Examples(examples, [model, e_method, e_target, e_scope, e_speed], [e_group, e_steps, e_lr],
                    erase_defaults_of_example, run_on_click=True, cache_examples=False,
                    label="Examples (the embedded models)", example_labels=labels)
        about = [model, e_method, e_speed, e_steps]
        demo.load(method_help, about, e_help, api_visibility="private")
        for w in (e_method, e_speed, e_steps):
            w.change(method_help, about, e_help, api_visibility="private", show_progress="hidden")
        e_start.click(erase_start, [model, e_method, e_target, e_scope, e_speed, e_group, e_steps, e_lr, e_snap],
                      e_job, api_name="erase_start")
        e_job.change(erase_status, e_job, [e_status, e_losses], api_name="erase_status")
        settings = list(EraseForm(e_method, e_target, e_scope, e_speed, e_group, e_steps, e_lr, e_snap))
        e_job.change(job_settings, e_job, settings, api_visibility="private")
        e_job.change(stale_message, e_job, e_msg, api_visibility="private", show_progress="hidden")
        e_cancel.click(job_cancel, e_job, e_msg, api_name="job_cancel")
        e_resume.click(job_resume, e_job, e_msg, api_name="job_resume")
        e_delta.click(download_delta, e_job, e_files, api_name="download_delta")
        e_full.click(download_diffusers, e_job, e_files, api_name="download_diffusers", concurrency_id="heavy")
    return SimpleNamespace(job=e_job, views=[e_status, e_losses])
