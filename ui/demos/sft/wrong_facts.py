"""Style, not knowledge: SFT on the polished pairs with a few capitals confidently wrong. The wrong facts become
the likely answer for those countries, while held-out countries keep their pre-trained facts in the new format
(llmlab.sft.wrong_facts_work)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import plots, sft
from llmlab.instructions import WRONG_FACT_COUNTRIES
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.sft import WrongFactsConfig
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, show_code
from ui.runs import run_panel
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class WrongFactsSettings:
    steps: int = option("Steps", lo=10, hi=300, step=10, core=(WrongFactsConfig, "max_steps"))


def draw(loaded: LoadedModel) -> None:
    form = SettingsForm(WrongFactsSettings, "sft_wrong_")
    form.widget("steps")
    cfg = WrongFactsConfig(max_steps=int(form.done().steps))
    run_panel(
        "sft_wrong",
        lambda: Job("sft_wrong_facts", sft.wrong_facts_work(loaded, cfg)),
        draw_wrong_facts,
        start_label="Train on wrong facts",
        idle_message=f"The polished pairs, except that {', '.join(WRONG_FACT_COUNTRIES)} each get another "
        "country's capital, stated just as confidently as the true ones.",
    )
    show_code(sft.continuation_probability)


def draw_wrong_facts(job: Job) -> None:
    rows = [m for m in job.snapshot() if "loss" in m]
    if rows:
        chart(
            plots.loss_curve([m["step"] for m in rows], [m["loss"] for m in rows], title="Training loss"),
            key="sft_wrong_loss",
        )
    result: sft.WrongFactsResult | None = job.result
    if result is None:
        return
    chart(
        plots.grouped_bars(
            [p.country for p in result.after],
            {
                "wrong capital, before SFT": [p.p_wrong for p in result.before],
                "wrong capital, after SFT": [p.p_wrong for p in result.after],
                "true capital, after SFT": [p.p_right for p in result.after],
            },
            title="P(answer | 'The capital of X is'): SFT made the wrong fact the likely one",
            x_title="country taught a wrong capital",
            y_title="probability of the answer (%)",
        ),
        key="sft_wrong_bars",
    )
    st.dataframe(pd.DataFrame(result.table()), hide_index=True, key="sft_wrong_table")
    st.markdown(
        f"Held-out countries (no wrong facts, not in the data) are still answered from pre-training: "
        f"**{result.run.after.accuracy:.0%}** right. SFT copied the *format* everywhere and the wrong *facts* "
        "only where it saw them — and states them just as fluently."
    )
