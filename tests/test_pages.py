"""AppTest: the home page and every card page render without exception, with the card and its Q&A."""

import base64
import json
from pathlib import Path

import numpy as np
import pytest
import streamlit
from streamlit.testing.v1 import AppTest

from llmlab.lessons import load_lessons
from tests.conftest import ROOT, instant

PAGES = {
    "pretraining": "pages/1_Pretraining.py",
    "sft": "pages/2_SFT.py",
    "rlhf": "pages/3_RLHF.py",
    "dpo": "pages/4_DPO.py",
}


def run_page(path: str) -> AppTest:
    """Open a page as a deep link does: app.py is the entry point (page links resolve against it), but
    only the page's script runs."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    if path != "app.py":
        at.switch_page(path)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def figure(at: AppTest, index: int = 0) -> dict:
    return json.loads(at.get("plotly_chart")[index].proto.spec)


def array(values) -> list:
    """Plotly >= 6 stores numeric arrays as {"bdata": base64, "dtype": ...}."""
    if isinstance(values, dict) and "bdata" in values:
        return np.frombuffer(base64.b64decode(values["bdata"]), dtype=values["dtype"]).tolist()
    return list(values)


def test_home_page_links_every_stage():
    at = run_page("app.py")
    assert at.title[0].value == "LLM Training Lab"
    links = {link.proto.page for link in at.get("page_link")}  # url path names: "Pretraining", ...
    assert {"Pretraining", "SFT", "RLHF", "DPO"} <= links
    sidebar = " ".join(m.value for m in at.sidebar.markdown)
    assert "tiny-base" in sidebar and "Parameters" in sidebar and "Device" in sidebar


@pytest.mark.parametrize("lesson_id", PAGES)
def test_card_page_shows_whole_card_and_its_five_questions(lesson_id):
    lesson = load_lessons()[lesson_id]
    at = run_page(PAGES[lesson_id])
    assert at.title[0].value == lesson.title
    labels = [e.label for e in at.expander]
    questions = [label for label in labels if label.startswith("Q")]
    assert len(questions) == 5
    for qa, label in zip(lesson.qas, questions, strict=True):
        assert qa.question.replace("\\", "")[:40] in label.replace("\\", "")
    codes = [c.value for c in at.code]
    assert lesson.code_example in codes
    assert lesson.summary[:40] in " ".join(m.value for m in at.markdown).replace("\\", "")


def test_pretraining_chart_shows_paris_first_for_default_prompt():
    """The explorer's distribution is drawn in the browser (ui/instant.py) from the logits the page sends."""
    at = run_page(PAGES["pretraining"])
    data = instant(at, "pt_next_token")
    logits = np.array(data["logits"])
    probs = np.exp(logits - logits.max()) / np.exp(logits - logits.max()).sum()
    top = int(probs.argmax())
    assert data["labels"][str(top)] == "' Paris'" and probs[top] >= 0.5


@pytest.mark.parametrize(
    "prompt, expected",
    [
        ("", "empty"),
        ("   ", "empty"),
        ("word " * 2000, "longer than the model"),
        ("control \x00\x07 and emoji 🎉🧪 <script>alert(1)</script>", None),
    ],
)
def test_pretraining_bad_prompts_give_a_message_not_a_traceback(prompt, expected):
    at = run_page(PAGES["pretraining"])
    at.text_area(key="pt_prompt").set_value(prompt).run()
    assert not at.exception, [e.message for e in at.exception]
    messages = " ".join(e.value for e in [*at.info, *at.warning])
    if expected:
        assert expected in messages
    else:
        assert instant(at, "pt_next_token")["logits"]


def test_unknown_model_id_falls_back_with_a_message():
    at = run_page(PAGES["pretraining"])
    at.selectbox(key="model_picker_select").select_index(-1).run()
    at.text_input(key="model_picker_text").input("no-such-org/model-404").run()
    assert not at.exception
    assert any("Could not load" in e.value for e in at.sidebar.error)
    assert instant(at, "pt_next_token")["model"] == "tiny-base"  # the page keeps working on the default model


def test_every_page_asks_the_browser_to_preload_the_chart_code_that_exists():
    """The card comes with a preload of Streamlit's plotly and graphviz chunks (ui.shell): their files exist, so
    the browser fetches real code while the server warms up."""
    at = run_page("app.py")
    [preload] = at.get("bidi_component")
    hrefs = json.loads(preload.proto.json)
    static = Path(streamlit.__file__).parent / "static"
    assert {h.rsplit("/", 1)[1].split(".")[0] for h in hrefs} == {"PlotlyChart", "GraphVizChart"}
    assert all((static / h.lstrip("/")).is_file() for h in hrefs)
