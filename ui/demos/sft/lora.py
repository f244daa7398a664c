"""LoRA vs full fine-tuning: the same pairs for the same steps, once training every weight and once training
peft's rank-r adapters beside frozen weights; trainable parameters, time, result, and how far the original
weights moved (llmlab.sft.lora_work)."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import sft
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.sft import LoraComparisonConfig
from llmlab.trainargs import LEARNING_RATES
from ui.demos.sft.answers import comparison_panel, draw_comparison
from ui.download import download_button, started
from ui.frame import FRAGMENT_UNLESS_RUNNING, show_code
from ui.settings import SettingsForm, option
from ui.text import md_escape

REDRAW = FRAGMENT_UNLESS_RUNNING


@dataclass(frozen=True)
class LoraSettings:
    rank: int = option("LoRA rank r", lo=1, hi=32, core=(LoraComparisonConfig, "lora_rank"))
    steps: int = option("Steps (each run)", lo=10, hi=200, step=10, core=(LoraComparisonConfig, "max_steps"))
    lr: float = option(
        "LoRA learning rate", choices=LEARNING_RATES, advanced=True,
        core=(LoraComparisonConfig, "lora_learning_rate"),
    )  # fmt: skip

    def config(self) -> LoraComparisonConfig:
        return LoraComparisonConfig(lora_rank=int(self.rank), max_steps=int(self.steps), lora_learning_rate=self.lr)


def draw(loaded: LoadedModel) -> None:
    cfg = SettingsForm(LoraSettings, "sft_lora_").draw(columns=3).config()
    comparison_panel(
        "sft_lora",
        lambda: sft.lora_work(loaded, cfg),
        draw_lora,
        "Full fine-tuning, then peft LoRA adapters, on the same pairs for the same steps.",
        start=loaded,
    )
    show_code(sft.lora_config, sft.base_weight_change)


def draw_lora(job: Job) -> None:
    arms = draw_comparison(job)
    if not arms:
        return
    st.dataframe(pd.DataFrame(sft.arm_rows(arms)), hide_index=True, key="sft_lora_table")
    st.caption(
        "LoRA freezes every original weight (its largest change is exactly 0) and trains B·A beside each "
        "linear layer. On a 1M-parameter model the saving is small and the extra matmuls can even cost time; "
        "on a 7B model the same idea trains ~0.1–1% of the weights and fits on one GPU."
    )
    start = started(job)
    for arm in arms if start is not None else []:
        if arm.model is None or arm.config is None:
            continue
        kind = "lora" if arm.config.lora_rank else "sft"
        st.markdown(f"**{md_escape(arm.label)}**" + (": the adapter alone" if kind == "lora" else ""))
        metrics = {"steps": arm.result.steps, "held-out accuracy": arm.result.after.accuracy}
        download_button(kind, arm.model, start.tokenizer, arm.config, start.start_model, metrics,
                        key=f"sft_lora_download_{arm.run}")  # fmt: skip
