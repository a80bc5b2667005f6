"""Plotly figures of a spectrum table (docs/design.md §2; AP paper figures 1, 3 and 7). Built from the
DataFrame alone, so the app, the CLI and the benchmarks draw the same pictures.
"""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

MARKERS = {"target": ("#d62728", "target"), "null": ("#2ca02c", 'null ""'), "neutral": ("#1f77b4", '"a photo"')}


def histogram(df: pd.DataFrame, column: str = "delta", bins: int = 40) -> go.Figure:
    """Distribution of delta over the vocabulary with the target and neutral concepts marked."""
    fig = go.Figure(go.Histogram(x=df[column], nbinsx=bins, marker_color="#bbbbbb", name="concepts"))
    for kind, (colour, label) in MARKERS.items():
        for _, row in df[df["kind"] == kind].iterrows():
            fig.add_vline(x=row[column], line_color=colour, line_width=2, line_dash="dash",
                          annotation_text=label if kind != "target" else f"{label}: {row['concept']}",
                          annotation_font_color=colour)
    fig.update_layout(title=f"Sensitivity spectrum ({column})", xaxis_title=_label(column), yaxis_title="concepts",
                      bargap=0.05, showlegend=False, template="plotly_white")
    return fig


def top_affected(df: pd.DataFrame, n: int = 20, column: str = "delta") -> go.Figure:
    """The n most damaged concepts as horizontal bars (target and neutral ones coloured)."""
    top = df.nlargest(n, column).iloc[::-1]
    colours = [MARKERS.get(k, ("#7f7f7f", ""))[0] for k in top["kind"]]
    labels = [c if c else '""' for c in top["concept"]]
    fig = go.Figure(go.Bar(x=top[column], y=labels, orientation="h", marker_color=colours,
                           error_x=dict(type="data", array=top["delta_std"]) if column == "delta" else None))
    fig.update_layout(title=f"Top {len(top)} most affected concepts", xaxis_title=_label(column),
                      template="plotly_white", height=max(300, 22 * len(top) + 120))
    return fig


def similarity_scatter(df: pd.DataFrame, column: str = "delta") -> go.Figure:
    """Text similarity to the target against the drop (figure 7)."""
    fig = go.Figure()
    for kind, group in df.groupby("kind"):
        colour, label = MARKERS.get(kind, ("#7f7f7f", "concepts"))
        fig.add_trace(go.Scatter(x=group["text_sim"], y=group[column], mode="markers", name=label,
                                 marker=dict(color=colour, size=9 if kind in MARKERS else 6),
                                 text=group["concept"], hovertemplate="%{text}: sim %{x:.3f}, drop %{y:.2f}"))
    fig.update_layout(title="Similarity to the target vs. drop", xaxis_title="text similarity to the target",
                      yaxis_title=_label(column), template="plotly_white")
    return fig


def _label(column: str) -> str:
    return {"delta": "delta = CLIP score before - after", "proxy": "proxy D(c)"}.get(column, column)


def overlay(spectra: dict[str, pd.DataFrame], n: int = 15, column: str = "delta") -> go.Figure:
    """Several runs' spectra over the same concepts: one bar per run for each of the `n` concepts that
    any run damaged most, and with two runs the difference (second minus first) as a line. Concepts are
    matched by name; a concept one run lacks shows no bar for it."""
    labels = list(spectra)
    table = pd.concat({label: df.set_index("concept")[column] for label, df in spectra.items()}, axis=1)
    top = table.max(axis=1).nlargest(n).index  # [n] concept names
    fig = go.Figure()
    for label in labels:
        fig.add_trace(go.Bar(x=[c if c else '""' for c in top], y=table.loc[top, label], name=label))
    if len(labels) == 2:
        diff = table.loc[top, labels[1]] - table.loc[top, labels[0]]
        fig.add_trace(go.Scatter(x=[c if c else '""' for c in top], y=diff, mode="lines+markers",
                                 name=f"{labels[1]} − {labels[0]}", line=dict(color="black", dash="dot")))
    fig.update_layout(title=f"Spectra overlaid: the {len(top)} concepts any run damaged most", barmode="group",
                      yaxis_title=_label(column), template="plotly_white", height=420,
                      legend=dict(orientation="h", y=-0.25))
    return fig
