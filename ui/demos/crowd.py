"""The "Vote as a room" tab of the RLHF and DPO pages (not a demo module itself: ui/demos/rlhf/vote.py and
ui/demos/dpo/vote.py draw it): the room judges answer pairs, then trains on its votes.

The card's idea made live: writing the ideal answer is hard, choosing the better of two is easy. Attendees
vote (ui/crowd.py: stored in the app's one `VoteStore`, SQLite or PostgreSQL); the presenter, after entering
the presenter token, trains a reward model (trl RewardTrainer) and DPO (trl DPOTrainer) on the room's A/B
votes, everyone's or one voter's (the DPO card's single annotator), and compares each with the same run on
as many shipped preference pairs, both scored on the shipped held-out pairs. The compute is
`llmlab.vote_training.room_preferences` / `room_reward_work` / `room_dpo_work`; this module only draws.

    crowd_tab("rl_crowd", start_model(loaded.device))   # key prefix of every widget; the model runs start from

Never inside a fragment: the live vote counter and the runs' live views are `run_every` fragments (the vote
modules say REDRAW = PAGE).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import pandas as pd
import streamlit as st
import torch

from llmlab import plots, vote_training, votes
from llmlab.dpo import LOG_KEYS, DPOSettings
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.preferences import preference_pairs
from llmlab.reward import RewardRunConfig
from llmlab.vote_training import RoomPreferences, RoomRun
from ui.crowd import crowd_panel, open_store
from ui.frame import chart
from ui.models import shared_model
from ui.runs import run_panel
from ui.settings import SettingsForm, option
from ui.text import md_escape

POOL_SHIPPED = "shipped answer pairs"
EVERYONE, SINGLE = "everyone's votes", "a single annotator"
NOT_TRAINING_PAIRS = (
    "Ties and “both bad” votes are stored and count in the agreement, but they are not training pairs: they "
    "say neither answer is better, and the reward model and DPO learn only from “this one beats that one”."
)


@dataclass(frozen=True)
class RoomTrainingSettings:
    """The presenter's two sliders (keys `<tab key>_rm_steps`, `<tab key>_dpo_steps`)."""

    rm_steps: int = option("Reward-model steps", 60, lo=5, hi=200, step=5, core=(RewardRunConfig, "max_steps"))
    dpo_steps: int = option("DPO steps", lo=10, hi=200, step=10, core=(DPOSettings, "steps"))


@st.cache_resource(show_spinner=False)
def shipped_pool() -> tuple[votes.Pair, ...]:
    """The shipped training pairs as a ballot (each distinct pair once, the chosen answer on a random side)."""
    return tuple(votes.pairs_from_preferences(preference_pairs(split="train")))


@st.cache_resource(show_spinner="Sampling two answers per question from the SFT model (once per server)…")
def sampled_pool(model_name: str, device: str) -> tuple[votes.Pair, ...]:
    """Two answers per shipped question sampled from the (shared, read-only) SFT model."""
    prompts = list(dict.fromkeys(row["prompt"] for row in preference_pairs(split="train")))
    with torch.inference_mode():
        return tuple(vote_training.sampled_pairs(shared_model(model_name, device), prompts))


def crowd_tab(key: str, start: LoadedModel) -> None:
    """The whole tab: pick the pair pool, vote, see the counter; the presenter also trains on the votes.
    Not a fragment itself: a vote reruns only the ballot (`ui.crowd`), and the live counter and the runs' live
    views are `run_every` fragments that must not be nested in another fragment (ui/runs.py)."""
    st.markdown(
        "Writing the perfect answer is hard; picking the better of two is easy. That is RLHF's trick, and here "
        "the room does it: judge answer pairs, and every vote is stored in the app's database. The presenter "
        f"can then train a reward model and DPO on your votes, starting from **{md_escape(start.name)}**."
    )
    sampled = f"answers sampled from {start.name}"
    source = st.radio(
        "Answer pairs to judge",
        [POOL_SHIPPED, sampled],
        key=f"{key}_source",
        horizontal=True,
        help="The shipped pairs (one right answer, one typical mistake), or two answers the SFT model wrote "
        "itself (temperature 1; the same pairs for every attendee).",
    )
    pairs = shipped_pool() if source == POOL_SHIPPED else sampled_pool(start.name, start.device)
    store = open_store()
    if store is None:
        return
    # One anonymous id per browser tab on both pages, so the RLHF and DPO tabs count one voter once.
    st.session_state.setdefault(f"{key}_voter", st.session_state.setdefault("crowd_voter", votes.new_voter_id()))
    session = crowd_panel(pairs, store, key)
    st.caption(NOT_TRAINING_PAIRS)
    if session.presenter:
        train_on_room(store, start, key)


def selected_preferences(store: votes.VoteStore, key: str) -> RoomPreferences | None:
    """Everyone's votes or one voter's (a selectbox of voters with their counts); None after a message."""
    who = st.radio(
        "Train on",
        [EVERYONE, SINGLE],
        key=f"{key}_who",
        horizontal=True,
        help="A single annotator's votes only vs everyone's (the DPO card's Q3): one person's taste, quirks "
        "included, against the room's.",
    )
    voter = None
    if who == SINGLE:
        counts = store.voter_counts()
        if not counts:
            st.info("Nobody has voted yet.", icon="🗳️")
            return None
        labels = {c.voter_id: f"{c.voter_id}: {c.votes} votes, {c.usable} training pairs" for c in counts}
        voter = st.selectbox("Annotator", list(labels), format_func=labels.get, key=f"{key}_annotator")
    return vote_training.room_preferences(store, voter)


def train_on_room(store: votes.VoteStore, start: LoadedModel, key: str) -> None:
    """Presenter only: reward model and DPO on the votes, each beside the same run on shipped pairs."""
    st.markdown("#### Train on the room's votes")
    try:
        room = selected_preferences(store, key)
    except votes.VoteStoreError as e:
        st.error(md_escape(str(e)), icon="⚠️")
        return
    if room is None:
        return
    st.caption(
        f"{len(room.rows)} training pairs (prompt, chosen, rejected) from {room.votes} votes in "
        f"{md_escape(room.name)}; {room.left_out} ties / both-bad votes left out. Each run is compared with the "
        f"same run on {len(room.rows)} shipped pairs; both are scored on the shipped held-out pairs."
    )
    if not room.enough:
        st.info(
            f"Training needs at least {vote_training.MIN_TRAINING_PAIRS} A/B votes; there are {len(room.rows)}. "
            "Vote on more pairs first (nothing was trained).",
            icon="🗳️",
        )
        return
    form = SettingsForm(RoomTrainingSettings, f"{key}_")
    reward_section(room, start, key, form)
    dpo_section(room, start, key, form)
    form.done()


# -- reward model -------------------------------------------------------------------------------------------


def reward_section(room: RoomPreferences, start: LoadedModel, key: str, form: SettingsForm) -> None:
    st.markdown("**Reward model** (trl `RewardTrainer`, the RLHF page's settings)")
    steps = int(form.widget("rm_steps"))
    cfg = RewardRunConfig(max_steps=steps, eval_every=max(5, steps // 4))
    run_panel(
        f"{key}_rm",
        lambda: Job("crowd-reward-model", vote_training.room_reward_work(start, room, cfg)),
        lambda job: draw_reward_runs(job, key, room.name),
        start_label="Train a reward model on the votes",
        idle_message=f"Trains on {md_escape(room.name)}, then on as many shipped pairs ({steps} steps each).",
    )


def _by_source(rows: list[dict], field: str) -> dict[int, tuple[list[float], list[float]]]:
    out: dict[int, tuple[list[float], list[float]]] = {}
    for row in rows:
        if field in row:
            xs, ys = out.setdefault(int(row["source"]), ([], []))
            xs.append(row["step"])
            ys.append(row[field])
    return out


def draw_reward_runs(job: Job, key: str, room_name: str) -> None:
    rows = job.snapshot()
    if not rows:
        st.caption("Preparing the pairs…")
        return
    names = (room_name, vote_training.SHIPPED)
    loss = _by_source(rows, "loss")
    accuracy = _by_source(rows, "heldout_accuracy")
    c1, c2 = st.columns(2)
    chart(
        plots.metric_lines(
            {names[s]: xy for s, xy in loss.items()},
            "Bradley–Terry loss −log σ(s_chosen − s_rejected)",
            "training step",
            "loss (nats per pair)",
        ),
        f"{key}_rm_loss_chart",
        c1,
    )
    chart(
        plots.metric_lines(
            {names[s]: xy for s, xy in accuracy.items()},
            "Held-out accuracy (shipped test pairs)",
            "training step",
            "pairs ranked right (%)",
            percent=True,
        ),
        f"{key}_rm_accuracy_chart",
        c2,
    )
    if job.result:
        comparison(job.result, key=f"{key}_rm", dpo=False)


# -- DPO ----------------------------------------------------------------------------------------------------


def dpo_section(room: RoomPreferences, start: LoadedModel, key: str, form: SettingsForm) -> None:
    st.markdown("**DPO** (trl `DPOTrainer`, the DPO page's default β and learning rate)")
    settings = DPOSettings(steps=int(form.widget("dpo_steps")))
    run_panel(
        f"{key}_dpo",
        lambda: Job("crowd-dpo", vote_training.room_dpo_work(start, room, settings)),
        lambda job: draw_dpo_runs(job, key, room.name),
        start_label="Train DPO on the votes",
        idle_message=(
            f"DPO from {start.name} on {md_escape(room.name)}, then on as many shipped pairs (β = {settings.beta:g}, "
            f"{settings.steps} steps, lr {settings.learning_rate:g}); each policy then answers the held-out questions."
        ),
    )


def draw_dpo_runs(job: Job, key: str, room_name: str) -> None:
    metrics = job.snapshot()
    if not metrics:
        st.caption("Tokenizing the pairs and copying the start model…")
        return
    shown = int(metrics[-1]["source"]) if job.running else 0  # live: the run in progress; then: the room's
    rows = [m for m in metrics if int(m["source"]) == shown]
    name = room_name if shown == 0 else vote_training.SHIPPED
    chart(
        plots.dpo_run_curves(
            [m["step"] for m in rows],
            {k: [m.get(k, math.nan) for m in rows] for k in LOG_KEYS},
            f"DPO on {name}: trl's metrics per step",
        ),
        f"{key}_dpo_chart",
    )
    if job.result:
        comparison(job.result, key=f"{key}_dpo", dpo=True)


# -- the comparison -----------------------------------------------------------------------------------------


def comparison(results: list[RoomRun], key: str, dpo: bool) -> None:
    """Room vs shipped pairs, scored on the shipped held-out pairs: metrics, grouped bars and a table."""
    room = results[0]
    what = "DPO policy" if dpo else "reward model"
    st.metric(
        f"Held-out accuracy, {what} on the votes",
        f"{room.heldout_accuracy:.0%}",
        None
        if len(results) < 2
        else f"{100 * (room.heldout_accuracy - results[1].heldout_accuracy):+.0f} points vs shipped",
        help="Share of the shipped held-out pairs whose right answer it ranks first (50% is a coin flip).",
    )
    labels = [f"{r.name} ({r.pairs} pairs)" for r in results]
    series = {"held-out pairs ranked right": [r.heldout_accuracy for r in results]}
    if dpo and all(r.right_answers is not None for r in results):
        series["right answers (sampled)"] = [r.right_answers for r in results]
    chart(
        plots.grouped_bars(
            labels,
            series,
            f"The room's labels vs the shipped labels: {what} on held-out pairs",
            "training data",
            "held-out pairs or answers (%)",
        ),
        f"{key}_comparison_chart",
    )
    table = [
        {
            "trained on": r.name,
            "pairs": r.pairs,
            "steps": r.steps,
            "held-out accuracy": f"{r.heldout_accuracy:.0%}",
            **(
                {
                    "right answers (sampled)": "" if r.right_answers is None else f"{r.right_answers:.0%}",
                    "KL to start (nats)": "" if r.kl is None else round(r.kl, 3),
                }
                if dpo
                else {}
            ),
            "seconds": round(r.seconds, 1),
        }
        for r in results
    ]
    st.dataframe(pd.DataFrame(table), hide_index=True, key=f"{key}_comparison_table")
    st.caption(
        "Held-out pairs: the shipped test split (each question's right answer against a mistake no training pair "
        "contains). The shipped run learns from a seeded random sample of as many shipped pairs, so only who "
        "labelled the pairs differs."
    )
