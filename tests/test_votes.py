"""Crowd votes: storage that loses nothing (llmlab/votes.py) and the voting panel (ui/crowd.py).

SQLite always; PostgreSQL too when LLMLAB_TEST_POSTGRES_URL points at a throwaway database (its tables are
dropped), e.g. after `eval "$(scripts/ci_postgres.sh)"`. The read-only and full-disk cases run SQLite in a
private mount namespace (a read-only bind mount, a 256 KiB tmpfs) when the tests run as root, else a
chmod'ed folder; they skip where neither is possible.
"""

from __future__ import annotations

import csv
import io
import json
import os
import random
import sqlite3
import subprocess
import sys
import textwrap
import threading
from itertools import combinations
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from bench.bench_votes import bench_pairs, check, fresh_store, kill_and_restart, run_threads, vote_plan
from llmlab.votes import (
    CHOICES,
    PresenterTokenError,
    UnknownPairError,
    Vote,
    VoteStore,
    VoteStoreError,
    choose_next_pair,
    database_url,
    make_pair,
    new_vote_uuid,
    pairs_from_preferences,
)

ROOT = Path(__file__).resolve().parents[1]
PAIRS = bench_pairs(12)
PG_URL = os.environ.get("LLMLAB_TEST_POSTGRES_URL")


@pytest.fixture(params=["sqlite", "postgresql"])
def url(request, tmp_path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/data/votes.sqlite3"
    if not PG_URL:
        pytest.skip('LLMLAB_TEST_POSTGRES_URL is not set (eval "$(scripts/ci_postgres.sh)" starts a server)')
    return PG_URL


@pytest.fixture
def store(url):
    store = fresh_store(url, PAIRS)
    yield store
    store.close()


def vote(pair_index: int, choice: str, voter: str = "voter-1") -> Vote:
    return Vote(vote_uuid=new_vote_uuid(), voter_id=voter, pair_id=PAIRS[pair_index].pair_id, choice=choice)


# --- storage ------------------------------------------------------------------------------------------------


def test_a_vote_is_acknowledged_after_commit_and_survives_a_restart(store, url):
    receipt = store.cast(vote(0, "a"))
    assert receipt.new and receipt.vote.id >= 1 and receipt.vote.choice == "a"
    assert (receipt.vote.prompt, receipt.vote.answer_a, receipt.vote.answer_b) == (
        PAIRS[0].prompt,
        PAIRS[0].answer_a,
        PAIRS[0].answer_b,
    )
    store.close()  # "restart the server": a new store with new connections
    restarted = VoteStore(url)
    assert [v.vote_uuid for v in restarted.votes()] == [receipt.vote.vote_uuid]
    assert restarted.votes()[0] == receipt.vote  # text, choice and timestamp round-trip exactly
    restarted.close()


def test_sqlite_lives_in_the_data_folder_in_wal_mode(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMLAB_DATABASE_URL", raising=False)
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(tmp_path / "room"))
    assert database_url() == f"sqlite:///{tmp_path / 'room' / 'votes.sqlite3'}"
    store = VoteStore()
    store.add_pairs(PAIRS)
    store.cast(vote(0, "b"))
    with store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA synchronous").scalar() == 2  # FULL: survives a power cut too
    # Another connection, outside SQLAlchemy, sees the committed vote in a WAL-mode file.
    raw = sqlite3.connect(tmp_path / "room" / "votes.sqlite3")
    assert raw.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert raw.execute("SELECT choice FROM crowd_votes").fetchall() == [("b",)]
    raw.close()
    store.close()
    monkeypatch.setenv("LLMLAB_DATABASE_URL", "postgresql://u:p@db.example:5432/votes")
    assert database_url() == "postgresql://u:p@db.example:5432/votes"


def test_double_clicks_and_retries_store_one_vote(store):
    first = store.cast(vote(1, "a"))
    again = store.cast(Vote(first.vote.vote_uuid, "voter-1", PAIRS[1].pair_id, "b"))  # 2nd click, other button
    assert not again.new and again.vote == first.vote  # the first click wins, nothing new stored

    racing = Vote(new_vote_uuid(), "voter-2", PAIRS[2].pair_id, "tie")
    receipts, barrier = [], threading.Barrier(12)

    def click() -> None:
        barrier.wait()
        receipts.append(store.cast(racing))

    threads = [threading.Thread(target=click) for _ in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(r.new for r in receipts) == 1 and len({r.vote.id for r in receipts}) == 1
    assert store.count() == 2


def test_a_vote_for_a_pair_no_longer_in_the_pool_is_refused_with_a_message(store):
    kept = store.cast(vote(3, "a"))
    assert store.remove_pairs([PAIRS[3].pair_id]) == 1
    with pytest.raises(UnknownPairError, match="no longer in the pool.*not recorded"):
        store.cast(vote(3, "b", voter="voter-2"))
    with pytest.raises(UnknownPairError):
        store.cast(Vote(new_vote_uuid(), "voter-2", "0123456789abcdef", "a"))
    # The vote committed before the pair left is kept, and a retry of it still gets its receipt.
    assert store.cast(Vote(kept.vote.vote_uuid, "voter-1", PAIRS[3].pair_id, "a")).vote == kept.vote
    assert store.count() == 1
    assert PAIRS[3].pair_id not in {p.pair_id for p in store.pairs()} and len(store.pairs()) == len(PAIRS) - 1


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        (Vote("u1", "voter-1", PAIRS[0].pair_id, "c"), "Unknown choice"),
        (Vote("u2", "", PAIRS[0].pair_id, "a"), "voter_id"),
        (Vote("", "voter-1", PAIRS[0].pair_id, "a"), "vote_uuid"),
        (Vote("u3", "x" * 65, PAIRS[0].pair_id, "a"), "voter_id"),
    ],
)
def test_malformed_votes_are_refused(store, bad, message):
    with pytest.raises(VoteStoreError, match=message):
        store.cast(bad)
    assert store.count() == 0


def test_a_vote_id_reused_for_another_pair_is_refused(store):
    first = store.cast(vote(0, "a"))
    with pytest.raises(VoteStoreError, match="already used"):
        store.cast(Vote(first.vote.vote_uuid, "voter-1", PAIRS[1].pair_id, "a"))
    assert store.count() == 1


def test_agreement_equals_a_count_over_every_two_voters(store):
    rng = random.Random(0)
    cast = []
    for _ in range(50):  # 8 voters on 5 pairs, with repeats: a voter's latest vote on a pair counts
        v = Vote(new_vote_uuid(), f"voter-{rng.randrange(8)}", PAIRS[rng.randrange(5)].pair_id, rng.choice(CHOICES))
        store.cast(v)
        cast.append(v)
    latest = {(v.voter_id, v.pair_id): v.choice for v in cast}
    comparisons = agreeing = 0
    for pair in {p for _, p in latest}:
        choices = [c for (_, p), c in latest.items() if p == pair]
        for x, y in combinations(choices, 2):
            comparisons += 1
            agreeing += x == y
    agreement = store.agreement()
    assert (agreement.comparisons, agreement.agreeing) == (comparisons, agreeing) and comparisons > 0
    assert agreement.rate == pytest.approx(agreeing / comparisons)
    stats = store.stats()
    assert (stats.votes, stats.voters, stats.agreement) == (50, len({v.voter_id for v in cast}), agreement)


def test_agreement_is_undefined_until_two_people_judged_one_pair(store):
    store.cast(vote(0, "a", "voter-1"))
    store.cast(vote(1, "a", "voter-2"))
    assert store.agreement().rate is None and store.agreement().shared_pairs == 0
    store.cast(vote(0, "b", "voter-2"))
    assert store.agreement().rate == 0.0 and store.agreement().shared_pairs == 1


def test_exports_in_trl_format(store):
    store.cast(vote(0, "a", "voter-1"))
    store.cast(vote(1, "b", "voter-1"))
    store.cast(vote(2, "tie", "voter-1"))
    store.cast(vote(3, "both_bad", "voter-2"))
    store.cast(vote(4, "a", "voter-2"))
    store.cast(vote(4, "b", "voter-2"))  # changed their mind: only the latest counts
    rows = store.export_trl()
    assert rows == [
        {"prompt": PAIRS[0].prompt, "chosen": PAIRS[0].answer_a, "rejected": PAIRS[0].answer_b},
        {"prompt": PAIRS[1].prompt, "chosen": PAIRS[1].answer_b, "rejected": PAIRS[1].answer_a},
        {"prompt": PAIRS[4].prompt, "chosen": PAIRS[4].answer_b, "rejected": PAIRS[4].answer_a},
    ]
    assert store.export_trl(voter_id="voter-2") == rows[2:]
    # Multi-line, accented, emoji and quoted text survives both file formats unchanged.
    assert [json.loads(line) for line in store.export_jsonl().splitlines()] == rows
    assert list(csv.DictReader(io.StringIO(store.export_csv()))) == rows
    every_vote = list(csv.DictReader(io.StringIO(store.export_csv(trl=False))))
    assert [r["choice"] for r in every_vote] == ["a", "b", "tie", "both_bad", "a", "b"]
    assert {json.loads(line)["voter_id"] for line in store.export_jsonl(trl=False).splitlines()} == {
        "voter-1",
        "voter-2",
    }


def test_clearing_needs_the_presenter_token(store, monkeypatch):
    store.cast(vote(0, "a"))
    monkeypatch.delenv("LLMLAB_PRESENTER_TOKEN", raising=False)
    with pytest.raises(PresenterTokenError, match="no presenter token"):
        store.clear("anything")
    monkeypatch.setenv("LLMLAB_PRESENTER_TOKEN", "s3cret-token")
    for wrong in (None, "", "s3cret", "s3cret-token-2"):
        with pytest.raises(PresenterTokenError, match="Wrong presenter token"):
            store.clear(wrong)
    assert store.count() == 1
    assert store.clear("s3cret-token") == 1
    assert store.count() == 0 and len(store.pairs()) == len(PAIRS)  # the pool stays


def test_next_pair_prefers_pairs_others_judged():
    rng = random.Random(0)
    ids = ["p0", "p1", "p2", "p3"]
    assert choose_next_pair(ids, set(), {"p2": 1}, rng) == "p2"  # overlap first, so agreement can be measured
    assert choose_next_pair(ids, set(), {"p1": 1, "p2": 2}, rng) == "p2"
    assert choose_next_pair(ids, {"p2"}, {"p2": 2}, rng) in {"p0", "p1", "p3"}
    assert choose_next_pair(ids, set(), {"p0": 3, "p1": 3, "p2": 3}, rng) == "p3"  # saturated pairs last
    assert choose_next_pair(ids, set(ids), {}, rng) is None


def test_voters_following_next_pair_judge_the_same_pairs(store):
    ids = [p.pair_id for p in PAIRS]
    for voter in ("voter-1", "voter-2", "voter-3"):
        for _ in range(3):
            store.cast(Vote(new_vote_uuid(), voter, store.next_pair_id(voter, ids), "a"))
    agreement = store.agreement()
    assert agreement.shared_pairs == 3 and agreement.comparisons == 9  # 3 pairs, each judged by all 3 voters
    assert store.next_pair_id("voter-1", ids) not in {v.pair_id for v in store.votes("voter-1")}


def test_pairs_from_preferences_put_the_chosen_answer_on_either_side():
    from llmlab.preferences import preference_pairs

    rows = preference_pairs(split="train")[:40]
    pairs = pairs_from_preferences(rows, seed=0)
    chosen = {(r["prompt"], r["chosen"]) for r in rows}
    chosen_on_a = sum((p.prompt, p.answer_a) in chosen for p in pairs)
    assert 0.25 * len(pairs) < chosen_on_a < 0.75 * len(pairs)
    assert pairs == pairs_from_preferences(rows, seed=0)
    unique_rows = {(r["prompt"], frozenset((r["chosen"], r["rejected"]))) for r in rows}
    assert len(pairs) == len(unique_rows) == len({p.pair_id for p in pairs})


def test_pairs_from_preferences_skips_a_repeated_pair_even_with_sides_swapped():
    row = {"prompt": "q", "chosen": "right", "rejected": "wrong"}
    swapped = {"prompt": "q", "chosen": "wrong", "rejected": "right"}
    other = {"prompt": "q2", "chosen": "right", "rejected": "wrong"}
    pairs = pairs_from_preferences([row, row, swapped, other])
    assert [p.prompt for p in pairs] == ["q", "q2"]
    assert make_pair("q", "a", "b").pair_id != make_pair("q", "b", "a").pair_id


def test_add_pairs_is_idempotent(store):
    assert store.add_pairs(PAIRS) == 0
    assert store.add_pairs([*PAIRS[:2], make_pair("new?", "x", "y")]) == 1
    assert len(store.pairs()) == len(PAIRS) + 1


# --- reliability --------------------------------------------------------------------------------------------


def test_thirty_concurrent_voters_store_every_vote_once(store):
    # The 30 voters at once; 30 × 50 runs in bench/bench_votes.py (~20 s: one fsync per vote).
    plan = vote_plan(range(30), 6, PAIRS)
    run_threads(store, plan)  # 10% double-clicks and a thread re-sending random votes meanwhile
    result = check(store, plan)
    assert (result.stored, result.distinct, result.missing) == (180, 180, 0)


def test_a_writer_killed_mid_run_keeps_every_acknowledged_vote(url):
    result = kill_and_restart(url, voters=4, per_voter=15, kill_after=20)
    assert result["killed_by"] == 9  # SIGKILL: no clean-up ran
    assert result["acked_before_kill"] >= 20 and result["acked_missing_after_kill"] == 0
    final = result["final"]
    assert (final.stored, final.distinct, final.missing) == (60, 60, 0)


def test_a_locked_sqlite_database_is_retried_then_reported(tmp_path, monkeypatch):
    import llmlab.votes

    monkeypatch.setattr(llmlab.votes, "BUSY_TIMEOUT_S", 0.2)  # SQLite's wait for the lock, per attempt
    path = tmp_path / "votes.sqlite3"
    store = VoteStore(f"sqlite:///{path}")
    store.add_pairs(PAIRS)
    other = sqlite3.connect(path, isolation_level=None, check_same_thread=False)  # another app process
    other.execute("BEGIN IMMEDIATE")
    release = threading.Timer(0.3, lambda: other.execute("COMMIT"))  # longer than one attempt's wait
    release.start()
    assert store.cast(vote(0, "a")).new  # the retry got through
    release.join()

    other.execute("BEGIN IMMEDIATE")  # now held for good
    with pytest.raises(VoteStoreError, match="stayed locked"):
        store.cast(vote(1, "a"))
    other.execute("ROLLBACK")
    other.close()
    assert [v.pair_id for v in store.votes()] == [PAIRS[0].pair_id]
    store.close()


# --- bad configuration --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("bad_url", "message"),
    [
        ("not a url", "not a database URL"),
        ("mysql://u@127.0.0.1/votes", "Unsupported database"),
        ("sqlite://", "in-memory"),
        ("postgresql://llmlab:hunter2@127.0.0.1:1/votes", "Cannot reach the vote database"),
        ("postgresql+psycopg2://u@127.0.0.1/votes", "driver"),
    ],
)
def test_a_wrong_database_url_gives_a_clear_message(bad_url, message):
    with pytest.raises(VoteStoreError, match=message) as error:
        VoteStore(bad_url)
    assert "hunter2" not in str(error.value)  # never show the password


def test_a_wrong_postgres_database_name_gives_a_clear_message():
    if not PG_URL:
        pytest.skip("LLMLAB_TEST_POSTGRES_URL is not set")
    from sqlalchemy.engine import make_url

    wrong = make_url(PG_URL).set(database="no_such_database").render_as_string(hide_password=False)
    with pytest.raises(VoteStoreError, match='Cannot reach.*"no_such_database" does not exist'):
        VoteStore(wrong)


PROBE = """
import json, sys
sys.path.insert(0, {root!r})
from llmlab.votes import Vote, VoteStore, VoteStoreError, make_pair, new_vote_uuid
folder, out = sys.argv[1], {{}}
{body}
print(json.dumps(out))
"""


def run_probe(body: str, folder: Path, mount: str | None) -> dict:
    """Run `body` in a fresh Python process; as root inside a private mount namespace where `mount` (a shell
    snippet using $0 = folder) ran first, else as this user."""
    code = PROBE.format(root=str(ROOT), body=textwrap.dedent(body))
    if mount is None:
        cmd = [sys.executable, "-c", code, str(folder)]
    else:
        cmd = ["unshare", "-m", "sh", "-c", f'{mount} && exec "$1" -c "$2" "$0"', str(folder), sys.executable, code]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if (
        mount is not None
        and done.returncode != 0
        and "mount" in done.stderr + done.stdout
        and "Traceback" not in done.stderr
    ):
        pytest.skip(f"no private mount namespace here: {done.stderr.strip()[:200]}")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_a_read_only_data_folder_gives_a_clear_message_and_loses_nothing(tmp_path):
    folder = tmp_path / "data"
    store = VoteStore(f"sqlite:///{folder}/votes.sqlite3")
    store.add_pairs(PAIRS)
    kept = store.cast(vote(0, "a"))
    store.close()
    body = """
    for name, url in [("new folder", f"sqlite:///{folder}/new/votes.sqlite3"),
                      ("existing db", f"sqlite:///{folder}/votes.sqlite3")]:
        try:
            VoteStore(url)
            out[name] = "opened"
        except VoteStoreError as e:
            out[name] = str(e)
    """
    if os.geteuid() == 0:  # root writes through chmod: use a read-only bind mount instead
        out = run_probe(body, folder, mount='mount --bind "$0" "$0" && mount -o remount,bind,ro "$0"')
    else:
        folder.chmod(0o555)
        try:
            out = run_probe(body, folder, mount=None)
        finally:
            folder.chmod(0o755)
    assert "Cannot create the data folder" in out["new folder"] and "LLMLAB_DATA_DIR" in out["new folder"]
    assert "read-only" in out["existing db"] and "LLMLAB_DATA_DIR" in out["existing db"]
    assert VoteStore(f"sqlite:///{folder}/votes.sqlite3").votes() == [kept.vote]


def test_a_full_disk_gives_a_clear_message_and_every_acknowledged_vote_is_kept(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("needs a private tmpfs (root)")
    folder = tmp_path / "tiny"
    folder.mkdir()
    body = """
    store = VoteStore(f"sqlite:///{folder}/votes.sqlite3")
    pair = make_pair("q" * 2000, "a" * 3000, "b" * 3000)
    store.add_pairs([pair])
    out["acked"] = 0
    try:
        for i in range(1000):
            store.cast(Vote(new_vote_uuid(), f"voter-{i}", pair.pair_id, "a"))
            out["acked"] += 1
    except VoteStoreError as e:
        out["error"] = str(e)
    store.close()
    out["stored"] = VoteStore(f"sqlite:///{folder}/votes.sqlite3").count()
    """
    out = run_probe(body, folder, mount='mount -t tmpfs -o size=256k tmpfs "$0"')  # a real ENOSPC
    assert "full" in out["error"] and "no vote was recorded" in out["error"]
    assert out["acked"] > 0 and out["stored"] == out["acked"]


# --- the panel ----------------------------------------------------------------------------------------------


def crowd_app(url: str, n_pairs: int) -> None:
    import streamlit as st

    from bench.bench_votes import bench_pairs
    from ui.crowd import crowd_panel, open_store

    store = open_store(url)
    if store is not None:
        session = crowd_panel(bench_pairs(n_pairs), store, key="rl_crowd")
        st.session_state["test_presenter"] = session.presenter


def panel(url: str, n_pairs: int = 3) -> AppTest:
    at = AppTest.from_function(crowd_app, kwargs={"url": url, "n_pairs": n_pairs}, default_timeout=30)
    at.run()
    assert not at.exception
    return at


def vote_buttons(at: AppTest) -> dict[str, str]:
    """choice -> the key of its button on the pair shown now."""
    return {c: b.key for b in at.button for c in CHOICES if b.key.startswith(f"rl_crowd_{c}_")}


def test_the_panel_records_a_vote_only_once_and_moves_on(tmp_path, monkeypatch):
    monkeypatch.delenv("LLMLAB_PRESENTER_TOKEN", raising=False)
    url = f"sqlite:///{tmp_path}/votes.sqlite3"
    at = panel(url)
    store = VoteStore(url)
    ballot = dict(at.session_state["rl_crowd_ballot"])
    shown = next(p for p in bench_pairs(3) if p.pair_id == ballot["pair_id"])
    markdown = [m.value for m in at.markdown]
    assert r"\<b\>not\</b\>" in "".join(markdown)  # model text is escaped, never markup
    assert any("Ville" in m for m in markdown) and at.metric[0].value == "0"

    at.button(key=vote_buttons(at)["b"]).click().run()
    assert not at.exception
    assert "Vote saved: B is better" in at.success[0].value
    [stored] = store.votes()
    assert (stored.pair_id, stored.choice, stored.vote_uuid) == (shown.pair_id, "b", ballot["vote_uuid"])
    assert stored.voter_id == at.session_state["rl_crowd_voter"] and stored.voter_id.startswith("voter-")
    assert at.session_state["rl_crowd_ballot"]["pair_id"] != shown.pair_id  # the next pair is shown
    assert at.metric[0].value == "1"

    # A late second click of the first pair's button (the double-click) re-sends the same vote: no new row,
    # and it never counts for the pair shown now.
    from ui.crowd import record_vote

    state = {"rl_crowd_voter": stored.voter_id, "rl_crowd_ballot": dict(at.session_state["rl_crowd_ballot"])}
    record_vote(store, state, "rl_crowd", ballot, "a")
    assert store.count() == 1 and state["rl_crowd_ballot"] == at.session_state["rl_crowd_ballot"]
    assert state["rl_crowd_flash"] == ("info", "This pair already had your vote (B is better); it was kept.")

    for _ in range(2):
        at.button(key=vote_buttons(at)["tie"]).click().run()
    assert "You have judged every pair" in at.success[-1].value and not vote_buttons(at)
    assert store.count() == 3 and at.metric[0].value == "3"
    assert "You vote anonymously as voter-" in at.caption[-1].value
    assert not at.expander and not at.session_state["test_presenter"]  # no token on the server: no controls


def test_the_panel_says_when_a_pair_left_the_pool_or_the_database_fails(tmp_path):
    url = f"sqlite:///{tmp_path}/votes.sqlite3"
    at = panel(url)
    store = VoteStore(url)
    gone = at.session_state["rl_crowd_ballot"]["pair_id"]
    store.remove_pairs([gone])
    at.button(key=vote_buttons(at)["a"]).click().run()
    assert not at.exception and "no longer in the pool" in at.warning[0].value
    assert store.count() == 0 and at.session_state["rl_crowd_ballot"]["pair_id"] != gone

    bad = panel("postgresql://u:hunter2@127.0.0.1:1/votes")
    assert "Cannot reach the vote database" in bad.error[0].value and "hunter2" not in bad.error[0].value


def test_presenter_controls_need_the_token(tmp_path, monkeypatch):
    monkeypatch.setenv("LLMLAB_PRESENTER_TOKEN", "room-42")
    url = f"sqlite:///{tmp_path}/votes.sqlite3"
    at = panel(url)
    at.button(key=vote_buttons(at)["a"]).click().run()
    assert VoteStore(url).count() == 1
    assert "Enter the presenter token" in at.expander[0].caption[0].value and not at.checkbox

    at.text_input(key="rl_crowd_token").input("room-41").run()
    assert "Wrong presenter token" in at.error[0].value and not at.checkbox
    assert not at.session_state["test_presenter"]

    at.text_input(key="rl_crowd_token").input("room-42").run()
    assert at.session_state["test_presenter"] and not at.exception
    assert at.button(key="rl_crowd_clear").disabled
    at.checkbox(key="rl_crowd_confirm").check().run()
    at.button(key="rl_crowd_clear").click().run()
    assert not at.exception and "Deleted 1 votes" in at.success[0].value
    assert VoteStore(url).count() == 0 and at.metric[0].value == "0"
