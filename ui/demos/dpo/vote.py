"""Vote as a room: the RLHF page's crowd votes (one store, one anonymous voter id per browser tab); the presenter
trains a reward model and DPO on everyone's or one voter's votes (ui/demos/crowd.py, llmlab/vote_training.py)."""

from __future__ import annotations

from llmlab.modeling import LoadedModel
from ui.demos.crowd import crowd_tab
from ui.frame import PAGE
from ui.models import start_model

REDRAW = PAGE  # the tab holds the live vote counter, a run_every fragment that must not be nested (ui/runs.py)


def draw(loaded: LoadedModel) -> None:
    crowd_tab("dpo_crowd", start_model(loaded.device))
