"""What goes wrong: why preference training can make a model *less* correct, measured live. Four DPO runs from
tiny-sft with the Live DPO tab's settings: hand-written pairs (answers the model would never write) or its own
answers (on-policy, the shipped pairs), each as plain DPO and with the chosen answers' NLL term (RPO), all scored
on the same 96 questions (llmlab.dpo_experiments.diagnosis_work)."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from llmlab import plots, preferences
from llmlab.dpo_experiments import DiagnosisRun, diagnosis_work
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from ui.demos.dpo.shared import ASKED, live_settings, pairs
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart
from ui.models import start_model
from ui.runs import run_panel

REDRAW = FRAGMENT_UNLESS_RUNNING
HAND_WRITTEN, OWN = "hand-written pairs", "tiny-sft's own answers"


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    st.markdown(
        "Trained on the pairs this page shipped at first (the right answer against another true fact, written "
        "by hand, some politely padded), DPO made tiny-sft **less** correct. Two suspects, each measured here: "
        "**off-policy data**: a hand-written answer is text the model would never write (a padded one costs it "
        "hundreds of nats), and pushing down *The capital of Belgium is Brussels.* for the Spain question pushes "
        "it down for the Belgium question too; **likelihood displacement**: DPO only asks the gap between chosen "
        "and rejected to grow, so it may lower both, and the probability they lose goes to answers nobody chose. "
        "The fixes are the pairs this page now ships (tiny-sft's own answers, labelled by correctness) and an "
        "extra NLL term on the chosen answer (trl's `sft` loss beside `sigmoid`, as RPO does)."
    )
    settings = live_settings().config()
    datasets = {HAND_WRITTEN: preferences.written_pairs(split="train"), OWN: pairs("train")}
    run_panel(
        "dpo_diag",
        lambda: Job(
            "dpo-diagnosis",
            diagnosis_work(start, datasets, pairs("test"), settings, preferences.true_reward, ASKED),
        ),
        lambda job: draw_runs(job, settings.steps),
        start_label="Run the four",
        idle_message=(
            f"Four DPO runs from {start.name} with the Live DPO tab's settings (β = {settings.beta:g}, "
            f"{settings.steps} steps, lr {settings.learning_rate:g}): {len(datasets[HAND_WRITTEN])} hand-written "
            f"pairs or {len(datasets[OWN])} of its own answers, each without and with the NLL term; then each "
            f"policy answers all {len(ASKED)} questions 4 times."
        ),
    )


def _label(run: DiagnosisRun) -> str:
    return f"{run.pairs}, " + ("plain DPO" if run.chosen_nll == 0 else f"+ NLL ×{run.chosen_nll:g}")


def draw_runs(job: Job, steps: int) -> None:
    metrics = job.snapshot()
    if job.running and metrics:
        st.caption(f"Run {int(metrics[-1]['run']) + 1} of 4: step {int(metrics[-1]['step'])} of {steps}")
    runs = job.notes_of(DiagnosisRun)
    if not runs:
        return
    labels = [_label(r) for r in runs]
    chart(
        plots.grouped_bars(
            labels,
            {"tiny-sft (start)": [r.reward_before for r in runs], "after DPO": [r.reward_after for r in runs]},
            "Right answers before and after DPO, by training data and loss",
            "training data and loss",
            "right answers (%)",
        ),
        "dpo_diag_chart",
    )
    st.dataframe(
        pd.DataFrame(
            [
                {
                    "run": label,
                    "right answers": f"{r.reward_before:.0%} → {r.reward_after:.0%}",
                    "KL to start (nats)": round(r.kl, 2),
                    "log π(chosen), its pairs (nats)": f"{r.logp_chosen[0]:.1f} → {r.logp_chosen[1]:.1f}",
                    "log π(rejected), its pairs (nats)": f"{r.logp_rejected[0]:.1f} → {r.logp_rejected[1]:.1f}",
                }
                for label, r in zip(labels, runs, strict=True)
            ]
        ),
        hide_index=True,
        key="dpo_diag_table",
    )
    displaced = [_label(r) for r in runs if r.logp_chosen[1] < r.logp_chosen[0]]
    st.caption(
        "Right answers: 4 answers sampled (temperature 1) for each of the 96 questions the pairs are about, "
        "checked for the right fact. "
        + (
            f"The chosen answers became *less* likely in: {', '.join(displaced)}: displacement."
            if displaced
            else "No run lowered its chosen answers' probability here."
        )
    )
