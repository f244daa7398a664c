"""4 · PPO, RLOO, GRPO: the card's PPO (llmlab/ppo.py: critic, GAE, clip) beside trl's RLOOTrainer and
GRPOTrainer on the same start model, reward model, prompts, β and seed (llmlab/rl_algorithms.py): reward against
KL, wall time, memory, the advantages each gives the same answers, the clip at work and the two KL estimators."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from llmlab import plots, ppo, rl_algorithms, rlhf
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.preferences import question_text
from llmlab.rl_algorithms import Comparison
from llmlab.rlhf import RL_BETAS
from ui.demos.rlhf.reward_models import (
    CORRECTNESS,
    RM_BIASED,
    RM_SESSION,
    RM_UNBIASED,
    reward_model_for,
    reward_options,
)
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, intro, show_code
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import RADIO, SettingsForm, option
from ui.text import md_escape

REDRAW = FRAGMENT_UNLESS_RUNNING
JOB = "rl_algos"


@dataclass(frozen=True)
class AlgorithmSettings:
    # The unbiased reward model by default: here the question is how each algorithm climbs, not hacking.
    reward: str = option("Reward", RM_UNBIASED, choices=(RM_UNBIASED, RM_BIASED, RM_SESSION, CORRECTNESS), widget=RADIO)
    beta: float = option("KL coefficient β", choices=RL_BETAS, core=(Comparison, "beta"))
    steps: int = option("Steps (each algorithm)", lo=5, hi=100, step=5, core=(Comparison, "steps"))

    def comparison(self) -> Comparison:
        reward = "correctness" if self.reward == CORRECTNESS else "reward model"
        return Comparison(beta=float(self.beta), steps=int(self.steps), reward=reward)


def draw(loaded: LoadedModel) -> None:
    intro(
        "The card's third stage is **PPO**: a critic (value head) predicts the reward to come, GAE turns rewards "
        "into per-token advantages, and a clipped ratio lets each batch be reused for several epochs. trl 1.16 no "
        "longer ships a PPOTrainer, so this project's PPO is written out in `llmlab/ppo.py`. RLOO and GRPO (trl) "
        "drop the critic: the other answers to the same question are the baseline."
    )
    sft = start_model(loaded.device)
    form = SettingsForm(AlgorithmSettings, "rl_algos_", choices={"reward": reward_options(with_correctness=True)})
    for name, column in zip(("reward", "beta", "steps"), st.columns([2, 1, 1]), strict=True):
        form.widget(name, column)
    settings = form.done()
    comparison = settings.comparison()
    try:
        comparison.check()
    except (rlhf.RLInputError, ppo.PPOInputError) as err:
        st.error(str(err), icon="⚠️")
        return

    def make_job() -> Job:
        run = reward_model_for(settings.reward, sft.name, sft.device)
        return Job("rl-algorithms", rl_algorithms.comparison_work(sft, run, comparison))

    run_panel(
        JOB,
        make_job,
        draw_comparison,
        start_label="Run all three",
        idle_message=f"Press Run all three: PPO, then RLOO, then GRPO, each from a copy of {sft.name} for "
        f"{comparison.steps} steps at β = {comparison.beta:g}, same questions and seed (about a minute on 2 cores).",
    )
    rm = reward_model_for(settings.reward, sft.name, sft.device)
    st.markdown("**What each keeps in memory while it trains** (parameters, counted on these models)")
    st.dataframe(rl_algorithms.memory_rows(sft.model, rm.model if rm else None), hide_index=True)
    st.caption(
        "The critic here is a value head on the policy's own body (one linear layer); InstructGPT's critic was a "
        "second network the size of the reward model, trained alongside: the memory RLOO and GRPO save. "
        "KL estimators: " + "; ".join(f"{k}: {v}" for k, v in rl_algorithms.KL_ESTIMATORS.items()) + "."
    )
    show_code(ppo.per_token_rewards, ppo.gae, ppo.policy_loss, ppo.value_loss, ppo.kl_k1, ppo.kl_k3)


def draw_comparison(job: Job) -> None:
    rows = job.snapshot()
    if not rows:
        st.caption("Sampling the first answers…")
        return
    names = list(dict.fromkeys(rl_algorithms.algorithm_of(r) for r in rows))
    runs = job.result if isinstance(job.result, list) else []
    st.dataframe(rl_algorithms.summary_rows(rows, runs), hide_index=True)
    c1, c2 = st.columns(2)
    paths = {name: rl_algorithms.trajectory(rows, name) for name in names}
    frontier = plots.metric_lines(paths, "Reward vs KL (5 steps a point)", "KL(π ‖ π_ref) (nats per answer)",
                                  "mean reward of sampled answers (score units)")  # fmt: skip
    chart(plots.legend_below(frontier), "rl_algos_frontier", c1)
    clipped = {name: rl_algorithms.clip_fractions(rows, name) for name in names}
    clip = plots.metric_lines(clipped, "Tokens clipped per step", "training step", "share of answer tokens clipped",
                              percent=True)  # fmt: skip
    chart(plots.legend_below(clip), "rl_algos_clip", c2)
    st.caption(
        "PPO makes 2 epochs × 2 mini-batches of updates on each batch, so π_new/π_old moves away from 1 and the clip "
        "stops some tokens' gradient; RLOO and GRPO take one gradient step per batch (trl's default), so their "
        "ratio stays 1 and nothing clips."
    )
    ppo_rows = [r for r in rows if rl_algorithms.algorithm_of(r) == "PPO"]
    if ppo_rows:
        steps = [r["step"] for r in ppo_rows]
        estimators = {
            "k1 = Σ (log π − log π_ref)": (steps, [r["kl_seq"] for r in ppo_rows]),
            "k3 = Σ ((r − 1) − log r)": (steps, [r["kl_k3"] for r in ppo_rows]),
        }
        kl = plots.metric_lines(estimators, "PPO's KL: k1 vs k3", "training step", "KL (nats per answer, batch mean)")
        chart(plots.legend_below(kl), "rl_algos_kl_estimators", c1)
        lowest = min(r["kl_seq"] for r in ppo_rows)
        c2.caption(
            "Both estimate the same KL(π ‖ π_ref) from the sampled answers. k1 is unbiased but noisy and can be "
            f"negative on a batch (lowest batch here: {lowest:.3f} nats); k3 is never negative, with less variance. "
            "PPO and RLOO put k1 in the reward; GRPO puts k3 in its loss."
        )
    views = job.notes_of(ppo.AdvantageView)
    if views:
        draw_advantages(views[0])


def draw_advantages(view: ppo.AdvantageView) -> None:
    st.markdown(f"**The same {len(view.completions)} answers, three advantages** (sampled from the PPO policy)")
    labels = [f"{i + 1}. {text[:40]}" for i, text in enumerate(view.completions)]
    series = {"PPO: A = (score − β·KL) − V": view.ppo, "RLOO: vs the mean of the others": view.rloo,
              "GRPO: (score − mean) ÷ std": view.grpo}  # fmt: skip
    chart(plots.grouped_bars(labels, series, "Advantage of each answer", "sampled answer", "advantage",
                             percent=False), "rl_algos_advantages")  # fmt: skip
    table = [
        {"answer": text, "score": round(s, 2), "KL (nats)": round(k, 2), "critic V": round(v, 2),
         "PPO": round(a, 2), "RLOO": round(b, 2), "GRPO": round(c, 2)}
        for text, s, k, v, a, b, c in zip(view.completions, view.scores, view.kl, view.value, view.ppo, view.rloo,
                                          view.grpo, strict=True)
    ]  # fmt: skip
    st.dataframe(table, hide_index=True)
    st.caption(
        f"Question: {md_escape(question_text(view.prompt))}. RLOO and GRPO compare each answer with its siblings: when "
        "all answers are the same, every advantage is 0. PPO compares it with what its critic expected for this "
        "question, so even identical answers get a push when the critic was wrong."
    )
