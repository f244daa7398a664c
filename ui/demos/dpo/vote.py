"""Vote as a room: the RLHF page's crowd votes (one store, one anonymous voter id per browser tab); the presenter
trains a reward model and DPO on everyone's or one voter's votes (ui/demos/crowd.py, llmlab/vote_training.py), and
KTO on the same votes read as single 👍/👎 answers, both-bad votes included (`llmlab.vote_training.room_kto_work`:
the DPO card's Q5, as the "Beyond pairs: KTO" tab does it on the shipped pairs)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass

import pandas as pd
import streamlit as st

from llmlab import kto, plots, vote_training
from llmlab.dpo import DPOSettings
from llmlab.jobs import Job
from llmlab.modeling import LoadedModel
from llmlab.votes import VoteStoreError, is_presenter, presenter_token
from ui.crowd import open_store
from ui.demos.crowd import SINGLE, crowd_tab
from ui.frame import PAGE, chart
from ui.models import start_model
from ui.runs import run_panel
from ui.settings import SettingsForm, option
from ui.text import md_escape

REDRAW = PAGE  # the tab holds the live vote counter, a run_every fragment that must not be nested (ui/runs.py)
KEY = "dpo_crowd"


@dataclass(frozen=True)
class RoomKTOSettings:
    steps: int = option("KTO and DPO steps", lo=10, hi=200, step=10, core=(kto.KTOSettings, "steps"))


def draw(loaded: LoadedModel) -> None:
    start = start_model(loaded.device)
    crowd_tab(KEY, start)
    if presenter_token() is not None and is_presenter(st.session_state.get(f"{KEY}_token")):
        kto_section(start)


def kto_section(start: LoadedModel) -> None:
    """Presenter only: the room's votes as KTO's single rated answers, KTO on them beside DPO on the A/B votes."""
    st.markdown("#### Beyond pairs: KTO on the room's votes")
    store = open_store()
    if store is None:
        return
    voter = st.session_state.get(f"{KEY}_annotator") if st.session_state.get(f"{KEY}_who") == SINGLE else None
    try:
        ratings = vote_training.room_ratings(store, voter)
    except VoteStoreError as e:
        st.error(md_escape(str(e)), icon="⚠️")
        return
    st.caption(
        f"A vote on a pair is two rated answers for KTO: the winner 👍, the loser 👎; a “both bad” vote is two 👎 "
        f"(DPO has to drop it: neither answer can be the chosen one); a tie gives nothing. {md_escape(ratings.name)}: "
        f"{ratings.votes} votes → {len(ratings.rows)} rated answers ({ratings.thumbs_up} 👍, "
        f"{len(ratings.rows) - ratings.thumbs_up} 👎, of them {2 * ratings.both_bad} from both-bad votes) for KTO, "
        f"{len(ratings.pairs)} pairs for DPO."
    )
    if ratings.rows:
        st.download_button(
            "Download the rated answers (KTO's JSONL)",
            "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in ratings.rows),
            file_name="crowd_ratings_kto.jsonl",
            mime="application/jsonl",
            key=f"{KEY}_kto_jsonl",
            on_click="ignore",
            icon="⬇️",
        )
    if not ratings.enough:
        st.info(
            f"KTO needs at least {vote_training.MIN_RATINGS} rated answers with one 👍; there are "
            f"{len(ratings.rows)}. Vote on more pairs first (nothing was trained).",
            icon="🗳️",
        )
        return
    form = SettingsForm(RoomKTOSettings, f"{KEY}_kto_")
    steps = int(form.draw().steps)
    kto_settings, dpo_settings = kto.KTOSettings(steps=steps), DPOSettings(steps=steps)
    run_panel(
        f"{KEY}_kto",
        lambda: Job("crowd-kto", vote_training.room_kto_work(start, ratings, kto_settings, dpo_settings)),
        draw_room_kto,
        start_label="Train KTO on the votes",
        idle_message=(
            f"DPO from {start.name} on the {len(ratings.pairs)} A/B votes (if at least "
            f"{vote_training.MIN_TRAINING_PAIRS}), then KTO on the {len(ratings.rows)} rated answers, {steps} steps "
            f"each (β = {kto_settings.beta:g}, lr {kto_settings.learning_rate:g}); each policy then answers the 24 "
            "held-out questions and the 96 the shipped pairs are about."
        ),
    )


def draw_room_kto(job: Job) -> None:
    metrics = job.snapshot()
    if metrics:
        names = {0: "DPO", 1: "KTO"}
        series = {}
        for run, name in names.items():
            rows = [m for m in metrics if int(m["run"]) == run]
            if rows:
                steps = [m["step"] for m in rows]
                series[f"{name}: 👍"] = (steps, [m.get("rewards/chosen", math.nan) for m in rows])
                series[f"{name}: 👎"] = (steps, [m.get("rewards/rejected", math.nan) for m in rows])
        chart(
            plots.metric_lines(
                series,
                "Implicit reward β·log π/π_ref of the batch's 👍 and 👎 answers",
                "training step",
                "implicit reward (nats × β)",
            ),
            f"{KEY}_kto_chart",
        )
    results = job.notes_of(kto.MethodResult)
    if len(results) > 1:
        st.dataframe(pd.DataFrame(kto.result_rows(results)), hide_index=True, key=f"{KEY}_kto_table")
