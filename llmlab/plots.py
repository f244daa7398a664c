"""Plotly figure builders: pure functions, data in, figure out (no Streamlit, no models).

Every figure has a title, axis titles with units, and one shared style. Token text is user-derived, so it
is HTML-escaped before it reaches plotly (plotly renders a subset of HTML tags in labels).

The charts redrawn on every slider move or live-run redraw (`next_token_bars`, `loss_curve`,
`token_probability_lines`) are built as plain plotly JSON (`from_spec`): plotly checks every property as it is
set, which took 15-18 ms per chart, most of a slider's rerun on the server; a figure made from a spec skips
that (~1 ms). Tests set LLMLAB_VALIDATE_FIGURES=1, so every figure
they draw is still checked by plotly.
"""

from __future__ import annotations

import html
import math
import os
import textwrap
from collections.abc import Sequence

import plotly.graph_objects as go

from llmlab.nexttoken import TokenProb

ACCENT = "#4c78a8"
HIGHLIGHT = "#f58518"
MUTED = "#9aa5b1"


def token_text(text: str) -> str:
    """A token as readable text: quotes show leading spaces, control characters are escaped ("'\\n'")."""
    shown = "".join(c if c.isprintable() or c == " " else repr(c)[1:-1] for c in text)
    return f"'{shown}'"


def token_label(text: str) -> str:
    """A token as a readable, HTML-safe chart label (`token_text`, HTML-escaped)."""
    return html.escape(token_text(text))


VALIDATE_ENV = "LLMLAB_VALIDATE_FIGURES"


def from_spec(data: list[dict], layout: dict) -> go.Figure:
    """A figure from plotly JSON, unchecked unless LLMLAB_VALIDATE_FIGURES=1 (the tests): see the module doc."""
    return go.Figure({"data": data, "layout": layout}, _validate=os.environ.get(VALIDATE_ENV) == "1")


def style_layout(title: str, x_title: str, y_title: str, height: int = 360, legend: bool = False) -> dict:
    """The shared layout as plotly JSON: left-aligned title, axis titles, compact margins, legend on top."""
    return {
        "title": {"text": html.escape(title), "x": 0.0, "xanchor": "left"},
        "xaxis": {"title": {"text": x_title}},
        "yaxis": {"title": {"text": y_title}},
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 50, "b": 10},
        "showlegend": legend,
        "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.0, "xanchor": "right", "x": 1.0},
    }


def style(fig: go.Figure, title: str, x_title: str, y_title: str, height: int = 360) -> go.Figure:
    fig.update_layout(style_layout(title, x_title, y_title, height, legend=len(fig.data) > 1))
    return fig


PROJECTOR_FONT_SIZE = 18  # px; plotly's default is 12
PROJECTOR_LINE_WIDTH = 3.5  # px; plotly's default is 2


def for_projector(fig: go.Figure) -> go.Figure:
    """A copy of `fig` for a room (presenter mode): larger text, thicker lines, 25% taller."""
    spec = fig.to_plotly_json()
    layout = {**spec["layout"], "font": {**spec["layout"].get("font", {}), "size": PROJECTOR_FONT_SIZE}}
    if "height" in layout:
        layout["height"] = round(layout["height"] * 1.25)
    data = [
        {**trace, "line": {**trace.get("line", {}), "width": PROJECTOR_LINE_WIDTH}}
        if trace.get("type", "scatter") == "scatter" and "lines" in trace.get("mode", "lines")
        else trace
        for trace in spec["data"]
    ]
    return from_spec(data, layout)


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
    bar = {"type": "bar", "orientation": "h", "y": labels}
    data = []
    if compare is not None:
        by_id = {t.token_id: t.prob for t in compare}
        data.append(
            bar | {"x": [by_id.get(t.token_id, 0.0) for t in tokens], "name": compare_name, "marker": {"color": MUTED}}
        )
    data.append(
        bar
        | {
            "x": [t.prob for t in tokens],
            "name": name,
            "marker": {"color": colors},
            "text": [f"{t.prob:.1%}" for t in tokens],
            "textposition": "outside",
            "cliponaxis": False,
        }
    )
    layout = style_layout(
        title, "probability of being the next token", "token", height=80 + 28 * len(tokens), legend=len(data) > 1
    )
    layout["yaxis"] |= {"autorange": "reversed", "type": "category"}
    layout["margin"]["r"] = 45  # room for the "99.6%" label of a bar that fills the axis
    layout["xaxis"] |= {"range": [0, min(1.0, max([t.prob for t in tokens] + [0.01]) * 1.25)], "tickformat": ".0%"}
    return from_spec(data, layout)


def loss_curve(
    steps: Sequence[int],
    losses: Sequence[float],
    title: str = "Training loss",
    start_line: float | None = None,
    start_label: str = "",
    x_title: str = "training step",
) -> go.Figure:
    """Loss against step, with an optional dashed reference line (e.g. ln V for a random model). Built from
    a spec: a live view redraws it every 0.5 s (it sets new x/y on the same figure, unchecked too)."""
    data = [{"type": "scatter", "x": list(steps), "y": list(losses), "mode": "lines", "name": "loss",
             "line": {"color": ACCENT}}]  # fmt: skip
    layout = style_layout(title, x_title, "cross-entropy loss (nats per token)")
    layout["yaxis"]["rangemode"] = "tozero"
    if start_line is not None and math.isfinite(start_line):
        line = {"xref": "x domain", "yref": "y"}
        layout["shapes"] = [line | {"type": "line", "x0": 0, "x1": 1, "y0": start_line, "y1": start_line,
                                    "line": {"color": MUTED, "dash": "dash"}}]  # fmt: skip
        layout["annotations"] = [line | {"text": start_label, "showarrow": False, "x": 1, "xanchor": "right",
                                         "y": start_line, "yanchor": "bottom"}]  # fmt: skip
    return from_spec(data, layout)


# -- pre-training page -----------------------------------------------------------------------------

SERIES_COLORS = (ACCENT, HIGHLIGHT, "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#ff9da6", "#9d755d")


def token_probability_lines(
    steps: Sequence[int],
    probs_by_token: dict[str, Sequence[float]],
    title: str,
    highlight: str | None = None,
) -> go.Figure:
    """Probability of a few candidate next tokens (one line each) as training goes on (a live view rebuilds it
    at each probe: built from a spec)."""
    data = []
    for n, (text, probs) in enumerate(probs_by_token.items()):
        is_highlight = text == highlight
        color = HIGHLIGHT if is_highlight else SERIES_COLORS[(n + 2) % len(SERIES_COLORS)]
        data.append({"type": "scatter", "x": list(steps), "y": list(probs), "mode": "lines+markers",
                     "name": token_label(text), "line": {"color": color, "width": 4 if is_highlight else 2}})  # fmt: skip
    layout = style_layout(title, "training step", "probability of being the next token", height=400)
    layout["yaxis"] |= {"range": [0, 1], "tickformat": ".0%"}
    layout |= LEGEND_BELOW
    return from_spec(data, layout)


def loss_curves(
    series: dict[str, tuple[Sequence[int], Sequence[float]]],
    title: str,
    start_line: float | None = None,
    start_label: str = "",
) -> go.Figure:
    """Several runs' loss against step on one chart (one colour per run)."""
    fig = go.Figure()
    for n, (name, (steps, losses)) in enumerate(series.items()):
        fig.add_scatter(x=list(steps), y=list(losses), mode="lines", name=name, line={"color": SERIES_COLORS[n % 8]})
    if start_line is not None and math.isfinite(start_line):
        fig.add_hline(y=start_line, line_dash="dash", line_color=MUTED, annotation_text=start_label)
    fig.update_yaxes(rangemode="tozero")
    fig = style(fig, title, "training step", "cross-entropy loss (nats per token)")
    fig.update_layout(showlegend=True)
    return fig


def metric_vs_noise(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    y_title: str,
    chosen_noise: float | None = None,
    percent_y: bool = False,
) -> go.Figure:
    """One line per series (e.g. "precomputed", "your live run") of a metric against the corrupted fraction."""
    fig = go.Figure()
    for n, (name, (noise, values)) in enumerate(series.items()):
        fig.add_scatter(
            x=[100 * x for x in noise],
            y=list(values),
            mode="lines+markers",
            name=name,
            marker={"size": 9 if n else 7},
            line={"color": SERIES_COLORS[n % len(SERIES_COLORS)], "dash": "solid" if n == 0 else "dot"},
        )
    if chosen_noise is not None:
        fig.add_vline(x=100 * chosen_noise, line_dash="dash", line_color=MUTED)
    if percent_y:
        fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    return style(fig, title, "corrupted documents (% of the corpus)", y_title, height=320)


# Legend under the x-axis title: for charts with more series than fit beside the title.
LEGEND_BELOW = {
    "showlegend": True,
    "legend": {"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0.0},
}


def legend_below(fig: go.Figure) -> go.Figure:
    fig.update_layout(LEGEND_BELOW)
    return fig


def iso_compute_losses(
    curves: Sequence[tuple[str, Sequence[float], Sequence[float]]],
    points: Sequence[tuple[str, float, float]],
    title: str,
    optima: Sequence[tuple[float, float]] = (),
) -> go.Figure:
    """Predicted loss against model size along iso-compute curves (log x): labelled runs as diamonds, and
    each curve's compute-optimal point (N, loss) as a star."""
    fig = go.Figure()
    for n, (name, n_params, losses) in enumerate(curves):
        fig.add_scatter(x=list(n_params), y=list(losses), mode="lines", name=name, line={"color": SERIES_COLORS[n % 8]})
    if optima:
        fig.add_scatter(
            x=[n for n, _ in optima],
            y=[loss for _, loss in optima],
            mode="markers",
            name="compute-optimal point of each curve",
            marker={"size": 14, "symbol": "star", "color": "#333333"},
        )
    for n, (name, n_params, loss) in enumerate(points):
        fig.add_scatter(
            x=[n_params],
            y=[loss],
            mode="markers+text",
            name=name,
            text=[html.escape(name)],
            textposition="top right" if n % 2 else "bottom right",
            marker={"size": 12, "symbol": "diamond", "color": SERIES_COLORS[(n + 2) % 8]},
            showlegend=False,
        )
    fig.update_xaxes(type="log")
    fig = style(fig, title, "parameters N (log scale)", "predicted loss L(N, D) (nats per token)", height=460)
    return legend_below(fig)


def compute_frontier(
    lines: Sequence[tuple[str, Sequence[float], Sequence[float], str]],
    points: Sequence[tuple[str, float, float]],
    title: str,
) -> go.Figure:
    """Runs in the (parameters, tokens) plane, log-log: frontier and iso-compute lines (name, N, D, dash)."""
    fig = go.Figure()
    for n, (name, n_params, n_tokens, dash) in enumerate(lines):
        fig.add_scatter(
            x=list(n_params),
            y=list(n_tokens),
            mode="lines",
            name=name,
            line={"color": SERIES_COLORS[n % 8] if dash == "solid" else MUTED, "dash": dash},
        )
    for n, (name, n_params, n_tokens) in enumerate(points):
        fig.add_scatter(
            x=[n_params],
            y=[n_tokens],
            mode="markers+text",
            name=name,
            text=[html.escape(name)],
            textposition="middle right",
            marker={"size": 12, "symbol": "diamond", "color": SERIES_COLORS[(n + 2) % 8]},
            showlegend=False,
        )
    fig.update_xaxes(type="log")
    fig.update_yaxes(type="log")
    fig = style(fig, title, "parameters N (log scale)", "training tokens D (log scale)", height=460)
    return legend_below(fig)


# -- DPO page ----------------------------------------------------------------------------------------


DPO_PANELS = (  # (panel title, y-axis title with units, [(trl metric key, legend name)])
    ("Loss", "loss (nats)", [("loss", "loss")]),
    (
        "Implicit rewards β·log π/π_ref",
        "β × nats",
        [("rewards/chosen", "chosen"), ("rewards/rejected", "rejected"), ("rewards/margins", "margin")],
    ),
    ("Reward accuracy of the batch", "% right", [("rewards/accuracies", "accuracy")]),
    ("Log-probs of the answers", "log π (nats)", [("logps/chosen", "chosen"), ("logps/rejected", "rejected")]),
)


def dpo_run_curves(steps: Sequence[float], metrics: dict[str, Sequence[float]], title: str) -> go.Figure:
    """trl's per-step DPO metrics as four stacked panels sharing the step axis: loss, implicit rewards,
    reward accuracy, answer log-probs (stacked, so it stays readable in a narrow column)."""
    from plotly.subplots import make_subplots

    fig = make_subplots(
        rows=len(DPO_PANELS),
        cols=1,
        shared_xaxes=True,
        subplot_titles=[html.escape(p[0]) for p in DPO_PANELS],
        vertical_spacing=0.06,
    )
    colors = {"chosen": "#54a24b", "rejected": "#e45756", "margin": ACCENT, "loss": ACCENT, "accuracy": ACCENT}
    shown: set[str] = set()
    for row, (_, y_title, series) in enumerate(DPO_PANELS, start=1):
        for key, name in series:
            values = list(metrics.get(key, []))
            if key == "rewards/accuracies":
                values = [100 * v for v in values]
            fig.add_scatter(
                x=list(steps),
                y=values,
                mode="lines",
                name=name,
                legendgroup=name,
                showlegend=name not in shown and name in ("chosen", "rejected", "margin"),
                line={"color": colors[name]},
                row=row,
                col=1,
            )
            shown.add(name)
        fig.update_yaxes(title_text=y_title, row=row, col=1)
    fig = style(fig, title, "", "loss (nats)", height=760)
    fig.update_xaxes(title_text="training step", row=len(DPO_PANELS), col=1)
    fig.update_yaxes(range=[-5, 105], row=3, col=1)
    fig = legend_below(fig)
    fig.update_layout(legend={"y": -0.07})  # the figure is tall: -0.2 of it would leave a gap
    return fig


def beta_sweep_chart(
    betas: Sequence[float], accuracy: Sequence[float], kl: Sequence[float], reference_accuracy: float | None = None
) -> go.Figure:
    """Held-out preference accuracy (left axis) and KL to the reference (right axis) against β, log x."""
    from plotly.subplots import make_subplots

    fig = make_subplots(specs=[[{"secondary_y": True}]])
    fig.add_scatter(
        x=list(betas),
        y=[100 * a for a in accuracy],
        mode="lines+markers",
        name="held-out preference accuracy",
        line={"color": ACCENT},
        secondary_y=False,
    )
    fig.add_scatter(
        x=list(betas),
        y=list(kl),
        mode="lines+markers",
        name="KL(π ‖ π_ref)",
        line={"color": HIGHLIGHT, "dash": "dot"},
        marker={"symbol": "square"},
        secondary_y=True,
    )
    if reference_accuracy is not None:
        fig.add_hline(
            y=100 * reference_accuracy,
            line_dash="dash",
            line_color=MUTED,
            annotation_text="start model (reference)",
            annotation_position="bottom right",
        )
    fig.update_xaxes(type="log")
    fig = style(
        fig,
        "β sweep: held-out preference accuracy and drift from the reference",
        "β (log scale)",
        "held-out pairs ranked right (%)",
        height=420,
    )
    fig.update_yaxes(title_text="KL(π ‖ π_ref) (nats per answer)", rangemode="tozero", showgrid=False, secondary_y=True)
    return legend_below(fig)


def reward_kl_frontier(points: Sequence[tuple[str, str, float, float]], title: str) -> go.Figure:
    """Reward against KL to the reference, one marker per run (method, label, kl, reward), one colour per method."""
    fig = go.Figure()
    methods = list(dict.fromkeys(p[0] for p in points))
    for n, method in enumerate(methods):
        rows = sorted((p for p in points if p[0] == method), key=lambda p: p[2])
        fig.add_scatter(
            x=[p[2] for p in rows],
            y=[p[3] for p in rows],
            mode="lines+markers+text",
            name=html.escape(method),
            text=[html.escape(p[1]) for p in rows],
            textposition="top right",
            cliponaxis=False,
            marker={"size": 11, "color": SERIES_COLORS[n % len(SERIES_COLORS)]},
            line={"color": SERIES_COLORS[n % len(SERIES_COLORS)], "dash": "dot"},
        )
    fig = style(
        fig, title, "KL(π ‖ π_ref) (nats per answer)", "true reward of sampled answers (share right)", height=420
    )
    fig.update_xaxes(rangemode="tozero")
    fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    return legend_below(fig)


def overoptimisation_chart(
    points: dict[str, tuple[Sequence[float], Sequence[float], Sequence[str]]],
    curves: dict[str, tuple[Sequence[float], Sequence[float]]],
    peaks: Sequence[tuple[str, float, float]],
    title: str,
    y_title: str,
    percent: bool = False,
) -> go.Figure:
    """Reward against d = √KL (Gao et al.'s axis): measured points per series (x, y, labels), fitted curves
    (dashed, same colour order as the points they fit) and each fit's peak as a star."""
    fig = go.Figure()
    for n, (name, (xs, ys, labels)) in enumerate(points.items()):
        fig.add_scatter(
            x=list(xs), y=list(ys), mode="markers+text" if any(labels) else "markers", name=html.escape(name),
            text=[html.escape(t) for t in labels], textposition="top center", cliponaxis=False,
            marker={"size": 9, "color": SERIES_COLORS[n % len(SERIES_COLORS)]},
        )  # fmt: skip
    for n, (name, (xs, ys)) in enumerate(curves.items()):
        fig.add_scatter(
            x=list(xs), y=list(ys), mode="lines", name=html.escape(name),
            line={"color": SERIES_COLORS[n % len(SERIES_COLORS)], "dash": "dash"},
        )  # fmt: skip
    for name, x, y in peaks:
        fig.add_scatter(
            x=[x], y=[y], mode="markers", name=html.escape(name),
            marker={"symbol": "star", "size": 16, "color": "#d62728"},
        )  # fmt: skip
    if percent:
        fig.update_yaxes(tickformat=".0%")
    fig = style(fig, title, "d = √KL(π ‖ π_SFT) (√nats)", y_title, height=400)
    fig.update_xaxes(rangemode="tozero")
    return legend_below(fig)


def wrapped_label(text: str, width: int = 18) -> str:
    """A category name as an axis label: HTML-escaped, lines of about `width` characters joined by <br>."""
    return "<br>".join(html.escape(line) for line in textwrap.wrap(text, width) or [""])


def grouped_bars(
    categories: Sequence[str],
    series: dict[str, Sequence[float]],
    title: str,
    x_title: str,
    y_title: str,
    percent: bool = True,
) -> go.Figure:
    """Bars per category, one colour per series (e.g. before / after a run). Long category names wrap."""
    fig = go.Figure()
    for n, (name, values) in enumerate(series.items()):
        fig.add_bar(
            x=[wrapped_label(c) for c in categories],
            y=list(values),
            name=html.escape(name),
            marker_color=SERIES_COLORS[n % len(SERIES_COLORS)] if n else MUTED,
            text=[f"{v:.0%}" if percent else f"{v:.2f}" for v in values],
            textposition="outside",
            cliponaxis=False,
        )
    if percent:
        fig.update_yaxes(range=[0, 1.1], tickformat=".0%")
    fig = style(fig, title, x_title, y_title, height=380)
    fig.update_layout(barmode="group")
    return legend_below(fig)


def token_loss_bars(pieces: Sequence[str], losses: Sequence[float], counted: Sequence[bool], title: str) -> go.Figure:
    """SFT page: one bar per token, its cross-entropy; tokens outside the loss in grey (loss still shown)."""
    labels = [f"{n}: {token_label(p)}" for n, p in enumerate(pieces)]
    values = [0.0 if not math.isfinite(x) else x for x in losses]
    fig = go.Figure()
    fig.add_bar(
        x=labels,
        y=values,
        marker_color=[HIGHLIGHT if c else MUTED for c in counted],
        text=["" if not math.isfinite(x) else f"{x:.2f}" for x in losses],
        textposition="outside",
        cliponaxis=False,
        hovertemplate="%{x}<br>%{y:.3f} nats<extra></extra>",
    )
    fig.update_xaxes(type="category", tickangle=-60)
    return style(fig, title, "token (position: text)", "cross-entropy of predicting it (nats)", height=380)


# -- RLHF page ---------------------------------------------------------------------------------------------


def metric_lines(
    series: dict[str, tuple[Sequence[float], Sequence[float]]],
    title: str,
    x_title: str,
    y_title: str,
    percent: bool = False,
    height: int = 300,
) -> go.Figure:
    """Several named series against a shared x (e.g. training step), one colour each."""
    fig = go.Figure()
    for n, (name, (xs, ys)) in enumerate(series.items()):
        fig.add_scatter(
            x=list(xs),
            y=list(ys),
            mode="lines+markers" if len(xs) < 30 else "lines",
            name=html.escape(name),
            line={"color": SERIES_COLORS[n % len(SERIES_COLORS)]},
        )
    if percent:
        fig.update_yaxes(range=[0, 1.05], tickformat=".0%")
    fig = style(fig, title, x_title, y_title, height=height)
    fig.update_layout(showlegend=len(series) > 1)
    return fig


def score_histogram(chosen: Sequence[float], rejected: Sequence[float], title: str) -> go.Figure:
    """Overlaid histograms of reward-model scores: chosen answers (green) vs rejected ones (red)."""
    fig = go.Figure()
    fig.add_histogram(x=list(chosen), name="chosen answers", marker_color="#54a24b", opacity=0.65, nbinsx=30)
    fig.add_histogram(x=list(rejected), name="rejected answers", marker_color="#e45756", opacity=0.65, nbinsx=30)
    fig = style(fig, title, "reward-model score (logit units)", "number of answers", height=320)
    fig.update_layout(barmode="overlay", showlegend=True)
    return fig


KL_FLOOR = 1e-3  # nats: the frontier's log axis starts here (π* = π_ref itself has KL 0)
