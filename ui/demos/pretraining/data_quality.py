"""Data quality: corrupt part of the corpus and compare short pre-training runs (llmlab/dataquality.py). The
saved runs draw at once; Start re-runs clean data, 5% noise (the card's question) and the chosen level live."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from llmlab import dataquality, plots
from llmlab.dataquality import NoiseConfig, NoiseResult
from llmlab.jobs import Job
from llmlab.modeling import DEFAULT_MODEL, LoadedModel
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, show_code
from ui.models import shared_model
from ui.runs import current_job, run_panel
from ui.settings import NUMBER, SELECTBOX, SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class NoiseSettings:
    kind: str = option(
        "Corruption", choices=tuple(dataquality.KINDS), labels=dataquality.KINDS, widget=SELECTBOX,
        core=(NoiseConfig, "kind"),
    )  # fmt: skip
    noise: float = option(
        "Your noise level: fraction of documents corrupted", 0.3, lo=0.0, hi=0.9, step=0.05,
        help="The live run compares clean data, 5% noise (the question's) and this level.",
    )  # fmt: skip
    steps: int = option("Steps per run", lo=20, hi=2_000, step=10, widget=NUMBER, core=(NoiseConfig, "steps"))

    def levels(self) -> list[float]:
        return sorted({0.0, 0.05, round(self.noise, 2)})


@st.cache_data(show_spinner=False)
def saved_runs() -> dataquality.SavedRuns | None:
    return dataquality.load_saved_runs()


def draw(loaded: LoadedModel) -> None:
    form = SettingsForm(NoiseSettings, "pt_dq_")
    kind = form.widget("kind")
    noise = form.widget("noise")
    saved = saved_runs()
    job = current_job("pt_dq")
    live = [r for r in job.notes_of(NoiseResult) if r.kind == kind] if job is not None else []
    if saved is None and not live:
        st.info("No precomputed results found: run `python -m llmlab.dataquality`, or press Start below.", icon="ℹ️")
    series: dict[str, list[NoiseResult]] = {}
    if saved is not None:
        series[f"precomputed ({saved.steps} steps each)"] = saved.results[kind]
        nearest, clean = saved.nearest(kind, noise)
        st.caption(
            f"Precomputed at {nearest.noise:.0%} noise (the nearest saved level): loss on clean text "
            f"{nearest.clean_loss:.3f} nats/token ({nearest.clean_loss - clean.clean_loss:+.3f} vs clean data), "
            f"mean p(right capital) {nearest.p_correct:.2f} ({nearest.p_correct - clean.p_correct:+.2f}), "
            f"{nearest.capitals_right}/40 capitals still the top-1 (clean data: {clean.capitals_right}/40)."
        )
    if live:
        series[f"your live run ({live[0].steps} steps each)"] = live
    if series:
        chart(
            plots.metric_vs_noise(
                {label: ([r.noise for r in rows], [r.clean_loss for r in rows]) for label, rows in series.items()},
                "Loss on clean held-out text after training",
                "loss (nats per token)",
                noise,
            ),
            key="pt_dq_loss",
        )
        chart(
            plots.metric_vs_noise(
                {label: ([r.noise for r in rows], [r.p_correct for r in rows]) for label, rows in series.items()},
                "Probability of the right capital, mean over 40 countries",
                "mean p(right capital)",
                noise,
                percent_y=True,
            ),
            key="pt_dq_p",
        )

    tokenizer = shared_model(DEFAULT_MODEL, loaded.device).tokenizer
    form.widget("steps")
    settings = form.done()
    show_code(dataquality.corrupt_document, dataquality.capital_knowledge)
    levels = settings.levels()
    config = NoiseConfig(kind=settings.kind, steps=int(settings.steps))

    def work(job: Job) -> list[NoiseResult]:
        return dataquality.noise_experiment(
            tokenizer,
            levels,
            config,
            on_result=job.note,
            on_step=lambda level, m: job.log(noise=level, step=m.step, loss=m.loss),
            stop=job.stop_event,
        )

    run_panel(
        "pt_dq",
        lambda: Job("data-quality", work),
        draw_noise_runs,
        start_label=f"Re-run live: {', '.join(f'{x:.0%}' for x in levels)} noise",
        idle_message=f"Start trains {len(levels)} fresh models of {config.steps} steps each, one per noise level.",
    )


def draw_noise_runs(job: Job) -> None:
    runs: dict[str, tuple[list[int], list[float]]] = {}
    for m in job.snapshot():
        steps, losses = runs.setdefault(f"{m['noise']:.0%} noise", ([], []))
        steps.append(int(m["step"]))
        losses.append(m["loss"])
    if not runs:
        st.caption("Corrupting the corpus and building a fresh model…")
        return
    chart(plots.loss_curves(runs, "Training loss of each run (on its own noisy text)"), key="pt_dq_live_loss")
    results = job.notes_of(NoiseResult)
    if results:
        st.dataframe(
            [
                {
                    "noise": f"{r.noise:.0%}",
                    "clean-text loss (nats/token)": round(r.clean_loss, 3),
                    "training loss (nats/token)": round(r.train_loss, 3),
                    "mean p(right capital)": round(r.p_correct, 3),
                    "capitals top-1 (of 40)": r.capitals_right,
                    "seconds": round(r.seconds, 1),
                }
                for r in results
            ],
            hide_index=True,
            key="pt_dq_table",
        )
