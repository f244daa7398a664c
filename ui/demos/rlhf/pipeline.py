"""The pipeline above the RLHF tabs: SFT model → reward model → RL policy, each stage with its state in this
session (llmlab.rlhf.pipeline_stages). Drawn after the tabs (ui.frame.demo_tabs' `above`), so it shows the run
that a tab's Start just launched."""

from __future__ import annotations

import streamlit as st

from llmlab import rlhf
from llmlab.modeling import LoadedModel
from ui.demos.rlhf.reward_models import RM_JOB
from ui.frame import PAGE
from ui.models import start_model
from ui.runs import current_job, run_id

REDRAW = PAGE  # it has no widgets; a tab's full rerun redraws it
RL_JOB = "rl_online"  # the online-RL tab's run panel
SHOWN = "rl_pipeline_shows"  # session_state: {panel key: the run the pipeline last drew, or None}


def draw(loaded: LoadedModel) -> None:
    policy = start_model(loaded.device).name
    jobs = {key: current_job(key) for key in (RM_JOB, RL_JOB)}
    st.session_state[SHOWN] = {key: run_id(job) if job else None for key, job in jobs.items()}
    st.graphviz_chart(rlhf.pipeline_dot(rlhf.pipeline_stages(policy, jobs[RM_JOB], jobs[RL_JOB])))
    st.caption(
        f"This page always starts from {policy}, the SFT stage, whatever model the sidebar picks: the "
        "reward model and the RL policy are copies of it."
    )


def keep_current(panel: str) -> None:
    """Called by a tab after its run panel. Reset, pressed while the tab is a fragment, reruns only the tab, so the
    pipeline above would still show the run Reset removed: then one full rerun redraws it."""
    shown = st.session_state.get(SHOWN, {})
    if shown.get(panel) is not None and current_job(panel) is None:
        shown[panel] = None  # what the next run's pipeline draws: no second rerun from here
        st.rerun(scope="app")
