"""Stacked bias (llmlab/amplification.py, the RLHF page's "Stacked bias" tab): the labellers', the reward model's and
the RL policy's preference for the longer answer on one scale, measured on the bundled models with fixed seeds.

Measured (seed 0, tiny-sft, the bundled reward models, PPO 25 steps): biased labellers 100% of 346 pairs, unbiased
52%; biased reward model 99.997% on plain-vs-padded right answers (margin 18.8 score units), unbiased 23%; the policy's
implied preference r̂ = log π/π_ref: 50% before RL, 89% after PPO at β = 0 (answers 6.3 -> 11.4 tokens, 98% -> 38%
right), 46% at β = 1 (84% right, 6.5 tokens).
"""

import time

import numpy as np
import pytest

from llmlab import amplification, reward
from llmlab.amplification import AmplificationConfig
from llmlab.jobs import Job
from llmlab.modeling import load_model
from llmlab.preferences import preference_pairs, true_reward
from tests import conftest
from tests.conftest import chart, texts
from tests.test_pages import array

TAB = "Stacked bias"


@pytest.fixture(scope="module")
def sft():
    return conftest.locked(load_model, "tiny-sft", "cpu")


def bundled_rm(sft, biased: bool) -> reward.RewardRun:
    return reward.load_or_train_reward_model(sft, reward.RewardRunConfig(biased=biased))


def test_equal_pairs_are_equally_correct_and_differ_only_in_length():
    pairs = amplification.equal_pairs()
    assert len(pairs) == 24 * amplification.PAD_VARIANTS
    for p in pairs:
        assert true_reward(p.prompt, p.short) == true_reward(p.prompt, p.long) == 1.0
        assert len(p.long) > len(p.short) and p.short in p.long


def test_labellers_biased_always_pick_the_longer_unbiased_about_half():
    biased, n = amplification.labeller_preference(preference_pairs(0, True, "train"))
    unbiased, _ = amplification.labeller_preference(preference_pairs(0, False, "train"))
    assert biased == 1.0 and n > 300
    assert 0.4 < unbiased < 0.65


def test_the_biased_reward_model_inherits_the_length_bias_the_unbiased_one_does_not(sft):
    pairs = amplification.equal_pairs()
    biased = amplification.sigmoid(amplification.reward_margins(bundled_rm(sft, True).model, sft.tokenizer, pairs))
    unbiased = amplification.sigmoid(amplification.reward_margins(bundled_rm(sft, False).model, sft.tokenizer, pairs))
    assert biased.mean() > 0.95  # measured 0.99997
    assert unbiased.mean() < 0.5  # measured 0.23: the honest reward model slightly dislikes padding


def test_unleashed_rl_against_the_biased_reward_model_learns_the_bias(sft):
    """PPO at β = 0 against the biased reward model (seed 0): the reward it implicitly learned prefers the padded
    answer, its answers get longer and less often right; before RL the preference is exactly 50%."""
    rm = bundled_rm(sft, True)
    job = Job("amp", amplification.amplification_work(sft, rm, AmplificationConfig(betas=(0.0,), steps=25)))
    job.start()
    job.join()
    assert job.status == "done", job.error
    result = job.result
    by = {s.name: s.preference for s in result.stages}
    assert by["labellers"] == 1.0 and by["reward model"] > 0.95
    assert by[f"policy: {amplification.BEFORE}"] == 0.5
    assert by[f"policy: {amplification.after(0.0)}"] > 0.7  # measured 0.89
    before, after = result.policies
    assert after.length > 1.4 * before.length  # measured 11.4 vs 6.3 tokens
    assert after.correct < before.correct - 0.2  # measured 38% vs 98%
    assert np.isfinite(after.logp_gap) and after.writes_long < 0.01  # it does not write the labellers' padding


def poll(at, done, timeout=900.0):
    deadline = time.monotonic() + timeout
    while not done(at):
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.5)
        at.run()
        assert not at.exception, [e.message for e in at.exception]


def test_tab_measures_the_chain_and_charts_every_stage(session):
    at = conftest.open_page("pages/3_RLHF.py", {"tab_rlhf": TAB}, timeout_s=300)
    assert "Press Measure the chain" in texts(at)
    at.multiselect(key="rl_amp_betas").set_value([0.0])
    at.slider(key="rl_amp_steps").set_value(5).run()
    at.button(key="rl_amp_start").click().run()
    poll(at, lambda at: "Finished in" in texts(at))
    data = chart(at, "rl_amp_chart")["data"]
    assert len(data) == 1
    names, values = data[0]["x"], array(data[0]["y"])
    assert len(names) == 4 and "labellers" in names[0] and "reward" in names[1]
    assert values[0] == 1.0 and values[1] > 0.95 and values[2] == pytest.approx(0.5)
    assert "Labellers 100%" in texts(at)
    assert any("answer length (tokens)" in d.value.columns for d in at.dataframe)
