"""Vote as a room: attendees judge answer pairs, every vote stored in the app's database; the presenter trains a
reward model and DPO on everyone's or one voter's votes and compares them with the shipped pairs
(ui/demos/crowd.py, llmlab/vote_training.py). The DPO page has the same tab, on the same votes."""

from __future__ import annotations

from llmlab.modeling import LoadedModel
from ui.demos.crowd import crowd_tab
from ui.frame import PAGE
from ui.models import start_model

REDRAW = PAGE  # the tab holds the live vote counter, a run_every fragment that must not be nested (ui/runs.py)


def draw(loaded: LoadedModel) -> None:
    crowd_tab("rl_crowd", start_model(loaded.device))
