"""Plotly figure builders: pure functions, data in, figure out (no Streamlit, no models).

Every figure has a title, axis titles with units, and one shared style. Token text is user-derived, so it
is HTML-escaped before it reaches plotly (plotly renders a subset of HTML tags in labels).
"""

from __future__ import annotations

import html
import math
from collections.abc import Sequence

import plotly.graph_objects as go

from llmlab.nexttoken import TokenProb

ACCENT = "#4c78a8"
HIGHLIGHT = "#f58518"
MUTED = "#9aa5b1"


def token_label(text: str) -> str:
    """A token as a readable, HTML-safe chart label: quotes show leading spaces, controls are escaped."""
    shown = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
    return html.escape(f"'{shown}'")


def style(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 360) -> go.Figure:
    fig.update_layout(
        title={"text": html.escape(title), "x": 0.0, "xanchor": "left"},
        xaxis_title=x_title,
        yaxis_title=y_title,
        height=height,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
        showlegend=len(fig.data) > 1,
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    )
    return fig


def next_token_bars(
    tokens: Sequence[TokenProb],
    title: str = "Next-token distribution",
    compare: Sequence[TokenProb] | None = None,
    compare_name: str = "raw (T=1)",
    name: str = "probability",
    highlight_id: int | None = None,
) -> go.Figure:
    """Horizontal bars of the top tokens, most likely on top; optional second series for comparison."""
    labels = [token_label(t.text) for t in tokens]
    colors = [HIGHLIGHT if t.token_id == highlight_id else ACCENT for t in tokens]
    fig = go.Figure()
    if compare is not None:
        by_id = {t.token_id: t.prob for t in compare}
        fig.add_bar(
            y=labels,
            x=[by_id.get(t.token_id, 0.0) for t in tokens],
            orientation="h",
            name=compare_name,
            marker_color=MUTED,
        )
    fig.add_bar(
        y=labels,
        x=[t.prob for t in tokens],
        orientation="h",
        name=name,
        marker_color=colors,
        text=[f"{t.prob:.1%}" for t in tokens],
        textposition="outside",
        cliponaxis=False,
    )
    fig.update_yaxes(autorange="reversed", type="category")
    fig.update_xaxes(range=[0, min(1.0, max([t.prob for t in tokens] + [0.01]) * 1.25)], tickformat=".0%")
    return style(fig, title, "probability of being the next token", "token", height=80 + 28 * len(tokens))


def loss_curve(
    steps: Sequence[int],
    losses: Sequence[float],
    title: str = "Training loss",
    start_line: float | None = None,
    start_label: str = "",
    x_title: str = "training step",
) -> go.Figure:
    """Loss against step, with an optional dashed reference line (e.g. ln V for a random model)."""
    fig = go.Figure()
    fig.add_scatter(x=list(steps), y=list(losses), mode="lines", name="loss", line={"color": ACCENT})
    if start_line is not None and math.isfinite(start_line):
        fig.add_hline(
            y=start_line,
            line_dash="dash",
            line_color=MUTED,
            annotation_text=start_label,
            annotation_position="top right",
        )
    fig.update_yaxes(rangemode="tozero")
    return style(fig, title, x_title, "cross-entropy loss (nats per token)")
