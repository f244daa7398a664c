"""The pipeline above the RLHF tabs: SFT model → reward model → RL policy, each stage with its state in this
session (llmlab.rlhf.pipeline_stages). The run panels' buttons act in callbacks, before the script runs, so
drawn first it already shows the run a tab's Start just launched or its Reset removed."""

from __future__ import annotations

from contextlib import nullcontext

import streamlit as st

from llmlab import rlhf
from llmlab.modeling import LoadedModel
from ui.demos.rlhf.reward_models import RM_JOB
from ui.frame import PAGE
from ui.models import start_model
from ui.runs import current_job
from ui.shell import presenter

REDRAW = PAGE  # it has no widgets; a tab's full rerun redraws it
RL_JOB = "rl_online"  # the online-RL tab's run panel


def draw(loaded: LoadedModel) -> None:
    policy = start_model(loaded.device).name
    jobs = {key: current_job(key) for key in (RM_JOB, RL_JOB)}
    # On a projector the open tab's demo comes first: the pipeline folds into one line above it.
    with st.expander("The pipeline: SFT model → reward model → RL policy") if presenter() else nullcontext():
        _pipeline(policy, jobs)


def _pipeline(policy: str, jobs: dict) -> None:
    st.graphviz_chart(rlhf.pipeline_dot(rlhf.pipeline_stages(policy, jobs[RM_JOB], jobs[RL_JOB])))
    st.caption(
        f"This page always starts from {policy}, the SFT stage, whatever model the sidebar picks: the "
        "reward model and the RL policy are copies of it."
    )
