"""Quality vs quantity: two SFT runs from the same model for the same steps, a few polished pairs vs many mediocre
ones; the held-out answers show which data teaches a consistent, usable format (llmlab.sft.quality_work)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import sft
from llmlab.instructions import mediocre_pairs
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.sft import QualityConfig
from ui.demos.sft.answers import comparison_panel, draw_comparison
from ui.frame import FRAGMENT_UNLESS_RUNNING
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class QualitySettings:
    polished: int = option("Polished samples", lo=20, hi=240, step=10, core=(QualityConfig, "polished_samples"))
    mediocre: int = option("Mediocre samples", lo=100, hi=3000, step=100, core=(QualityConfig, "mediocre_samples"))
    steps: int = option("Steps (each run)", lo=10, hi=200, step=10, core=(QualityConfig, "max_steps"))

    def config(self) -> QualityConfig:
        return QualityConfig(
            polished_samples=int(self.polished), mediocre_samples=int(self.mediocre), max_steps=int(self.steps)
        )


def draw(loaded: LoadedModel) -> None:
    cfg = SettingsForm(QualitySettings, "sft_q_").draw(columns=3).config()
    comparison_panel(
        "sft_quality",
        lambda: sft.quality_work(loaded, cfg),
        draw_quality,
        "Two runs from the same model, the same steps: a few polished pairs vs many mediocre ones.",
    )
    with st.expander("See the mediocre data"):
        st.dataframe(
            pd.DataFrame([(p.prompt, p.response) for p in mediocre_pairs(12)], columns=["instruction", "response"]),
            hide_index=True,
            key="sft_q_mediocre_examples",
        )


def draw_quality(job: Job) -> None:
    if draw_comparison(job):
        st.caption(
            "Right facts come from pre-training either way; what the data decides is the shape of the answer. "
            "Many mediocre pairs teach the *average* of their styles: answers that match none of them."
        )
