"""The reward models the RLHF demos score with: the server's two defaults (bundled, or trained once and cached on
disk) and the one this session trained in the reward-model tab. Not a demo itself: the tabs share it."""

from __future__ import annotations

import streamlit as st

from llmlab import reward
from ui.models import shared_model
from ui.runs import current_job

RM_UNBIASED, RM_BIASED, RM_SESSION, CORRECTNESS = (
    "reward model trained on unbiased pairs",
    "reward model trained on biased pairs (longer wins)",
    "your reward model (tab 1)",
    "correctness (verifiable, no reward model)",
)
RM_JOB = "rl_rm"  # the reward-model tab's run panel


@st.cache_resource(show_spinner="Loading the reward model (bundled, or trained once and cached on disk)…")
def default_reward_model(policy: str, device: str, biased: bool) -> reward.RewardRun:
    """The reward model the sweep and RL use by default: shared, read-only, trained once per server."""
    return reward.load_or_train_reward_model(shared_model(policy, device), reward.RewardRunConfig(biased=biased))


def session_reward_model() -> reward.RewardRun | None:
    """The reward model trained in tab 1 of this session, once its run has finished."""
    job = current_job(RM_JOB)
    if job is not None and not job.running and isinstance(job.result, reward.RewardRun):
        return job.result
    return None


def reward_options(with_correctness: bool = False) -> list[str]:
    """What the sweep (and, with correctness, online RL) can score with in this session."""
    options = [RM_UNBIASED, RM_BIASED] + ([RM_SESSION] if session_reward_model() is not None else [])
    return options + ([CORRECTNESS] if with_correctness else [])


def reward_model_for(choice: str, policy: str, device: str) -> reward.RewardRun | None:
    """The reward model a choice names (None for correctness, which needs none)."""
    if choice == RM_SESSION:
        return session_reward_model()
    if choice == CORRECTNESS:
        return None
    return default_reward_model(policy, device, choice == RM_BIASED)
