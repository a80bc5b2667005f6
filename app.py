"""Concept Sensitivity Explorer — the web app.

    python app.py            # serves on http://127.0.0.1:7860 (GRADIO_SERVER_NAME/PORT to change)

UI code only wires events; compute lives in `backends`, `erasure` and `sensitivity`.
This first version serves the Model tab: a prompt, seeds and a grid from the chosen model.
"""

from __future__ import annotations

import functools
import os

import gradio as gr
import numpy as np

from backends import EMBEDDED, PRESETS, ModelUnavailableError, SamplerSettings, generate, grid, load_pipeline

MAX_IMAGES = 16


@functools.lru_cache(maxsize=2)
def _pipeline(model: str):
    return load_pipeline(model)


def generate_grid(model: str, prompt: str, seed: float, n_images: float, steps: float, guidance: float) -> np.ndarray:
    """API `generate`: n images of one prompt from seeds seed, seed+1, ... as one grid image."""
    if not prompt or not prompt.strip():
        raise gr.Error("Enter a prompt, e.g. 'a red star'.")
    if not 1 <= int(n_images) <= MAX_IMAGES:
        raise gr.Error(f"Number of images must be between 1 and {MAX_IMAGES}.")
    try:
        pipe = _pipeline(model)
        settings = SamplerSettings(steps=int(steps), guidance=float(guidance))
        seeds = [int(seed) + i for i in range(int(n_images))]
        images = generate(pipe, [prompt.strip()] * len(seeds), seeds, settings)
    except (ModelUnavailableError, ValueError) as e:
        raise gr.Error(str(e)) from e
    cols = min(len(seeds), 4)
    big = grid(images, cols)
    scale = max(1, 256 // images.shape[1])  # 32-px images are shown enlarged, pixel-exact
    return big.repeat(scale, 0).repeat(scale, 1)


def build_ui() -> gr.Blocks:
    with gr.Blocks(title="Concept Sensitivity Explorer") as demo:
        gr.Markdown("# Concept Sensitivity Explorer\nErase a concept from a text-to-image model and see what else it hurt.")
        with gr.Tab("Model"):
            with gr.Row():
                with gr.Column(scale=1):
                    model = gr.Dropdown(list(PRESETS), value=EMBEDDED, label="Model", allow_custom_value=True,
                                        info="a preset, a local diffusers folder or a hub repo id")
                    prompt = gr.Textbox(value="a red star", label="Prompt")
                    seed = gr.Number(value=0, precision=0, label="First seed")
                    n_images = gr.Slider(1, MAX_IMAGES, value=8, step=1, label="Images")
                    steps = gr.Slider(1, 100, value=25, step=1, label="Sampler steps")
                    guidance = gr.Slider(0, 15, value=5.0, step=0.5, label="Guidance scale")
                    run = gr.Button("Generate", variant="primary")
                with gr.Column(scale=2):
                    out = gr.Image(label="Images (same seeds give the same images)", type="numpy", format="png")
            run.click(generate_grid, [model, prompt, seed, n_images, steps, guidance], out, api_name="generate")
    return demo


if __name__ == "__main__":
    build_ui().queue(default_concurrency_limit=1).launch(
        server_name=os.environ.get("GRADIO_SERVER_NAME", "127.0.0.1"),
        server_port=int(os.environ.get("PORT", "7860")),
    )
