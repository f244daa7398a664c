"""Presenter mode for a projector and a room: the demo first, a QR code to join, answers revealed one by one.

(Where things land on a 1280×720 and a 1920×1080 screen is checked in Chromium: tests/test_browser_presenter.py.)
"""

import io

import numpy as np
import pytest
import zxingcpp
from PIL import Image

from llmlab import rlhf
from llmlab.lessons import load_lessons
from tests.conftest import open_page, texts
from ui.cards import QUESTIONS_FOLDED, REVEALED
from ui.join import join_url, qr_png

RLHF = "pages/3_RLHF.py"
SWEEP_TAB = "2 · KL sweep (exact, instant)"


def decode(png: bytes) -> str:
    found = zxingcpp.read_barcodes(np.array(Image.open(io.BytesIO(png)).convert("L")))
    assert len(found) == 1 and found[0].format == zxingcpp.BarcodeFormat.QRCode
    return found[0].text


# -- the join address and its QR code --------------------------------------------------------------------


def test_the_join_address_keeps_the_page_tab_and_settings_without_presenter_mode_or_tokens():
    query = {"presenter": "1", "tab_rlhf": SWEEP_TAB, "rl_sweep_beta": "0.01", "vote_token": "s3cret"}
    url = join_url("http://192.168.1.20:8501/RLHF", query, network_ip=None)
    assert url == "http://192.168.1.20:8501/RLHF?tab_rlhf=2+%C2%B7+KL+sweep+%28exact%2C+instant%29&rl_sweep_beta=0.01"


@pytest.mark.parametrize("host", ["localhost", "127.0.0.1", "[::1]"])
def test_a_presenter_on_localhost_shares_the_machines_network_address(host):
    assert join_url(f"http://{host}:8501/DPO", {}, network_ip="10.0.0.7") == "http://10.0.0.7:8501/DPO"
    public = join_url(f"http://{host}:8501/DPO", {"dpo_beta": "0.5"}, "10.0.0.7", public_url="https://lab.example.org")
    assert public == "https://lab.example.org/DPO?dpo_beta=0.5"  # $LLMLAB_PUBLIC_URL wins
    assert join_url(f"http://{host}:8501/", {}, network_ip=None) == f"http://{host}:8501/"  # nothing better known


@pytest.mark.parametrize(
    "url",
    [
        "http://10.0.0.7:8501/RLHF?tab_rlhf=2+%C2%B7+KL+sweep+%28exact%2C+instant%29&rl_sweep_beta=0.01",
        "http://10.0.0.7:8501/Pretraining?pt_prompt=" + "%F0%9F%8E%89" * 40,  # long, and odd characters
    ],
)
def test_the_qr_code_decodes_to_the_join_address(url):
    assert decode(qr_png(url)) == url


# -- the page in presenter mode (AppTest) ----------------------------------------------------------------


def test_the_join_dialog_shows_a_qr_code_of_the_attendee_link(monkeypatch):
    monkeypatch.setenv("LLMLAB_PUBLIC_URL", "http://lab.local:8501")
    at = open_page(RLHF, {"presenter": "1", "tab_rlhf": SWEEP_TAB, "rl_sweep_beta": "0.01"})
    at.button(key="join").click().run()
    assert not at.exception, [e.message for e in at.exception]
    shown = [c.value for c in at.code]
    link = next(v for v in shown if v.startswith("http://lab.local:8501"))
    assert "presenter" not in link and "rl_sweep_beta=0.01" in link and "tab_rlhf=" in link
    qr = at.get("image")
    assert len(qr) == 1 and qr[0].captions == ["Scan with a phone camera"]
    # (the count of connected sessions needs a real server: tests/test_browser_presenter.py)


def test_attendees_have_no_join_button_and_see_the_card_as_usual():
    at = open_page(RLHF)
    assert "join" not in {b.key for b in at.button}
    assert not any(b.key and b.key.startswith("reveal_") for b in at.button)
    lesson = load_lessons()["rlhf"]
    assert lesson.problem.split("\n\n")[0][:60] in texts(at)  # the problem, open


def test_answers_stay_hidden_until_the_presenter_reveals_each_one():
    lesson = load_lessons()["rlhf"]
    first, second = lesson.qas[0], lesson.qas[1]
    at = open_page(RLHF, {"presenter": "1"})
    page = texts(at)
    assert first.question[:50] in page and second.question[:50] in page  # the questions are on screen
    assert first.answer[:60] not in page and second.answer[:60] not in page  # their answers are not
    at.button(key=f"reveal_{first.id}").click().run()
    page = texts(at)
    assert first.answer.split("\n\n")[0][:60] in page and second.answer[:60] not in page  # one at a time
    assert at.session_state[REVEALED] == {first.id}
    assert f"reveal_{first.id}" not in {b.key for b in at.button}


def test_the_questions_fold_to_a_strip_and_back():
    at = open_page(RLHF, {"presenter": "1"})
    at.button(key="fold_questions").click().run()
    assert at.session_state[QUESTIONS_FOLDED] is True
    assert "Think it through" not in [h.value for h in at.subheader]
    assert "reveal_" not in " ".join(b.key or "" for b in at.button)
    at.button(key="unfold_questions").click().run()
    assert "Think it through" in [h.value for h in at.subheader]


def test_presenter_mode_keeps_every_card_section_one_click_away():
    lesson = load_lessons()["dpo"]
    at = open_page("pages/4_DPO.py", {"presenter": "1"})
    whole = next(e for e in at.expander if e.label.startswith("The whole card"))
    inside = " ".join(m.value for m in whole.markdown)
    assert lesson.problem.split("\n\n")[0][:60] in inside and lesson.summary.split("\n\n")[0][:60] in inside


def test_the_rlhf_diagram_follows_the_theme():
    dot = rlhf.pipeline_dot(rlhf.pipeline_stages("tiny-sft", None, None))
    assert 'bgcolor="transparent"' in dot and 'color="#7f8c99"' in dot  # no white box, edges seen on dark too
