"""Quality vs quantity: two SFT runs from the same model for the same steps, a few polished pairs vs many mediocre
ones. Each run's loss on its own pairs and on held-out pairs of the same kind (new countries) every few steps,
then the held-out answers judged on what a user needs rather than on the polished template: the right fact, a
complete sentence that stops, copied training answers, filler (llmlab.sft.quality_work)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from llmlab import plots, sft
from llmlab.instructions import mediocre_pairs
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.sft import QualityConfig
from ui.demos.sft.answers import comparison_panel
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, intro
from ui.settings import SettingsForm, option

REDRAW = FRAGMENT_UNLESS_RUNNING

# Measured at the defaults on tiny-base, seeds 0, 1 and 2 (tests/test_sft.py checks seed 0; bench/bench_sft.py).
MEASURED = """**What happens, measured** (tiny-base, the defaults, seeds 0–2):

- **100 polished**: held-out ÷ own loss goes from 1.0 to **3.1–3.8**. The loss on its own pairs keeps falling (to
  0.08–0.12 nats) while the held-out loss stalls at 0.32–0.39 from about step 30 (at seeds 1 and 2 it creeps back
  up by 0.01–0.02). On new countries **40–60%** of its answers are a training answer copied word for word ("The
  capital of Belgium is Brussels." to a question about another country), so only 37–50% name the right fact
  about the country asked, all in complete sentences.
- **1000 mediocre**: no gap (held-out ÷ own 0.9–1.1 throughout: 60 steps of 16 pairs see each pair at most once).
  Its loss stays high (~4 nats per token: this tiny tokenizer spells the filler letter by letter) and its greedy
  answers are the average of its styles: "is Madrid." (seed 0: 90% right facts, no complete sentence) or a bare
  "." (seeds 1 and 2: no right fact at all). The card's dataset tics ("As an AI assistant…") do not show up
  in greedy answers here.
- Neither run is usable. More polished pairs of the same kind do not cure the copying: with 240 the gap is smaller
  (held-out ÷ own 2.5–2.9) but 47–60% of the answers are still copies. The held-out countries are in no SFT pair at
  all: *diverse* matters as much as *polished*."""


@dataclass(frozen=True)
class QualitySettings:
    polished: int = option("Polished samples", lo=20, hi=240, step=10, core=(QualityConfig, "polished_samples"))
    mediocre: int = option("Mediocre samples", lo=100, hi=3000, step=100, core=(QualityConfig, "mediocre_samples"))
    steps: int = option("Steps (each run)", lo=10, hi=200, step=10, core=(QualityConfig, "max_steps"))
    seed: int = option("Seed", 0, lo=0, hi=9, advanced=True, help="Which pairs are drawn, their order, the batches.")

    def config(self) -> QualityConfig:
        return QualityConfig(
            polished_samples=int(self.polished),
            mediocre_samples=int(self.mediocre),
            max_steps=int(self.steps),
            seed=int(self.seed),
        )


def draw(loaded: LoadedModel) -> None:
    intro(
        "Two runs from the same model for the same steps: a **few polished pairs** (one clean answer style) or "
        "**many mediocre ones** (mixed styles, filler, some wrong facts). Every few steps each run's loss is "
        "measured on its own pairs and on **held-out pairs of the same kind** about 10 countries no training pair "
        "mentions: where the two lines part, the run is memorising its pairs rather than learning the task. The "
        "held-out answers are then judged on what a user needs — the right fact, a complete sentence that stops, "
        "no copied training answer, no filler — not on the polished template, which the polished run would win "
        "by construction."
    )
    cfg = SettingsForm(QualitySettings, "sft_q_").draw().config()
    comparison_panel(
        "sft_quality",
        lambda: sft.quality_work(loaded, cfg),
        draw_quality,
        "Two runs from the same model, the same steps: a few polished pairs vs many mediocre ones.",
    )
    st.markdown(MEASURED)
    with st.expander("See the mediocre data"):
        st.dataframe(
            pd.DataFrame([(p.prompt, p.response) for p in mediocre_pairs(12)], columns=["instruction", "response"]),
            hide_index=True,
            key="sft_q_mediocre_examples",
        )


def train_vs_held_out(series: dict[str, dict[str, tuple[list, list]]]) -> go.Figure:
    """Each run's loss on its own pairs (solid) and on held-out pairs (dashed), one colour per run."""
    fig = go.Figure()
    for n, (label, curves) in enumerate(series.items()):
        color = plots.SERIES_COLORS[n % len(plots.SERIES_COLORS)]
        for name, dash in ((sft.EVAL_TRAIN, "solid"), (sft.EVAL_HELD_OUT, "dash")):
            steps, losses = curves.get(name, ([], []))
            where = "its own training pairs" if name == sft.EVAL_TRAIN else "held-out pairs (new countries)"
            fig.add_scatter(x=steps, y=losses, mode="lines+markers", name=f"{label}: {where}",
                            line={"color": color, "dash": dash})  # fmt: skip
    fig.update_layout(
        plots.style_layout(
            "Loss on the run's own pairs (solid) vs held-out pairs (dashed)",
            "training step",
            "cross-entropy loss (nats per response token)",
            height=400,
            legend=True,
        )
    )
    fig.update_yaxes(type="log")
    return fig


def draw_quality(job: Job) -> None:
    arms = job.notes_of(sft.ArmResult)
    series = sft.eval_loss_by_run(job.snapshot(), arms)
    if series:
        chart(train_vs_held_out(series), key="sft_quality_gap")
    if not arms:
        return
    st.dataframe(pd.DataFrame(sft.gap_rows(arms)), hide_index=True, key="sft_quality_gaps")
    judged = [arm for arm in arms if arm.judgement is not None]
    before = sft.judge_answers(arms[0].result.before, [])
    chart(
        plots.grouped_bars(
            sft.JUDGED,
            {"before (same start)": before.rates, **{arm.label: arm.judgement.rates for arm in judged}},
            title="Held-out answers judged without the template (higher is better for the first two only)",
            x_title="measure (30 held-out questions about 10 unseen countries)",
            y_title="share of answers (%)",
        ),
        key="sft_quality_bars",
    )
    answers = sft.held_out_answers({arm.label: arm.result.after for arm in arms})
    st.dataframe(pd.DataFrame(answers), hide_index=True, key="sft_quality_answers")
    if len(judged) == 2:
        st.markdown(sft.quality_summary(judged[0], judged[1]))
