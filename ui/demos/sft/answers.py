"""Two SFT runs compared: their run panel ("Train both"), and their held-out answers side by side (loss curves
while they train, then the right-fact / format bars and each run's answers). The quality-vs-quantity and the
LoRA-vs-full tabs share it; not a demo itself."""

from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import streamlit as st

from llmlab import plots, sft
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from ui.download import note_start
from ui.frame import chart
from ui.runs import run_panel

MEASURES = ("right fact", "house format", "both (usable)")  # HeldOutScore.rates, in its order


def comparison_panel(
    key: str,
    make_work: Callable[[], Callable[[Job], sft.Comparison]],
    draw: Callable[[Job], None],
    idle_message: str,
    start: LoadedModel | None = None,
) -> None:
    """The run panel of a comparison: Start trains both arms, one after the other, in one job named by the panel
    (its charts' keys start with that name). `make_work` is called on Start only: it builds the training data.
    With `start` (the model both arms copy), the job notes it for the arms' downloads."""

    def make_job() -> Job:
        job = Job(key, make_work())
        return note_start(job, start.name, start.tokenizer) if start is not None else job

    run_panel(key, make_job, draw, start_label="Train both", idle_message=idle_message)


def draw_comparison(job: Job) -> list[sft.ArmResult]:
    """Both runs' training loss so far; once an arm has finished, its held-out rates beside the common start's
    and its answers. Returns the finished arms."""
    arms = job.notes_of(sft.ArmResult)
    series = sft.loss_by_run(job.snapshot(), arms)
    if series:
        chart(plots.loss_curves(series, "Training loss of each run"), key=f"{job.name}_loss")
    if not arms:
        return arms
    chart(
        plots.grouped_bars(
            MEASURES,
            {
                "before (same start)": arms[0].result.before.rates,
                **{arm.label: arm.result.after.rates for arm in arms},
            },
            title="After training: right facts and consistent format on held-out questions",
            x_title="measure (30 held-out questions)",
            y_title="share of answers (%)",
        ),
        key=f"{job.name}_bars",
    )
    answers = sft.held_out_answers({arm.label: arm.result.after for arm in arms})
    st.dataframe(pd.DataFrame(answers), hide_index=True, key=f"{job.name}_answers")
    return arms
