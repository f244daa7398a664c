"""Offline limit: DPO from tiny-sft on the pairs about some kinds of question only (capitals, say), then every kind
scored on held-out pairs (llmlab.dpo_experiments.coverage_work). DPO never samples its own answers, so where its
pairs do not reach it gets no signal. Trains with the Live DPO tab's β, steps and learning rate."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import plots, preferences
from llmlab.dpo_experiments import CoverageOutcome, coverage_work, question_kind
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from ui.demos.dpo.shared import ASKED, live_settings, pairs
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class CoverSettings:
    kinds: tuple[str, ...] = option(
        "Kinds of question the preference pairs cover", ("capital",), choices=preferences.KINDS,
        help="Training uses only the pairs about these kinds of question; every kind is then scored on held-out pairs.",
    )  # fmt: skip


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    covered = SettingsForm(CoverSettings, "dpo_cover_").draw().kinds
    if not covered:
        st.info("Pick at least one kind of question for the pairs to cover.", icon="📈")
        return
    settings = live_settings().config()
    train, heldout = pairs("train"), pairs("test")
    n_train = sum(question_kind(p) in covered for p in train)

    def make_job() -> Job:  # coverage_work refuses kinds without a training pair: a message in the panel
        work = coverage_work(start, train, heldout, settings, question_kind, covered, preferences.true_reward, ASKED)
        return Job("dpo-coverage", work)

    run_panel(
        "dpo_cover",
        make_job,
        lambda job: draw_coverage(job, settings.steps, start.name),
        start_label="Train on the covered pairs only",
        idle_message=(
            f"DPO from {start.name} on the {n_train} pairs about {' and '.join(covered)} questions (β = "
            f"{settings.beta:g}, {settings.steps} steps, lr {settings.learning_rate:g}: the Live DPO tab's "
            "settings); then each kind of question is scored on held-out pairs."
        ),
    )


def draw_coverage(job: Job, steps: int, start_name: str) -> None:
    metrics = job.snapshot()
    if job.running and metrics:
        st.caption(f"Step {int(metrics[-1]['step'])} of {steps}")
    outcome: CoverageOutcome | None = job.result
    if outcome is None:
        return
    reports = outcome.reports
    labels = [f"{r.name} ({'covered' if r.name in outcome.covered else 'not covered'})" for r in reports]
    series = {"pairs ranked right after DPO": [r.accuracy_after for r in reports]}
    if all(r.reward_before is not None for r in reports):
        series = {
            f"right answers, {start_name}": [r.reward_before for r in reports],
            "right answers after DPO": [r.reward_after for r in reports],
            **series,
        }
    title = "Offline data: DPO improves where its pairs reach, and nothing steers it elsewhere"
    y_title = "share of answers or pairs (%)"
    chart(plots.grouped_bars(labels, series, title, "kind of question (held-out pairs)", y_title), "dpo_offline_chart")
    rows = [
        {
            "questions": label,
            "pairs ranked right": f"{r.accuracy_after:.0%}",
            "right answers (sampled)": ""
            if r.reward_after is None
            else f"{r.reward_before:.0%} → {r.reward_after:.0%}",
            "KL to the reference (nats)": round(r.kl, 2),
        }
        for label, r in zip(labels, reports, strict=True)
    ]
    st.dataframe(pd.DataFrame(rows), hide_index=True, key="dpo_offline_table")
    st.caption(
        "Pairs ranked right: 50% is chance (the start model ties every pair). DPO learns from the fixed pairs "
        "only: it never samples and scores its own answers, so where the pairs do not reach it gets no signal, "
        "and the drift its updates cause there goes unchecked (compare the KL columns)."
    )
