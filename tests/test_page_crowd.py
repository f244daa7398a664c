"""The "Vote as a room" tab (ui/demos/crowd.py, llmlab/vote_training.py) on the RLHF page: votes stored once,
presenter-only training on the votes with its held-out accuracy shown, the single-annotator data selection, and
bad input (a pair gone from the pool, a wrong database URL, a read-only data folder); and the DPO page's copy of
the tab, on the same votes.

Every test points the store at its own temporary SQLite file through $LLMLAB_DATA_DIR.
"""

import html
import os
import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from llmlab import reward, vote_training, votes
from llmlab.preferences import preference_pairs, true_reward
from llmlab.votes import CHOICES, Vote, VoteStore, new_vote_uuid
from tests import conftest
from tests.conftest import chart, texts
from tests.test_pages import array

PAGE = "pages/3_RLHF.py"
TOKEN = "room-42"


@pytest.fixture
def data_dir(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "data"
    monkeypatch.setenv(votes.DATA_DIR_ENV, str(folder))
    monkeypatch.delenv(votes.DATABASE_URL_ENV, raising=False)
    monkeypatch.delenv(votes.PRESENTER_TOKEN_ENV, raising=False)
    return folder


def store_in(folder: Path) -> VoteStore:
    return VoteStore(f"sqlite:///{folder / votes.SQLITE_FILE}")


def vote_buttons(at: AppTest) -> dict[str, str]:
    """choice -> the key of its button on the pair shown now."""
    return {c: b.key for b in at.button for c in CHOICES if b.key and b.key.startswith(f"rl_crowd_{c}_")}


def metric(at: AppTest, label: str) -> str:
    return next(m.value for m in at.metric if m.label == label)


def test_a_vote_is_stored_once_and_counted_and_attendees_get_no_presenter_controls(data_dir):
    at = conftest.open_page(PAGE, timeout_s=300)
    store = store_in(data_dir)
    assert metric(at, "Votes so far") == "0" and "are not training pairs" in texts(at)
    ballot = dict(at.session_state["rl_crowd_ballot"])

    at.button(key=vote_buttons(at)["a"]).click().run()
    assert not at.exception
    [stored] = store.votes()
    assert (stored.pair_id, stored.choice, stored.vote_uuid) == (ballot["pair_id"], "a", ballot["vote_uuid"])
    assert metric(at, "Votes so far") == "1" and "Vote saved: A is better" in texts(at)

    # A double-click: the second click of the same button arrives before the rerun drew the next pair.
    at.session_state["rl_crowd_ballot"] = ballot
    at.run()
    at.button(key=f"rl_crowd_a_{ballot['vote_uuid']}").click().run()
    assert store.count() == 1 and metric(at, "Votes so far") == "1"
    assert f"Vote saved: A is better (vote \\#{stored.id})" in texts(at)  # the same stored vote, acknowledged again

    # No presenter token on the server: no token box, no exports, no clearing, no training.
    keys = {w.key for w in [*at.button, *at.text_input, *at.checkbox, *at.slider]}
    assert not {"rl_crowd_token", "rl_crowd_clear", "rl_crowd_rm_start", "rl_crowd_dpo_start"} & keys
    assert not at.get("download_button") and "Train on the room" not in texts(at)

    # A vote for a pair that left the pool (the pool was replaced meanwhile): a warning, nothing stored.
    gone = at.session_state["rl_crowd_ballot"]["pair_id"]
    store.remove_pairs([gone])
    at.button(key=vote_buttons(at)["b"]).click().run()
    assert not at.exception and "no longer in the pool" in " ".join(w.value for w in at.warning)
    assert store.count() == 1 and at.session_state["rl_crowd_ballot"]["pair_id"] != gone


def test_a_wrong_database_url_or_a_read_only_folder_is_a_message_not_a_traceback(data_dir, monkeypatch):
    monkeypatch.setenv(votes.DATABASE_URL_ENV, "mysql://user:hunter2@db.example:3306/votes")
    at = conftest.open_page(PAGE, timeout_s=300)
    errors = " ".join(e.value for e in at.error)
    assert "Unsupported database" in errors and "hunter2" not in errors and not vote_buttons(at)

    monkeypatch.delenv(votes.DATABASE_URL_ENV)
    data_dir.mkdir()
    real_access = os.access
    if os.geteuid() == 0:  # root writes through chmod: the folder reports itself read-only instead
        monkeypatch.setattr(os, "access", lambda p, m, **kw: Path(p) != data_dir and real_access(p, m, **kw))
    data_dir.chmod(0o555)
    try:
        at.run()
    finally:
        data_dir.chmod(0o755)
        monkeypatch.setattr(os, "access", real_access)
    assert not at.exception
    assert "read-only" in " ".join(e.value for e in at.error) and not vote_buttons(at)

    at.run()  # fixed without a restart: the failed open was not cached
    assert not at.exception and vote_buttons(at)


def test_the_dpo_page_has_the_same_tab_on_the_same_votes_and_voter(data_dir):
    at = conftest.open_page("pages/4_DPO.py", timeout_s=300)
    store = store_in(data_dir)
    buttons = {c: b.key for b in at.button for c in CHOICES if b.key and b.key.startswith(f"dpo_crowd_{c}_")}
    assert metric(at, "Votes so far") == "0" and set(buttons) == set(CHOICES)
    at.button(key=buttons["b"]).click().run()
    assert not at.exception, [e.message for e in at.exception]
    [stored] = store.votes()
    assert stored.choice == "b" and stored.voter_id == at.session_state["crowd_voter"]  # the RLHF tab's voter id too
    assert metric(at, "Votes so far") == "1" and "Vote saved: B is better" in texts(at)


def seed_votes(store: VoteStore, voter: str, n: int, choice_of=None) -> None:
    """`n` votes by `voter` on the shipped pool; by default each picks the right answer."""
    pool = votes.pairs_from_preferences(preference_pairs(split="train"))[:n]
    store.add_pairs(pool)
    for pair in pool:
        choice = choice_of(pair) if choice_of else "a" if true_reward(pair.prompt, pair.answer_a) else "b"
        store.cast(Vote(vote_uuid=new_vote_uuid(), voter_id=voter, pair_id=pair.pair_id, choice=choice))


def test_single_annotator_selects_only_that_voters_a_b_votes(tmp_path):
    store = VoteStore(f"sqlite:///{tmp_path}/votes.sqlite3")
    seed_votes(store, "voter-alice", 10)
    seed_votes(store, "voter-bob", 6, choice_of=lambda p: "tie" if p.pair_id < "8" else "b")

    alice = vote_training.room_preferences(store, "voter-alice")
    assert alice.rows == store.export_trl("voter-alice") and len(alice.rows) == 10 and alice.left_out == 0
    assert all(true_reward(r["prompt"], r["chosen"]) == 1.0 for r in alice.rows) and alice.enough

    bob = vote_training.room_preferences(store, "voter-bob")
    ties = sum(v.choice == "tie" for v in store.votes("voter-bob"))
    assert len(bob.rows) == 6 - ties and bob.left_out == ties and not bob.enough
    with pytest.raises(vote_training.NotEnoughVotesError, match="at least 8 A/B votes; this voter has"):
        vote_training.room_reward_work(None, bob, reward.RewardRunConfig())  # refused before any training

    everyone = vote_training.room_preferences(store)
    assert len(everyone.rows) == 10 + 6 - ties and everyone.votes == 16 and everyone.voter_id is None
    assert [(c.voter_id, c.votes, c.usable) for c in store.voter_counts()] == [
        ("voter-alice", 10, 10),
        ("voter-bob", 6, 6 - ties),
    ]


def test_the_presenter_trains_a_reward_model_on_one_annotators_votes(data_dir, monkeypatch):
    monkeypatch.setenv(votes.PRESENTER_TOKEN_ENV, TOKEN)
    store = store_in(data_dir)
    seed_votes(store, "voter-alice", 3)
    at = conftest.open_page(PAGE, timeout_s=300)
    at.text_input(key="rl_crowd_token").input(TOKEN).run()
    assert "Training needs at least 8 A/B votes; there are 3" in texts(at)
    assert not any(b.key == "rl_crowd_rm_start" for b in at.button)  # too few votes: nothing to press

    seed_votes(store, "voter-alice", 12)  # the first 3 again (her latest vote counts once) and 9 more
    seed_votes(store, "voter-bob", 9, choice_of=lambda p: "both_bad")
    used = []
    real_work = vote_training.room_reward_work
    monkeypatch.setattr(vote_training, "room_reward_work", lambda *a: used.append(a[1]) or real_work(*a))
    at.run()
    at.radio(key="rl_crowd_who").set_value("a single annotator").run()
    assert "voter-alice: 12 votes, 12 training pairs" in at.selectbox(key="rl_crowd_annotator").options
    at.selectbox(key="rl_crowd_annotator").set_value("voter-alice")
    at.slider(key="rl_crowd_rm_steps").set_value(5).run()
    at.button(key="rl_crowd_rm_start").click().run()
    deadline = time.monotonic() + 240
    while "Finished in" not in texts(at):
        assert time.monotonic() < deadline and "failed" not in texts(at), texts(at)[-400:]
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.message for e in at.exception]

    [room] = used
    assert room.voter_id == "voter-alice" and room.rows == store.export_trl("voter-alice") and len(room.rows) == 12
    shown = metric(at, "Held-out accuracy, reward model on the votes")
    bars = chart(at, "rl_crowd_rm_comparison_chart")["data"][0]
    accuracy = array(bars["y"])
    assert shown == f"{accuracy[0]:.0%}" and 0.0 <= accuracy[0] <= 1.0 and len(accuracy) == 2
    label = html.unescape(bars["x"][0].replace("<br>", " "))  # wrapped over lines: plots.wrapped_label
    assert label.startswith("voter-alice's votes (single annotator) (12 pairs)")
    curves = chart(at, "rl_crowd_rm_loss_chart")["data"]
    assert {html.unescape(c["name"]) for c in curves} == {
        "voter-alice's votes (single annotator)",
        vote_training.SHIPPED,
    }
    assert all(len(array(c["x"])) == 5 for c in curves)  # 5 steps each, both runs drawn


def test_dpo_on_one_annotators_votes_trains_on_exactly_those_pairs_then_on_as_many_shipped(tmp_path, monkeypatch):
    """The DPO half of "train on the room": the votes' rows are the training data of the first run (trl's
    DPOTrainer sees each of them), the second run gets as many shipped pairs; both are scored alike."""
    from llmlab import dpo, dpo_experiments
    from llmlab.jobs import Job
    from llmlab.modeling import load_model

    store = VoteStore(f"sqlite:///{tmp_path}/votes.sqlite3")
    seed_votes(store, "voter-alice", 10)
    seed_votes(store, "voter-bob", 10, choice_of=lambda p: "b")
    alice = vote_training.room_preferences(store, "voter-alice")
    seen: list[list[dict]] = []
    original = dpo_experiments.dpo_work

    def spy(start, pairs, heldout, settings, reward_fn, **kwargs):
        seen.append(list(pairs))
        return original(start, pairs, heldout, settings, reward_fn, **kwargs)

    monkeypatch.setattr(dpo_experiments, "dpo_work", spy)
    settings = dpo.DPOSettings(beta=0.1, steps=3, batch_size=4)
    job = Job("room-dpo", vote_training.room_dpo_work(load_model("tiny-sft", "cpu"), alice, settings)).start()
    job.join(timeout=300)
    assert job.status == "done", job.error
    room_run, shipped_run = job.result
    assert seen[0] == alice.rows and len(seen[1]) == len(alice.rows) == 10
    assert {r["prompt"] for r in seen[1]} <= {r["prompt"] for r in preference_pairs(split="train")}
    assert room_run.name.startswith("voter-alice") and room_run.steps == shipped_run.steps == 3
    for run in (room_run, shipped_run):
        assert 0.0 <= run.heldout_accuracy <= 1.0 and run.kl is not None and run.kl >= 0.0
    assert {row.get("source") for row in job.metrics if "loss" in row} == {0, 1}  # both runs logged live
