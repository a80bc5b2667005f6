"""The app's figures of a run (docs/design.md §5): loss curves, the concept search's heatmaps and the
trajectory strip sheet, drawn from the data erasure.trajectory reads back (the libraries draw nothing).
The spectrum's own figures are sensitivity.figures (a spectrum folder keeps them as HTML)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import plotly.graph_objects as go


def loss_figure(events: list[dict]) -> go.Figure:
    steps = [e for e in events if e["kind"] == "step"]
    fig = go.Figure()
    for name in sorted({k for e in steps for k in e.get("losses", {})}):
        pts = [(e["step"], e["losses"][name]) for e in steps if name in e.get("losses", {})]
        fig.add_trace(go.Scatter(x=[p[0] for p in pts], y=[p[1] for p in pts], mode="lines", name=name))
    fig.update_layout(title="losses", xaxis_title="step", yaxis_title="loss", height=320, margin=dict(t=40, b=40))
    return fig


RATIO_SPAN = 2  # the heatmap's colour range in log2 of p / (1/n): a quarter of uniform .. four times uniform


def search_heatmap(history: dict) -> go.Figure:
    """Steps x the concepts ever in the top 5, coloured by p / (1/n) (how many times uniform) on a fixed log
    scale from 1/4x to 4x: a search that stays near uniform looks uniform (pale), whatever its noise; red =
    searched more than uniform, blue = less."""
    words, probs = history["words"], np.asarray(history["probs"], dtype=float)  # [S, n]
    if not len(probs):
        return _empty("no search steps yet")
    top = np.argsort(-probs, axis=1)[:, :5]
    ever = sorted(set(top.ravel().tolist()), key=lambda i: -probs[-1, i])  # most likely at the end first
    ratio = probs[:, ever].T * len(words)  # [concepts, S], 1 = uniform
    z = np.clip(np.log2(np.maximum(ratio, 1e-9)), -RATIO_SPAN, RATIO_SPAN)
    ticks = list(range(-RATIO_SPAN, RATIO_SPAN + 1))
    fig = go.Figure(go.Heatmap(
        x=history["steps"], y=[_label(words[i]) for i in ever], z=z.tolist(), zmid=0, zmin=-RATIO_SPAN,
        zmax=RATIO_SPAN, colorscale="RdBu_r", customdata=ratio.tolist(),
        colorbar=dict(title="p × n", tickvals=ticks, ticktext=[_times(2.0 ** t) for t in ticks]),
        hovertemplate="step %{x}<br>%{y}<br>%{customdata:.2f} × uniform<extra></extra>"))
    fig.update_layout(title=f"search distribution<br><sup>the concepts ever in its top 5, of {len(words)}; 1× = uniform</sup>",
                      xaxis_title="step", height=110 + 16 * len(ever), margin=dict(t=40, b=40, l=10, r=10))
    return fig


def _times(x: float) -> str:
    return f"{x:g}×" if x >= 1 else f"1/{1 / x:g}×"


def sampled_figure(history: dict) -> go.Figure:
    """The concept sampled each step and the preservation loss it got (hover names the concept)."""
    if not history["steps"]:
        return _empty("no search steps yet")
    fig = go.Figure(go.Scatter(x=history["steps"], y=history["l2"], mode="markers+lines", line=dict(width=1),
                               text=[_label(w) for w in history["sampled"]],
                               hovertemplate="step %{x}<br>%{text}<br>preservation loss %{y:.5f}<extra></extra>"))
    fig.update_layout(title="sampled concept per step<br><sup>and its preservation loss</sup>", xaxis_title="step",
                      yaxis_title="preservation loss", height=260, margin=dict(t=40, b=40, l=10, r=10))
    return fig


def centre_loss_heatmap(history: dict, top: int = 25) -> go.Figure:
    """Snapshot steps x the `top` centres the erasure damaged most (preservation loss at the last
    snapshot, under the current theta'), all measured on one fixed code: which concepts are hurt as training goes."""
    values = np.asarray(history["centre_l2"], dtype=float)  # [K, n]
    if not len(values):
        return _empty("no snapshot yet (set 'trajectory image every N steps' above 0)")
    order = np.argsort(-values[-1])[:top]
    fig = go.Figure(go.Heatmap(
        x=[str(s) for s in history["snap_steps"]], y=[_label(history["words"][i]) for i in order], z=values[:, order].T.tolist(),
        colorscale="Viridis", colorbar=dict(title="loss"),
        hovertemplate="step %{x}<br>%{y}<br>preservation loss %{z:.5f}<extra></extra>"))
    fig.update_layout(title=f"damage to every centre<br><sup>the {len(order)} most hurt of {values.shape[1]}</sup>",
                      xaxis_title="snapshot step", height=120 + 20 * len(order), margin=dict(t=40, b=40, l=10, r=10))
    return fig


def _empty(text: str) -> go.Figure:
    fig = go.Figure()
    fig.add_annotation(text=text, showarrow=False, x=0.5, y=0.5, xref="paper", yref="paper")
    fig.update_layout(height=160, xaxis_visible=False, yaxis_visible=False, margin=dict(t=10, b=10))
    return fig


def _label(concept: str) -> str:
    return concept if concept else "(empty prompt)"


# what each snapshot strip shows, in plain words (the formal name G(theta'_t, z_T, c) in docs/design.md §3.3)
STRIP_NAMES = {"ce": "erased concept", "ca": "adversarial concept", "ct": "AGE's target concept"}


def strip_sheet(strips: dict[str, list[tuple[int, Path]]], tile: int = 64,
                concepts: dict[int, str] | None = None) -> np.ndarray | None:
    """One image of every strip: a row per strip (its plain name at the left), a column per snapshot step
    (the step above it and, given `concepts` {step: concept}, the concept the search preserved at that step),
    one fixed start code; 32-px images enlarged pixel-exact. None if empty."""
    from PIL import Image, ImageDraw, ImageFont

    if not strips:
        return None
    steps = sorted({s for rows in strips.values() for s, _ in rows})
    font, left = ImageFont.load_default(size=12), 150
    top = 34 if concepts else 18
    sheet = Image.new("RGB", (left + len(steps) * (tile + 2), top + len(strips) * (tile + 4)), "white")
    draw = ImageDraw.Draw(sheet)
    if concepts:
        draw.text((4, 18), "search keeps:", fill="black", font=font)
    for j, step in enumerate(steps):
        x = left + j * (tile + 2) + 2
        draw.text((x, 2), f"step {step}", fill="black", font=font)
        if concepts and step in concepts:
            draw.text((x, 18), _fit(_label(concepts[step]), tile, font, draw), fill="#1f4e9c", font=font)
    for i, (name, rows) in enumerate(strips.items()):
        y = top + i * (tile + 4)
        draw.text((4, y + tile // 2 - 6), STRIP_NAMES.get(name, name), fill="black", font=font)
        for step, path in rows:
            im = Image.open(path).convert("RGB")
            im = im.resize((tile, tile), Image.Resampling.NEAREST if im.width < tile else Image.Resampling.LANCZOS)
            sheet.paste(im, (left + steps.index(step) * (tile + 2), y))
    return np.asarray(sheet)


def _fit(text: str, width: int, font, draw) -> str:
    """`text` cut with an ellipsis to fit `width` pixels."""
    while text and draw.textlength(text, font=font) > width - 4:
        text = text[:-2] + "…" if len(text) > 2 else ""
    return text
