"""The pages' lazy tabs (ui.frame.demo_tabs), as users get them: only the open tab runs, and a link opens a
tab. (The rest of the AppTest suite sets LLMLAB_EAGER_TABS=1 to reach every tab in one run;
tests/test_browser.py clicks a real tab.)"""

import pytest
from conftest import has_chart, instant, open_page

from ui.frame import EAGER_TABS_ENV


@pytest.fixture(autouse=True)
def lazy_tabs(monkeypatch):
    monkeypatch.delenv(EAGER_TABS_ENV)


def explorer(at) -> bool:
    """The next-token explorer (the first tab) was drawn: its browser-computed chart (ui/instant.py)."""
    return instant(at, "pt_next_token") is not None


def buttons(at) -> set[str]:
    return {b.key for b in at.button if b.key}


def test_a_page_runs_only_its_first_tab():
    at = open_page("pages/1_Pretraining.py")
    assert explorer(at)  # the explorer: the first tab
    assert "pt_live_start" not in buttons(at)  # "Watch it learn" did not run
    assert not has_chart(at, "pt_chinchilla_chart")
    assert at.session_state["tab_pretraining"] == "Next-token explorer"


def test_a_link_opens_its_tab():
    """(A click on another tab is a browser event AppTest cannot send: tests/test_browser.py clicks one.)"""
    at = open_page("pages/1_Pretraining.py", {"tab_pretraining": "Watch it learn"})
    assert "pt_live_start" in buttons(at)
    assert not explorer(at)
    assert at.session_state["tab_pretraining"] == "Watch it learn"


@pytest.mark.parametrize(
    ("page", "key", "label", "widget"),
    [
        ("pages/2_SFT.py", "tab_sft", "Live SFT", "sft_live_start"),
        ("pages/3_RLHF.py", "tab_rlhf", "3 · Online RL (live)", "rl_online_start"),
        ("pages/4_DPO.py", "tab_dpo", "Live DPO", "dpo_live_start"),
    ],
)
def test_each_page_opens_a_linked_tab(page, key, label, widget):
    first = open_page(page)
    assert widget not in buttons(first)
    at = open_page(page, {key: label})
    assert widget in buttons(at), sorted(buttons(at))


def test_an_unknown_tab_in_a_link_opens_the_first_tab():
    at = open_page("pages/1_Pretraining.py", {"tab_pretraining": "<b>nope</b>"})
    assert explorer(at)


def test_reset_keeps_the_open_tab_and_drops_the_settings():
    at = open_page("pages/1_Pretraining.py", {"tab_pretraining": "Watch it learn", "pt_live_steps": "1000"})
    assert at.session_state["pt_live_steps"] == 1000
    at.button(key="reset_page").click().run()
    assert not at.exception
    assert at.session_state["pt_live_steps"] == 600  # the default again (and so in the URL)
    assert at.query_params["tab_pretraining"] == "Watch it learn"
    assert "pt_live_start" in buttons(at)  # still on the live tab


def test_a_try_it_button_opens_the_demo_its_question_names():
    at = open_page("pages/1_Pretraining.py")
    assert explorer(at) and not has_chart(at, "pt_ch_iso")
    at.button(key="try_pretraining-q3").click().run()  # Q3: "Same compute budget, two options..."
    assert not at.exception
    assert at.session_state["tab_pretraining"] == "Chinchilla" and at.query_params["tab_pretraining"] == "Chinchilla"
    assert has_chart(at, "pt_ch_iso") and not explorer(at)
