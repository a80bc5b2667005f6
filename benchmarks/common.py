"""Shared benchmark plumbing: environment record, table printing, JSON results, GPU peak memory."""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path

import torch

from backends.storage import write_text

RESULTS = Path(__file__).resolve().parent / "results"


def environment() -> dict:
    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cpu_count": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        # the vector kernels torch picked (AVX512, AVX2, ...): float sums round differently between them, which
        # the runs that threshold or sample (MCE's masks, AP/AGE's concept draws) amplify into other results
        "cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "cpu": _cpu_model(),
        "device": "cuda:" + torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu",
        "date": time.strftime("%Y-%m-%d"),
    }


def _cpu_model() -> str:
    try:
        lines = Path("/proc/cpuinfo").read_text().splitlines()
    except OSError:
        return platform.processor()
    return next((ln.split(":", 1)[1].strip() for ln in lines if ln.startswith("model name")), platform.processor())


def print_table(rows: list[dict], columns: list[str]) -> None:
    widths = [max(len(c), *(len(_fmt(r.get(c))) for r in rows)) for c in columns]
    print(" | ".join(c.ljust(w) for c, w in zip(columns, widths)))
    print("-|-".join("-" * w for w in widths))
    for r in rows:
        print(" | ".join(_fmt(r.get(c)).ljust(w) for c, w in zip(columns, widths)))


def _fmt(v) -> str:
    return f"{v:.3g}" if isinstance(v, float) else str(v)


def write_result(name: str, payload: dict) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    text = json.dumps({"environment": environment(), **payload}, indent=2) + "\n"
    return write_text(RESULTS / f"{name}.json", text)


class Peak:
    """Peak GPU memory over a block (bytes above what was allocated at its start); 0 on the CPU."""

    def __init__(self, device: str):
        self.cuda, self.bytes = device.startswith("cuda"), 0

    def __enter__(self):
        if self.cuda:
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            self.before = torch.cuda.memory_allocated()
        return self

    def __exit__(self, *exc):
        if self.cuda:
            torch.cuda.synchronize()
            self.bytes = torch.cuda.max_memory_allocated() - self.before
