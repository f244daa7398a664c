"""1 · Reward model: a copy of the SFT model gets a one-number head and learns from preference pairs (unbiased,
or labels where the longer answer wins) with trl's RewardTrainer, live (llmlab.reward.train_reward_model); the
held-out scores as a histogram; then a box that scores two typed answers (ui/demos/rlhf/score_box.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from llmlab import plots, preferences, reward
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.reward import HeldOutScores, RewardRunConfig
from llmlab.trainargs import LEARNING_RATES
from ui.demos.rlhf.reward_models import RM_JOB
from ui.demos.rlhf.score_box import score_box
from ui.download import download_button
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, intro, show_code
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import SettingsForm, option
from ui.text import md_escape

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class RewardSettings:
    biased: bool = option("Biased labels: the longer answer wins", core=(RewardRunConfig, "biased"))
    steps: int = option("Steps", lo=10, hi=400, step=10, core=(RewardRunConfig, "max_steps"))
    lr: float = option("Learning rate", choices=LEARNING_RATES, advanced=True, core=(RewardRunConfig, "learning_rate"))
    pairs: int = option("Training pairs", lo=8, hi=reward.SHIPPED_TRAIN_PAIRS, core=(RewardRunConfig, "train_pairs"))

    def config(self) -> RewardRunConfig:
        return RewardRunConfig(
            max_steps=int(self.steps), learning_rate=float(self.lr), train_pairs=int(self.pairs), biased=self.biased
        )


def draw(loaded: LoadedModel) -> None:
    sft = start_model(loaded.device)
    intro(
        f"A copy of **{md_escape(sft.name)}** gets a one-number head and learns from pairs "
        "(question, chosen answer, rejected answer) with the card's loss −log σ(score_chosen − score_rejected), "
        "using trl's `RewardTrainer`. The pairs are tiny-sft's own answers: it answered each question 64 times, "
        "and each distinct wrong answer is paired with one of its right ones (the correct one is chosen). "
        "Held-out pairs are mistakes from fresh answers that no training pair contains. The biased labeller "
        "sees the same pairs with a quarter of the answers politely padded, and always picks the longer one."
    )
    form = SettingsForm(RewardSettings, "rl_rm_")
    biased = form.widget("biased")
    for name, column in zip(("steps", "lr", "pairs"), st.columns(3), strict=True):
        form.widget(name, column)
    config = form.done().config()
    rows = preferences.preference_pairs(0, biased, "train")
    with st.expander(f"The preference pairs ({len(rows)} train, biased={biased})"):
        st.caption(f"{preferences.label_agreement(rows):.0%} of these labels pick the correct answer.")
        st.dataframe(preferences.readable_pairs(rows[:40]), hide_index=True)
    run_panel(
        RM_JOB,
        lambda: Job("rl-reward-model", lambda job: reward.train_reward_model(sft, config, job)),
        draw_reward_run,
        start_label="Train reward model",
        idle_message=f"Press Train reward model to train one live ({RewardRunConfig.max_steps} steps by default).",
    )
    st.markdown("#### Score two answers")
    score_box(sft)
    show_code(reward.reward_model_from, reward.freeze_lower_layers, reward.make_reward_trainer)


def draw_reward_run(job: Job) -> None:
    rows = job.snapshot()
    train = [r for r in rows if "loss" in r]
    held = [r for r in rows if "heldout_accuracy" in r]
    if not train:
        st.caption("Preparing the data set…")
        return
    steps = [r["step"] for r in train]
    held_steps = [r["step"] for r in held]
    c1, c2 = st.columns(2)
    loss = {"training batch (trl's loss)": (steps, [r["loss"] for r in train]),
            "held-out pairs": (held_steps, [r["heldout_loss"] for r in held])}  # fmt: skip
    title = "Bradley–Terry loss −log σ(s_chosen − s_rejected)"
    chart(plots.metric_lines(loss, title, "training step", "loss (nats per pair)"), "rl_rm_loss_chart", c1)
    accuracy = {"training batch": (steps, [r.get("accuracy", math.nan) for r in train]),
                "held-out pairs": (held_steps, [r["heldout_accuracy"] for r in held])}  # fmt: skip
    title = "Pairwise accuracy: chosen scored above rejected"
    figure = plots.metric_lines(accuracy, title, "training step", "pairs ranked right (%)", percent=True)
    chart(figure, "rl_rm_accuracy_chart", c2)
    margin = {"margin": (steps, [r.get("margin", math.nan) for r in train])}
    title = "Margin s_chosen − s_rejected (training batch)"
    chart(
        plots.metric_lines(margin, title, "training step", "score difference (logit units)"), "rl_rm_margin_chart", c1
    )
    scores = job.notes_of(HeldOutScores)
    if scores:
        last = scores[-1]
        title = f"Held-out scores at step {last.step:g}: chosen vs rejected"
        chart(plots.score_histogram(last.chosen, last.rejected, title), "rl_rm_histogram", c2)
    if isinstance(job.result, reward.RewardRun):
        run = job.result
        m1, m2, m3 = st.columns(3)
        m1.metric("Held-out accuracy (its own labels)", f"{run.heldout.accuracy:.0%}")
        m2.metric("Held-out accuracy vs correctness", f"{run.heldout_true.accuracy:.0%}",
                  help="The same held-out answers, labelled by which one is right.")  # fmt: skip
        m3.metric("Held-out margin", f"{run.heldout.margin:.2f}", help="mean s_chosen − s_rejected, logit units")
        metrics = {"steps": int(max(r["step"] for r in rows)), "held-out accuracy": run.heldout.accuracy,
                   "held-out accuracy vs correctness": run.heldout_true.accuracy, "held-out margin": run.heldout.margin}  # fmt: skip
        download_button("reward", run.model, run.tokenizer, run.config, Path(run.source).name, metrics,
                        key="rl_rm_download")  # fmt: skip
        if run.config.biased:
            st.warning(
                "This reward model learned the biased labels: it ranks the *longer* answer higher, right or "
                "wrong. Use it in tabs 2 and 3 to watch a policy exploit it.",
                icon="⚖️",
            )
