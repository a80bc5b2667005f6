"""Generation speed of the embedded pipeline: 8 images x 20 steps with guidance (bar: <= 3 s on CPU).

    python -m benchmarks.bench_generation

Compares our setting (20 DDIM steps) with SD's reference sampler setting (50 steps) in the
same run and reports the ratio. Writes benchmarks/results/generation.json.
"""

from __future__ import annotations

import statistics
import time

import torch

from backends import SamplerSettings, generate, load_pipeline

from .common import print_table, write_result

PROMPTS = ["a red star", "a blue circle", "a green heart", "a yellow moon",
           "an orange arrow", "a purple cross", "a red square", "a blue hourglass"]


def time_setting(pipe, steps: int, repeats: int) -> dict:
    settings = SamplerSettings(steps=steps, guidance=5.0)
    generate(pipe, PROMPTS, list(range(8)), settings)  # warm-up
    times = []
    for r in range(repeats):
        t0 = time.perf_counter()
        generate(pipe, PROMPTS, list(range(8 * r, 8 * r + 8)), settings)
        times.append(time.perf_counter() - t0)
    return {"setting": f"{steps} steps", "images": 8, "steps": steps, "guidance": 5.0,
            "median_s": statistics.median(times), "min_s": min(times), "repeats": repeats}


def main() -> None:
    torch.manual_seed(0)
    pipe = load_pipeline("embedded")
    ours, reference = time_setting(pipe, 20, 5), time_setting(pipe, 50, 3)
    ours["speedup_vs_reference"] = reference["median_s"] / ours["median_s"]
    ours["bar_s"], ours["meets_bar"] = 3.0, ours["median_s"] <= 3.0
    rows = [ours, reference]
    print_table(rows, ["setting", "images", "median_s", "min_s", "speedup_vs_reference", "meets_bar"])
    print("wrote", write_result("generation", {"rows": rows}))


if __name__ == "__main__":
    main()
