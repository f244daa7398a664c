"""SFT or RLHF at a small labelling budget: the same N preference pairs teach SFT (the chosen answers) and RLHF (a
reward model, then PPO against it), from the same model; both answer the same held-out questions
(llmlab/rlhf_budget.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import streamlit as st

from llmlab import plots, rlhf_budget
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.rlhf_budget import PAIR_CHOICES, SHIPPED, ArmScore, BudgetConfig, RewardModelScore
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, intro, show_code
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING
JOB = "rl_budget"
# What the default shows, measured on the bundled models (tests/test_rlhf_budget.py asserts seed 0's outcome).
MEASURED = (
    "Measured on the bundled models, 64 pairs, seeds 0-2: tiny-sft already answers 98% of the unseen questions "
    "right, so neither arm has room to gain there, and both lose a few points (SFT −6 to −8, RLHF −3 to −7: a tie "
    "within the sampling noise of about ±3 points). On the pairs' own 96 questions (86% right before) SFT comes out "
    "ahead: +6 / −1 / +2 points against RLHF's −11 / −3 / −2. The reward model ranks only 60-67% of the held-out "
    "pairs right at 64 pairs (71-72% at all 368; at 368 pairs RLHF is ahead on the unseen questions, 95% against "
    "89-93%, seeds 0-1). At 16 pairs SFT sees each answer 30 times and overfits (77% right). So on this tiny model "
    "the card's 'SFT, without hesitation' holds on the questions the labels cover, not on new ones, where the two tie."
)
SEEN = "the 96 questions the pairs ask (fresh samples)"
STAGE = {1: "SFT on the chosen answers", 2: "reward model on the pairs", 3: "PPO against the reward model"}


@dataclass(frozen=True)
class BudgetSettings:
    pairs: int = option("Labelled pairs (the budget)", choices=PAIR_CHOICES, core=(BudgetConfig, "pairs"))
    also: tuple[int, ...] = option(
        "Also at", (), choices=PAIR_CHOICES,
        help=f"More budgets, each a comparison of its own after the first (up to all {SHIPPED} shipped pairs); "
        "about 20 s each on 2 cores.",
    )  # fmt: skip
    seed: int = option("Seed", 0, lo=0, hi=9, advanced=True, help="Which pairs are drawn, and every run's seed.")

    def configs(self) -> list[BudgetConfig]:
        budgets = dict.fromkeys([int(self.pairs), *sorted(int(n) for n in self.also)])
        return [BudgetConfig(pairs=n, seed=int(self.seed)) for n in budgets]


def draw(loaded: LoadedModel) -> None:
    intro(
        "**The card's rule of thumb: with few labels, choose SFT.** Here both arms get the same N labelled "
        "preference pairs (answers tiny-sft wrote, the right one chosen) and start from the same model. SFT "
        "fine-tunes on the N chosen answers. RLHF trains a reward model on the N pairs, then runs PPO against it "
        "(the Online RL tab's PPO at β = 1) on the 96 questions the pairs come from: questions need no labels. "
        "Both then answer the 24 questions no pair ever asked (and, with fresh samples, the 96 the pairs ask), and the "
        "facts decide who is right."
    )
    sft = start_model(loaded.device)
    form = SettingsForm(BudgetSettings, "rl_budget_")
    for name, column in zip(("pairs", "also", "seed"), st.columns([2, 2, 1]), strict=True):
        form.widget(name, column)
    settings = form.done()
    configs = settings.configs()
    try:
        for cfg in configs:
            cfg.check()
    except rlhf_budget.BudgetInputError as err:
        st.error(str(err), icon="⚠️")
        return

    def make_job() -> Job:
        return Job("rl-budget", rlhf_budget.comparison_work(sft, configs))

    budgets = " and ".join(str(c.pairs) for c in configs)
    run_panel(
        JOB,
        make_job,
        draw_run,
        start_label="Compare SFT and RLHF",
        idle_message=f"Press Compare: SFT and RLHF from {sft.name}, each on {budgets} labelled pairs "
        f"(about {20 * len(configs)} s on 2 cores).",
    )
    show_code(rlhf_budget.compare)


def draw_run(job: Job) -> None:
    rows = job.snapshot()
    scores = job.notes_of(ArmScore)
    if job.running:
        last = rows[-1] if rows else {}
        stage = STAGE.get(int(last.get("arm", 1)), "")
        pairs = int(last.get("pairs", 0)) or ""
        st.caption(f"{pairs} pairs: {stage}, step {last.get('step', 0):g}…" if rows else "Scoring the start model…")
    if not scores:
        return
    results = job.result if isinstance(job.result, list) else []
    draw_scores(scores, job.notes_of(RewardModelScore), results)


def arm_label(score: ArmScore) -> str:
    return "start model (tiny-sft)" if score.arm == "start" else f"{score.arm}, {score.pairs} pairs"


def draw_scores(scores: list[ArmScore], rms: list[RewardModelScore], results: list[rlhf_budget.BudgetResult]) -> None:
    """One bar group per model (the start model once), correctness on the unseen and on the pairs' questions."""
    seen_start = False
    labelled: list[tuple[str, ArmScore]] = []
    for score in scores:  # notes come in order: start, SFT, RLHF per budget; the start model is shown once
        if score.arm == "start":
            if seen_start:
                continue
            seen_start = True
        labelled.append((arm_label(score), score))
    names = [name for name, _ in labelled]
    fig = plots.grouped_bars(
        names,
        {
            "24 unseen questions": [s.unseen.correct for _, s in labelled],
            SEEN: [s.seen.correct for _, s in labelled],
        },
        "Correct answers after SFT or RLHF on the same pairs", "model", "share of sampled answers that are right",
    )  # fmt: skip
    fig.update_layout(legend_y=-0.32)  # below the two-line model names and the axis title
    chart(fig, "rl_budget_chart")
    if rms:
        cols = st.columns(len(rms))
        for col, rm in zip(cols, rms, strict=True):
            col.metric(f"Reward model on {rm.pairs} pairs: held-out pair accuracy", f"{rm.accuracy:.0%}")
    for result in results:
        st.caption(verdict(result))
    st.caption(MEASURED)
    st.dataframe(score_rows(labelled), hide_index=True)


def verdict(result: rlhf_budget.BudgetResult) -> str:
    """One budget's outcome in words, from the numbers measured."""
    if "RLHF" not in result.arms:
        return f"{result.config.pairs} pairs: stopped before the RLHF arm finished."
    sft, rl = result.gain("SFT"), result.gain("RLHF")
    n = result.config.pairs
    start = result.arms["start"].unseen.correct
    if math.isclose(sft, rl, abs_tol=0.03):
        who = "a tie within sampling noise (±3 points)"
    else:
        who = "SFT ahead" if sft > rl else "RLHF ahead"
    return (
        f"{n} pairs, unseen questions: start {start:.0%}, SFT {sft * 100:+.0f} points, RLHF {rl * 100:+.0f} points: "
        f"{who}. Its reward model ranks {result.rm_accuracy:.0%} of the held-out pairs right."
    )


def score_rows(labelled: list[tuple[str, ArmScore]]) -> list[dict]:
    return [
        {
            "model": name,
            "unseen questions: correct": f"{s.unseen.correct:.0%}",
            "the pairs' questions: correct": f"{s.seen.correct:.0%}",
            "answer length (tokens)": round(s.unseen.length, 1),
            "training time (s)": round(s.seconds, 1),
        }
        for name, s in labelled
    ]
