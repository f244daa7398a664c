"""SFT or RLHF at a small labelling budget (llmlab/rlhf_budget.py, the RLHF page's "SFT or RLHF? (small budget)" tab).

Measured on tiny-sft (98% right on the 24 unseen questions, 86% on the pairs' 96 questions), 64 pairs, seeds 0-2:
SFT on the chosen answers: unseen 92 / 90 / 91%, pairs' questions 92 / 85 / 88%; reward model on the same pairs
(held-out pair accuracy 62 / 67 / 60%) + PPO 20 steps at β = 1: unseen 91 / 95 / 92%, pairs' questions 75 / 83 / 84%.
"""

import time

import pytest

from llmlab import rlhf_budget
from llmlab.instructions import Instruction
from llmlab.modeling import load_model
from llmlab.preferences import true_reward
from llmlab.rlhf_budget import BudgetConfig
from tests import conftest
from tests.conftest import chart, texts
from tests.test_pages import array

TAB = "SFT or RLHF? (small budget)"


@pytest.fixture(scope="module")
def start():
    return conftest.locked(load_model, "tiny-sft", "cpu")


def test_both_arms_get_the_same_pairs_and_sft_learns_the_chosen_answers():
    pairs = rlhf_budget.budget_pairs(64, seed=0)
    assert len(pairs) == 64 and pairs == rlhf_budget.budget_pairs(64, seed=0)
    assert pairs != rlhf_budget.budget_pairs(64, seed=1)
    rows = rlhf_budget.sft_rows(pairs)
    assert all(isinstance(r, Instruction) for r in rows)
    assert [r.response for r in rows] == [p["chosen"] for p in pairs]
    assert all(true_reward(p["prompt"], p["chosen"]) == 1.0 for p in pairs)  # unbiased labels: the right answer
    with pytest.raises(rlhf_budget.BudgetInputError):
        BudgetConfig(pairs=1).check()
    with pytest.raises(rlhf_budget.BudgetInputError):
        BudgetConfig(pairs=rlhf_budget.SHIPPED + 1).check()


def test_at_64_pairs_sft_beats_rlhf_on_the_pairs_questions_and_neither_gains_on_unseen(start):
    """Seed 0: the reward model learns little from 64 pairs, and PPO against it loses correctness; SFT on the chosen
    answers gains on the questions they answer. On the unseen questions the start model is near its ceiling, and
    both arms lose a few points."""
    result = rlhf_budget.compare(start, BudgetConfig(pairs=64, seed=0))
    assert set(result.arms) == {"start", "SFT", "RLHF"}
    assert result.rm_accuracy < 0.7  # measured 0.62 (the bundled 368-pair reward model: 0.75)
    assert result.arms["start"].unseen.correct > 0.9
    assert result.gain("SFT", "seen") > result.gain("RLHF", "seen") + 0.05  # measured +6 vs -11 points
    assert result.gain("SFT") < 0.01 and result.gain("RLHF") < 0.01  # measured -6 and -7 points
    assert result.arms["SFT"].unseen.answers == 24 * result.config.eval_samples


def poll(at, done, timeout=900.0):
    deadline = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.message for e in at.exception]


def test_tab_runs_its_default_and_charts_both_arms(session):
    at = conftest.open_page("pages/3_RLHF.py", {"tab_rlhf": TAB}, timeout_s=300)
    assert "Press Compare" in texts(at)
    assert at.select_slider(key="rl_budget_pairs").value == 64
    at.button(key="rl_budget_start").click().run()
    poll(at, lambda at: "Finished in" in texts(at))
    data = chart(at, "rl_budget_chart")["data"]
    assert [t["name"] for t in data] == ["24 unseen questions", "the 96 questions the pairs ask (fresh samples)"]
    assert len(data[0]["x"]) == 3 and "SFT" in data[0]["x"][1] and "RLHF" in data[0]["x"][2]
    assert all(0 <= v <= 1 for t in data for v in array(t["y"]))
    assert any(m.label.startswith("Reward model on 64 pairs") for m in at.metric)
    assert "64 pairs, unseen questions" in texts(at)
