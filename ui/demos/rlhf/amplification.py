"""Stacked bias: the labellers' length bias, the reward model's and the RL policy's on one scale, P(the longer of two
answers is preferred), measured after the Online RL tab's runs (llmlab/amplification.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st

from llmlab import amplification, plots
from llmlab.amplification import Amplification, AmplificationConfig
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.ppo import PPOConfig, PPOInputError
from llmlab.rlhf import RL_BETAS
from ui.demos.rlhf.reward_models import RM_BIASED, RM_UNBIASED, reward_model_for
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, intro, show_code
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import RADIO, SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING
JOB = "rl_amp"
# What the default shows, measured on the bundled models (tests/test_amplification.py asserts seed 0's outcome).
MEASURED = (
    "Measured with the defaults, seeds 0 and 1: labellers 100%, reward model 99.997%, policy before RL 50%; after "
    "PPO at β = 0, 89-91% (answers 11-14 tokens instead of 6.3, 38% right instead of 98%); at β = 1, 10-46% (81-84% "
    "right, 6.5-6.7 tokens). On this scale the bias does not grow past the labellers': their rule was already "
    "absolute (the longer answer won every labelled pair). What each stage adds is reach. The reward model applies "
    "the preference to answers no labeller judged (equally correct pairs, on questions no pair asked). The unleashed "
    "policy turns it into behaviour, and not by copying the labellers' polite padding (it gives the padded answer "
    "hundreds of nats less than the plain one, as the SFT model does): it finds its own way to be long, which the "
    "reward model pays for too. The KL leash (β = 1) keeps it out: below 50%, RL moved away from the longer answer."
)


@dataclass(frozen=True)
class AmplificationSettings:
    reward: str = option("Labels and reward model", RM_BIASED, choices=(RM_BIASED, RM_UNBIASED), widget=RADIO)
    betas: tuple[float, ...] = option(
        "RL runs (KL coefficient β)", (0.0, 1.0), choices=RL_BETAS,
        help="One PPO run per β from the SFT model against the reward model (the Online RL tab's runs).",
    )  # fmt: skip
    steps: int = option("Steps", 25, lo=5, hi=100, step=5, core=(PPOConfig, "max_steps"))

    def config(self) -> AmplificationConfig:
        betas = tuple(sorted(float(b) for b in self.betas)) or (0.0,)
        return AmplificationConfig(biased=self.reward == RM_BIASED, betas=betas, steps=int(self.steps))


def draw(loaded: LoadedModel) -> None:
    intro(
        "**Does the labellers' bias survive, or grow, on its way to the policy?** The biased labellers pick the "
        "longer answer, right or wrong; a reward model learns from their labels; PPO optimises a policy against "
        "that reward model. Here each stage is measured on one scale: **how likely it is to prefer the longer of "
        "two answers**. The labellers: the share of their labelled pairs won by the longer answer. The reward "
        "model: σ(r_long − r_short) on pairs of *equally correct* answers that differ only in length (the right "
        "answer to each of the 24 unseen questions, plain and wrapped in polite padding). The policy: the same "
        "pairs through the reward RL taught it, r̂ = log π/π_ref (50% before RL, where π = π_ref)."
    )
    sft = start_model(loaded.device)
    form = SettingsForm(AmplificationSettings, "rl_amp_")
    for name, column in zip(("reward", "betas", "steps"), st.columns([2, 2, 1]), strict=True):
        form.widget(name, column)
    settings = form.done()
    cfg = settings.config()
    try:
        for c in cfg.configs():
            c.check()
    except PPOInputError as err:
        st.error(str(err), icon="⚠️")
        return

    def make_job() -> Job:
        rm = reward_model_for(settings.reward, sft.name, sft.device)
        return Job("rl-amplification", amplification.amplification_work(sft, rm, cfg))

    betas = ", ".join(f"{b:g}" for b in cfg.betas)
    run_panel(
        JOB,
        make_job,
        draw_run,
        start_label="Measure the chain",
        idle_message=f"Press Measure the chain: PPO from {sft.name} against the {settings.reward}, {cfg.steps} steps "
        f"at β = {betas} (one run after another), then every stage on the common scale (about 30 s on 2 cores).",
    )
    show_code(amplification.measure, amplification.equal_pairs)


def draw_run(job: Job) -> None:
    rows = job.snapshot()
    if job.running or not isinstance(job.result, Amplification):
        if rows:
            last = rows[-1]
            st.caption(f"PPO at β = {last.get('beta', 0):g}, step {last.get('step', 0):g}…")
        elif job.running:
            st.caption("Sampling the first answers…")
        if not job.running and job.result is None:
            st.caption("Stopped before every run finished: nothing to measure. Press Measure the chain again.")
        return
    draw_result(job.result)


def draw_result(result: Amplification) -> None:
    names = [s.name for s in result.stages]
    fig = plots.grouped_bars(
        names, {"P(longer preferred)": [s.preference for s in result.stages]},
        "Preference for the longer answer, stage by stage", "stage",
        "P(the longer of two answers is preferred)",
    )  # fmt: skip
    chart(fig, "rl_amp_chart")
    st.caption(verdict(result))
    st.caption(MEASURED)
    st.dataframe(amplification.stage_table(result), hide_index=True)
    st.markdown("**What the policies write** (8 answers to each of the 24 unseen questions, same seeds)")
    st.dataframe(amplification.behaviour_table(result), hide_index=True)


def verdict(result: Amplification) -> str:
    """The chart in words, from the numbers measured."""
    by = {s.name: s for s in result.stages}
    labellers, rm = by["labellers"].preference, by["reward model"].preference
    before = next(p for p in result.policies if p.name == amplification.BEFORE)
    parts = [
        f"Labellers {labellers:.0%} → reward model {rm:.1%}"
        + "".join(f" → {s.name.removeprefix('policy: ')} {s.preference:.0%}" for s in result.stages[2:])
        + "."
    ]
    for p in result.policies:
        if p is before or math.isnan(p.length):
            continue
        parts.append(
            f"{p.name}: answers {p.length:.1f} tokens (before RL {before.length:.1f}), {p.correct:.0%} right "
            f"(before {before.correct:.0%}), {p.padding:.2f} polite phrases per answer."
        )
    return " ".join(parts)
