"""Smoke test of the load-test client (bench/load_test.py) against a real `streamlit run app.py` on 127.0.0.1.

Two simulated sessions speak Streamlit's websocket protocol: both open the pre-training page and move the
temperature slider; one presses Start of the live training panel and keeps polling it (run_every); the other
switches to the DPO page and moves a slider there. No timing is asserted (speed targets live in bench/).
"""

import asyncio
import json
import urllib.parse

import pytest

from bench.load_test import (
    LIVE_TAB_QUERY,
    PRESENTER_LABEL,
    PRESENTER_SLIDER,
    TEMPERATURE,
    TRAIN_START,
    TRAIN_STOP,
    LoadTestError,
    Session,
    load_test,
    server_pid,
)
from tests.browser_server import streamlit_server

PER_PAGE = 2
pytestmark = pytest.mark.server


@pytest.fixture(scope="module")
def server():
    with streamlit_server() as url:
        yield url


def test_two_sessions_make_every_interaction_without_errors(server):
    result = asyncio.run(
        load_test(
            server,
            sessions=2,
            pid=server_pid(server),
            per_page=PER_PAGE,
            think_s=(0.05, 0.2),
            ramp_s=0.5,
            deadline_s=240,
            run_timeout_s=180,  # the first run of a fresh server loads the model
        )
    )
    assert result.errors == []
    # the presenter moves temperature 2 * PER_PAGE times; the attendee PER_PAGE times on each page
    assert len(result.latencies_s) == 4 * PER_PAGE
    assert all(0 < t < 180 for t in result.latencies_s)
    assert len(result.by_slider[PRESENTER_LABEL]) == 2 * PER_PAGE
    assert len(result.by_slider[TEMPERATURE]) == PER_PAGE
    second = [key for key in result.by_slider if key not in (TEMPERATURE, PRESENTER_LABEL)]
    assert len(second) == 1 and len(result.by_slider[second[0]]) == PER_PAGE
    # presenter: first view; attendee: first view, the DPO page (and back, while the DPO page has no slider)
    assert len(result.page_opens_s) in (3, 4)
    # the Start click started a job whose live panel asked the browser to poll it
    assert result.training_started >= 1 and result.training_polls >= 1
    assert result.rss_peak >= result.rss_start > 50 * 1024**2


def test_client_learns_widgets_and_refuses_unknown_ones(server):
    async def scenario():
        session = Session(server, "probe", run_timeout_s=180)
        await session.connect()
        try:
            await session.goto("Pretraining")
            demo, control = session.controls[TEMPERATURE]  # a browser control of the explorer (ui/instant.py)
            assert demo.key == "pt_next_token" and demo.fragment_id  # drawn inside a fragment
            assert session.slider_value(TEMPERATURE) == 1.0  # the page's default
            await session.set_slider(TEMPERATURE, 2.5)  # the end of a drag: the server reruns the fragment
            assert session.slider_value(TEMPERATURE) == 2.5
            # the server took the value: the redrawn demo's control says 2.5 (and the sampled text will use it)
            demo, control = session.controls[TEMPERATURE]
            assert control["value"] == 2.5 and json.loads(demo.proto.json)["kind"] == "next_token"
            with pytest.raises(LoadTestError, match="no slider"):
                session.widget("no_such_key", "slider")
        finally:
            await session.close()
        assert session.errors == []

    asyncio.run(scenario())


def test_a_live_view_is_never_a_fragment_inside_a_fragment(server):
    """The "Watch it learn" tab is a fragment while nothing runs; Start makes it part of the page run, so the live
    view that polls is a top-level run_every fragment; a slider move meanwhile finishes and the polling goes on;
    Stop makes the tab a fragment again (ui.runs.fragment_unless_running)."""

    async def scenario():
        session = Session(server, "runner", run_timeout_s=180)
        await session.connect()
        try:
            await session.goto("Pretraining", LIVE_TAB_QUERY)
            assert session.widget(PRESENTER_SLIDER, "slider").fragment_id  # a slider move reruns only the tab
            assert not session.auto_rerunning
            await session.click(TRAIN_START)
            assert session.widget(PRESENTER_SLIDER, "slider").fragment_id == ""  # drawn by the page run
            assert session.auto_rerunning  # the live view polls
            assert session.widget(TRAIN_STOP, "button").fragment_id == ""
            await session.set_slider(PRESENTER_SLIDER, 0)  # a full run now, and it finishes
            assert session.auto_rerunning
            await session.click(TRAIN_STOP)
            # Stop waits up to 5 s for the run's step to end; a run that ends later asks for a full rerun itself
            for _ in range(300):
                if session.widget(PRESENTER_SLIDER, "slider").fragment_id:
                    break
                await asyncio.sleep(0.1)
            assert session.widget(PRESENTER_SLIDER, "slider").fragment_id  # a fragment again
            assert not session.auto_rerunning
        finally:
            await session.close()
        assert session.errors == []

    asyncio.run(scenario())


def test_a_vote_reruns_only_the_ballot_and_the_counter_polls_beside_it(tmp_path, monkeypatch):
    """The "Vote as a room" tab: the ballot is a fragment (a vote reruns only it), and the live counter is a
    run_every fragment of its own, not nested in the ballot or the tab (ui.crowd)."""
    monkeypatch.setenv("LLMLAB_DATA_DIR", str(tmp_path))  # this server's votes go to a temp folder

    def vote_buttons(session: Session) -> list:
        return [w for key, w in session.widgets.items() if w.kind == "button" and key.startswith("rl_crowd_a_")]

    async def scenario(url: str):
        session = Session(url, "voter", run_timeout_s=180)
        await session.connect()
        try:
            await session.goto("RLHF", urllib.parse.urlencode({"tab_rlhf": "Vote as a room"}))
            [button] = vote_buttons(session)
            assert button.fragment_id  # the ballot is a fragment...
            assert session.widget("rl_crowd_source", "radio").fragment_id == ""  # ...the tab is not
            assert session.auto_rerunning and button.fragment_id not in session._auto  # the counter polls apart
            await session.click(button.key)
            [next_button] = vote_buttons(session)
            assert next_button.key != button.key  # the vote was taken: the next pair is shown
            assert next_button.fragment_id == button.fragment_id and session.auto_rerunning
        finally:
            await session.close()
        assert session.errors == []

    with streamlit_server() as url:
        asyncio.run(scenario(url))
    assert (tmp_path / "votes.sqlite3").is_file()


def test_client_only_talks_to_loopback():
    with pytest.raises(ValueError, match="127.0.0.1"):
        Session("http://example.com:8501")
