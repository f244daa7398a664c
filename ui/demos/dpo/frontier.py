"""DPO vs RLHF: both from tiny-sft on the same preference pairs, every policy scored the same way (share of right
answers sampled for held-out questions against KL to the start model) on one chart, with wall time and models in
memory per method. RLHF runs here (llmlab.dpo_experiments.rlhf_frontier_work); DPO points come from the β sweep
and live runs, and the RLHF page's online runs join them (llmlab.dpo_experiments.Policies). Below, "secretly a
reward model": the bundled tiny-dpo's implicit reward β·log π/π_ref against the bundled reward model's scores on the
same held-out answers (llmlab.implicit_reward), read-only on the shared models."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import dpo, implicit_reward, plots, preferences
from llmlab.dpo_experiments import FrontierPoint, Policies, rlhf_frontier_work, rlhf_point
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.rlhf import RLRunConfig
from ui.demos.dpo.shared import ASKED, LIVE_JOB, LIVE_RUNS, RLHF_PAGE_RUNS, RLHF_RUNS, SWEEPS, pairs
from ui.demos.rlhf.reward_models import default_reward_model
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, show_code
from ui.models import START_MODEL, shared_model, start_model
from ui.runs import Kept, current_job, run_id, run_panel
from ui.settings import RADIO, SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING
RLHF_PAGE_JOB = "rl_online"  # the RLHF page's online-RL run panel


@dataclass(frozen=True)
class RlhfSettings:
    betas: tuple[float, ...] = option(
        "β values for RLHF (its KL coefficient)", (0.01, 0.1, 1.0), choices=dpo.BETA_CHOICES
    )
    steps: int = option("RL steps per β", lo=10, hi=200, step=10, core=(RLRunConfig, "max_steps"))


BUNDLED, LIVE = "bundled", "live"
DPO_MODEL = "tiny-dpo"  # models/tiny-dpo: tiny-sft after DPO on the shipped pairs (scripts/train_aligned.py)
HELD_OUT_SPLITS = ("test", "unseen")  # pairs neither the reward model nor tiny-dpo trained on
IMPLICIT_LIVE: Kept[implicit_reward.ImplicitRewardReport] = Kept("dpo_ir_live_kept")  # a live run's, once


@dataclass(frozen=True)
class ImplicitSettings:
    policy: str = option(
        "Policy π", BUNDLED, choices=(BUNDLED, LIVE),
        labels={BUNDLED: "tiny-dpo (bundled)", LIVE: "your Live DPO run"}, widget=RADIO,
        help="Whose implicit reward β·log π/π_ref to compare with the reward model. π_ref is tiny-sft either way.",
    )  # fmt: skip


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
    secretly_a_reward_model(start)


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


# -- "your language model is secretly a reward model" -------------------------------------------------------


@st.cache_resource(show_spinner="Scoring the held-out answers with tiny-dpo, tiny-sft and the reward model…")
def bundled_report(device: str) -> implicit_reward.ImplicitRewardReport:
    """tiny-dpo's implicit reward and the bundled reward model on the held-out pairs: computed once per server."""
    policy, reference = shared_model(DPO_MODEL, device), shared_model(START_MODEL, device)
    rm = default_reward_model(START_MODEL, device, False)
    return implicit_reward.compare(
        policy.model,
        reference.model,
        reference.tokenizer,
        rm.model,
        {split: pairs(split) for split in HELD_OUT_SPLITS},
        implicit_reward.trained_beta(),
    )


def live_report(start: LoadedModel, job: Job) -> implicit_reward.ImplicitRewardReport:
    """The same comparison with the Live DPO run's policy (its own reference and β), computed once per run."""
    if not IMPLICIT_LIVE.has(job):
        run = job.result.run
        rm = default_reward_model(START_MODEL, start.device, False)
        with st.spinner("Scoring the held-out answers with your live run's policy…"):
            IMPLICIT_LIVE.keep(
                job,
                implicit_reward.compare(
                    run.policy,
                    run.reference,
                    start.tokenizer,
                    rm.model,
                    {split: pairs(split) for split in HELD_OUT_SPLITS},
                    run.settings.beta,
                ),
            )
    return st.session_state[IMPLICIT_LIVE.key][run_id(job)]


def secretly_a_reward_model(start: LoadedModel) -> None:
    st.subheader("Your language model is secretly a reward model")
    st.markdown(
        'The algebra behind "equivalent but simpler": the optimum of max E[r] − β·KL is π*(y|x) ∝ '
        "π_ref(y|x)·exp(r(x,y)/β), so r(x,y) = β·log π*(y|x)/π_ref(y|x) + β·log Z(x). DPO trains π directly and "
        "never builds r, but reading that line backwards gives one: the **implicit reward** β·(log π − log π_ref). "
        "Here it is set against the reward model RLHF trains explicitly (trl's RewardTrainer on the same "
        "training pairs), on answers neither was trained on: fresh pairs on the training questions and pairs on "
        "the unseen questions (in no training pair). β·log Z(x) is one constant per question: it cancels inside a pair, so the fair "
        "test is the **pairwise agreement** (do both pick the same answer?)."
    )
    job = current_job(LIVE_JOB)
    policy = BUNDLED
    if job is not None and not job.running and job.result is not None:
        # The choice exists (and goes into the URL) only once the session has a finished live run to choose.
        form = SettingsForm(ImplicitSettings, "dpo_ir_")
        form.widget("policy", horizontal=True)
        policy = form.done().policy
    if policy == LIVE:
        report = live_report(start, job)
        who = f"your Live DPO run (β = {report.beta:g}, {job.result.run.steps_done} steps)"
    else:
        report = bundled_report(start.device)
        who = f"{DPO_MODEL} (tiny-sft after 50 DPO steps with the chosen answers' NLL, β = {report.beta:g})"
    st.caption(f"π = {who}; π_ref = {START_MODEL}; reward model: the bundled one (unbiased pairs).")
    m1, m2, m3, m4 = st.columns(4)
    m1.metric("Pearson r", f"{report.pearson:.2f}", help="Over every held-out answer.")
    m2.metric("Spearman ρ", f"{report.spearman:.2f}", help="Correlation of the ranks.")
    m3.metric(
        "Pairwise agreement",
        f"{report.agreement:.0%}",
        help="Share of held-out pairs where both rewards prefer the same answer (50% = unrelated).",
    )
    m4.metric(
        "r, per-question means removed",
        f"{report.pearson_within:.2f}",
        help="Both rewards minus their mean over the question's answers: β·log Z(x) taken out.",
    )
    chart(
        implicit_reward.scatter_figure(
            report,
            f"Implicit reward vs reward model, {len(report.answers)} held-out answers "
            f"(r = {report.pearson:.2f}, ρ = {report.spearman:.2f})",
        ),
        "dpo_ir_scatter",
    )
    st.dataframe(pd.DataFrame(report.split_rows()), hide_index=True, key="dpo_ir_table")
    st.caption(
        f"What the tiny models show: the two rewards pick the same answer in {report.agreement:.0%} of "
        f"{report.n_pairs} held-out pairs (50% would be unrelated) and correlate positively (r = "
        f"{report.pearson:.2f}), but far from perfectly. They are two imperfect estimates of the same "
        f"preferences: the implicit reward ranks the chosen answer first in {report.implicit_accuracy:.0%} of "
        f"pairs, the reward model in {report.rm_accuracy:.0%}. tiny-dpo had only 50 steps, with an NLL term on the "
        "chosen answers that is not in the derivation; the table shows how the unseen questions differ."
    )
    show_code(implicit_reward.compare)
