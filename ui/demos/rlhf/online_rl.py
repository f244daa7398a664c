"""3 · Online RL: trl's RLOOTrainer trains a copy of the SFT model against a reward (a reward model, or verifiable
correctness) with a KL coefficient β, live; several β one after another, side by side on the same charts
(llmlab.rlhf.kl_comparison_work)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st

from llmlab import plots, rlhf
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.rlhf import RL_BETAS, RLRunConfig, SampledAnswers
from llmlab.trainargs import LEARNING_RATES
from ui.demos.rlhf import pipeline
from ui.demos.rlhf.reward_models import (
    CORRECTNESS,
    RM_BIASED,
    RM_SESSION,
    RM_UNBIASED,
    reward_model_for,
    reward_options,
)
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, show_code
from ui.models import start_model
from ui.runs import current_job, run_panel
from ui.settings import RADIO, SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class TrainedAgainst:
    """A job note: the reward the session's online-RL runs maximise (a choice of OnlineSettings.reward)."""

    reward: str


def rl_job() -> Job | None:
    """This session's online-RL job (running or finished), if any."""
    return current_job(pipeline.RL_JOB)


def trained_against(job: Job) -> str | None:
    notes = job.notes_of(TrainedAgainst)
    return notes[0].reward if notes else None


@dataclass(frozen=True)
class OnlineSettings:
    # "your reward model" is a choice once the reward-model tab has trained one: the form gets reward_options()
    reward: str = option("Reward", RM_BIASED, choices=(RM_UNBIASED, RM_BIASED, RM_SESSION, CORRECTNESS), widget=RADIO)
    compare: tuple[float, ...] = option(
        "Also run, side by side (same seed)", (0.0,), choices=RL_BETAS,
        help="More KL coefficients, each a run of its own after the first; curves share the charts.",
    )  # fmt: skip
    kl: float = option("KL coefficient β", choices=RL_BETAS, core=(RLRunConfig, "beta"))
    steps: int = option("Steps", lo=5, hi=200, step=5, core=(RLRunConfig, "max_steps"))
    lr: float = option("Learning rate", choices=LEARNING_RATES, advanced=True, core=(RLRunConfig, "learning_rate"))

    def configs(self) -> list[RLRunConfig]:
        """One run per β: the chosen one first, then the others to compare (same seed)."""
        reward = "correctness" if self.reward == CORRECTNESS else "reward model"
        return [
            RLRunConfig(beta=float(b), max_steps=int(self.steps), learning_rate=float(self.lr), reward=reward)
            for b in dict.fromkeys([self.kl, *self.compare])
        ]


def draw(loaded: LoadedModel) -> None:
    st.markdown(
        "**How this relates to the card's PPO:** trl 1.16 has no PPOTrainer; `RLOOTrainer` is the same loop "
        "without PPO's value network: each answer's advantage is its reward minus the mean reward of the other "
        "answers to the same question, and β·KL(π‖π_ref) is subtracted from the reward exactly like the card's "
        "`ppo_step(reward, kl_penalty=β)` (GRPOTrainer adds the KL to the loss instead)."
    )
    sft = start_model(loaded.device)
    form = SettingsForm(OnlineSettings, "rl_online_", choices={"reward": reward_options(with_correctness=True)})
    for name, column in zip(("reward", "compare", "kl", "steps", "lr"), [*st.columns(2), *st.columns(3)], strict=True):
        form.widget(name, column)
    settings = form.done()
    configs = settings.configs()
    try:
        for config in configs:
            config.check()
    except rlhf.RLInputError as err:
        st.error(str(err), icon="⚠️")
        return

    def make_job() -> Job:
        run = reward_model_for(settings.reward, sft.name, sft.device)
        job = Job("rl-online", rlhf.kl_comparison_work(sft, run, configs))
        job.note(TrainedAgainst(settings.reward))
        return job

    betas = ", ".join(f"{c.beta:g}" for c in configs)
    run_panel(
        pipeline.RL_JOB,
        make_job,
        draw_rl_run,
        start_label="Start RL",
        idle_message=f"Press Start RL to train a copy of {sft.name} with RLOO at β = {betas} (one run after "
        "another, same seed).",
    )
    show_code(rlhf.rloo_config, rlhf.run_rl)


def draw_rl_run(job: Job) -> None:
    rows = job.snapshot()
    if not rows:
        st.caption("Sampling the first answers…")
        return
    betas = rlhf.run_betas(rows)

    def series(key: str) -> dict:
        return {
            f"β = {b:g}": (
                [r["step"] for r in rows if r["beta"] == b],
                [r.get(key, math.nan) for r in rows if r["beta"] == b],
            )
            for b in betas
        }

    c1, c2 = st.columns(2)
    reward = plots.metric_lines(series("rewards/judge/mean"), "Mean reward of sampled answers", "training step",
                                "reward (score units; correctness 0–1)")  # fmt: skip
    chart(reward, "rl_online_reward_chart", c1)
    kl = plots.metric_lines(series("kl_seq"), "KL to the SFT model", "training step", "KL(π ‖ π_ref) (nats per answer)")
    chart(kl, "rl_online_kl_chart", c2)
    length = plots.metric_lines(
        series("completions/mean_length"), "Answer length", "training step", "tokens per answer"
    )
    chart(length, "rl_online_length_chart", c1)
    true = plots.metric_lines(series("true_reward"), "Correct answers (true reward)", "training step",
                              "share of sampled answers that are right", percent=True)  # fmt: skip
    chart(true, "rl_online_true_chart", c2)
    st.markdown("**Side by side** (mean of each run's last 5 steps)")
    st.dataframe(rlhf.side_by_side(rows), hide_index=True)
    samples = job.notes_of(SampledAnswers)
    if samples:
        st.markdown("**Sampled answers at checkpoints**")
        st.dataframe(rlhf.checkpoint_samples(samples), hide_index=True)
    draw_held_out(job.notes_of(rlhf.HeldOutAnswers), job.status == "running")


def draw_held_out(reports: list[rlhf.HeldOutAnswers], running: bool) -> None:
    """Reward hacking in the policies' own words: the SFT model and each trained policy answer the same
    held-out questions (sampled with the same seeds), scored by the reward model they were trained against."""
    if not reports:
        if running:
            st.caption("When the runs end, each policy answers the 96 held-out questions here.")
        return
    st.markdown("**Held-out questions, answered by each policy** (never trained on)")
    st.caption(
        f"Each policy samples {rlhf.HELD_OUT_SAMPLES} answers to each of the 96 held-out questions with the same "
        "seeds; the reward model the runs trained against scores them and the facts decide correctness. With the "
        "biased reward model (trained on labels where the longer answer wins, right or wrong), the unleashed "
        "policy (β = 0) finds what that model pays for: measured on the bundled models, its score rises while "
        "fewer answers are right and answers run to the length limit."
    )
    names = [r.name for r in reports]
    score = plots.grouped_bars(names, {"reward-model score": [r.score for r in reports]},
                               "Reward-model score on held-out questions", "policy", "mean score (score units)",
                               percent=False)  # fmt: skip
    correct = plots.grouped_bars(names, {"correct": [r.correct for r in reports]},
                                 "Correct answers on held-out questions", "policy", "share of answers that are right")  # fmt: skip
    c1, c2 = st.columns(2)
    chart(score, "rl_online_held_score", c1)
    chart(correct, "rl_online_held_correct", c2)
    st.dataframe(rlhf.held_out_summary(reports), hide_index=True)
    st.dataframe(rlhf.held_out_side_by_side(reports), hide_index=True)
