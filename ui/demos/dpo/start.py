"""The line above the DPO demos: what every one of them trains, whatever model the sidebar picked."""

from __future__ import annotations

import streamlit as st

from llmlab.modeling import LoadedModel
from ui.frame import PAGE
from ui.models import start_model

REDRAW = PAGE  # no widgets: nothing to rerun on its own


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    st.caption(
        f"Every demo trains **{start.name}** (the SFT stage's output, {start.n_params / 1e6:.2f} M parameters), "
        "whatever the sidebar model, so a run takes seconds; the preference pairs are the RLHF page's."
    )
