"""DPO vs RLHF: both from tiny-sft on the same preference pairs, every policy scored the same way (share of right
answers sampled for held-out questions against KL to the start model) on one chart, with wall time and models in
memory per method. RLHF runs here (llmlab.dpo_experiments.rlhf_frontier_work); DPO points come from the β sweep
and live runs, and the RLHF page's online runs join them (llmlab.dpo_experiments.Policies)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import dpo, plots, preferences
from llmlab.dpo_experiments import FrontierPoint, Policies, rlhf_frontier_work, rlhf_point
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.rlhf import RLRunConfig
from ui.demos.dpo.shared import ASKED, LIVE_RUNS, RLHF_PAGE_RUNS, RLHF_RUNS, SWEEPS, pairs
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart
from ui.models import start_model
from ui.runs import current_job, run_panel
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING
RLHF_PAGE_JOB = "rl_online"  # the RLHF page's online-RL run panel


@dataclass(frozen=True)
class RlhfSettings:
    betas: tuple[float, ...] = option(
        "β values for RLHF (its KL coefficient)", (0.01, 0.1, 1.0), choices=dpo.BETA_CHOICES
    )
    steps: int = option("RL steps per β", lo=10, hi=200, step=10, core=(RLRunConfig, "max_steps"))


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    st.markdown(
        "DPO and KL-penalised RLHF optimise the same objective, max E[reward] − β·KL(π ‖ π_ref). Here both start "
        f"from {start.name} and learn from the same preference pairs, and every policy is scored the same way. "
        "**Up:** the true reward, the share of right answers among 4 answers sampled (temperature 1) for each of "
        "the 96 questions the pairs are about (the right capital, language or continent, and no wrong one). "
        "**Right:** how far the policy moved, KL(π ‖ π_ref) on those answers, in nats per answer. The papers' "
        "picture is a curve per method that rises above the start at small KL and bends down as the policy drifts "
        "further. To see DPO's bend, run the β sweep with the NLL weight at 0 (plain DPO): its small β drift far; "
        "with the NLL term the chosen answers hold every β near the top."
    )
    form = SettingsForm(RlhfSettings, "dpo_rlhf_")
    for name, column in zip(form.specs, st.columns([2, 1]), strict=True):
        form.widget(name, column)
    settings = form.done()
    chosen, rl_steps = sorted(settings.betas), int(settings.steps)
    if chosen:
        run_panel(
            "dpo_rlhf",
            lambda: Job(
                "dpo-rlhf", rlhf_frontier_work(start, pairs("test"), chosen, rl_steps, preferences.true_reward, ASKED)
            ),
            lambda job: draw_rlhf(job, rl_steps),
            start_label=f"Run RLHF at {len(chosen)} β",
            idle_message=(
                "Runs the RLHF page's pipeline: a reward model (trl RewardTrainer) on the same pairs, then online RL "
                f"(trl RLOOTrainer, {rl_steps} steps) from {start.name} at each β. DPO points come from the β sweep "
                "and live-run tabs."
            ),
        )
    else:
        st.info("Pick at least one β for the RLHF runs.", icon="📈")
    frontier(start)


def draw_rlhf(job: Job, rl_steps: int) -> None:
    metrics = job.snapshot()
    if job.running:
        if not metrics:
            st.caption("Training the reward model on the preference pairs…")
        else:
            st.caption(f"RLHF at β = {metrics[-1].get('beta', 0):g}: step {int(metrics[-1]['step'])} of {rl_steps}")
    points = job.notes_of(FrontierPoint)
    if not job.running and points and not RLHF_RUNS.has(job):
        RLHF_RUNS.keep(job, points)


def rlhf_page_points(start: LoadedModel) -> list[FrontierPoint]:
    """The RLHF page's online runs of this session, each scored once like the DPO policies."""
    job = current_job(RLHF_PAGE_JOB)
    if job is not None and not job.running and job.result and not RLHF_PAGE_RUNS.has(job):
        with st.spinner("Scoring the RLHF page's policies the same way as the DPO ones…"):
            heldout = pairs("test")
            RLHF_PAGE_RUNS.keep(
                job, [rlhf_point(run, start, heldout, preferences.true_reward, asked=ASKED) for run in job.result]
            )
    return [p for points in RLHF_PAGE_RUNS.values() for p in points]


def frontier(start: LoadedModel) -> None:
    policies = Policies(
        sweep=[p for points in SWEEPS.values() for p in points],
        live=LIVE_RUNS.values(),
        rlhf=[p for points in RLHF_RUNS.values() for p in points],
        rlhf_page=rlhf_page_points(start),
    )
    points = policies.chart_points(start.name)
    if not points:
        st.info(
            "No policies yet: run the β sweep or a live DPO run, and RLHF above (runs on the RLHF page's online-RL "
            "tab show up here too).",
            icon="📈",
        )
        return
    title = "DPO and RLHF on one frontier: right answers against drift"
    chart(plots.reward_kl_frontier(points, title), "dpo_frontier_chart")
    st.dataframe(pd.DataFrame(policies.cost_rows()), hide_index=True, key="dpo_cost_table")
    st.caption(
        "Wall times are this server's, measured in this session (steps differ per method: compare per-policy "
        "cost, not per step). KL: summed per-token KL(π ‖ π_ref) on sampled answers, nats per answer."
    )
