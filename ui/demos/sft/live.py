"""Live SFT: trl's SFTTrainer fine-tunes a copy of the model on polished pairs in a background job; its loss
live, and the held-out questions (countries in no training pair) answered before and after
(llmlab.sft.live_sft_work)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import plots, sft
from llmlab.instructions import HELD_OUT_COUNTRIES, polished_pairs
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.sft import SFTRunConfig
from llmlab.trainargs import LEARNING_RATES
from ui.download import download_button, note_start, started
from ui.frame import FRAGMENT_UNLESS_RUNNING, chart, show_code
from ui.runs import run_panel
from ui.settings import SettingsForm, help_of, option
from ui.shell import presenter
from ui.text import md_escape

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class LiveSettings:
    samples: int = option(
        "Samples", lo=10, hi=len(polished_pairs()), step=10, advanced=True, core=(SFTRunConfig, "samples")
    )
    steps: int = option("Steps", lo=5, hi=300, step=5, core=(SFTRunConfig, "max_steps"))
    lr: float = option(
        "Learning rate", choices=LEARNING_RATES, advanced=True, core=(SFTRunConfig, "learning_rate"),
        help=help_of(SFTRunConfig, "learning_rate") + " Above ~1 the loss becomes NaN.",
    )  # fmt: skip
    completion_only: bool = option(
        "Loss on the response only", advanced=True, core=(SFTRunConfig, "completion_only_loss")
    )
    freeze: bool = option("Freeze the token embeddings", advanced=True, core=(SFTRunConfig, "freeze_embeddings"))

    def config(self) -> SFTRunConfig:
        return SFTRunConfig(
            samples=int(self.samples),
            max_steps=int(self.steps),
            learning_rate=float(self.lr),
            completion_only_loss=self.completion_only,
            freeze_embeddings=self.freeze,
        )


def draw(loaded: LoadedModel) -> None:
    form = SettingsForm(LiveSettings, "sft_live_")
    c1, c2, c3 = st.columns(3)
    form.widget("samples", c1)
    form.widget("steps", c2)
    form.widget("lr", c3)
    if not presenter():  # (in presenter mode both are hidden: no empty expander)
        with st.expander("More settings"):
            form.widget("completion_only")
            form.widget("freeze")
    cfg = form.done().config()
    if loaded.n_params > 5e6:
        st.warning(
            f"{md_escape(loaded.name)} has {loaded.n_params / 1e6:.0f} M parameters: on a CPU each step takes "
            "seconds, not milliseconds. tiny-base runs the default in under 20 s.",
            icon="🐢",
        )
    countries = ", ".join(c.name for c in HELD_OUT_COUNTRIES)
    run_panel(
        "sft_live",
        lambda: note_start(Job("sft_live", sft.live_sft_work(loaded, cfg)), loaded.name, loaded.tokenizer, cfg),
        draw_live,
        start_label="Start SFT",
        idle_message=f"Press Start SFT to fine-tune a copy of {loaded.name} with trl's SFTTrainer. Held-out "
        f"questions ask about countries that are in no training pair: {countries}.",
    )
    show_code(sft.sft_config, sft.make_trainer)


def draw_live(job: Job) -> None:
    rows = [m for m in job.snapshot() if "loss" in m]
    if rows:
        chart(
            plots.loss_curve(
                [m["step"] for m in rows],
                [m["loss"] for m in rows],
                title="SFTTrainer's training loss (response tokens only unless switched off)",
            ),
            key="sft_live_loss",
        )
    scores = {scored.stage: scored.score for scored in job.notes_of(sft.Scored)}
    if "before" not in scores:
        st.caption("Asking the held-out questions before training…")
        return
    before, after = scores["before"], scores.get("after")
    m1, m2 = st.columns(2)
    m1.metric(
        "Held-out accuracy",
        f"{after.accuracy:.0%}" if after else f"{before.accuracy:.0%}",
        f"{after.accuracy - before.accuracy:+.0%} (was {before.accuracy:.0%})" if after else "before training",
        help="Answer names the right capital / language / continent of a country the SFT data never mentions.",
    )
    m2.metric(
        "Well-formatted answers",
        f"{after.format_rate:.0%}" if after else f"{before.format_rate:.0%}",
        f"{after.format_rate - before.format_rate:+.0%} (was {before.format_rate:.0%})" if after else "before training",
        help="One polished sentence, then the end-of-text token (the model learned to stop).",
    )
    columns = {"before SFT": before} | ({"after SFT": after} if after else {})
    answers = sft.held_out_answers(columns, marked=after)
    st.dataframe(pd.DataFrame(answers), hide_index=True, key="sft_live_answers")
    trained, start = job.notes_of(sft.Trained), started(job)
    if after and trained and start and isinstance(job.result, sft.SFTRun):
        run = job.result
        metrics = {"steps": run.steps, "held-out accuracy": after.accuracy, "held-out accuracy before": before.accuracy,
                   "well-formatted answers": after.format_rate, "final training loss": run.losses[-1]}  # fmt: skip
        download_button("sft", trained[0].model, start.tokenizer, start.config, start.start_model, metrics,
                        key="sft_live_download")  # fmt: skip
