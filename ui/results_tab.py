"""The Results view of one erasure (docs/design.md §5): what ran, base and erased side by side on the same
seeds, what the concept search did over training, and the run's spectrum with a drill-down from a
concept to its pictures. The Erase tab opens it when the job it watches finishes."""

from __future__ import annotations

from collections.abc import Sequence
from types import SimpleNamespace
from typing import Any, NamedTuple

import gradio as gr
import numpy as np
import pandas as pd

from sensitivity.vocab import APP_VOCABULARIES as VOCABULARIES

from . import inputs, state
from .compare_tab import recognition_table
from .guard import Number, Slider, md_text, scrub
from .guard import handler as user_errors
from .helptext import glossary, placeholder

KEPT = {"shapes": ["a red heart", "a green circle", "a yellow moon", "a blue square"],  # the grid's kept rows, by world
        "emoji": ["a dog face", "a hamburger", "a house", "an automobile"],
        None: ["a photo of a dog", "a city street at night", "a bowl of fruit", "a portrait of a woman"]}
GRID_STEPS = 20  # sampler steps of the before/after images (the Compare tab's default)
STRIP_TILE = 96  # pixels per image of the training strips (32-px images enlarged 3x: readable on a laptop)
HIT_ROWS = 3  # rows of the grid given to the concepts the erasure hit hardest (evaluation.damage)
DRILL_PROMPTS = 4  # captions of a world attribute drawn when a spectrum concept is clicked (one row each)


def default_prompts(model: str, targets: list[str], adversarial: str | None = None, hit: Sequence[str] = ()) -> str:
    """The before/after rows: each target (ShapesWorld: in two colours; EmojiWorld: as drawn and in
    grayscale), the concepts the erasure hit hardest (evaluation.damage; they replace kept rows), the run's
    adversarial concept when its search concentrated (was it kept?), and concepts it should not touch."""
    from backends.prompts import model_traits
    from emojiworld.captions import prompt

    world = model_traits(model).world
    if world == "shapes":
        rows = [p for t in targets[:2] for p in _world_rows(t, TARGET_PAIRS)]
        rows += [_world_rows(c, HIT_PAIR)[0] for c in hit[:HIT_ROWS]]
        kept = [p for p in KEPT["shapes"] if not set(p.split()) & {*targets, *hit}]  # no erased or hit word
    elif world == "emoji":
        rows = [prompt(t, style) for t in targets[:2] for style in (None, "grayscale")]
        kept = [p for p in KEPT["emoji"] if not any(p.endswith(f" {t}") for t in targets)]
    else:
        rows, kept = [f"a photo of a {t}" for t in targets[:3]], KEPT[None]
    if adversarial and not any(adversarial in p.split() for p in rows + kept):
        rows.append(f"a {adversarial}")
    return "\n".join(rows + kept[: max(2, 7 - len(rows))])


def _world_rows(concept: str, pairs: tuple[tuple[str, str], ...]) -> list[str]:
    """ShapesWorld prompts that show `concept`, one per (shape, colour) pair: a shape in each pair's colour, a
    colour on each pair's shape, a background or style on each pair's coloured shape (anything else:
    "a {concept}")."""
    from shapesworld.captions import prompt
    from shapesworld.world import BACKGROUNDS, COLOURS, SHAPES, STYLES

    if concept in SHAPES:
        return [prompt(concept, colour) for _, colour in pairs]
    if concept in COLOURS:
        return [prompt(shape, concept) for shape, _ in pairs]
    if concept in BACKGROUNDS:
        return [prompt(shape, colour, concept) for shape, colour in pairs]
    if concept in STYLES:
        return [prompt(shape, colour, style=concept) for shape, colour in pairs]
    return [f"a {concept}"]


TARGET_PAIRS = (("star", "red"), ("heart", "blue"))  # an erased concept's two grid rows
HIT_PAIR = (("circle", "red"),)  # a hit concept's one row


def summary(job, events: list[dict], request=None) -> tuple[str, list[str], str | None, list[str]]:
    """Markdown of an erase job: the plain headline (what the target became, who else was hurt: headline()),
    what ran (method, targets, settings, time) and how the concept search ended; with the targets, the final
    adversarial concept (None when the search stayed near uniform) and the concepts the erasure hit hardest."""
    from erasure import RunFolder, get_method

    info, params = state.manager().info(job.id), job.record["params"]
    folder = RunFolder(job.run_path)
    record = folder.record_or_empty()
    config = record.get("config", {})
    done = next((e for e in reversed(events) if e["kind"] == "done"), None)
    last = next((e for e in reversed(events) if e["kind"] == "step"), {})
    method = get_method(params["method"])
    weights = record.get("dtype", params.get("dtype"))
    lines = [f"{method.SPEC.summary}. Model **{params['model']}**, presets `{params['presets'] or 'none'}`, "
             f"{config.get('steps', '?')} steps, lr {config.get('lr', '?')}, parameters "
             f"`{config.get('param_group', '?')}`, weights {weights}" + (f", {done['elapsed_s']:.0f} s." if done else ".")]
    diagnostics = folder.search()
    line, adversarial = search_line(diagnostics, last)
    lines.append(line)
    text, hit = headline(job, request)
    parts = [f"#### {md_text(state.run_label(job.id))} — {info.state}", example_line(job.id), text,
             " ".join(p for p in lines if p)]
    return "\n\n".join(scrub(p) for p in parts if p), list(params["targets"]), adversarial, hit


def example_line(job_id: str) -> str:
    """What a shipped example is, for a first visit: "" for any other job."""
    from jobs import examples

    if job_id not in {e["id"] for e in examples.shipped()}:
        return ""
    return ("*A shipped example (read-only), finished before you came: the base model (left) and the erased "
            "model (right) draw the same prompts on the same seeds. Try your own in the **Erase** tab; other "
            "examples are in the picker above.*")


def headline(job, request=None) -> tuple[str, list[str]]:
    """The run's plain headline from its judged world concepts (evaluation.damage, measured once by the job)
    and its spectrum when one finished; with the other concepts it hit hardest. ("", []) when not judged."""
    from erasure import RunFolder
    from evaluation import damage

    rows = RunFolder(job.run_path).damage()
    if rows is None:
        return "", []
    judged = damage.from_json(rows)
    spectrum = state.run_spectrum(job.id, done=True, request=request)
    df = None
    if spectrum:
        from sensitivity import load_spectrum

        df = load_spectrum(state.manager().folder(spectrum).spectrum_path)
    return f"**In short:** {md_text(damage.headline(judged, df))}", [d.concept for d in damage.worst_hit(judged)]


def search_line(diagnostics: dict | None, last: dict | None = None) -> tuple[str, str | None]:
    """How far the concept search moved from uniform (erasure.diagnostics: a run's RunFolder.search()), in
    plain words, and the adversarial concept when the search concentrated on one (None when it stayed near
    uniform: its argmax is noise, so it is neither bold nor added to the grid). ("", None) with no search."""
    from erasure.diagnostics import summary as search_summary

    s = search_summary(diagnostics) if diagnostics else {}
    if not s:
        return "", None
    switches = "" if s["switch_rate"] is None else f"; the sampled concept changed on {100 * s['switch_rate']:.0f} % of steps"
    numbers = (f"entropy {s['entropy_ratio']:.2f} of uniform (1 = uniform), its most likely concept "
               f"{s['top_ratio']:.2f}× as likely as uniform{switches}")
    top = (last or {}).get("concept")
    if not all(s["concentrated"]):
        return (f"The search stayed near uniform ({numbers}): it singled out no adversarial concept; the one it "
                f"sampled last ({_named(top)}) is noise, not a finding."), None
    top5 = ", ".join(f"{_named(w)} {p:.3f}" for w, p in (last or {}).get("top5", []))
    return (f"The search concentrated on **{_named(top)}** ({numbers}; top 5: {top5})."), top


def _named(concept: str | None) -> str:
    return "(empty prompt)" if concept == "" else str(concept)


class ResultsView(NamedTuple):
    """The outputs of API `results`, by name: build() wires the components in this order, the handler fills
    the values in it (a Gradio output list is positional)."""

    summary: Any  # markdown: what ran, and how the search ended
    prompts: Any  # the before/after grid's default prompts, one per line
    heatmap: Any  # the search distribution over steps (ui.plots)
    sampled: Any  # the concept sampled each step and its preservation loss
    centres: Any  # every centre's loss at the snapshots
    strips: Any  # the trajectory strip sheet (an image)
    spectrum_job: Any  # the run's latest spectrum job ("" if none)
    link: Any  # a URL that opens this result (the page's address with ?job=<id>)


@user_errors
def results_summary(job_id: str, request: gr.Request = None) -> ResultsView:
    """API `results`: the run's summary, the default before/after prompts, the search heatmaps, the
    snapshot strips, and the run's latest spectrum job (its id; empty if none)."""
    from erasure import trajectory as tr

    from . import plots
    from .erase_tab import run_events

    job = state.erase_job(job_id, request)
    events = run_events(job)  # read once: summary, search history and strips all come from them
    text, targets, adversarial, hit = summary(job, events, request)
    history = next(iter(tr.search_history(events).values()), None)  # the first target's search
    figures = ((plots.search_heatmap(history), plots.sampled_figure(history), plots.centre_loss_heatmap(history))
               if history else (None, None, None))
    # 96-px tiles (32-px images x 3), each column labelled with the concept the search kept at that step
    kept = {e["step"]: e["concept"] for e in events if e["kind"] == "step" and e.get("concept") is not None}
    strips = plots.strip_sheet(tr.snapshot_strips(job.run_path, events), tile=STRIP_TILE, concepts=kept) if events else None
    prompts = default_prompts(job.record["params"]["model"], targets, adversarial, hit)
    return ResultsView(text, prompts, *figures, strips, state.run_spectrum(job.id, request=request),
                       share_link(job.id, request))


def share_link(job_id: str, request=None) -> str:
    """The address of the page the visitor is on (its Referer) with ?job=<id>: whoever opens it sees this
    result (a job id is a capability: jobs.store); just the query when the page's address is unknown."""
    from urllib.parse import urlsplit, urlunsplit

    page = (request.headers.get("referer") or "") if request is not None else ""
    parts = urlsplit(page)
    if not parts.scheme.startswith("http") or not parts.netloc:
        return f"?job={job_id}"
    return urlunsplit((parts.scheme, parts.netloc, parts.path or "/", f"job={job_id}", ""))


def _compare(job_id: str, prompts: list[str], n_seeds: int, device: str, dtype: str, request, progress):
    """The base model and this run on the same prompts and seeds 0..n-1 (evaluation.compare)."""
    from backends.safety import NudityDetector
    from evaluation.compare import compare

    run, job = state.done_run(job_id, request), state.erase_job(job_id, request)
    model = job.record["params"]["model"]
    state.BUDGET.spend(request, 2 * len(prompts) * n_seeds * GRID_STEPS)  # base and erased
    with state.cancellable(request, background=True) as token:
        result = compare(state.pipeline(model, device, dtype), {state.run_label(job.id): str(run)}, prompts,
                         list(range(n_seeds)), job.record["params"]["targets"],
                         state.sampler(GRID_STEPS, 5.0), detector=NudityDetector(), cancel=token,
                         progress=lambda done, total: progress(done / total, desc="sampling base and erased"))
    return model, result


@user_errors
def results_grid(job_id: str, prompts: str, n_seeds: float, device: str = state.DEVICE, dtype: str = "float32",
                 request: gr.Request = None, progress=gr.Progress()) -> tuple[np.ndarray, str]:  # noqa: B008
    """API `results_grid`: one image, a row per prompt with the base model's images on the left and the
    erased model's on the right (same seeds in the same columns), and on the embedded model how many
    images the world classifier recognises, with the erasure and preservation rates over every concept of
    the world when the run was judged (evaluation.damage). Drawn once per run and settings: the run folder
    keeps the last sheet (RunFolder.grid), so opening a result again shows it at once."""
    from erasure import RunFolder
    from evaluation.compare import side_by_side

    lines = inputs.prompt_lines(prompts, "Prompts", state.LIMITS.max_prompts)
    n = inputs.whole(n_seeds, "Seeds", 1, state.LIMITS.max_seeds)
    run = RunFolder(state.done_run(job_id, request))
    key = {"prompts": lines, "seeds": n, "steps": GRID_STEPS, "guidance": 5.0, "dtype": dtype}
    cached = run.grid(key)
    if cached is not None:
        from PIL import Image

        return np.asarray(Image.open(cached[0]).convert("RGB")), cached[1]
    model, result = _compare(job_id, lines, n, device, dtype, request, progress)
    # rates over the whole world when the run was judged; else over these rows, and said so
    image, text = side_by_side(result)[0], recognition_table(model, result, rates=run.damage() is None) + world_rates(run)
    run.save_grid(key, image, text)
    return image, text


def world_rates(run) -> str:
    """The run's erasure and preservation rates over every concept of its world (evaluation.damage), as a
    line under the grid's table; "" when the run was not judged."""
    from evaluation import damage

    rows = run.damage()
    if rows is None:
        return ""
    r = damage.rates(damage.from_json(rows))
    return (f"\n\nOver every concept of the world (4 seeds each, the world classifier as judge): erasure rate "
            f"{r['erasure']:.0f} %, preservation rate {r['preservation']:.0f} % over the {r['kept_concepts']} "
            f"other concepts (base model {r['preservation_base']:.0f} %).")


@user_errors
def results_concept(job_id: str, concept: str, n_seeds: float, device: str = state.DEVICE, dtype: str = "float32",
                    request: gr.Request = None, progress=gr.Progress()) -> np.ndarray:  # noqa: B008
    """API `results_concept`: one concept of the spectrum drawn by the base and the erased model, same seeds."""
    from evaluation.compare import side_by_side

    concept = inputs.text(concept, "Concept", inputs.MAX_PROMPT, required=False)
    params = state.erase_job(job_id, request).record["params"]
    n = inputs.whole(n_seeds, "Seeds", 1, state.LIMITS.max_seeds)
    prompts = drill_prompts(params["model"], params["targets"], concept)
    return side_by_side(_compare(job_id, prompts, n, device, dtype, request, progress)[1])[0]


def drill_prompts(model: str, targets: list[str], concept: str) -> list[str]:
    """The drill-down's rows: the prompts the spectrum drew the concept with (a world colour on several shapes:
    a row for each of 4); a ShapesWorld shape, drawn with one prompt, also in three colours, so the drill-down
    is a before/after grid rather than one row."""
    from backends.prompts import model_traits
    from sensitivity.rows import drawn_prompts
    from shapesworld.captions import prompt
    from shapesworld.world import SHAPES

    prompts = drawn_prompts(model, targets, concept, DRILL_PROMPTS)
    if model_traits(model).world == "shapes" and concept in SHAPES:
        prompts += [prompt(concept, c) for c in ("red", "blue", "green")]
    return list(dict.fromkeys(prompts))[:DRILL_PROMPTS]


@user_errors
def results_spectrum_start(job_id: str, vocab: str, k: float, proxy_only: bool, request: gr.Request = None) -> str:
    """API `results_spectrum_start`: queue the spectrum of this run (its targets, its erased model)."""
    from sensitivity import SpectrumRequest

    state.done_run(job_id, request)
    job = state.erase_job(job_id, request)
    params = job.record["params"]
    config = {"vocab": inputs.choice(vocab, "Vocabulary", VOCABULARIES), "dtype": state.JOB_DTYPE,
              "k": inputs.whole(k, "Samples per concept (k)", 1, state.LIMITS.max_k),
              "proxy_only": inputs.flag(proxy_only, "Proxy only"), "steps": GRID_STEPS}
    request_ = SpectrumRequest(params["model"], tuple(params["targets"]), config, device=state.DEVICE).to_dict()
    request_["run"] = job.id
    return state.manager().submit("spectrum", request_, *state.who(request))


@user_errors
def results_spectrum(spectrum_job: str, top_n: float = 15, request: gr.Request = None) -> tuple:
    """API `results_spectrum`: the attached spectrum job's state, its most-affected plot and top-N table."""
    from sensitivity import figures
    from sensitivity.results import SpectrumFolder

    if not spectrum_job:
        return ("No spectrum of this run yet: choose a vocabulary and press *Compute spectrum*.",
                placeholder("no spectrum of this run yet"), empty_table())
    job = state.job(spectrum_job, request, "Spectrum job", "spectrum")
    info = state.manager().info(job.id)
    text = f"Spectrum **{info.state}** — {info.step} / {info.total or '?'} concepts. {md_text(info.title)}"
    folder = SpectrumFolder(job.spectrum_path)
    if info.state != "done" or not folder.finished:
        done = "the most affected concepts appear here when it finishes" if info.state in ("running", "queued") \
            else f"no spectrum: the job is {info.state}"
        return text + "\n\nIts plot and table appear here when it finishes.", placeholder(done), empty_table()
    df = folder.load()
    column = "delta" if df["delta"].notna().any() else "proxy"
    n = inputs.whole(top_n, "Top N", 1, 1000)  # the table; the plot shows the top 10
    table = df.sort_values(column, ascending=False).head(n)[["concept", "kind", column]].round(4)
    return (text + "\n\nClick a concept in the table to see it drawn before and after.",
            figures.top_affected(df, min(n, 10), column), table)


def empty_table() -> pd.DataFrame:
    """The top table's columns with no rows (an empty table without them shows '1 2 3')."""
    return pd.DataFrame(columns=["concept", "kind", "delta"])


def picked_concept(evt: gr.SelectData) -> str:
    """The concept of the table row the user clicked (its first column)."""
    return str((evt.row_value or [evt.value])[0])


def build(model_device_dtype) -> SimpleNamespace:
    """The tab; returns its job picker and what the Erase tab's watcher updates when a job finishes."""
    device, dtype = model_device_dtype
    with gr.Tab("Results", id="results"):
        with gr.Row(equal_height=True):
            r_job = gr.Dropdown([], label="Erasure (a finished erase job)", allow_custom_value=True,
                                elem_id="results-job", scale=3, min_width=240)
            r_link = gr.Textbox(label="Link to this result (whoever opens it sees it)", interactive=False,
                                buttons=["copy"], elem_id="results-link", scale=2, min_width=240)
            r_show = gr.Button("Show results", elem_id="results-show", scale=0, min_width=120)
        r_summary = gr.Markdown("Pick a finished erasure, or start one in the Erase tab: its results open here.",
                                elem_id="results-summary")
        # one screen: before/after on the left, the search and the spectrum beside it (a laptop's 1280 px)
        with gr.Row():
            with gr.Column(scale=5):
                gr.Markdown("**Before** (base model, left) **and after** (erased, right), the same seeds")
                r_grid = gr.Image(label="Before and after", show_label=False, type="numpy",
                                  elem_id="results-grid", buttons=["download", "fullscreen"],
                                  placeholder="the images appear here once the run is done")
                r_recognised = gr.Markdown(elem_id="results-recognised")
            with gr.Column(scale=4):
                r_heat = gr.Plot(label="Search distribution over training", elem_id="results-heatmap")
                r_spec_status = gr.Markdown(elem_id="results-spectrum-status")
                r_spec_plot = gr.Plot(placeholder("no spectrum of this run yet"), label="Spectrum: the most affected concepts",
                                      elem_id="results-spectrum-plot")
        with gr.Accordion("What the words mean", open=False, elem_id="results-glossary"):
            gr.Markdown(glossary())
        with gr.Accordion("Prompts and seeds of the before / after image", open=False):
            with gr.Row():
                r_prompts = gr.Textbox(lines=4, scale=3, elem_id="results-prompts",
                                       label="Prompts (one per line; rows naming the erased concept are marked x)")
                with gr.Column(scale=1):
                    r_seeds = Slider(1, state.LIMITS.max_seeds, value=4, step=1, label="Seeds")
                    r_grid_go = gr.Button("Draw before / after", variant="primary", elem_id="results-grid-go")
        gr.Markdown("#### What the concept search did over training")
        with gr.Row():
            r_centres = gr.Plot(label="Damage to every concept of the search space", elem_id="results-centres")
            r_sampled = gr.Plot(label="Sampled concept per step", elem_id="results-sampled")
        r_strips = gr.Image(label="Images over training (one fixed start code)", show_label=False, type="numpy",
                            elem_id="results-strips", buttons=["download", "fullscreen"],
                            placeholder="no snapshots: set 'trajectory image every N steps' above 0")
        gr.Markdown("#### Spectrum of this run: which concepts the erasure hurt")
        with gr.Row():
            r_vocab = gr.Dropdown(list(VOCABULARIES), value="world", label="Vocabulary", scale=2)
            r_k = Number(value=4, precision=0, label="Samples per concept (k)", scale=1, elem_id="results-k",
                         info="images per concept and model; the proxy needs none")
            r_proxy = gr.Checkbox(False, label="Proxy only (fast: no sampling)", scale=1, elem_id="results-proxy")
            r_spec_go = gr.Button("Compute spectrum", elem_id="results-spectrum-go", scale=1)
        r_spec_job = gr.Textbox(label="Spectrum job", interactive=False, elem_id="results-spectrum-job")
        with gr.Row():
            r_spec_table = gr.Dataframe(empty_table(), label="Most affected concepts (click one)", interactive=False,
                                        elem_id="results-spectrum-table")
            with gr.Column():
                r_concept = gr.Textbox(label="Concept (or type one and press Enter)", elem_id="results-concept")
                r_drill = gr.Image(label="The concept before / after", show_label=False, type="numpy", elem_id="results-drill",
                                   buttons=["download", "fullscreen"], placeholder="click a concept in the table")
        views = list(ResultsView(r_summary, r_prompts, r_heat, r_sampled, r_centres, r_strips, r_spec_job, r_link))
        # the named endpoints first: a function's second registration gets a numbered API name
        grid_args = ([r_job, r_prompts, r_seeds, device, dtype], [r_grid, r_recognised])
        r_grid_go.click(results_grid, *grid_args, api_name="results_grid", concurrency_id="heavy")
        r_concept.submit(results_concept, [r_job, r_concept, r_seeds, device, dtype], r_drill,
                         api_name="results_concept", concurrency_id="heavy")
        shown = r_job.change(results_summary, r_job, views, api_name="results")
        shown.success(results_grid, *grid_args, api_visibility="private", concurrency_id="heavy")
        r_show.click(results_summary, r_job, views, api_visibility="private")
        r_spec_go.click(results_spectrum_start, [r_job, r_vocab, r_k, r_proxy], r_spec_job,
                        api_name="results_spectrum_start")
        r_spec_job.change(results_spectrum, r_spec_job, [r_spec_status, r_spec_plot, r_spec_table],
                          api_name="results_spectrum")
        r_spec_table.select(picked_concept, None, r_concept, api_visibility="private").success(
            results_concept, [r_job, r_concept, r_seeds, device, dtype], r_drill, api_visibility="private",
            concurrency_id="heavy")
    return SimpleNamespace(job=r_job, spectrum_job=r_spec_job, spectrum_views=[r_spec_status, r_spec_plot, r_spec_table])
