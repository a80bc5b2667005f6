"""Words the forms show: each method in one line, each setting's meaning with the paper's value, and how
long a run takes, from the measured benchmarks (benchmarks/results, the embedded model on 2 CPU cores)."""

from __future__ import annotations

import functools
import json
from pathlib import Path

from erasure import list_methods
from erasure.registry import get_method

RESULTS = Path(__file__).resolve().parent.parent / "benchmarks" / "results"

# the published settings each method's `reference` preset follows (docs/design.md §3)
PAPER = {
    "esd": "Paper: lr 1e-5, 1000 steps, cross-attention only (ESD-x), DDIM 50",
    "ap": "Paper: lr 1e-5, 1000 steps, cross-attention, 100 centres from the 1000 closest words, 2 search steps, "
          "temperature 2",
    "uce": "closed form: one solve, no steps",
    "ca": "Paper: lr 2e-6, 400 steps, batch 4, cross-attention keys and values",
    "mce": "Paper: neuron masks on FLUX.1-schnell, 4-step sampler, sparsity weight 0.01",
    "age": "Paper: AP's schedule, the concept mapped onto a nearby target found by the search",
}

SETTING = {
    "target": "the concept(s) to remove, comma-separated (several are erased at once)",
    "scope": "what kind of concept it is: object, style (an artist's look) or nudity (trains every UNet weight)",
    "speed": "reference = the published settings; fast = a shorter schedule that samples from the frozen "
             "model (about a fifth of the time on the embedded model)",
    "param_group": "which weights change: xattn = cross-attention keys/values (the papers' default for "
                   "objects and styles), full = every UNet weight (nudity)",
    "steps": "optimisation steps per concept (several concepts take turns, each getting this many); the papers use "
             "1000 (UCE: none)",
    "lr": "Adam's learning rate; the papers use 1e-5 on Stable Diffusion (the embedded model, far smaller, "
          "trains at 1e-3)",
    "snapshot": "every N steps, draw the erased and a kept prompt with fixed seeds (the Results view's strips); "
                "0 = none",
    "k": "images per concept from each model for the CLIP drop (δ); more = less noise, slower",
    "sampler_steps": "denoising steps per image (25 is plenty for the embedded model; SD: 25-50)",
    "guidance": "classifier-free guidance scale (SD: 7.5; the embedded model: 5)",
    "proxy_only": "no images: rank concepts by how much the denoiser's prediction moved (seconds, not minutes)",
    "delta_top": "for large vocabularies: D(c) for every concept, δ sampled only for the N the proxy ranks highest, "
                 "the N/2 closest in text to the target, and N/2 drawn at random, which estimate how many damaged "
                 "concepts the proxy missed",
}


# every term the Results and Spectrum views show, in plain words (the "What the words mean" box)
GLOSSARY = {
    "In short": "one paragraph measured after the run: the base and erased models draw every concept of the "
                "world on the same 4 seeds and the world classifier reads what they drew",
    "erasure rate (ESR)": "share of the erased concept's images the classifier no longer recognises as it",
    "preservation rate (PSR)": "share of every other concept's images it still recognises",
    "hit hardest": "other concepts that lost at least half their recognised images (4/4 → 2/4 or worse)",
    "δ (delta)": "how much the erasure lowered a concept's CLIP score (image vs its prompt), base minus erased on "
                 "shared seeds, in CLIP points; 0 = untouched, the target's own δ is the erasure's strength",
    "D(c) (the proxy)": "how far the erased denoiser's prediction for a concept's prompt moved from the base's, "
                        "no images drawn: fast, and it ranks concepts roughly as δ does",
    "text_sim": "how close a concept's prompt is to the target's in the text encoder (cosine)",
    "search distribution": "AP and AGE keep a probability per candidate concept and draw the one to preserve "
                           "from it; p × n is how many times more likely than uniform (1× = uniform)",
    "near uniform / concentrated": "a search concentrated when its likeliest concept ended at least 2× uniform; "
                                   "otherwise its pick is noise, not an adversarial concept",
    "damage to every concept": "each candidate concept's preservation loss: how far the erased model's "
                               "prediction for it moved from the base's, on one fixed code, at each snapshot",
    "parameter group": "which weights the erasure changes: xattn = cross-attention keys and values, "
                       "full = every UNet weight",
    "(empty prompt)": "the null concept \"\": what the model draws with no prompt at all",
}


def glossary() -> str:
    """The glossary as a Markdown list."""
    return "\n".join(f"- **{term}**: {text}" for term, text in GLOSSARY.items())


def method_choices() -> list[tuple[str, str]]:
    """(label, value) per method for a dropdown: the method's one line, e.g. "ESD: negative guidance ..."."""
    return [(get_method(m).SPEC.summary, m) for m in list_methods()]


@functools.cache
def seconds_per_step() -> dict[tuple[str, str], float]:
    """(method, speed) -> seconds per step measured on the embedded model (2 CPU cores), from the
    report's one-shape protocol (object,fast), then the fast-vs-reference benchmark (AP fast and
    reference; it wins: AP's report rows ran `fast-v1`, which samples z_t per draw)."""
    from erasure import EraseRequest

    out = {}
    names = {"ESD": "esd", "CA": "ca", "AP": "ap", "MCE": "mce", "AGE": "age", "AP (reference)": "ap", "AP (fast)": "ap"}
    for file in ("report/robustness.json", "erasure_fast_vs_reference.json"):
        path = RESULTS / file
        rows = json.loads(path.read_text())["rows"] if path.exists() else []
        for row in rows:
            method = names.get(row["method"])
            if method is None:
                continue
            speed = "reference" if row["method"].endswith("(reference)") else "fast"
            steps = row.get("steps") or EraseRequest("embedded", method, ("star",), f"object,{speed}").check().steps
            out[(method, speed)] = row["wall_s"] / steps
    return out


def run_time(method: str, speed: str, steps: int, model: str, here: tuple[float, int] | None = None) -> str:
    """One line: the method and roughly how long `steps` steps take. `here` (seconds, steps) is this server's
    latest finished job of the same method, speed and model, the figure that counts; without it, the
    reference figure measured on an idle 2-core CPU, said to be one."""
    line = f"**{get_method(method).SPEC.summary}**. {PAPER.get(method, '')}."
    if get_method(method).SPEC.closed_form:
        return line + " Takes under a second on the embedded model."
    if here is not None:
        seconds, ran = here
        return line + (f" On this server its latest {ran}-step job took {_minutes(seconds)} in all (start-up and "
                       f"judging included): about {_minutes(seconds * steps / ran)} for {steps} steps.")
    per = seconds_per_step().get((method, speed))
    if per is None:
        return line
    where = "" if model == "embedded" else " (measured there only: a real-size model on a GPU differs)"
    return line + (f" About {_minutes(per * steps)} for {steps} steps on the embedded model (a reference figure: an "
                   f"idle 2-core CPU; a busy machine takes longer){where}.")


def _minutes(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 90 else f"{seconds / 60:.0f} min"


def placeholder(text: str = "the figure appears here when a spectrum is done"):
    """An empty figure that says what will appear, instead of an empty frame while a job runs."""
    import plotly.graph_objects as go

    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font=dict(size=14))
    fig.update_layout(height=220, xaxis=dict(visible=False), yaxis=dict(visible=False), margin=dict(t=20, b=20))
    return fig
