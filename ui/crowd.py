"""The crowd-vote panel: attendees judge answer pairs, and each vote is stored by `llmlab.votes.VoteStore`.

A vote is acknowledged on the page only after the database committed it. Each displayed pair gets its own
vote uuid and its buttons carry that uuid in their keys, so a double-click (or a click the browser re-sends)
lands on the same vote and is stored once; it can never count for the next pair. Attendees are anonymous:
a random voter id lives in `st.session_state`. Presenter controls (exports, clearing) appear only after the
session entered the server's presenter token (`$LLMLAB_PRESENTER_TOKEN`); without a token they are hidden.

    from ui.crowd import crowd_panel, open_store
    store = open_store()                          # None, after an st.error, when the database is unusable
    if store is not None:
        session = crowd_panel(pairs, store, key="rl_crowd")
        if session.presenter: ...                 # e.g. the "train on the room's votes" buttons
"""

from __future__ import annotations

import hashlib
from collections.abc import MutableMapping, Sequence
from dataclasses import dataclass

import streamlit as st

from llmlab.preferences import question_text
from llmlab.votes import (
    CHOICE_LABELS,
    CHOICES,
    Pair,
    UnknownPairError,
    Vote,
    VoteStore,
    VoteStoreError,
    database_url,
    is_presenter,
    new_vote_uuid,
    new_voter_id,
    presenter_token,
)
from ui.text import md_escape

COUNTER_REFRESH_S = 3.0  # the live counter's redraw period


@dataclass(frozen=True)
class CrowdSession:
    voter_id: str  # this browser session's anonymous voter id
    presenter: bool  # the session entered the right presenter token (gate presenter-only actions on it)


@st.cache_resource(show_spinner=False)
def _shared_store(url: str) -> VoteStore:
    return VoteStore(url)


def open_store(url: str | None = None) -> VoteStore | None:
    """The app's one store (shared by all sessions); on a database problem, an error on the page and None.
    A failed open is not cached: the next rerun tries again, so fixing the folder or URL needs no restart."""
    try:
        return _shared_store(url or database_url())
    except VoteStoreError as e:
        st.error(md_escape(str(e)), icon="⚠️")
        return None


def record_vote(store: VoteStore, state: MutableMapping, key: str, ballot: dict, choice: str) -> None:
    """What a vote button does (its on_click): cast `ballot`'s vote, then leave a message in `state` and
    move on to the next pair only once the vote is committed. `ballot` is the {"pair_id", "vote_uuid"} the
    button was drawn for, so a second click of the same button re-sends the same vote."""
    ballot_key, flash_key = f"{key}_ballot", f"{key}_flash"
    is_current = state.get(ballot_key, {}).get("vote_uuid") == ballot["vote_uuid"]
    vote = Vote(vote_uuid=ballot["vote_uuid"], voter_id=state[f"{key}_voter"], pair_id=ballot["pair_id"], choice=choice)
    try:
        receipt = store.cast(vote)
    except UnknownPairError as e:
        state[flash_key] = ("warning", str(e))
        if is_current:
            del state[ballot_key]
        return
    except VoteStoreError as e:
        # The ballot stays: clicking again re-sends the same vote uuid, so a retry can never count twice.
        state[flash_key] = ("error", f"{e} Your vote was not saved; click again to retry.")
        return
    if is_current:
        del state[ballot_key]
    stored = CHOICE_LABELS[receipt.vote.choice]
    if receipt.vote.choice == choice:
        state[flash_key] = ("success", f"Vote saved: {stored} (vote #{receipt.vote.id}). Here is the next pair.")
    else:
        state[flash_key] = ("info", f"This pair already had your vote ({stored}); it was kept.")


def _show_flash(key: str) -> None:
    kind, message = st.session_state.pop(f"{key}_flash", (None, ""))
    if kind is not None:
        getattr(st, kind)(md_escape(message))


def _register_pool(pairs: Sequence[Pair], store: VoteStore, key: str) -> bool:
    """Put the pairs in the database once per session and pool (every replica and session may vote on them)."""
    fingerprint = hashlib.sha256("|".join(p.pair_id for p in pairs).encode()).hexdigest()
    if st.session_state.get(f"{key}_pool") == fingerprint:
        return True
    try:
        store.add_pairs(pairs)
    except VoteStoreError as e:
        st.error(md_escape(str(e)), icon="⚠️")
        return False
    st.session_state[f"{key}_pool"] = fingerprint
    return True


def _current_ballot(pairs: Sequence[Pair], store: VoteStore, key: str, voter_id: str) -> dict | None:
    ballot = st.session_state.get(f"{key}_ballot")
    ids = [p.pair_id for p in pairs]
    if ballot is None or ballot["pair_id"] not in ids:
        pair_id = store.next_pair_id(voter_id, ids)
        if pair_id is None:
            return None
        ballot = st.session_state[f"{key}_ballot"] = {"pair_id": pair_id, "vote_uuid": new_vote_uuid()}
    return ballot


@st.fragment
def _ballot(pairs: Sequence[Pair], store: VoteStore, key: str, voter_id: str) -> None:
    """The vote's message and the pair to judge. A fragment: a vote (a room votes many times a minute) reruns
    only this, and the counter below, a `run_every` fragment, is not nested in it (ui/runs.py says why)."""
    _show_flash(key)
    _ballot_view(pairs, store, key, voter_id)


def _ballot_view(pairs: Sequence[Pair], store: VoteStore, key: str, voter_id: str) -> None:
    if not pairs:
        st.info("There are no answer pairs to judge yet.")
        return
    if not _register_pool(pairs, store, key):
        return
    try:
        ballot = _current_ballot(pairs, store, key, voter_id)
    except VoteStoreError as e:
        st.error(md_escape(str(e)), icon="⚠️")
        return
    if ballot is None:
        st.success("You have judged every pair in the pool. Thank you!")
        return
    pair = next(p for p in pairs if p.pair_id == ballot["pair_id"])
    st.markdown("**Question:** " + md_escape(question_text(pair.prompt)))
    for column, label, answer in zip(st.columns(2), ("A", "B"), (pair.answer_a, pair.answer_b), strict=True):
        with column.container(border=True):
            st.caption(f"Answer {label}")
            st.markdown(md_escape(answer))
    for column, choice in zip(st.columns(len(CHOICES)), CHOICES, strict=True):
        column.button(
            CHOICE_LABELS[choice],
            key=f"{key}_{choice}_{ballot['vote_uuid']}",  # new keys for each pair: a late click hits the old pair
            on_click=record_vote,
            args=(store, st.session_state, key, dict(ballot), choice),
            type="primary" if choice in ("a", "b") else "secondary",
            width="stretch",
        )


def _live_counter(store: VoteStore, key: str) -> None:
    @st.fragment(run_every=COUNTER_REFRESH_S)
    def counter() -> None:
        try:
            stats = store.stats()
        except VoteStoreError as e:
            st.error(md_escape(str(e)), icon="⚠️")
            return
        c1, c2, c3 = st.columns(3)
        agreement = stats.agreement
        c1.metric("Votes so far", stats.votes)
        c2.metric("Voters", stats.voters)
        c3.metric(
            "Agreement between voters",
            "–" if agreement.rate is None else f"{agreement.rate:.0%}",
            help="Of every two people who judged the same pair, how often they made the same choice.",
        )
        if agreement.comparisons:
            st.caption(
                f"{agreement.agreeing} of {agreement.comparisons} comparisons agree, over {agreement.shared_pairs} "
                "pairs that two or more people judged."
            )
        else:
            st.caption("Agreement appears once two people have judged the same pair.")

    counter()


def _on_clear(store: VoteStore, key: str, token: str) -> None:
    try:
        deleted = store.clear(token)
    except VoteStoreError as e:
        st.session_state[f"{key}_flash"] = ("error", str(e))
        return
    st.session_state[f"{key}_confirm"] = False
    st.session_state[f"{key}_flash"] = ("success", f"Deleted {deleted} votes.")


def _presenter_controls(store: VoteStore, key: str) -> bool:
    """Exports and clearing, behind the presenter token; hidden when the server has no token."""
    if presenter_token() is None:
        return False
    # Open once a token was typed: the rerun that typing causes would otherwise fold the expander away.
    with st.expander("Presenter controls", icon="🔑", expanded=bool(st.session_state.get(f"{key}_token"))):
        token = st.text_input("Presenter token", type="password", key=f"{key}_token")
        if not token:
            st.caption("Enter the presenter token to export or clear the votes.")
            return False
        if not is_presenter(token):
            st.error("Wrong presenter token.")
            return False
        try:
            trl_csv, trl_jsonl, raw_csv = store.export_csv(), store.export_jsonl(), store.export_csv(trl=False)
            n = store.count()
        except VoteStoreError as e:
            st.error(md_escape(str(e)), icon="⚠️")
            return True
        st.caption("Exports in trl's prompt/chosen/rejected format (ties and both-bad left out), or every vote.")
        d1, d2, d3 = st.columns(3)
        for column, label, data, name, mime in (
            (d1, "Preferences (CSV)", trl_csv, "crowd_preferences.csv", "text/csv"),
            (d2, "Preferences (JSONL)", trl_jsonl, "crowd_preferences.jsonl", "application/jsonl"),
            (d3, "All votes (CSV)", raw_csv, "crowd_votes.csv", "text/csv"),
        ):
            column.download_button(
                label, data, file_name=name, mime=mime, key=f"{key}_{name}", on_click="ignore", icon="⬇️"
            )
        confirmed = st.checkbox(f"Delete all {n} votes (export them first)", key=f"{key}_confirm")
        st.button(
            "Delete all votes",
            key=f"{key}_clear",
            disabled=not confirmed,
            on_click=_on_clear,
            args=(store, key, token),
        )
    return True


def crowd_panel(pairs: Sequence[Pair], store: VoteStore, key: str = "rl_crowd") -> CrowdSession:
    """Vote on `pairs` (the pool: shipped pairs or answers sampled from the SFT model), a live counter with
    the agreement between voters, and the presenter controls. `key` prefixes every widget key."""
    voter_id = st.session_state.setdefault(f"{key}_voter", new_voter_id())
    _ballot(pairs, store, key, voter_id)
    _live_counter(store, key)
    presenter = _presenter_controls(store, key)
    st.caption(f"You vote anonymously as {voter_id}; the id lives only in this browser tab.")
    return CrowdSession(voter_id=voter_id, presenter=presenter)
