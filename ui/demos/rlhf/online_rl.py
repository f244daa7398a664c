"""3 · Online RL: PPO (llmlab/ppo.py) or trl's RLOOTrainer / GRPOTrainer trains a copy of the SFT model against a
reward (a reward model, or verifiable correctness) with a KL coefficient β, live; several β one after another, side
by side on the same charts (llmlab.rlhf.kl_comparison_work); then each policy answers held-out questions."""

from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st

from llmlab import plots, rlhf
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.ppo import PPOConfig, PPOInputError, run_ppo
from llmlab.rl_algorithms import ALGORITHMS
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
from ui.download import download_button, note_start, started
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, show_code
from ui.models import start_model
from ui.runs import current_job, run_panel
from ui.settings import RADIO, SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class TrainedAgainst:
    """A job note: the reward the session's online-RL runs maximise (a choice of OnlineSettings.reward), and that
    reward model's settings (None for correctness), which a download's reproduce.py needs."""

    reward: str
    reward_config: object = None


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
    algorithm: str = option(
        "Algorithm", "PPO", choices=ALGORITHMS, widget=RADIO,
        help="PPO as the card teaches it (this project's llmlab/ppo.py: a critic, GAE, the clip), or trl's RLOO or "
        "GRPO (no critic: the other answers to the question are the baseline). Tab 4 runs all three side by side.",
    )  # fmt: skip
    kl: float = option("KL coefficient β", choices=RL_BETAS, core=(PPOConfig, "beta"))
    # 25, not PPOConfig's 45: β = 1 beside β = 0 then takes ~24-27 s on 2 cores, and β = 0 still hacks the biased
    # reward model (measured on the held-out questions, seeds 0 and 1: 38-39% right against 81-84%, answers 11-14
    # tokens against 6.5; at 45 steps 0-6% right, 23-24 tokens).
    steps: int = option("Steps", 25, lo=5, hi=200, step=5, core=(PPOConfig, "max_steps"))
    lr: float = option("Learning rate", choices=LEARNING_RATES, advanced=True, core=(PPOConfig, "learning_rate"))

    def configs(self) -> list[PPOConfig | RLRunConfig]:
        """One run per β: the chosen one first, then the others to compare (same seed and algorithm)."""
        reward = "correctness" if self.reward == CORRECTNESS else "reward model"
        shared = {"max_steps": int(self.steps), "learning_rate": float(self.lr), "reward": reward}
        betas = dict.fromkeys([self.kl, *self.compare])
        if self.algorithm == "PPO":
            return [PPOConfig(beta=float(b), **shared) for b in betas]
        return [RLRunConfig(beta=float(b), algorithm=self.algorithm, **shared) for b in betas]


def draw(loaded: LoadedModel) -> None:
    st.markdown(
        "**The card's step 3, live:** sample answers, score them with the reward model, and move toward higher "
        "reward while β·KL(π‖π_ref) is charged against it, the card's `ppo_step(reward, kl_penalty=β)`. PPO is "
        "this project's (trl 1.16 no longer ships a PPOTrainer); RLOO and GRPO are trl's trainers."
    )
    sft = start_model(loaded.device)
    form = SettingsForm(OnlineSettings, "rl_online_", choices={"reward": reward_options(with_correctness=True)})
    names = ("reward", "compare", "algorithm", "kl", "steps", "lr")
    for name, column in zip(names, [*st.columns(2), *st.columns(4)], strict=True):
        form.widget(name, column)
    settings = form.done()
    configs = settings.configs()
    try:
        for config in configs:
            config.check()
    except (rlhf.RLInputError, PPOInputError) as err:
        st.error(str(err), icon="⚠️")
        return

    def make_job() -> Job:
        run = reward_model_for(settings.reward, sft.name, sft.device)
        job = Job("rl-online", rlhf.kl_comparison_work(sft, run, configs))
        job.note(TrainedAgainst(settings.reward, run.config if run is not None else None))
        return note_start(job, sft.name, sft.tokenizer)

    betas = ", ".join(f"{c.beta:g}" for c in configs)
    run_panel(
        pipeline.RL_JOB,
        make_job,
        draw_rl_run,
        start_label="Start RL",
        idle_message=f"Press Start RL to train a copy of {sft.name} with {settings.algorithm} at β = {betas} (one "
        "run after another, same seed).",
    )
    show_code(*((run_ppo,) if settings.algorithm == "PPO" else (rlhf.trainer_config, rlhf.run_rl)))


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
    draw_downloads(job)


def draw_downloads(job: Job) -> None:
    """A finished job's policies, each as a download (a Hugging Face folder with its card and reproduce.py)."""
    start, against = started(job), job.notes_of(TrainedAgainst)
    if job.running or not isinstance(job.result, list) or start is None or not against:
        return
    for run in job.result:
        metrics = {"steps": int(run.history[-1]["step"]) if run.history else 0, **rlhf.final_metrics(run.history)}
        st.markdown(f"**The policy trained at β = {run.config.beta:g}**")
        download_button("rl", run.policy, start.tokenizer, run.config, start.start_model, metrics,
                        key=f"rl_online_download_{run.config.beta:g}", reward_config=against[0].reward_config)  # fmt: skip


def draw_held_out(reports: list[rlhf.HeldOutAnswers], running: bool) -> None:
    """Reward hacking in the policies' own words: the SFT model and each trained policy answer the same
    held-out questions (sampled with the same seeds), scored by the reward model they were trained against."""
    if not reports:
        if running:
            st.caption("When the runs end, each policy answers the 24 held-out questions here.")
        return
    st.markdown(
        "**Held-out questions, answered by each policy** (24 questions in no preference pair and never an RL prompt)"
    )
    st.caption(
        f"Each policy samples {rlhf.HELD_OUT_SAMPLES} answers to each held-out question with the same "
        "seeds; the reward model the runs trained against scores them and the facts decide correctness. With the "
        "biased reward model (trained on labels where the longer answer wins, right or wrong), the unleashed "
        "policy (β = 0) finds what that model pays for: measured on the bundled models, its score rises while "
        "fewer answers are right and answers get longer (at the default 25 steps about twice as long; at 45, to "
        "the length limit)."
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
