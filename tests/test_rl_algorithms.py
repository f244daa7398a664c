"""PPO, RLOO and GRPO side by side (llmlab/rl_algorithms.py) and its tab on the RLHF page."""

import math

import numpy as np
import pytest
import torch

from llmlab import ppo, rl_algorithms, rlhf
from llmlab.jobs import Job
from llmlab.modeling import load_model
from tests import conftest
from tests.conftest import chart, texts
from tests.test_page_rlhf import poll_until
from tests.test_pages import array


def step(algorithm: int, n: int, kl: float, reward: float, **extra) -> dict:
    row = {"algorithm": float(algorithm), "beta": 1.0, "step": n, "kl_seq": kl, "rewards/judge/mean": reward}
    return row | {"true_reward": 0.5, "completions/mean_length": 6.0, "padding": 0.0} | extra


def test_the_three_share_every_setting_and_keep_their_own_trainer():
    configs = rl_algorithms.Comparison(beta=0.5, steps=7, seed=3).configs()
    assert list(configs) == list(rl_algorithms.ALGORITHMS)
    assert isinstance(configs["PPO"], ppo.PPOConfig)
    assert [configs["RLOO"].algorithm, configs["GRPO"].algorithm] == ["RLOO", "GRPO"]
    assert {(c.beta, c.max_steps, c.seed, c.reward) for c in configs.values()} == {(0.5, 7, 3, "reward model")}
    for bad in (float("nan"), -1.0):
        with pytest.raises(ValueError, match="β|KL"):
            rl_algorithms.Comparison(beta=bad).check()


def test_tables_and_paths_from_a_tagged_history():
    history = [step(0, n, kl=0.1 * n, reward=n, clip_fraction=0.05 * n) for n in range(1, 11)]
    history += [step(1, n, kl=0.01 * n, reward=-n) for n in range(1, 11)]
    rows = rl_algorithms.summary_rows(history)
    assert [r["algorithm"] for r in rows] == ["PPO", "RLOO"] and [r["steps"] for r in rows] == [10, 10]
    assert rows[0]["reward (last 5 steps)"] == pytest.approx(8.0) and rows[0]["wall time (s)"] is None
    kl, reward = rl_algorithms.trajectory(history, "PPO")
    assert kl == pytest.approx([0.3, 0.8]) and reward == pytest.approx([3.0, 8.0])  # means of steps 1-5 and 6-10
    steps, clipped = rl_algorithms.clip_fractions(history, "PPO")
    assert steps == list(range(1, 11)) and clipped == pytest.approx([0.05 * n for n in range(1, 11)])
    assert all(math.isnan(c) for c in rl_algorithms.clip_fractions(history, "RLOO")[1])  # trl logged none here


def test_memory_counts_the_critic_only_for_ppo():
    sft = load_model("tiny-sft", "cpu")
    rows = {r["algorithm"]: r for r in rl_algorithms.memory_rows(sft.model, sft.model)}
    n = sum(p.numel() for p in sft.model.parameters())
    head = sft.model.config.hidden_size + 1
    assert rows["RLOO"]["parameters kept"] == rows["GRPO"]["parameters kept"] == 3 * n  # policy, reference, RM
    assert rows["PPO"]["parameters kept"] == 3 * n + head
    assert rows["PPO"]["with AdamW state"] == 3 * n + head + 2 * (n + head)
    assert "value head" in rows["PPO"]["models in memory"] and "value head" not in rows["RLOO"]["models in memory"]


def test_a_short_comparison_runs_all_three_and_shows_their_advantages_on_the_same_answers():
    sft = load_model("tiny-sft", "cpu")
    comparison = rl_algorithms.Comparison(steps=2, reward="correctness")
    job = Job("test", rl_algorithms.comparison_work(sft, None, comparison)).start()
    job.join()
    assert job.error is None, job.error
    assert [r.algorithm for r in job.result] == ["PPO", "RLOO", "GRPO"]
    assert [rl_algorithms.algorithm_of(h) for h in job.snapshot()] == ["PPO"] * 2 + ["RLOO"] * 2 + ["GRPO"] * 2
    (view,) = job.notes_of(ppo.AdvantageView)
    scores = np.array(view.scores)
    np.testing.assert_allclose(view.grpo, ppo.grpo_advantages(torch.tensor(scores), len(scores)).numpy())
    assert len(view.ppo) == len(view.rloo) == len(view.completions) == 8
    with pytest.raises(rlhf.RLInputError, match="reward model"):
        rl_algorithms.comparison_work(sft, None, rl_algorithms.Comparison())


def test_the_tab_runs_all_three_and_draws_their_charts(session):
    at = conftest.open_page("pages/3_RLHF.py", {"tab_rlhf": "4 · PPO, RLOO, GRPO"}, timeout_s=300)
    assert "What each keeps in memory" in texts(at)
    at.radio(key="rl_algos_reward").set_value("correctness (verifiable, no reward model)")
    at.slider(key="rl_algos_steps").set_value(5).run()
    at.button(key="rl_algos_start").click().run()
    poll_until(at, lambda at: "Finished in" in texts(at))
    assert [t["name"] for t in chart(at, "rl_algos_frontier")["data"]] == ["PPO", "RLOO", "GRPO"]
    clip = {t["name"]: array(t["y"]) for t in chart(at, "rl_algos_clip")["data"]}
    assert all(0 <= v <= 1 for v in clip["PPO"]) and clip["RLOO"] == [0.0] * 5  # one step per batch: no clip
    k1, k3 = chart(at, "rl_algos_kl_estimators")["data"]
    assert all(v >= -1e-9 for v in array(k3["y"]))  # k3 is never negative
    assert len(chart(at, "rl_algos_advantages")["data"]) == 3
    table = next(d.value for d in at.dataframe if "wall time (s)" in d.value.columns)
    assert list(table["algorithm"]) == ["PPO", "RLOO", "GRPO"] and (table["wall time (s)"] > 0).all()


def test_stop_mid_comparison_keeps_what_ran_and_skips_the_rest(session):
    at = conftest.open_page("pages/3_RLHF.py", {"tab_rlhf": "4 · PPO, RLOO, GRPO"}, timeout_s=300)
    at.radio(key="rl_algos_reward").set_value("correctness (verifiable, no reward model)")
    at.slider(key="rl_algos_steps").set_value(100).run()
    at.button(key="rl_algos_start").click().run()
    poll_until(at, lambda at: conftest.has_chart(at, "rl_algos_frontier"))
    at.button(key="rl_algos_stop").click().run()
    poll_until(at, lambda at: "Stopped after" in texts(at))
    table = next(d.value for d in at.dataframe if "wall time (s)" in d.value.columns)
    assert list(table["algorithm"]) == ["PPO"] and 0 < table["steps"][0] < 100  # RLOO and GRPO never started
