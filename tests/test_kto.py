"""llmlab.kto (KTO beside DPO on the same verdicts, the DPO card's Q5), the room's votes as KTO rows
(llmlab.vote_training.votes_to_ratings / room_ratings / room_kto_work), and the "Beyond pairs: KTO" tab in AppTest.

The effect test trains the tab's default KTO run (50 steps, seed 0) on the shipped pairs' verdicts, unpaired; the
other runs are short. Measured numbers across seeds: bench/bench_kto.py and the tab's caption.
"""

from __future__ import annotations

import html
import statistics
import time
from datetime import UTC, datetime

import pytest

from llmlab import kto, preferences, vote_training, votes
from llmlab.dpo import DPOSettings
from llmlab.jobs import Job
from llmlab.modeling import load_model
from llmlab.votes import StoredVote, Vote, VoteStore, new_vote_uuid
from tests import conftest
from tests.conftest import chart, locked, texts
from tests.test_pages import array

PAGE = "pages/4_DPO.py"
TAB = "Beyond pairs: KTO"
TOKEN = "room-42"


@pytest.fixture(scope="module")
def start():
    return locked(load_model, "tiny-sft", "cpu")


@pytest.fixture(scope="module")
def train_pairs():
    return preferences.preference_pairs(split="train")


# -- the data ---------------------------------------------------------------------------------------------------


def test_the_same_verdicts_in_three_shapes(train_pairs):
    data = kto.datasets(train_pairs, seed=0)
    assert list(data) == list(kto.DATASETS)
    pairs, unpaired, single = data.values()
    assert pairs == train_pairs
    # unpaired: every pair is a 👍 (its chosen answer) and a 👎 (its rejected one), same prompt
    assert len(unpaired) == 2 * len(train_pairs)
    assert unpaired[0] == {"prompt": pairs[0]["prompt"], "completion": pairs[0]["chosen"], "label": True}
    assert unpaired[1] == {"prompt": pairs[0]["prompt"], "completion": pairs[0]["rejected"], "label": False}
    assert all(preferences.true_reward(r["prompt"], r["completion"]) == float(r["label"]) for r in unpaired)
    # one rated answer per question: no two rows share a prompt, so DPO gets no pair out of it
    prompts = [r["prompt"] for r in single]
    assert len(prompts) == len(set(prompts)) == len({p["prompt"] for p in train_pairs})
    assert kto.pairs_possible(single) == 0 and kto.pairs_possible(unpaired) >= len(train_pairs)
    assert 0.3 < sum(r["label"] for r in single) / len(single) < 0.7  # about half 👍
    assert kto.one_per_prompt(train_pairs, seed=0) == single and kto.one_per_prompt(train_pairs, seed=1) != single
    shown = kto.example_rows(data, n=1)
    assert shown[kto.DATASETS[1]][0]["label"] == "👍 True" and "<|user|>" not in shown[kto.DATASETS[1]][0]["question"]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"batch_size": 1}, "at least 2"),
        ({"beta": 0.0}, "β must be a positive number"),
        ({"learning_rate": float("nan")}, "learning rate"),
        ({"steps": 0}, "Steps"),
        ({"undesirable_weight": -1.0}, "undesirable_weight"),
    ],
)
def test_settings_that_cannot_train_are_refused_with_a_reason(kwargs, message):
    with pytest.raises(kto.SettingsError, match=message):
        kto.KTOSettings(**kwargs)


def test_rows_kto_cannot_learn_from_are_refused(start):
    good = {"prompt": "<|user|>Where is Peru?<|assistant|>", "completion": "Peru is in South America.", "label": True}
    with pytest.raises(kto.PairError, match="at least 2"):
        kto.train_kto(start, [good], kto.KTOSettings(steps=1))
    with pytest.raises(kto.PairError, match="answer is empty"):
        kto.train_kto(start, [good, {**good, "completion": " "}], kto.KTOSettings(steps=1))
    with pytest.raises(kto.PairError, match="True .thumbs up. or False"):
        kto.train_kto(start, [good, {**good, "label": "yes"}], kto.KTOSettings(steps=1))


def test_our_reference_pass_gives_trls_numbers(start, train_pairs):
    """The length-sorted reference pass (kto._trainer_class) against trl's own, on the same tokenized rows."""
    import copy
    import tempfile

    from datasets import Dataset

    rows = kto.unpaired(train_pairs[:12])
    reference = copy.deepcopy(start.model).eval().requires_grad_(False)
    with tempfile.TemporaryDirectory() as out:
        trainer = kto._trainer_class()(
            model=copy.deepcopy(start.model),
            ref_model=reference,
            args=kto.kto_config(kto.KTOSettings(steps=1, batch_size=4), out, "cpu"),
            train_dataset=Dataset.from_list(rows),
            processing_class=start.tokenizer,
        )
        ours = trainer.train_dataset
        theirs = super(type(trainer), trainer)._precompute_ref_logps(
            ours.remove_columns(["ref_logps", "ref_KL_logps"]), "train", 8
        )
    for column in ("ref_logps", "ref_KL_logps"):
        assert ours[column] == pytest.approx(theirs[column], abs=1e-3)
    assert ours["ref_KL_logps"] != pytest.approx(ours["ref_logps"], abs=1e-3)  # mismatched answers: other numbers


# -- the effect ---------------------------------------------------------------------------------------------------


def test_kto_on_unpaired_labels_raises_correctness_and_separates_the_thumbs(start, train_pairs):
    """KTO at the tab's defaults (seed 0) on the shipped verdicts as single 👍/👎 answers: its loss falls, the 👎
    answers' log-ratio drops far below the 👍 answers', and sampled correctness on the 96 questions the verdicts
    are about rises above tiny-sft's (measured 85% → 90% at seed 0; 89-90% at seeds 0-2)."""
    rows = kto.unpaired(train_pairs)
    run = kto.train_kto(start, rows, kto.KTOSettings(seed=0))
    assert run.steps_done == 50 and len(run.metrics) == 50
    losses = [m["loss"] for m in run.metrics]
    assert losses[0] == pytest.approx(0.5, abs=1e-3)  # policy = reference: every loss term is 1 − σ(0)
    assert statistics.mean(losses[-10:]) < statistics.mean(losses[:10]) - 0.05

    distinct = list({(r["prompt"], r["completion"]): r for r in rows}.values())
    ratios = kto.rated_logratios(run.policy, run.reference, start.tokenizer, distinct)
    up = [d for d, r in zip(ratios, distinct, strict=True) if r["label"]]
    down = [d for d, r in zip(ratios, distinct, strict=True) if not r["label"]]
    assert statistics.mean(down) < -3.0  # nats: the 👎 answers became much less likely
    assert statistics.mean(up) - statistics.mean(down) > 3.0

    before = kto.evaluate("start", "start", start.model, start, seed=0)
    after = kto.evaluate("KTO", "KTO", run.policy, start, len(rows), len(rows) // 2, 50, run.train_s, seed=0)
    assert before.kl == 0.0 and after.kl > 0.0
    assert after.correct_covered >= before.correct_covered + 0.02, (before, after)


# -- the room's votes as rated answers ----------------------------------------------------------------------------


def _vote(choice: str, n: int = 0) -> StoredVote:
    return StoredVote(
        n, f"uuid-{n}", "voter-1", f"pair-{n}", "<|user|>Where is Peru?<|assistant|>", f"A{n}", f"B{n}", choice,
        datetime.now(UTC),
    )  # fmt: skip


def test_votes_become_rated_answers_both_bad_included_ties_left_out():
    rows = vote_training.votes_to_ratings([_vote("a", 1), _vote("b", 2), _vote("both_bad", 3), _vote("tie", 4)])
    assert [(r["completion"], r["label"]) for r in rows] == [
        ("A1", True),
        ("B1", False),
        ("B2", True),
        ("A2", False),
        ("A3", False),  # both bad: two 👎, which no DPO pair can hold
        ("B3", False),
    ]
    assert all(r["prompt"] == "<|user|>Where is Peru?<|assistant|>" for r in rows)


def seed_votes(store: VoteStore, voter: str, n: int, choice_of=None) -> None:
    """`n` votes by `voter` on the shipped pool; by default each picks the right answer."""
    pool = votes.pairs_from_preferences(preferences.preference_pairs(split="train"))[:n]
    store.add_pairs(pool)
    for pair in pool:
        right = preferences.true_reward(pair.prompt, pair.answer_a)
        choice = choice_of(pair) if choice_of else "a" if right else "b"
        store.cast(Vote(vote_uuid=new_vote_uuid(), voter_id=voter, pair_id=pair.pair_id, choice=choice))


def test_room_ratings_count_every_vote_kind_and_refuse_too_few(tmp_path):
    store = VoteStore(f"sqlite:///{tmp_path}/votes.sqlite3")
    seed_votes(store, "voter-alice", 3)
    few = vote_training.room_ratings(store)
    assert (len(few.rows), few.thumbs_up, len(few.pairs)) == (6, 3, 3) and not few.enough
    with pytest.raises(vote_training.NotEnoughVotesError, match="at least 16 rated answers"):
        vote_training.room_kto_work(None, few, kto.KTOSettings(), DPOSettings())  # refused before any training

    seed_votes(store, "voter-bob", 6, choice_of=lambda p: "both_bad")
    seed_votes(store, "voter-carol", 2, choice_of=lambda p: "tie")
    room = vote_training.room_ratings(store)
    assert (room.votes, room.both_bad, room.ties) == (11, 6, 2)
    assert len(room.rows) == 2 * 3 + 2 * 6 and room.thumbs_up == 3 and room.enough  # 18 rows: enough for KTO
    assert len(room.pairs) == 3  # ... but DPO has only the 3 A/B votes
    bob = vote_training.room_ratings(store, "voter-bob")
    assert bob.thumbs_up == 0 and not bob.enough  # only 👎: nothing to move towards


def test_room_kto_work_trains_dpo_on_the_ab_votes_and_kto_on_every_rated_answer(start, tmp_path):
    store = VoteStore(f"sqlite:///{tmp_path}/votes.sqlite3")
    seed_votes(store, "voter-alice", 10)
    seed_votes(store, "voter-bob", 4, choice_of=lambda p: "both_bad")
    ratings = vote_training.room_ratings(store)
    assert len(ratings.pairs) == 10 and len(ratings.rows) == 28
    job = Job("crowd-kto", vote_training.room_kto_work(start, ratings, kto.KTOSettings(steps=5), DPOSettings(steps=5)))
    job.start().join()
    assert job.status == "done", job.error
    methods = [(r.method, r.examples, r.steps) for r in job.result]
    assert methods == [("start", 0, 0), ("DPO", 10, 5), ("KTO", 28, 5)]
    assert {int(m["run"]) for m in job.snapshot()} == {0, 1}
    assert job.notes_of(kto.MethodResult) == job.result


# -- the tab ------------------------------------------------------------------------------------------------------


def wait_for(at, words: tuple[str, ...], timeout_s: float = 600) -> str:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        for word in words:
            if word in texts(at):
                return word
        time.sleep(0.5)
    raise AssertionError(f"none of {words} appeared within {timeout_s} s")


def table(at, column: str):
    for element in at.dataframe:
        if column in element.value.columns:
            return element.value
    raise AssertionError(f"no table with column {column!r}")


def test_the_tab_shows_each_format_trains_dpo_and_kto_and_charts_right_answers(session):
    at = conftest.open_page(PAGE, {"tab_dpo": TAB, "dpo_kto_steps": "10"}, timeout_s=300)
    formats = table(at, "can DPO use it?")
    assert list(formats["data set"]) == list(kto.DATASETS)
    assert list(formats["one row is"]) == ["prompt, chosen, rejected"] + ["prompt, completion, label"] * 2
    assert formats["can DPO use it?"].iloc[2].startswith("no:")
    assert "Three runs from tiny-sft, 10 steps each" in texts(at)

    at.button(key="dpo_kto_start").click().run()
    assert wait_for(at, ("Finished", "failed")) == "Finished", texts(at)[-600:]
    fig = chart(at, "dpo_kto_chart")
    labels = [html.unescape(x.replace("<br>", " ")) for x in fig["data"][0]["x"]]
    assert labels == [
        "tiny-sft (start)",
        "DPO, pairs",
        "KTO, same labels unpaired",
        "KTO, one rated answer per question",
    ]
    assert [t["name"] for t in fig["data"]] == ["24 held-out questions", "96 questions the pairs are about"]
    assert all(0.0 <= v <= 1.0 for t in fig["data"] for v in array(t["y"]))
    curves = chart(at, "dpo_kto_rewards")["data"]
    assert len(curves) == 6 and all(len(array(c["x"])) == 10 for c in curves)  # 👍 and 👎, 10 steps, 3 runs
    results = table(at, "KL to start (nats/answer)")
    assert list(results["method"]) == ["start", "DPO", "KTO", "KTO"]
    assert list(results["training rows"]) == [0, 368, 736, 82]
    assert "This run, right answers on the 96 questions the pairs are about, from" in texts(at).replace("**", "")


def test_the_presenter_sees_the_votes_as_rated_answers_and_can_train_kto(session, tmp_path, monkeypatch):
    monkeypatch.setenv(votes.DATA_DIR_ENV, str(tmp_path / "data"))
    monkeypatch.setenv(votes.PRESENTER_TOKEN_ENV, TOKEN)
    store = VoteStore(f"sqlite:///{tmp_path / 'data' / votes.SQLITE_FILE}")
    seed_votes(store, "voter-alice", 9)
    seed_votes(store, "voter-bob", 3, choice_of=lambda p: "both_bad")
    at = conftest.open_page(PAGE, {"tab_dpo": "Vote as a room"}, timeout_s=300)
    assert not any(b.key == "dpo_crowd_kto_start" for b in at.button)  # attendees: no training
    at.text_input(key="dpo_crowd_token").input(TOKEN).run()
    assert not at.exception, [e.message for e in at.exception]
    assert "12 votes → 24 rated answers (9 👍, 15 👎, of them 6 from both-bad votes) for KTO, 9 pairs" in texts(at)
    at.slider(key="dpo_crowd_kto_steps").set_value(10).run()
    at.button(key="dpo_crowd_kto_start").click().run()
    assert wait_for(at, ("Finished", "failed"), timeout_s=300) == "Finished", texts(at)[-600:]
    results = table(at, "KL to start (nats/answer)")
    assert list(results["method"]) == ["start", "DPO", "KTO"]
    assert list(results["training rows"]) == [0, 9, 24]
