"""The lineage on Home: every bundled stage answers one question (llmlab/lineage.py, ui/demos/lineage.py); the
bundled preference stages are more often right than tiny-sft; the workshop route names pages and tabs that exist."""

import re

import numpy as np
import pytest
import torch

from llmlab import lineage, policy_eval, preferences
from llmlab.lessons import load_workshop
from llmlab.modeling import bundled_models, load_model
from llmlab.nexttoken import PromptError
from tests import conftest
from tests.conftest import ROOT, chart, texts
from tests.test_pages import array


@pytest.fixture(scope="module")
def stages():
    return {name: load_model(name, "cpu") for name in lineage.LINEAGE}


def test_all_four_stages_are_bundled_with_a_model_card_and_its_rebuild_command():
    assert set(lineage.LINEAGE) <= set(bundled_models())
    for name in ("tiny-rlhf", "tiny-dpo"):
        card = (ROOT / "models" / name / "MODEL_CARD.md").read_text()
        assert f"python scripts/train_aligned.py {name.removeprefix('tiny-')}" in card and "right answers" in card


@pytest.mark.parametrize("name", ["tiny-rlhf", "tiny-dpo"])
def test_the_bundled_preference_stages_answer_more_questions_right_than_tiny_sft(stages, name):
    """Measured as the pages measure policies: 4 answers sampled for each of the 96 questions of the held-out
    pairs; the stage is more often right than the model it started from (its card says by how much)."""
    report = policy_eval.compare_on(
        "test", stages[name].model, stages["tiny-sft"].model, stages["tiny-sft"].tokenizer,
        preferences.preference_pairs(split="test"), preferences.true_reward, asked=preferences.asked("test"),
    )  # fmt: skip
    assert report.reward_after > report.reward_before, (report.reward_before, report.reward_after)
    card = (ROOT / "models" / name / "MODEL_CARD.md").read_text()
    assert f"{report.reward_before:.1%} (tiny-sft) → {report.reward_after:.1%}" in card  # the card tells the truth


def test_one_question_every_stage_and_where_they_part(stages):
    before = {n: [p.clone() for p in m.model.parameters()] for n, m in stages.items()}
    view = lineage.compare(stages, "What is the capital of Spain?")
    assert view.names == lineage.LINEAGE
    assert view.answers["tiny-sft"] == "The capital of Belgium is Brussels." and view.correct["tiny-sft"] is False
    assert view.correct["tiny-dpo"] is True and "Madrid" in view.answers["tiny-dpo"]
    assert not view.answers["tiny-base"].startswith("The capital of Spain")  # base continues text
    for name in view.names:  # a distribution at every position of tiny-sft's answer (and after its last token)
        assert view.probs[name].shape[0] == view.positions
        np.testing.assert_allclose(view.probs[name].sum(axis=1), 1.0, atol=1e-6)
    t = view.default_position
    assert view.position_label(t) == "The capital of ▌"  # where tiny-dpo first picks another token than tiny-sft
    tokens, probs = view.distribution(t)
    assert tokens[0] in (" Belgium", " Spain") and {" Belgium", " Spain"} <= set(tokens)
    sft, dpo = probs["tiny-sft"], probs["tiny-dpo"]
    assert sft[tokens.index(" Belgium")] > sft[tokens.index(" Spain")]
    assert dpo[tokens.index(" Spain")] > dpo[tokens.index(" Belgium")]
    for name, model in stages.items():  # shared models are only read
        assert all(torch.equal(a, b) for a, b in zip(before[name], model.model.parameters(), strict=True))


def test_bad_questions(stages):
    with pytest.raises(PromptError, match="Type a question"):
        lineage.compare(stages, "   \n ")
    long = lineage.compare(stages, "Why " * 500)
    assert long.truncated and len(long.question) == lineage.MAX_QUESTION_CHARS
    odd = lineage.compare(stages, "Wh\u200bat is the capital of 日本? 🙂 <b>x</b>")
    assert set(odd.answers) == set(lineage.LINEAGE) and all(v is None for v in odd.correct.values())


def test_home_draws_the_lineage_and_a_typed_question(session):
    at = conftest.open_page("app.py")
    data = chart(at, "home_lineage_chart")["data"]
    assert [t["name"] for t in data] == list(lineage.LINEAGE)
    view = lineage.compare({n: load_model(n, "cpu") for n in lineage.LINEAGE}, "What is the capital of Spain?")
    tokens, probs = view.distribution(view.default_position)
    for trace in data:
        np.testing.assert_allclose(array(trace["y"]), probs[trace["name"]], rtol=1e-6)
    assert "The capital of Belgium is Brussels." in [c.value for c in at.code]

    at.text_input(key="home_lineage_typed").input("What is the capital of Indonesia?").run()
    assert not at.exception
    assert "The capital of Indonesia is Jakarta." in [c.value for c in at.code]
    at.text_input(key="home_lineage_typed").input("  ").run()  # nothing typed: the example again
    assert "The capital of Belgium is Brussels." in [c.value for c in at.code]
    assert "A workshop route" in " ".join(e.label for e in at.expander)
    assert "60 minutes" in texts(at) or any("60 minutes" in s.value for s in at.subheader)


def test_the_workshop_route_names_pages_and_tabs_that_exist():
    intro, routes = load_workshop()
    assert "Join" in intro and [r.title for r in routes] == ["60 minutes", "90 minutes"]
    tabs: dict[str, list[str]] = {"Home": ["The lineage on one screen"]}
    for page, name in (("Pre-training", "1_Pretraining"), ("SFT", "2_SFT"), ("RLHF", "3_RLHF"), ("DPO", "4_DPO")):
        tabs[page] = re.findall(r'Tab\("([^"]+)"', (ROOT / "pages" / f"{name}.py").read_text())
    for route in routes:
        assert len(route.steps) >= 4
        for page, tab in route.steps:
            assert any(t.startswith(tab) for t in tabs[page]), (page, tab)
    assert "The lineage on one screen" in (ROOT / "ui" / "demos" / "lineage.py").read_text()
