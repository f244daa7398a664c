"""What the DPO demos share (not a demo itself): the preference pairs they train and score on, the Live DPO tab's
settings (the Offline limit and Single annotator tabs train with them too, and the loss tab's example uses its
β), and this session's kept results (the DPO vs RLHF tab draws the β sweep's and the live runs' policies)."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st

from llmlab import preferences
from llmlab.dpo import BETA_CHOICES, DPOSettings
from llmlab.dpo_experiments import FrontierPoint, LiveSummary, SweepPoint
from llmlab.trainargs import LEARNING_RATES
from ui.runs import Kept
from ui.settings import SettingsForm, option

LIVE_JOB = "dpo_live"  # the Live DPO tab's run panel (the loss tab's example uses its policy)
NLL_WEIGHTS = (0.0, 0.5, 1.0, 2.0)  # 0: plain DPO
ASKED = preferences.asked("test")  # every question the pairs are about: correctness is measured on all of them
LIVE_PREFIX = "dpo_"  # the Live DPO tab's settings: dpo_beta, dpo_steps, dpo_lr

# Results of this session's finished runs, one entry per run ("Reset this page" forgets them: "dpo_" keys).
SWEEPS: Kept[list[SweepPoint]] = Kept("dpo_sweep_kept")  # every β of every sweep
LIVE_RUNS: Kept[LiveSummary] = Kept("dpo_live_kept")  # every live run, summarised
RLHF_RUNS: Kept[list[FrontierPoint]] = Kept("dpo_rlhf_kept")  # the DPO vs RLHF tab's RLHF runs
RLHF_PAGE_RUNS: Kept[list[FrontierPoint]] = Kept("dpo_rlhf_page_kept")  # the RLHF page's online runs, scored here


@dataclass(frozen=True)
class LiveSettings:
    beta: float = option("β (log scale)", choices=BETA_CHOICES, core=(DPOSettings, "beta"))
    steps: int = option("Steps", lo=10, hi=300, step=10, core=(DPOSettings, "steps"))
    lr: float = option("Learning rate", choices=LEARNING_RATES, advanced=True, core=(DPOSettings, "learning_rate"))
    nll: float = option("NLL weight of the chosen answer", choices=NLL_WEIGHTS, core=(DPOSettings, "chosen_nll"))

    def config(self) -> DPOSettings:
        return DPOSettings(
            beta=float(self.beta), steps=int(self.steps), learning_rate=float(self.lr), chosen_nll=float(self.nll)
        )


def live_settings() -> LiveSettings:
    """The Live DPO tab's settings, read without drawing them (from another tab)."""
    return SettingsForm(LiveSettings, LIVE_PREFIX).values()


@st.cache_data(show_spinner=False)
def pairs(split: str, biased: bool = False) -> list[dict]:
    """The RLHF page's preference pairs (seed 0): "train", and "test": fresh pairs on the same questions."""
    return preferences.preference_pairs(seed=0, biased=biased, split=split)
