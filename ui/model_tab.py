"""The Model tab: device and dtype (they drive every sampling action of the page), load, Generate, Stop."""

from __future__ import annotations

import gradio as gr
import numpy as np

from backends import DTYPES, generate, grid
from backends.cancel import fork
from backends.vocab import unknown_prompt_words, world_words

from . import inputs, state
from .guard import Number, Slider
from .guard import handler as user_errors
from .helptext import SETTING


@user_errors
def load_model(model: str, device: str, dtype: str, request: gr.Request = None,
               progress=gr.Progress()) -> str:  # noqa: B008 (Gradio's form)
    """API `load_model`: load (or reuse) a pipeline and describe it."""
    from backends.families import denoiser
    from backends.generate import native_size

    model = state.model_name(model)
    progress(0, desc=f"loading {model}")  # one step: the loaders report no finer progress
    with state.interactive(request), state.TURNS.turn():
        pipe = state.pipeline(model, device, dtype)
    net = denoiser(pipe)
    n = sum(p.numel() for p in net.parameters())
    size = native_size(pipe)
    return (f"**{model}** loaded on {device} ({dtype}): {type(pipe).__name__}, {type(net).__name__} "
            f"{n / 1e6:.1f} M parameters, "
            f"{size}×{size} px, scheduler {type(pipe.scheduler).__name__} "
            f"({pipe.scheduler.config.get('prediction_type', 'epsilon')}).")


@user_errors
def generate_grid(model: str, prompt: str, seed: float, n_images: float, steps: float, guidance: float,
                  device: str = state.DEVICE, dtype: str = "float32", request: gr.Request = None,
                  progress=gr.Progress()) -> np.ndarray:  # noqa: B008 (Gradio's form)
    """API `generate`: n images of one prompt from seeds seed, seed+1, ... as one grid image, on the
    device and in the dtype chosen in the Model tab."""
    model = state.model_name(model)
    if isinstance(prompt, str) and not prompt.strip():
        raise ValueError("Enter a prompt, e.g. 'a red star'.")
    prompt = inputs.text(prompt, "Prompt", inputs.MAX_PROMPT)
    most = state.LIMITS.max_images
    n = inputs.whole(n_images, f"Number of images (between 1 and {most})", 1, most)
    settings = state.sampler(steps, guidance)
    seeds = [inputs.seed(seed, "First seed") + i for i in range(n)]
    unknown = unknown_prompt_words(model, prompt)
    if unknown:  # drawn anyway (the user may want to see it), but said once, plainly
        gr.Warning(f"the embedded model never saw {', '.join(map(repr, unknown[:5]))} in training, so those words "
                   "add noise, not content; click its words under the prompt to use them", duration=8)
    state.BUDGET.spend(request, n * settings.steps)
    # CHUNK_IMAGES per call on a fork of the pipeline, passing the turn at every step, weighted by images:
    # visitors' Generates share the machine equally (each seed has its own z_T: the same images)
    chunk = state.CHUNK_IMAGES
    parts = []
    with state.interactive(request), state.cancellable(request) as token:
        for i in range(0, n, chunk):
            part = seeds[i : i + chunk]

            def report(done, total, i=i, part=part):  # this chunk's share of the whole Generate
                progress((i + len(part) * done / total) / n, desc="sampling")

            with state.TURNS.turn(cost=len(part)):  # a step's cost: the images it samples
                pipe = fork(state.pipeline(model, device, dtype))
                parts.append(generate(pipe, [prompt] * len(part), part, settings, cancel=token, progress=report))
    return state.enlarge(grid(np.concatenate(parts), min(len(seeds), 4)))


def world_pickers(model: str) -> tuple:
    """The Model tab's word pickers for the chosen model: ShapesWorld's 24 words as buttons, EmojiWorld's
    concept names in a searchable list (hundreds of them); neither for a model trained on open text."""
    from backends.prompts import model_traits

    world = model_traits(model if isinstance(model, str) else "").world
    names: list[str] = []
    if world == "emoji":
        from backends.loader import ModelUnavailableError
        from backends.vocab import emoji_known

        try:
            names = list(emoji_known(model))
        except ModelUnavailableError:  # its pipeline has not shipped: Load says why; the list stays empty
            names = []
    return gr.Dataset(visible=world == "shapes"), gr.Dropdown(choices=names, value=None, visible=world == "emoji")


def concept_prompt(concept: str | None, prompt: str) -> str:
    """A picked EmojiWorld concept as the prompt its captions use ("a cat face"); the prompt as it was
    for nothing picked."""
    from emojiworld.captions import prompt as caption

    return caption(concept) if isinstance(concept, str) and concept.strip() else prompt


def add_word(prompt: str, sample: list) -> str:
    """A clicked vocabulary word appended to the prompt (a shape replaces nothing: the user edits)."""
    word = sample[0] if isinstance(sample, list | tuple) and sample else ""
    return f"{(prompt or '').rstrip()} {word}".strip() if isinstance(word, str) and word else prompt


@user_errors
def cancel_sampling(request: gr.Request = None) -> str:
    """API `cancel_sampling`: stop this browser session's running Generate and Compare at their next
    sampler step."""
    if not state.cancel_session(request):
        raise ValueError("nothing of yours is sampling; nothing to cancel")
    return "sampling cancelled"


def build(model) -> tuple:
    """The tab; returns its device and dtype pickers (Compare samples with them too)."""
    with gr.Tab("Model"):
        with gr.Row():
            with gr.Column(scale=1):
                device = gr.Dropdown(["cpu", "cuda"], value=state.DEVICE, label="Device")
                dtype = gr.Dropdown(list(DTYPES), value="float32", label="Dtype",
                                    info="weights' precision for Generate and Compare; bfloat16 halves memory "
                                         "(FLUX: ~33 GB instead of ~67 GB)")
                load = gr.Button("Load model")
                info = gr.Markdown(elem_id="model-info")
                prompt = gr.Textbox(value="a red star", label="Prompt", elem_id="generate-prompt")
                words = gr.Dataset(components=["textbox"], samples=[[w] for w in world_words()],
                                   label="The embedded model's words (click to add one to the prompt)",
                                   samples_per_page=len(world_words()), elem_id="world-words")
                concepts = gr.Dropdown([], value=None, filterable=True, visible=False, elem_id="emoji-concepts",
                                       label="The emoji model's concepts (type to search; picking one writes its prompt)")
                seed = Number(value=0, precision=0, label="First seed",
                              info="image i uses seed + i; the same seeds give the same images on every model")
                n_images = Slider(1, state.LIMITS.max_images, value=8, step=1, label="Images")
                steps = Slider(1, state.LIMITS.max_sampler_steps, value=25, step=1, label="Sampler steps",
                               info=SETTING["sampler_steps"])
                guidance = Slider(0, 15, value=5.0, step=0.5, label="Guidance scale", info=SETTING["guidance"])
                with gr.Row():
                    run = gr.Button("Generate", variant="primary")
                    stop = gr.Button("Stop", elem_id="generate-stop")
            with gr.Column(scale=2):
                out = gr.Image(label="Images (same seeds give the same images)", type="numpy", format="png",
                               elem_id="generate-images")
        # several requests at once, so one visitor's long Generate never keeps another's out of the handler;
        # there they take turns chunk by chunk (state.TURNS), one in flight per visitor (state.interactive)
        load.click(load_model, [model, device, dtype], info, api_name="load_model", concurrency_id="interactive",
                   concurrency_limit=state.INTERACTIVE_SLOTS)
        run.click(generate_grid, [model, prompt, seed, n_images, steps, guidance, device, dtype], out, api_name="generate",
                  concurrency_id="interactive", concurrency_limit=state.INTERACTIVE_SLOTS)
        model.change(world_pickers, model, [words, concepts], api_visibility="private")
        concepts.input(concept_prompt, [concepts, prompt], prompt, api_visibility="private", show_progress="hidden")
        words.click(add_word, [prompt, words], prompt, api_visibility="private", show_progress="hidden")
        stop.click(cancel_sampling, None, info, api_name="cancel_sampling", concurrency_limit=None)
    return device, dtype
