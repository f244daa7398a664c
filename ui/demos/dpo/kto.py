"""Beyond pairs: KTO (trl's KTOTrainer) next to DPO (trl's DPOTrainer) from tiny-sft, on the same verdicts in three
shapes: the shipped pairs (DPO), the same verdicts as single thumbs-up / thumbs-down answers (KTO), and one rated
answer per question, which DPO cannot use at all (KTO); each policy scored on the same questions with the same
sampler seed (llmlab.kto.comparison_work). The card's Q5."""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import kto, plots
from llmlab.dpo import BETA_CHOICES, DPOSettings
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.trainargs import LEARNING_RATES
from ui.demos.dpo.shared import pairs
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, intro, setup
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING
SHORT = {  # chart labels
    "start": "tiny-sft (start)",
    kto.DATASETS[0]: "DPO, pairs",
    kto.DATASETS[1]: "KTO, same labels unpaired",
    kto.DATASETS[2]: "KTO, one rated answer per question",
}


@dataclass(frozen=True)
class KTOTabSettings:
    steps: int = option("Steps (each run)", lo=10, hi=200, step=10, core=(kto.KTOSettings, "steps"))
    beta: float = option("β (both methods)", choices=BETA_CHOICES, core=(kto.KTOSettings, "beta"))
    lr: float = option(
        "Learning rate (both methods)", choices=LEARNING_RATES, advanced=True, core=(kto.KTOSettings, "learning_rate")
    )
    seed: int = option(
        "Seed", 0, lo=0, hi=9, help="Data order, which rated answer each question keeps, and the answers sampled."
    )
    nll: float = option(
        "DPO's NLL weight of the chosen answer", choices=(0.0, 0.5, 1.0, 2.0), advanced=True,
        core=(DPOSettings, "chosen_nll"),
    )  # fmt: skip

    def configs(self) -> tuple[kto.KTOSettings, DPOSettings]:
        common = {"steps": int(self.steps), "beta": float(self.beta), "learning_rate": float(self.lr)}
        return (
            kto.KTOSettings(seed=int(self.seed), **common),
            DPOSettings(seed=int(self.seed), chosen_nll=float(self.nll), **common),
        )


def _dpo_use(possible: int) -> str:
    if possible == 0:
        return "no: no question has both a 👍 and a 👎 answer, so no pair (0)"
    return f"only re-paired: {possible} (👍, 👎) pairs on the same question"


def data_table(data: dict[str, list[dict]]) -> pd.DataFrame:
    """What each method needs: rows, labels, and whether DPO could train on the rows."""
    rows = []
    for name, set_rows in data.items():
        if name == kto.DATASETS[0]:
            rows.append(
                {
                    "data set": name,
                    "one row is": "prompt, chosen, rejected",
                    "rows": len(set_rows),
                    "👍 / 👎 answers": f"{len(set_rows)} / {len(set_rows)}",
                    "can DPO use it?": f"yes: {len(set_rows)} pairs",
                }
            )
        else:
            up = sum(bool(r["label"]) for r in set_rows)
            rows.append(
                {
                    "data set": name,
                    "one row is": "prompt, completion, label",
                    "rows": len(set_rows),
                    "👍 / 👎 answers": f"{up} / {len(set_rows) - up}",
                    "can DPO use it?": _dpo_use(kto.pairs_possible(set_rows)),
                }
            )
    return pd.DataFrame(rows)


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    intro(
        "Every method so far needs **pairs**: two answers to the same question and a verdict on which is better. "
        "Real feedback often comes one answer at a time: a 👍 or 👎 under a chat reply. **KTO** (Ethayarajh et "
        "al. 2024; trl's `KTOTrainer`) learns from exactly that: it raises the log-ratio log π/π_ref of a 👍 "
        "answer above a reference point (a KL estimate from the batch) and pushes a 👎 answer's below it. Here "
        "the same verdicts (the shipped pairs: chosen = 👍, rejected = 👎) train DPO as pairs, KTO as single "
        "rated answers, and KTO on **one rated answer per question**, which DPO cannot use at all. Measured on this "
        "model: KTO on the unpaired verdicts gains about as much as plain DPO (a little less than DPO with its NLL "
        "term, and drifts further); on one rated answer per question it does **not** help."
    )
    form = SettingsForm(KTOTabSettings, "dpo_kto_")
    with setup("Settings"):
        values = form.draw()
    kto_settings, dpo_settings = values.configs()
    train = pairs("train")
    data = kto.datasets(train, kto_settings.seed)
    st.dataframe(data_table(data), hide_index=True, key="dpo_kto_data")
    with st.expander("Example rows of each format"):
        for name, shown in kto.example_rows(data).items():
            st.caption(name)
            st.dataframe(pd.DataFrame(shown), hide_index=True, key=f"dpo_kto_rows_{kto.DATASETS.index(name)}")
    run_panel(
        "dpo_kto",
        lambda: Job("dpo-kto", kto.comparison_work(start, train, kto_settings, dpo_settings)),
        lambda job: draw_comparison(job, kto_settings.steps),
        start_label="Train DPO and KTO",
        idle_message=(
            f"Three runs from {start.name}, {kto_settings.steps} steps each at β = {kto_settings.beta:g}, lr "
            f"{kto_settings.learning_rate:g} (DPO: 8 pairs a step, NLL weight {dpo_settings.chosen_nll:g}; KTO: 16 "
            "rated answers a step, the same number of answers); then each policy answers the 24 held-out questions "
            "and the 96 the pairs are about, 4 times each (about 30 s on 2 cores)."
        ),
    )


def draw_comparison(job: Job, steps: int) -> None:
    metrics = job.snapshot()
    if job.running and metrics:
        st.caption(f"Run {int(metrics[-1]['run']) + 1} of 3: step {int(metrics[-1]['step'])} of {steps}")
    elif job.running:
        st.caption("Scoring the start model…")
    if metrics:
        series = {}
        for index, name in enumerate(kto.DATASETS):
            rows = [m for m in metrics if int(m["run"]) == index]
            if rows:
                series[f"{SHORT[name]}: 👍"] = (
                    [m["step"] for m in rows],
                    [m.get("rewards/chosen", math.nan) for m in rows],
                )
                series[f"{SHORT[name]}: 👎"] = (
                    [m["step"] for m in rows],
                    [m.get("rewards/rejected", math.nan) for m in rows],
                )
        fig = plots.metric_lines(
            series,
            "Implicit reward of the batch's 👍 and 👎 answers",
            "training step",
            "β·log π/π_ref (trl's rewards/chosen, rejected; nats × β)",
        )
        plots.legend_below(fig).update_layout(legend_y=-0.3)  # six runs' names: under the axis title, not the title
        chart(fig, "dpo_kto_rewards")
    results: list[kto.MethodResult] = job.notes_of(kto.MethodResult)
    if len(results) < 2:
        return
    labels = [SHORT["start"] if r.method == "start" else SHORT[r.name] for r in results]
    chart(
        plots.grouped_bars(
            labels,
            {
                "24 held-out questions": [r.correct_unseen for r in results],
                "96 questions the pairs are about": [r.correct_covered for r in results],
            },
            "Right answers after each method, from the same start model",
            "policy",
            "right answers, sampled (%)",
        ).update_layout(legend_y=-0.35),  # below the two-line policy names and the axis title
        "dpo_kto_chart",
    )
    table = pd.DataFrame(kto.result_rows(results))
    st.dataframe(table, hide_index=True, key="dpo_kto_table")
    st.download_button(
        "Download the comparison (CSV)",
        table.to_csv(index=False),
        file_name="dpo-vs-kto.csv",
        mime="text/csv",
        key="dpo_kto_table_csv",
        icon="⬇️",
    )
    st.markdown(verdict(results))
    st.caption(
        "Right answers: 4 answers sampled (temperature 1) per question, the same sampler seed for every policy, "
        "checked for the right fact. KL: Σ over each sampled answer of KL(π ‖ π_ref) per token, nats. "
        "Measured at the defaults (seeds 0–2, 50 steps; bench/bench_kto.py): on the 96 questions the pairs are "
        "about, tiny-sft is right 84–85% of the time; DPO (with its NLL term, this tab's default) reached 89–92% "
        "(KL 0.4–1.0 nats); KTO on the same verdicts unpaired 89–90%, as much as plain DPO (88–91%), with more "
        "drift (KL 2–5 nats). KTO on **one rated answer per question** (82 answers, no pair possible) did **not** "
        "help this model: 73–82%, below the start at every seed (20 steps or a lower learning rate: 83–84%, still "
        "not above it). On the 24 held-out questions tiny-sft is already right 96–99% of the time: nothing to gain "
        "there, and every method lost a few points."
    )


def verdict(results: list[kto.MethodResult]) -> str:
    """This run's outcome in one sentence, from its own numbers (on the 96 questions the pairs are about)."""
    by_name = {r.name: r for r in results}
    start = results[0].correct_covered
    parts = []
    for name in kto.DATASETS:
        r = by_name.get(name)
        if r is not None:
            points = 100 * (r.correct_covered - start)
            parts.append(f"{SHORT[name]} → {r.correct_covered:.0%} ({points:+.0f} points, KL {r.kl:.1f} nats)")
    return (
        f"**This run**, right answers on the 96 questions the pairs are about, from {start:.0%}: "
        + "; ".join(parts)
        + "."
    )
