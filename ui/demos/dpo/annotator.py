"""Single annotator: two DPO runs from tiny-sft on the same answer pairs, labelled by many annotators (the right
answer wins) or by one who always prefers the longer answer; then whose taste each policy learned, on held-out
pairs (llmlab.dpo_experiments.annotator_work). Trains with the Live DPO tab's β, steps and learning rate."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from llmlab import plots, preferences
from llmlab.dpo_experiments import LabellerResult, annotator_work
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from ui.demos.dpo.shared import ASKED, live_settings, pairs
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart
from ui.models import start_model
from ui.runs import run_panel

REDRAW = FRAGMENT_UNLESS_RUNNING


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    biased = pairs("train", biased=True)
    agreement = preferences.label_agreement(biased)
    st.markdown(
        f"Two labellers see the same {len(biased)} answer pairs. **Many annotators** (the unbiased set) pick the "
        f"right answer. **One annotator** always picks the *longer* one (polite padding makes answers longer), "
        f"so only {agreement:.0%} of that annotator's picks are the right answer."
    )
    settings = live_settings().config()
    labellers = {"many annotators (right answer wins)": pairs("train"), "one annotator (longer wins)": biased}
    run_panel(
        "dpo_annot",
        lambda: Job(
            "dpo-annotator", annotator_work(start, labellers, pairs("test"), settings, preferences.true_reward, ASKED)
        ),
        lambda job: draw_annotator(job, settings.steps),
        start_label="Train on each labeller",
        idle_message=(
            f"Two DPO runs from {start.name} with the Live DPO tab's settings (β = {settings.beta:g}, "
            f"{settings.steps} steps, lr {settings.learning_rate:g}), one per labeller; then each policy answers "
            "the held-out questions."
        ),
    )


def draw_annotator(job: Job, steps: int) -> None:
    metrics = job.snapshot()
    if job.running and metrics:
        st.caption(f"Labeller {int(metrics[-1]['labeller']) + 1} of 2: step {int(metrics[-1]['step'])} of {steps}")
    results: list[LabellerResult] = job.result or []
    if len(results) < 2:
        return
    chart(
        plots.grouped_bars(
            ["prefers the right answer", "prefers the longer answer"],
            {r.name: [r.agrees_right, r.agrees_longer] for r in results},
            "Whose taste did the policy learn? Held-out pairs ranked by its implicit reward",
            "rule",
            "held-out pairs (%)",
        ),
        "dpo_annot_chart",
    )
    rows = [
        {
            "policy": r.name,
            "prefers the right answer": f"{r.agrees_right:.0%}",
            "prefers the longer answer": f"{r.agrees_longer:.0%}",
            "right answers (sampled)": "" if r.reward is None else f"{r.reward:.0%}",
            "example answer": r.examples[0] if r.examples else "",
        }
        for r in results
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="dpo_annot_table")
    st.caption(
        "The start model ties every pair (50%). Trained on one annotator's picks, the policy ranks new pairs by that "
        "annotator's rule, length, not by what is right: the quirk is now part of the model."
    )
