"""Chinchilla calculator: L(N, D) = E + A/N^alpha + B/D^beta and the compute-optimal split of a budget, with
the card's Q3 (7B × 100B vs 70B × 10B) and today's overtrained 8B × 15T on the same charts (llmlab/scaling.py)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import streamlit as st

from llmlab import plots, scaling
from llmlab.modeling import LoadedModel
from ui.frame import chart, show_code
from ui.settings import NUMBER, RADIO, SettingsForm, option

TOKENS, BUDGET = "parameters and tokens", "a compute budget and parameters"
FRONTIER_BUDGETS = np.logspace(17, 27, 41)  # FLOPs


@dataclass(frozen=True)
class ChinchillaSettings:
    mode: str = option("Choose", TOKENS, choices=(TOKENS, BUDGET), widget=RADIO)
    n: float = option(
        "Parameters N (billions)", 7.0, lo=0.001, hi=1e5, widget=NUMBER, number_format="%.3f", help="Model size."
    )
    d: float = option(
        "Training tokens D (billions)", 100.0, lo=0.001, hi=1e7, widget=NUMBER, number_format="%.3f",
        help="Data seen in training.",
    )  # fmt: skip
    c: float = option("Compute budget C (log10 FLOPs)", 21.6, lo=15.0, hi=28.0, step=0.1)

    def run(self) -> scaling.TrainingRun:
        n = self.n * 1e9
        d = self.d * 1e9 if self.mode == TOKENS else float(scaling.tokens_for_budget(10**self.c, n))
        return scaling.TrainingRun("your run", n, d)


def draw(loaded: LoadedModel) -> None:
    law = scaling.CHINCHILLA
    st.latex(
        rf"L(N, D) = {law.E} + \frac{{{law.A}}}{{N^{{{law.alpha}}}}} + \frac{{{law.B}}}{{D^{{{law.beta}}}}},"
        r"\qquad C \approx 6ND"
    )
    form = SettingsForm(ChinchillaSettings, "pt_ch_")
    mode = form.widget("mode", horizontal=True)
    c1, c2 = st.columns(2)
    form.widget("n", c1)
    form.widget("d" if mode == TOKENS else "c", c2)  # the other one keeps its value
    run = form.done().run()

    best = scaling.compute_optimal(run.compute)
    rule = scaling.rule_of_thumb(run.compute)
    m1, m2 = st.columns(2)
    m1.metric("Predicted loss", f"{run.loss():.3f}", help="Nats per token, from the formula above.")
    m2.metric("Compute C = 6ND (FLOPs)", f"{run.compute:.2e}")
    m3, m4 = st.columns(2)
    m3.metric("Tokens per parameter", f"{run.tokens_per_param:,.1f}")
    m4.metric(
        "Best loss for this C",
        f"{best.loss():.3f}",
        delta=f"{best.loss() - run.loss():+.3f} vs yours",
        delta_color="off",
        help="The compute-optimal run of this fit for the same budget.",
    )
    st.caption(
        f"For C = {run.compute:.2e} FLOPs this fit's optimum is N = {scaling.format_count(best.n_params)} parameters "
        f"× D = {scaling.format_count(best.n_tokens)} tokens ({best.tokens_per_param:.0f} tokens per parameter); "
        f"the paper's 20-tokens-per-parameter rule says N = {scaling.format_count(rule.n_params)} × "
        f"D = {scaling.format_count(rule.n_tokens)} (loss {rule.loss():.3f})."
    )

    budgets = scaling.budgets(run)
    shown = scaling.runs_to_show(run)
    curves, budget_lines = [], []
    for name, compute in budgets.items():
        n, d, loss = scaling.iso_compute_curve(compute, scaling.param_grid(compute))
        curves.append((f"{name}: C = {compute:.1e}", n, loss))
        budget_lines.append((f"C = {compute:.1e} FLOPs", n, d, "dot"))
    optima = [scaling.compute_optimal(c) for c in budgets.values()]
    chart(
        plots.iso_compute_losses(
            curves,
            [(r.label, r.n_params, r.loss()) for r in shown],
            "Same compute, different splits: predicted loss along C = 6ND",
            optima=[(o.n_params, o.loss()) for o in optima],
        ),
        key="pt_ch_iso",
    )
    optimal, rules = scaling.frontier(FRONTIER_BUDGETS)
    chart(
        plots.compute_frontier(
            [
                (
                    "compute-optimal frontier (this fit)",
                    [r.n_params for r in optimal],
                    [r.n_tokens for r in optimal],
                    "solid",
                ),
                ("D = 20 N (Chinchilla's rule)", [r.n_params for r in rules], [r.n_tokens for r in rules], "solid"),
                *budget_lines,
            ],
            [(r.label, r.n_params, r.n_tokens) for r in shown],
            "Where the runs sit: parameters vs training tokens",
        ),  # fmt: skip
        key="pt_ch_frontier",
    )
    st.dataframe(scaling.comparison_rows(run), hide_index=True, key="pt_ch_table")
    show_code(scaling.predicted_loss, scaling.compute_optimal)
    twin, over = scaling.overtrained_twin(), scaling.OVERTRAINED
    st.markdown(
        f"**Q3:** both options cost {scaling.Q3_SMALL.compute:.1e} FLOPs; 7B × 100B predicts "
        f"{scaling.Q3_SMALL.loss():.3f} and 70B × 10B predicts {scaling.Q3_LARGE.loss():.3f} nats/token. "
        f"**Overtrained:** 8B × 15T reaches {over.loss():.3f}; a compute-optimal run gets there with "
        f"{twin.compute:.2e} FLOPs ({twin.training_saving:.1f}× less training compute) but a "
        f"{scaling.format_count(twin.run.n_params)} model that costs {twin.serving_cost:.1f}× more per "
        "generated token to serve."
    )
