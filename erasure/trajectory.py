"""Reading a run's events back: progress with ETA, loss curves, the adversarial-concept timeline
and the trajectory image strips (AP paper figure 6). Works on a live run folder too."""

from __future__ import annotations

from pathlib import Path

import plotly.graph_objects as go

from .runs import RunFolder


def progress(events: list[dict]) -> dict:
    """Step, total, ETA (from the rate since the latest start or resume), current concept and top-5."""
    out = {"step": 0, "total": 0, "eta_s": None, "concept": None, "top5": [], "losses": {}}
    starts = [i for i, e in enumerate(events) if e["kind"] == "start"]
    if not starts:
        return out
    start = events[starts[-1]]
    out["total"] = start["total"]
    steps = [e for e in events[starts[-1]:] if e["kind"] == "step"]
    if steps:
        last = steps[-1]
        out.update(step=last["step"], concept=last.get("concept"), top5=last.get("top5", []),
                   losses=last.get("losses", {}))
        done = last["step"] - start["step"]
        if done > 0 and last["elapsed_s"] > 0:
            out["eta_s"] = round((last["total"] - last["step"]) * last["elapsed_s"] / done, 1)
    if any(e["kind"] == "done" for e in events):
        out.update(step=out["total"], eta_s=0.0)
    return out


def loss_figure(events: list[dict]) -> go.Figure:
    steps = [e for e in events if e["kind"] == "step"]
    fig = go.Figure()
    for name in sorted({k for e in steps for k in e.get("losses", {})}):
        pts = [(e["step"], e["losses"][name]) for e in steps if name in e.get("losses", {})]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines", name=name))
    fig.update_layout(title="losses", xaxis_title="step", yaxis_title="loss", height=320, margin=dict(t=40, b=40))
    return fig


def concept_timeline(events: list[dict]) -> go.Figure:
    """The adversarial concept (argmax of pi) per step, coloured by its probability; top-5 on hover."""
    pts = [e for e in events if e["kind"] == "step" and e.get("concept") is not None]
    fig = go.Figure(go.Scatter(
        x=[e["step"] for e in pts], y=[_label(e["concept"]) for e in pts],
        mode="markers", marker=dict(color=[_top_prob(e) for e in pts], colorscale="Viridis", cmin=0, cmax=1,
                                    colorbar=dict(title="p"), size=7),
        text=["<br>".join(f"{_label(w)}: {p:.2f}" for w, p in e.get("top5", [])) for e in pts],
        hovertemplate="step %{x}<br>%{y}<br>top-5:<br>%{text}<extra></extra>"))
    fig.update_layout(title="adversarial concept per step", xaxis_title="step", height=360,
                      margin=dict(t=40, b=40))
    return fig


def _label(concept: str) -> str:
    return concept if concept else '"" (null)'


def _top_prob(event: dict) -> float:
    top5 = event.get("top5") or []
    return float(top5[0][1]) if top5 else 0.0


def snapshot_strips(run: str | Path | RunFolder) -> dict[str, list[tuple[int, Path]]]:
    """name ("target", "adversarial", ...) -> [(step, image file)] in step order."""
    run = run if isinstance(run, RunFolder) else RunFolder.open(run)
    strips: dict[str, list[tuple[int, Path]]] = {}
    for e in run.events():
        if e["kind"] == "snapshot":
            for name, rel in e.get("images", {}).items():
                if (run.path / rel).exists():
                    strips.setdefault(name, []).append((e["step"], run.path / rel))
    return strips
