"""β sweep: one DPO run per β on the same seed, pairs and steps, each from tiny-sft; held-out preference accuracy
and KL to the reference against β (llmlab.dpo_experiments.sweep_work), every finished β kept with a CSV export."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import dpo, plots, preferences
from llmlab.dpo import DPOSettings
from llmlab.dpo_experiments import SWEEP_BATCH_SIZE, SweepPoint, sweep_csv, sweep_rows, sweep_work
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.trainargs import LEARNING_RATES
from ui.demos.dpo.shared import ASKED, NLL_WEIGHTS, SWEEPS, pairs
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class SweepSettings:
    betas: tuple[float, ...] = option("β values", dpo.SWEEP_BETAS, choices=dpo.BETA_CHOICES)
    steps: int = option(
        "Steps per β", 150, lo=20, hi=300, step=10,
        help="Over ~50 steps β mostly rescales the loss; over 150–200 the small-β runs drift away.",
    )  # fmt: skip
    lr: float = option("Learning rate", choices=LEARNING_RATES, advanced=True, core=(DPOSettings, "learning_rate"))
    nll: float = option("NLL weight of the chosen answer", choices=NLL_WEIGHTS, core=(DPOSettings, "chosen_nll"))

    def config(self) -> DPOSettings:
        return DPOSettings(
            steps=int(self.steps),
            learning_rate=float(self.lr),
            batch_size=SWEEP_BATCH_SIZE,
            chosen_nll=float(self.nll),
        )


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    form = SettingsForm(SweepSettings, "dpo_sweep_")
    for name, column in zip(form.specs, st.columns([2, 1, 1, 1]), strict=True):
        form.widget(name, column)
    sweep = form.done()
    chosen = sorted(sweep.betas)
    if not chosen:
        st.info("Pick at least one β to sweep.", icon="📈")
        return
    settings = sweep.config()
    train, heldout = pairs("train"), pairs("test")
    run_panel(
        "dpo_sweep",
        lambda: Job("dpo-sweep", sweep_work(start, train, heldout, settings, chosen, preferences.true_reward, ASKED)),
        lambda job: draw_sweep(job, len(chosen), settings.steps),
        start_label=f"Run the sweep ({len(chosen)} runs)",
        idle_message=(
            f"One DPO run of {settings.steps} steps ({settings.batch_size} pairs each) per β, same seed and pairs, "
            f"each from {start.name}; "
            "then each policy is scored on held-out pairs and its drift from the reference is measured."
        ),
    )
    kept_sweeps()


def draw_sweep(job: Job, n_betas: int, steps: int) -> None:
    points = job.notes_of(SweepPoint)
    metrics = job.snapshot()
    if job.running and metrics:
        last = metrics[-1]
        st.caption(f"β = {last['beta']:g}: step {int(last['step'])} of {steps} ({len(points)} of {n_betas} β done)")
    if points:
        accuracy, kl = [p.heldout_accuracy for p in points], [p.kl for p in points]
        figure = plots.beta_sweep_chart([p.beta for p in points], accuracy, kl, points[0].reference_accuracy)
        chart(figure, "dpo_sweep_chart")
    if not job.running and points and not SWEEPS.has(job):
        SWEEPS.keep(job, points)


def kept_sweeps() -> None:
    """Every β of this session's finished sweeps, as a table and a CSV."""
    kept = [p for points in SWEEPS.values() for p in points]
    if not kept:
        return
    st.markdown(f"**This session's sweep results** ({len(kept)} runs, kept until you close the tab)")
    st.dataframe(pd.DataFrame(sweep_rows(kept)), hide_index=True, key="dpo_sweep_table")
    st.download_button(
        "Download as CSV", sweep_csv(kept), file_name="dpo_beta_sweep.csv", mime="text/csv", key="dpo_sweep_results_csv"
    )
